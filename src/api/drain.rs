//! A first request's last bytes wait until the endpoint has drained the rest: the W3 window
//! made as short as the endpoint lets a client make it.
//!
//! A first request (no `videoId` yet) creates a video the moment its last byte reaches the
//! endpoint; a process killed between then and the answer leaves a video nobody learns the id of.
//! What the endpoint's kernel already holds is past taking back (a RST discards only what is
//! still in *our* buffers), so when a slow endpoint (a thin uplink, a reader at 4 MB/s) still has
//! hundreds of KiB of body queued unread, the window between "the last byte left" and "the
//! answer" is that queue's reading time plus the endpoint's own work.
//!
//! So before the last bytes of a first request, the body waits, watching its socket's
//! `TCP_INFO` ([`super::tcp_info`]):
//! - until every byte handed over is acknowledged (`tcpi_unacked`, `tcpi_notsent_bytes`), then
//! - until the endpoint's advertised receive window (`tcpi_snd_wnd`, Linux ≥ 5.4) stops
//!   growing. One body byte sent alone (a probe) makes the endpoint acknowledge with its current
//!   window (its own window updates are sparse). Probes go on while the window grows (the
//!   endpoint is reading). A flat answer ends the wait at once when the window is as large as it
//!   was at any time during this body ([`DrainEnd::Full`]); below that, the endpoint has paused,
//!   and the wait goes on, a probe every [`FLAT_GAP`], until the window grows again or has stayed
//!   flat for [`STALL`] ([`DrainEnd::Stalled`]).
//!
//! Only then do the last bytes (at most [`HOLD`]) go. What this cannot see:
//! - a window back at its largest says the endpoint's free space reached its advertised cap,
//!   not that its buffer is empty: an endpoint with a receive buffer much larger than its window
//!   (a fixed `SO_RCVBUF` of MiBs) can still hold the difference unread;
//! - an endpoint that buffers in user space (a proxy, an HTTP/2 stack: the wait is skipped on
//!   HTTP/2) reads its socket at once whatever its handler does.
//!
//! The wait is skipped for bodies shorter than [`MIN_BODY`], on kernels without the fields, and
//! when the body's socket cannot be told among the client's connections; it is capped at [`CAP`].
//! It costs nothing a reader would not spend anyway (it must read the body before it answers),
//! plus a probe's round trip.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

use super::tcp_info::{Conn, SendState, send_state};

/// Where the wait reads a connection's state (`TCP_INFO`; scripted in tests).
type Source = Box<dyn FnMut(&Conn) -> io::Result<SendState> + Send>;

/// Bytes of a first request held back until the endpoint has read the rest.
pub const HOLD: usize = 4 * 1024;
/// First requests with a shorter body go without the wait: what an endpoint can hold unread of
/// them is short to read anyway, and the wait (a probe's round trip, which a receiver may delay
/// by its delayed-ACK timer, 40 ms on Linux) would slow a folder of small files.
pub const MIN_BODY: u64 = 1024 * 1024;
/// The longest a first request waits for the endpoint to read what it holds.
pub const CAP: Duration = Duration::from_secs(30);
/// A window flat below its largest for this long: the endpoint stopped reading; the rest goes.
pub const STALL: Duration = Duration::from_millis(500);
/// Between probes while the window is flat.
pub const FLAT_GAP: Duration = Duration::from_millis(50);
/// Probes (one byte each) at most; then the rest goes.
const MAX_PROBES: u32 = 256;
/// What the body's own socket must have sent between its first and last look (less: the
/// connection watched is not the one carrying the body).
const MIN_GROWTH: u64 = 64 * 1024;

/// What the body does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send one byte alone and ask again.
    Probe,
    /// Send the rest.
    Done,
}

/// Why the wait ended (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainEnd {
    /// The endpoint's window stopped growing at its largest.
    Full,
    /// The window stayed flat below its largest for [`STALL`] (the endpoint stopped reading).
    Stalled,
    /// Waited [`CAP`], or used every probe.
    GaveUp,
    /// The body's socket could not be told or inspected (older kernel, HTTP/2, gone).
    Unknown,
}

/// One candidate socket: the connection, its bytes sent at the first look, its largest window.
#[derive(Debug)]
struct Candidate {
    conn: Conn,
    sent_at_start: Option<u64>,
    sent_now: Option<u64>,
    max_window: u32,
}

/// The wait before a first request's last bytes.
pub struct Drain {
    source: Source,
    candidates: Vec<Candidate>,
    /// The body's socket, once told.
    chosen: Option<usize>,
    started: Option<Instant>,
    /// Checks in a row that found everything acknowledged (two: hyper's buffer is flushed too).
    idle_checks: u8,
    /// The window the last probe was answered with, and since when it has not grown.
    probed: Option<(u32, Option<Instant>)>,
    probes: u32,
    pub outcome: Option<DrainEnd>,
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drain")
            .field("candidates", &self.candidates)
            .field("chosen", &self.chosen)
            .field("probes", &self.probes)
            .field("outcome", &self.outcome)
            .finish()
    }
}

impl Drain {
    /// A wait among the connections a client recorded; `None` if there is nothing to watch.
    pub fn new(conns: Vec<Conn>) -> Option<Drain> {
        Drain::with_source(conns, Box::new(send_state))
    }

    fn with_source(conns: Vec<Conn>, source: Source) -> Option<Drain> {
        if conns.is_empty() || conns.iter().any(|c| c.h2) {
            return None;
        }
        let candidates = conns
            .into_iter()
            .map(|conn| Candidate {
                conn,
                sent_at_start: None,
                sent_now: None,
                max_window: 0,
            })
            .collect();
        Some(Drain {
            source,
            candidates,
            chosen: None,
            started: None,
            idle_checks: 0,
            probed: None,
            probes: 0,
            outcome: None,
        })
    }

    /// Looks at every candidate while the body streams: bytes sent (to tell the body's socket)
    /// and the largest window.
    pub fn observe(&mut self) {
        for c in &mut self.candidates {
            if let Ok(s) = (self.source)(&c.conn) {
                c.sent_at_start = c.sent_at_start.or(s.bytes_sent);
                c.sent_now = s.bytes_sent;
                c.max_window = c.max_window.max(s.window.unwrap_or(0));
            }
        }
    }

    /// Probes sent so far.
    pub fn probes(&self) -> u32 {
        self.probes
    }

    /// How long the wait has lasted so far.
    pub fn waited(&self) -> Duration {
        self.started.map(|s| s.elapsed()).unwrap_or_default()
    }

    /// The body's socket: the one candidate whose bytes sent grew by [`MIN_GROWTH`] while the body
    /// streamed.
    fn tell(&mut self) -> Option<usize> {
        if self.chosen.is_none() {
            self.observe();
            let grew = |c: &Candidate| match (c.sent_at_start, c.sent_now) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => 0,
            };
            let growing: Vec<usize> = (0..self.candidates.len())
                .filter(|&i| grew(&self.candidates[i]) >= MIN_GROWTH)
                .collect();
            if let [one] = growing[..] {
                self.chosen = Some(one);
            }
        }
        self.chosen
    }

    /// Waits until the endpoint has read what it holds, or until a probe is due.
    pub async fn next(&mut self) -> Step {
        let started = *self.started.get_or_insert_with(Instant::now);
        let Some(i) = self.tell() else {
            return self.done(DrainEnd::Unknown);
        };
        loop {
            if started.elapsed() >= CAP || self.probes >= MAX_PROBES {
                return self.done(DrainEnd::GaveUp);
            }
            let c = &mut self.candidates[i];
            let Ok(state) = (self.source)(&c.conn) else {
                return self.done(DrainEnd::Unknown);
            };
            let Some(window) = state.window else {
                return self.done(DrainEnd::Unknown);
            };
            if !state.idle() {
                self.idle_checks = 0;
                tokio::time::sleep(poll_interval(started)).await;
                continue;
            }
            self.idle_checks += 1;
            if self.idle_checks < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            self.idle_checks = 0;
            // One probe at least: a window can look full while what arrived last is unread
            // (the receiver grows its window as data comes).
            let max = c.max_window;
            c.max_window = max.max(window);
            match self.probed {
                Some((prev, _)) if window > prev => self.probed = Some((window, None)),
                Some(_) if window >= max => return self.done(DrainEnd::Full),
                Some((prev, flat_since)) => {
                    let since = flat_since.unwrap_or_else(Instant::now);
                    if since.elapsed() >= STALL {
                        return self.done(DrainEnd::Stalled);
                    }
                    self.probed = Some((prev, Some(since)));
                    tokio::time::sleep(FLAT_GAP).await;
                }
                None => self.probed = Some((window, None)),
            }
            self.probes += 1;
            return Step::Probe;
        }
    }

    fn done(&mut self, why: DrainEnd) -> Step {
        self.outcome = Some(why);
        Step::Done
    }
}

/// How often the socket is checked: every millisecond at first, then every 5.
fn poll_interval(started: Instant) -> Duration {
    if started.elapsed() < Duration::from_millis(20) {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tcp_info::tests::conn_of;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Runs the wait to its end as the body does, a byte per probe; returns the probes sent.
    async fn wait_probing(drain: &mut Drain, client: &mut TcpStream) -> u32 {
        let mut probes = 0;
        while tokio::time::timeout(Duration::from_secs(10), drain.next())
            .await
            .unwrap()
            == Step::Probe
        {
            probes += 1;
            client.write_all(&[2]).unwrap();
        }
        probes
    }

    /// A connected pair and a reader thread that reads `first` bytes at once (then says so on the
    /// channel), then `rest` bytes at about 1 MB/s, then holds the connection without reading;
    /// returns the client, the count of bytes read so far and the channel.
    fn pair_with_reader(
        first: usize,
        rest: usize,
    ) -> (TcpStream, Arc<AtomicUsize>, std::sync::mpsc::Receiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let read = Arc::new(AtomicUsize::new(0));
        let count = read.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 << 10];
            for (budget, pace) in [(first, false), (rest, true)] {
                let mut left = budget;
                while left > 0 {
                    if pace {
                        // 16 KiB per 16 ms: about 1 MB/s.
                        std::thread::sleep(Duration::from_millis(16));
                    }
                    match server.read(&mut buf[..left.min(16 << 10)]) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            left -= n;
                            count.fetch_add(n, Ordering::SeqCst);
                        }
                    }
                }
                let _ = tx.send(());
            }
            // Holds the connection open, reading nothing more.
            loop {
                std::thread::park();
            }
        });
        (client, read, rx)
    }

    /// A reader that reads 1 MB/s: the wait (probing as it goes) ends only once it has read
    /// nearly all that was sent before the wait.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waits_until_a_slow_reader_has_read_what_it_holds() {
        let sent = 512 << 10;
        let (mut client, read, _) = pair_with_reader(0, usize::MAX);
        let mut drain = Drain::new(vec![conn_of(&client)]).unwrap();
        let piece = vec![1u8; 64 << 10];
        drain.observe();
        for _ in 0..sent / piece.len() {
            client.write_all(&piece).unwrap();
            drain.observe();
        }
        wait_probing(&mut drain, &mut client).await;
        let at_done = read.load(Ordering::SeqCst);
        assert_eq!(drain.outcome, Some(DrainEnd::Full));
        // The endpoint held at most a few reads when the wait ended (not the ~500 KiB its
        // kernel had queued while the body went).
        assert!(
            at_done + (64 << 10) >= sent,
            "the reader had read {at_done} of {sent}"
        );
    }

    /// A scripted connection: bytes sent grow by 1 MiB at each look while `busy` says so, then
    /// the states of `script` in turn (the last one repeats).
    /// [`scripted`], looked at twice while the body streams (the first two entries).
    fn streamed(script: Vec<(u32, u32)>) -> Drain {
        let mut drain = scripted(script);
        drain.observe();
        drain.observe();
        drain
    }

    fn scripted(script: Vec<(u32, u32)>) -> Drain {
        let conn = Conn {
            fd: -1,
            local: "127.0.0.1:1".parse().unwrap(),
            peer: "127.0.0.1:2".parse().unwrap(),
            h2: false,
        };
        let mut sent = 0u64;
        let mut at = 0usize;
        let source: Source = Box::new(move |_: &Conn| {
            sent += 1 << 20;
            let (unacked, window) = script[at.min(script.len() - 1)];
            at += 1;
            Ok(SendState {
                unacked,
                notsent: 0,
                bytes_sent: Some(sent),
                window: Some(window),
            })
        });
        Drain::with_source(vec![conn], source).unwrap()
    }

    /// Runs a scripted wait to its end; returns the probes and the (paused) time it took.
    async fn run_scripted(drain: &mut Drain) -> (u32, Duration) {
        let start = Instant::now();
        let mut probes = 0;
        while drain.next().await == Step::Probe {
            probes += 1;
        }
        (probes, start.elapsed())
    }

    /// A window that stays flat below its largest (the endpoint paused with data queued): the
    /// wait goes on, a probe per `FLAT_GAP`, and ends as stalled after `STALL`, not at the
    /// first flat answer.
    #[tokio::test(start_paused = true)]
    async fn a_window_flat_below_its_largest_waits_then_ends_as_stalled() {
        // Two looks while streaming (window 200 KB), then idle at 100 KB for ever.
        let mut drain = streamed(vec![(0, 200_000), (0, 200_000), (0, 100_000)]);
        let (probes, took) = run_scripted(&mut drain).await;
        assert_eq!(drain.outcome, Some(DrainEnd::Stalled));
        assert!(took >= STALL, "{took:?}");
        assert!(probes >= 5, "{probes} probes");
    }

    /// A window growing back to its largest (the endpoint reading) ends the wait as full at the
    /// first flat answer.
    #[tokio::test(start_paused = true)]
    async fn a_window_growing_back_to_its_largest_ends_the_wait() {
        let mut drain = streamed(vec![
            (0, 200_000),
            (0, 200_000),
            (0, 50_000),
            (0, 50_000),
            (0, 120_000),
            (0, 120_000),
            (0, 200_000),
        ]);
        let (probes, took) = run_scripted(&mut drain).await;
        assert_eq!(drain.outcome, Some(DrainEnd::Full));
        assert!(probes >= 2, "{probes} probes");
        assert!(took < STALL, "{took:?}");
    }

    /// Bytes never acknowledged (a zero window): the wait gives up at `CAP`, it never hangs.
    #[tokio::test(start_paused = true)]
    async fn bytes_never_acknowledged_give_up_at_the_cap() {
        let mut drain = streamed(vec![(0, 200_000), (0, 200_000), (1, 0)]);
        let (probes, took) = run_scripted(&mut drain).await;
        assert_eq!(drain.outcome, Some(DrainEnd::GaveUp));
        assert_eq!(probes, 0);
        assert!(took >= CAP, "{took:?}");
    }

    /// The body's socket is the one whose bytes sent grow: an idle connection of the same client
    /// is not watched, and with none growing the wait is skipped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_body_is_watched_on_its_own_socket() {
        let (mut busy, _, _) = pair_with_reader(usize::MAX, 0);
        let (idle, _, _) = pair_with_reader(0, 0);
        let mut drain = Drain::new(vec![conn_of(&idle), conn_of(&busy)]).unwrap();
        drain.observe();
        busy.write_all(&vec![1u8; 256 << 10]).unwrap();
        wait_probing(&mut drain, &mut busy).await;
        assert_eq!(drain.chosen, Some(1));
        assert_eq!(drain.outcome, Some(DrainEnd::Full));

        let mut drain = Drain::new(vec![conn_of(&idle)]).unwrap();
        drain.observe();
        assert_eq!(drain.next().await, Step::Done);
        assert_eq!(drain.outcome, Some(DrainEnd::Unknown));
    }

    #[test]
    fn nothing_to_watch_on_http2_or_without_a_connection() {
        assert!(Drain::new(Vec::new()).is_none());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let h2 = Conn {
            h2: true,
            ..conn_of(&client)
        };
        assert!(Drain::new(vec![h2]).is_none());
    }
}
