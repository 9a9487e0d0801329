//! Ctrl-C and SIGTERM: the binary installs handlers that only record the
//! signal; the scheduler sees it on its next turn (within 100 ms), stops the
//! workers, and the process exits with 128 + the signal number.
//!
//! Workers run in their own process group, so a Ctrl-C at the terminal
//! reaches the coordinator alone, and it decides how they end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;

static PENDING: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Installs the handlers for SIGINT and SIGTERM (once; later calls do
/// nothing).
pub fn install() -> std::io::Result<()> {
    if PENDING.get().is_some() {
        return Ok(());
    }
    let flag = Arc::new(AtomicUsize::new(0));
    #[cfg(unix)]
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_usize(sig, flag.clone(), sig as usize)?;
    }
    let _ = PENDING.set(flag);
    Ok(())
}

/// The signal received, if any.
pub fn pending() -> Option<i32> {
    let v = PENDING.get()?.load(Ordering::Relaxed);
    (v != 0).then_some(v as i32)
}
