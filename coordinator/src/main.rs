//! `tally`: flags in, a validated configuration to the library, an exit
//! code out. Exit codes: 0 done, 1 error, 2 bad flags, 3 partial result
//! (chunks left out under `--on-error skip`).

mod cli;
mod commands;
mod stream_cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tally_protocol::allocator::keep_freed_memory();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = cli::Cli::parse();
    if let Err(e) = tally_coordinator::signals::install() {
        eprintln!("tally: cannot install signal handlers: {e}");
    }
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) if commands::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tally: {e:#}");
            match commands::interrupted(&e) {
                Some(sig) => ExitCode::from(128u8.saturating_add(sig as u8)),
                None => ExitCode::FAILURE,
            }
        }
    }
}
