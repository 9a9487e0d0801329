fn main() -> std::process::ExitCode {
    tally_worker::run_main(tally_worker::Registry::with_builtins())
}
