//! Log lines leave the process through one background thread, so that logging can never stop
//! or block the daemon.
//!
//! - The tracing writer ([`submit`]) hands each formatted line to a bounded queue and returns at
//!   once. A full queue (stderr is a pipe nobody reads) drops the line; the writer thread drops
//!   lines whose write fails (`/dev/full`, a pipe whose reader went away: `EPIPE`, since Rust
//!   ignores `SIGPIPE`). Both are counted in `ingestd_log_write_errors_total`; nothing panics.
//! - The thread rate-limits repeats ([`Repeats`]): the same line (timestamp aside) is written at
//!   most once per [`WINDOW`]; the next one written carries `(repeated N times)`, and a run that
//!   stops is summed up within about a second.
//! - [`flush`] (before the process exits) waits a bounded time for the queue to drain.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use crate::metrics::counters::log_write_failed;

/// A line is written at most once per window; repeats within it are counted.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Lines waiting for the writer thread; more are dropped (and counted).
const QUEUE: usize = 4096;

/// Distinct lines remembered at most (old ones are forgotten first).
const MAX_KEYS: usize = 10_000;

enum Msg {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

static QUEUE_TX: OnceLock<SyncSender<Msg>> = OnceLock::new();

/// Starts the writer thread (once). Without it, [`submit`] writes directly.
pub fn start() {
    QUEUE_TX.get_or_init(|| {
        let (tx, rx) = sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("ingestd-log".into())
            .spawn(move || writer_thread(rx));
        if spawned.is_err() {
            log_write_failed();
        }
        tx
    });
}

/// Queues one formatted line (never blocks, never fails).
pub fn submit(line: &[u8]) {
    match QUEUE_TX.get() {
        Some(tx) => match tx.try_send(Msg::Line(line.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => log_write_failed(),
            Err(TrySendError::Disconnected(_)) => write_out(line),
        },
        None => write_out(line),
    }
}

/// Waits up to `timeout` for the queued lines (and pending repeat counts) to be written.
pub fn flush(timeout: Duration) {
    let Some(tx) = QUEUE_TX.get() else { return };
    let (done_tx, done_rx) = sync_channel(1);
    let deadline = Instant::now() + timeout;
    let mut msg = Msg::Flush(done_tx);
    // The queue may be full for a moment: retry until the deadline.
    loop {
        match tx.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
    let _ = done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
}

/// Writes one line (to the demo's log file, or to stderr around the progress bars); a failure
/// is counted.
fn write_out(line: &[u8]) {
    if super::log_writer::emit(line).is_err() {
        log_write_failed();
    }
}

fn writer_thread(rx: Receiver<Msg>) {
    let mut repeats = Repeats::default();
    loop {
        match rx.recv_timeout(WINDOW) {
            Ok(Msg::Line(line)) => {
                if let Some(out) = repeats.offer(&line, Instant::now()) {
                    write_out(&out);
                }
            }
            Ok(Msg::Flush(done)) => {
                for out in repeats.due(Instant::now(), true) {
                    write_out(&out);
                }
                let _ = done.try_send(());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        for out in repeats.due(Instant::now(), false) {
            write_out(&out);
        }
    }
}

/// What is known about one distinct line.
struct Seen {
    /// When it was last written.
    written: Instant,
    /// Copies dropped since then.
    dropped: u64,
    /// The last dropped copy (written with its count when the run ends).
    last: Vec<u8>,
}

/// The repeat limiter: at most one copy of a line per [`WINDOW`].
#[derive(Default)]
pub struct Repeats {
    seen: HashMap<u64, Seen>,
    last_sweep: Option<Instant>,
}

impl Repeats {
    /// The line to write now for `line` (with the count of copies dropped before it), or `None`
    /// when it repeats within the window.
    pub fn offer(&mut self, line: &[u8], now: Instant) -> Option<Vec<u8>> {
        let key = key_of(line);
        match self.seen.get_mut(&key) {
            Some(s) if now.saturating_duration_since(s.written) < WINDOW => {
                s.dropped += 1;
                s.last.clear();
                s.last.extend_from_slice(line);
                None
            }
            Some(s) => {
                let out = annotate(line, s.dropped);
                s.written = now;
                s.dropped = 0;
                s.last = Vec::new();
                Some(out)
            }
            None => {
                if self.seen.len() >= MAX_KEYS {
                    self.forget_old(now);
                }
                self.seen.insert(
                    key,
                    Seen {
                        written: now,
                        dropped: 0,
                        last: Vec::new(),
                    },
                );
                Some(line.to_vec())
            }
        }
    }

    /// Counts of runs that stopped (nothing written for a window), or all of them with `all`;
    /// forgets lines not seen for a while. Does the work at most once per window unless `all`.
    pub fn due(&mut self, now: Instant, all: bool) -> Vec<Vec<u8>> {
        if !all
            && self
                .last_sweep
                .is_some_and(|t| now.saturating_duration_since(t) < WINDOW)
        {
            return Vec::new();
        }
        self.last_sweep = Some(now);
        let mut out = Vec::new();
        for s in self.seen.values_mut() {
            if s.dropped > 0 && (all || now.saturating_duration_since(s.written) >= WINDOW) {
                out.push(annotate(&s.last, s.dropped));
                s.written = now;
                s.dropped = 0;
                s.last = Vec::new();
            }
        }
        self.seen
            .retain(|_, s| s.dropped > 0 || now.saturating_duration_since(s.written) < WINDOW * 2);
        out
    }

    fn forget_old(&mut self, now: Instant) {
        self.seen
            .retain(|_, s| s.dropped > 0 || now.saturating_duration_since(s.written) < WINDOW);
        if self.seen.len() >= MAX_KEYS {
            self.seen.clear();
        }
    }
}

/// The identity of a line: its text without the leading timestamp (human format, with or
/// without colours) or the `timestamp` field (JSON).
fn key_of(line: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    without_timestamp(line).hash(&mut h);
    h.finish()
}

fn without_timestamp(line: &[u8]) -> &[u8] {
    const JSON_TS: &[u8] = b"{\"timestamp\":\"";
    if let Some(rest) = line.strip_prefix(JSON_TS) {
        return match rest.iter().position(|&b| b == b'"') {
            Some(end) => &rest[end + 1..],
            None => line,
        };
    }
    // Human: "2026-01-02T03:04:05.123456Z  INFO …", possibly wrapped in a colour escape.
    let starts_with_time = match line.first() {
        Some(b) if b.is_ascii_digit() => true,
        Some(0x1b) => line.get(4..5).is_some_and(|d| d[0].is_ascii_digit()),
        _ => false,
    };
    if starts_with_time && let Some(space) = line.iter().position(|&b| b == b' ') {
        return &line[space..];
    }
    line
}

/// `line` with `(repeated N times)` before its newline (human) or `"repeated":N` as a last
/// field (JSON); unchanged when `dropped` is 0.
fn annotate(line: &[u8], dropped: u64) -> Vec<u8> {
    if dropped == 0 {
        return line.to_vec();
    }
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let mut out = Vec::with_capacity(line.len() + 32);
    if body.first() == Some(&b'{') && body.last() == Some(&b'}') {
        out.extend_from_slice(&body[..body.len() - 1]);
        out.extend_from_slice(format!(",\"repeated\":{dropped}}}").as_bytes());
    } else {
        out.extend_from_slice(body);
        let times = if dropped == 1 { "time" } else { "times" };
        out.extend_from_slice(format!(" (repeated {dropped} {times})").as_bytes());
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ts: &str, msg: &str) -> Vec<u8> {
        format!("2026-12-04T13:58:{ts}Z  INFO ingestd::upload: {msg}\n").into_bytes()
    }

    fn text(v: &[u8]) -> String {
        String::from_utf8_lossy(v).into_owned()
    }

    #[test]
    fn a_line_repeated_within_a_second_is_written_once_then_with_its_count() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        assert!(r.offer(&line("01.000001", "spin"), t0).is_some());
        for i in 0..5400u32 {
            let at = t0 + Duration::from_micros(u64::from(i) * 100);
            assert!(r.offer(&line("01.5", "spin"), at).is_none(), "copy {i}");
        }
        let next = r.offer(&line("02.7", "spin"), t0 + WINDOW).unwrap();
        assert_eq!(
            text(&next),
            "2026-12-04T13:58:02.7Z  INFO ingestd::upload: spin (repeated 5400 times)\n"
        );
        // Another line is never held back by the first one.
        assert!(r.offer(&line("02.8", "other"), t0 + WINDOW).is_some());
    }

    #[test]
    fn a_run_that_stops_is_summed_up_after_a_window() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        r.offer(&line("01", "journal full"), t0);
        r.offer(
            &line("01.2", "journal full"),
            t0 + Duration::from_millis(200),
        );
        r.offer(
            &line("01.3", "journal full"),
            t0 + Duration::from_millis(300),
        );
        assert!(r.due(t0 + Duration::from_millis(500), false).is_empty());
        let out = r.due(t0 + WINDOW * 2, false);
        assert_eq!(out.len(), 1);
        assert!(
            text(&out[0]).ends_with("journal full (repeated 2 times)\n"),
            "{}",
            text(&out[0])
        );
        assert!(r.due(t0 + WINDOW * 4, false).is_empty(), "said once");
    }

    #[test]
    fn json_lines_get_a_repeated_field_and_ignore_their_timestamp() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        let j = |ts: &str| {
            format!(
                "{{\"timestamp\":\"{ts}\",\"level\":\"INFO\",\"fields\":{{\"message\":\"x\"}}}}\n"
            )
            .into_bytes()
        };
        assert!(r.offer(&j("a"), t0).is_some());
        assert!(r.offer(&j("b"), t0).is_none());
        let out = text(&r.offer(&j("c"), t0 + WINDOW).unwrap());
        assert!(out.ends_with("},\"repeated\":1}\n"), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["repeated"], 1);
    }

    #[test]
    fn coloured_timestamps_are_ignored_too() {
        let a = b"\x1b[2m2026-12-04T13:58:01Z\x1b[0m \x1b[32m INFO\x1b[0m x\n";
        let b = b"\x1b[2m2026-12-04T13:58:02Z\x1b[0m \x1b[32m INFO\x1b[0m x\n";
        assert_eq!(key_of(a), key_of(b));
        assert_ne!(key_of(&line("01", "x")), key_of(&line("01", "y")));
    }

    #[test]
    fn memory_stays_bounded_with_endless_distinct_lines() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS * 3) {
            r.offer(format!("line {i}\n").as_bytes(), t0);
        }
        assert!(r.seen.len() <= MAX_KEYS);
    }
}
