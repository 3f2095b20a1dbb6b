//! Log lines beside `ingestd upload`'s progress bars on one terminal.
//!
//! Logs go to stderr, and so do the bars. A log line written while a bar is drawn lands in the
//! middle of it and the next redraw paints over half of it. While bars are shown
//! ([`show_bars`]), each log line is written with the bars cleared and drawn again after it
//! (indicatif's `suspend`). Without bars (every other command, or stderr not a terminal) a line
//! goes straight to stderr. `demo` sends every log line to a file instead ([`log_to_file`]): its
//! table owns the terminal. Lines travel through [`super::log_queue`] (never blocks, never
//! panics, rate-limits repeats), whose thread writes them with [`emit`].

use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard};

use indicatif::MultiProgress;
use tracing_subscriber::fmt::MakeWriter;

/// Where log lines go instead of stderr, if set ([`log_to_file`]).
static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// From now on, log lines are appended to `path` instead of stderr.
pub fn log_to_file(path: &std::path::Path) -> io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    *FILE.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    Ok(())
}

/// The bars on screen, if any.
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

fn bars() -> MutexGuard<'static, Option<MultiProgress>> {
    BARS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// While this lives, log lines are written around `bars`.
#[must_use = "log lines go around the bars only while the guard lives"]
pub struct BarsShown(());

/// Routes log lines around `bars` until the returned guard is dropped.
pub fn show_bars(bars_on_screen: &MultiProgress) -> BarsShown {
    *bars() = Some(bars_on_screen.clone());
    BarsShown(())
}

impl Drop for BarsShown {
    fn drop(&mut self) {
        *bars() = None;
    }
}

/// The tracing writer: stderr, around the bars when some are shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter
    }
}

/// Hands each buffer (tracing formats one whole event into one) to the log queue. Never fails:
/// a line that cannot be written is dropped and counted there.
#[derive(Debug)]
pub struct LineWriter;

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        super::log_queue::submit(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes one log line where log lines go: the demo's file, else stderr beside the bars.
pub(super) fn emit(buf: &[u8]) -> io::Result<()> {
    let mut file = FILE.lock().unwrap_or_else(|p| p.into_inner());
    match file.as_mut() {
        Some(f) => f.write_all(buf),
        None => write_beside_bars(buf, &mut io::stderr().lock()),
    }
}

/// Writes `buf` to `out`, with the shown bars (if any) cleared around it.
pub(super) fn write_beside_bars(buf: &[u8], out: &mut dyn Write) -> io::Result<()> {
    // Cloned (a handle) so the lock is not held while the bars redraw.
    let shown = bars().clone();
    match shown {
        Some(b) => b.suspend(|| out.write_all(buf)),
        None => out.write_all(buf),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use indicatif::{ProgressBar, ProgressDrawTarget, TermLike};

    use super::*;

    /// A terminal that records what is done to it, in order.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl Screen {
        fn push(&self, op: String) -> io::Result<()> {
            self.0.lock().unwrap().push(op);
            Ok(())
        }
        fn ops(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, n: usize) -> io::Result<()> {
            self.push(format!("up {n}"))
        }
        fn move_cursor_down(&self, n: usize) -> io::Result<()> {
            self.push(format!("down {n}"))
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.push(format!("bar {s}"))
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.push(format!("bar {s}"))
        }
        fn clear_line(&self) -> io::Result<()> {
            self.push("clear".to_owned())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The log line goes to the same screen, as stderr does.
    impl Write for Screen {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.push(format!("log {}", String::from_utf8_lossy(buf).trim_end()))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_log_line_clears_the_bars_and_they_are_drawn_again_after_it() {
        let screen = Screen::default();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::term_like(Box::new(
            screen.clone(),
        )));
        let bar = multi.add(ProgressBar::new(100));
        bar.set_message("clip.mp4");
        bar.set_position(40);
        bar.tick();
        assert!(
            screen.ops().iter().any(|o| o.starts_with("bar ")),
            "{:?}",
            screen.ops()
        );

        let drawn_before = screen.ops().len();
        let shown = show_bars(&multi);
        write_beside_bars(b"INFO uploaded\n", &mut screen.clone()).unwrap();
        drop(shown);

        let after: Vec<String> = screen.ops()[drawn_before..].to_vec();
        let log = after.iter().position(|o| o == "log INFO uploaded").unwrap();
        assert!(
            after[..log].iter().any(|o| o == "clear"),
            "the bar is cleared before the line: {after:?}"
        );
        assert!(
            after[log + 1..].iter().any(|o| o.starts_with("bar ")),
            "the bar is drawn again below the line: {after:?}"
        );
        assert!(bars().is_none(), "the guard stops the routing");
    }

    #[test]
    fn without_bars_a_line_is_written_as_is() {
        let screen = Screen::default();
        write_beside_bars(b"INFO watching\n", &mut screen.clone()).unwrap();
        assert_eq!(screen.ops(), vec!["log INFO watching".to_owned()]);
    }
}
