//! Every command's standard output goes through here ([`outln!`], [`out!`]), so that a hostile
//! stdout never panics (`println!` does): a reader that went away (`ingestd explain … | head -1`,
//! EPIPE) ends the command quietly with exit 0, like other Unix tools; a full device
//! (`> /dev/full`) is a clear error with exit 1. A closed stdout (`>&-`) is reopened on
//! `/dev/null` by Rust's runtime before `main` (so the journal or an uploaded file can never be
//! opened as fd 1 and receive the output): the command runs and exits as with `> /dev/null`.

use std::fmt;
use std::io::{self, Write};

/// Why the command's output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The reader closed the pipe: it has read enough. Not an error for the user.
    #[error("standard output: the reader closed the pipe")]
    ReaderGone,
    #[error("cannot write to standard output: {0}")]
    Io(io::Error),
}

impl From<io::Error> for OutputError {
    fn from(e: io::Error) -> OutputError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            OutputError::ReaderGone
        } else {
            OutputError::Io(e)
        }
    }
}

/// Writes `args` to stdout and flushes it, so that a failure surfaces at the write that met it.
pub fn write_fmt(args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    out.flush()?;
    Ok(())
}

/// Writes the bytes a command built itself (a `BufWriter` over [`Stdout`]).
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stdout().lock().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

/// Flushes what is left at exit; `Err` as [`write_fmt`].
pub fn finish() -> Result<(), OutputError> {
    io::stdout().lock().flush().map_err(Into::into)
}

/// The exit of a command whose output failed: `None` when `err` is not an output error.
pub fn exit_for(err: &anyhow::Error) -> Option<(u8, Option<String>)> {
    let e = err.chain().find_map(|c| c.downcast_ref::<OutputError>())?;
    Some(match e {
        OutputError::ReaderGone => (0, None),
        other => (1, Some(format!("ingestd: {other}"))),
    })
}

/// Prints clap's own output (`--help`, `--version`, `help CMD` on stdout; usage errors on
/// stderr) and returns the exit status. clap's `exit()` ignores a failed write and exits 0;
/// here a failed stdout ends as every command's does: EPIPE quietly 0, `/dev/full` 1 with a
/// message on stderr. Usage errors keep clap's status (2).
pub fn clap_exit(e: &clap::Error) -> u8 {
    if e.use_stderr() {
        if e.print().is_err() {
            crate::metrics::counters::log_write_failed();
        }
        return u8::try_from(e.exit_code()).unwrap_or(2);
    }
    let printed = e.print().and_then(|()| io::stdout().lock().flush());
    match printed.map_err(OutputError::from) {
        Ok(()) | Err(OutputError::ReaderGone) => 0,
        Err(other) => {
            write_err(format_args!("ingestd: {other}\n"));
            1
        }
    }
}

/// `println!` that returns an [`OutputError`] instead of panicking: use with `?`.
macro_rules! outln {
    () => {
        $crate::cli::stdout::write_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::stdout::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns an [`OutputError`] instead of panicking: use with `?`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::stdout::write_fmt(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics: a line stderr cannot take is dropped (and counted, as log
/// lines are).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::stdout::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};

/// Writes `args` to stderr; a failure is counted, never a panic.
pub fn write_err(args: fmt::Arguments<'_>) {
    if io::stderr().lock().write_fmt(args).is_err() {
        crate::metrics::counters::log_write_failed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_pipe_exits_quietly_and_a_full_disk_says_so() {
        let gone: anyhow::Error =
            OutputError::from(io::Error::from(io::ErrorKind::BrokenPipe)).into();
        assert_eq!(exit_for(&gone), Some((0, None)));
        let full: anyhow::Error =
            OutputError::from(io::Error::from_raw_os_error(libc::ENOSPC)).into();
        let (code, msg) = exit_for(&full).unwrap();
        assert_eq!(code, 1);
        assert!(msg.unwrap().contains("cannot write to standard output"));
        assert_eq!(exit_for(&anyhow::anyhow!("other")), None);
    }
}
