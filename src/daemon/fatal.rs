//! A daemon never runs without its parts: any panic in `ingestd run`, in any task or thread, is
//! fatal ([`fatal_panics`]), and a worker or watch task that ends on its own is noticed
//! (`Services::failure`) and stops the daemon too. Either way the reason is logged (if
//! stderr takes it), systemd is told (`STOPPING=1`, `STATUS=`, `ERRNO=`), and the process exits
//! non-zero so that `Restart=on-failure` brings it back with every part running. The heartbeat
//! and the watchdog stop with it: neither advances for a daemon that lost a part.

use sd_notify::NotifyState;

use super::Notifier;

/// Exit status after a panic (EX_SOFTWARE: an internal error).
pub const EXIT_PANIC: i32 = 70;

/// The text a panic was raised with, if it was a string.
pub fn panic_message<'a>(info: &'a std::panic::PanicHookInfo<'_>) -> Option<&'a str> {
    let payload = info.payload();
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// Installs the process-wide panic hook of `ingestd run` (not of in-process tests, which use
/// `run_with`). `flush_logs` waits briefly for queued log lines before the exit.
///
/// A failpoint's panic (`FAILPOINTS=name=panic`, test builds) keeps its own hook (abort).
pub fn fatal_panics(flush_logs: fn()) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = panic_message(info).unwrap_or("(no message)");
        if msg.starts_with("failpoint ") {
            previous(info);
            return;
        }
        // Not the default hook: it writes to stderr synchronously, which blocks on a stalled
        // pipe. The log queue never blocks.
        let thread = std::thread::current();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let backtrace = std::backtrace::Backtrace::capture();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            "internal error: a task panicked{at}: {msg}; exiting with status {EXIT_PANIC} so that the service manager restarts ingestd{}",
            match backtrace.status() {
                std::backtrace::BacktraceStatus::Captured => format!("\n{backtrace}"),
                _ => String::new(),
            }
        );
        tell_systemd(&format!("internal error (panic): {msg}"), EXIT_PANIC);
        flush_logs();
        std::process::exit(EXIT_PANIC);
    }));
}

/// `STOPPING=1`, `STATUS=why`, `ERRNO=code`: what `systemctl status` shows after the exit.
pub fn tell_systemd(why: &str, code: i32) {
    let status = why.replace(['\n', '\r'], " ");
    let _ = Notifier::from_env().send(&[
        NotifyState::Stopping,
        NotifyState::Status(&status),
        NotifyState::Errno(code.unsigned_abs()),
    ]);
}
