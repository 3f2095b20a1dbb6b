//! A first request's last bytes wait until the endpoint has drained the rest: the W3 window
//! made as short as the endpoint allows.
//!
//! A first request (no `videoId` yet) creates a video the moment its last byte reaches the
//! endpoint; a process killed between then and the answer leaves a video nobody learns the id of.
//! What the endpoint's kernel already holds is past taking back (a RST discards only what is
//! still in *our* buffers), so when a slow endpoint (a busy proxy, a thin uplink, a reader at
//! 4 MB/s) still has hundreds of KiB or MiB of body queued unread, the window between "the last
//! byte left" and "the answer" is that queue's reading time plus the endpoint's own work.
//!
//! So before the last bytes of a first request, the body waits until the endpoint has read what
//! it holds, watched through the connection's `TCP_INFO`:
//! - every byte handed over is acknowledged (`tcpi_unacked` and `tcpi_notsent_bytes` are 0), and
//! - the endpoint's advertised receive window (`tcpi_snd_wnd`, Linux ≥ 5.4) stopped growing:
//!   one body byte sent alone (a probe) makes the endpoint acknowledge with its current window
//!   (a reader's own window updates are sparse). Probes go on while the window grows; they end
//!   at the first flat answer when the window is as large as it ever was during this body (the
//!   endpoint's buffer is empty), after two flat answers when it is not (it stopped reading).
//!
//! Only then do the last bytes (at most [`HOLD`]) go, so W3 is about their transit plus the
//! endpoint's own work. Bodies shorter than [`MIN_BODY`] go without the wait. The wait costs nothing a reader would not spend anyway (it must read
//! the body before it answers), plus one round trip; it is capped at [`CAP`] and skipped
//! whenever the socket cannot be inspected (an older kernel, a connection not ours).
//!
//! The connection is known from [`ConnSlot`]: a client with a pool of its own
//! ([`super::Client::own_connections`]) sends one request at a time, and its connector records
//! each connection it opens ([`super::linger`]).

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes of a first request held back until the endpoint has read the rest.
pub const HOLD: usize = 4 * 1024;
/// First requests with a shorter body go without the wait: what an endpoint can hold unread of
/// them is short to read anyway, and the wait (a probe's round trip, which a receiver may delay
/// by its delayed-ACK timer, 40 ms on Linux) would slow a folder of small files.
pub const MIN_BODY: u64 = 1024 * 1024;
/// The longest a first request waits for the endpoint to read what it holds.
pub const CAP: Duration = Duration::from_secs(30);
/// Probes (one byte each) at most; then the rest goes.
const MAX_PROBES: u32 = 256;

/// A TCP connection of this process: its descriptor and the address pair that tells it is still
/// the same socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    pub fd: RawFd,
    pub local: SocketAddr,
    pub peer: SocketAddr,
}

/// The connection a client opened last (a client with its own pool uses one at a time).
#[derive(Debug, Default)]
pub struct ConnSlot(Mutex<Option<Conn>>);

impl ConnSlot {
    /// Records a new connection.
    pub fn set(&self, conn: Conn) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn);
    }

    /// The connection opened last, if any.
    pub fn get(&self) -> Option<Conn> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What `TCP_INFO` says of a connection's sending side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendState {
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    /// Bytes in the socket not yet sent.
    pub notsent: u32,
    /// The peer's advertised receive window in bytes; `None` on kernels before 5.4.
    pub window: Option<u32>,
}

impl SendState {
    /// Everything handed to the socket has been acknowledged.
    fn idle(&self) -> bool {
        self.unacked == 0 && self.notsent == 0
    }
}

/// The kernel's `struct tcp_info` up to `tcpi_snd_wnd` (`linux/tcp.h`); older kernels fill less.
#[repr(C)]
#[derive(Clone, Copy)]
struct TcpInfo {
    u8s: [u8; 8],
    rto_to_rcv_mss: [u32; 4],
    unacked: u32,
    sacked_to_total_retrans: [u32; 19],
    pacing_to_bytes_received: [u64; 4],
    segs_out: u32,
    segs_in: u32,
    notsent_bytes: u32,
    min_rtt_to_data_segs_out: [u32; 3],
    delivery_rate_to_sndbuf_limited: [u64; 4],
    delivered: u32,
    delivered_ce: u32,
    bytes_sent_retrans: [u64; 2],
    dsack_dups_to_rcv_ooopack: [u32; 3],
    snd_wnd: u32,
}

/// Reads `TCP_INFO` of `conn`, after checking its descriptor still is that connection.
pub fn send_state(conn: &Conn) -> io::Result<SendState> {
    // SAFETY: the borrow lives only for the calls below. If the descriptor was closed they fail
    // with EBADF; if its number was reused, the address pair tells it is another socket.
    let borrowed = unsafe { BorrowedFd::borrow_raw(conn.fd) };
    let sock = socket2::SockRef::from(&borrowed);
    let addr = |a: io::Result<socket2::SockAddr>| a.ok().and_then(|a| a.as_socket());
    if addr(sock.local_addr()) != Some(conn.local) || addr(sock.peer_addr()) != Some(conn.peer) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the connection is gone",
        ));
    }
    let mut info = MaybeUninit::<TcpInfo>::zeroed();
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<TcpInfo>())
        .map_err(|_| io::Error::other("tcp_info does not fit a socklen_t"))?;
    // SAFETY: `info` is a writable buffer of `len` bytes; the kernel writes at most `len` and
    // says how many it wrote; the struct is plain integers, valid when zeroed.
    let rc = unsafe {
        libc::getsockopt(
            conn.fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zeroed, then (partly) written by the kernel: every bit pattern is valid.
    let info = unsafe { info.assume_init() };
    let filled = |end: usize| len as usize >= end;
    let window_end = std::mem::offset_of!(TcpInfo, snd_wnd) + 4;
    let notsent_end = std::mem::offset_of!(TcpInfo, notsent_bytes) + 4;
    Ok(SendState {
        unacked: info.unacked,
        notsent: if filled(notsent_end) {
            info.notsent_bytes
        } else {
            0
        },
        window: filled(window_end).then_some(info.snd_wnd),
    })
}

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
    /// The endpoint's window stopped growing at its largest: it has read the body.
    Empty,
    /// The window stopped growing short of its largest (the endpoint reads no more for now).
    Stalled,
    /// Waited [`CAP`], or used every probe.
    GaveUp,
    /// The socket could not be inspected.
    Unknown,
}

/// The wait before a first request's last bytes, for one connection.
#[derive(Debug)]
pub struct Drain {
    conn: Conn,
    /// The largest window seen during this body.
    max_window: u32,
    started: Option<Instant>,
    /// Checks in a row that found everything acknowledged (two: our side's buffer is flushed too).
    idle_checks: u8,
    /// The window the last probe was answered with, and how many probes in a row it did not grow.
    probed: Option<(u32, u8)>,
    probes: u32,
    pub outcome: Option<DrainEnd>,
}

impl Drain {
    pub fn new(conn: Conn) -> Drain {
        Drain {
            conn,
            max_window: 0,
            started: None,
            idle_checks: 0,
            probed: None,
            probes: 0,
            outcome: None,
        }
    }

    /// Samples the window while the body streams (its largest is the "empty buffer" mark).
    pub fn observe(&mut self) {
        if let Ok(SendState {
            window: Some(w), ..
        }) = send_state(&self.conn)
        {
            self.max_window = self.max_window.max(w);
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

    /// Waits until the endpoint has read what it holds, or until a probe is due.
    pub async fn next(&mut self) -> Step {
        let started = *self.started.get_or_insert_with(Instant::now);
        loop {
            if started.elapsed() >= CAP || self.probes >= MAX_PROBES {
                return self.done(DrainEnd::GaveUp);
            }
            let state = match send_state(&self.conn) {
                Ok(s) => s,
                Err(_) => return self.done(DrainEnd::Unknown),
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
            // (the receiver grows its window as data comes). Probes go on while the window
            // grows (the endpoint is reading), and end once it stops growing: at once if it is
            // as large as it ever was (the endpoint's buffer is empty), after two flat probes
            // if not (it stopped reading for now; waiting longer would not shorten W3).
            self.probed = match self.probed {
                None => Some((window, 0)),
                Some((prev, _)) if window > prev => Some((window, 0)),
                Some(_) if window >= self.max_window => return self.done(DrainEnd::Empty),
                Some((_, flat)) if flat >= 1 => return self.done(DrainEnd::Stalled),
                Some((prev, flat)) => Some((prev, flat + 1)),
            };
            self.max_window = self.max_window.max(window);
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
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn conn_of(s: &TcpStream) -> Conn {
        Conn {
            fd: s.as_raw_fd(),
            local: s.local_addr().unwrap(),
            peer: s.peer_addr().unwrap(),
        }
    }

    #[test]
    fn reads_the_send_state_and_refuses_another_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let conn = conn_of(&client);
        let s = send_state(&conn).unwrap();
        assert_eq!((s.unacked, s.notsent), (0, 0));
        assert!(s.window.is_some_and(|w| w > 0), "{s:?}");
        let other = Conn {
            peer: "127.0.0.1:9".parse().unwrap(),
            ..conn
        };
        assert_eq!(
            send_state(&other).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

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

    /// A reader that reads 1 MB/s: the wait (probing as it goes) ends only once it has read
    /// nearly all that was sent before the wait.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waits_until_a_slow_reader_has_read_what_it_holds() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let read = Arc::new(AtomicUsize::new(0));
        let reader = {
            let read = read.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 16 << 10];
                loop {
                    match server.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read.fetch_add(n, Ordering::SeqCst),
                    };
                    // 16 KiB per 16 ms: about 1 MB/s.
                    std::thread::sleep(Duration::from_millis(16));
                }
            })
        };
        let mut drain = Drain::new(conn_of(&client));
        let sent = 512 << 10;
        let piece = vec![1u8; 64 << 10];
        for _ in 0..sent / piece.len() {
            client.write_all(&piece).unwrap();
            drain.observe();
        }
        wait_probing(&mut drain, &mut client).await;
        let at_done = read.load(Ordering::SeqCst);
        assert_eq!(drain.outcome, Some(DrainEnd::Empty));
        // The endpoint held at most a few reads when the wait ended (not the ~500 KiB its
        // kernel had queued while the body went).
        assert!(
            at_done + (64 << 10) >= sent,
            "the reader had read {at_done} of {sent}"
        );
        drop(client);
        reader.join().unwrap();
    }

    /// A reader that stops reading: the wait ends after a probe or two, it never hangs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_that_stopped_reading_ends_the_wait() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let mut drain = Drain::new(conn_of(&client));
        drain.observe();
        // Less than the reader's window: it stays open, and stops growing.
        client.write_all(&vec![1u8; 16 << 10]).unwrap();
        let probes = wait_probing(&mut drain, &mut client).await;
        assert!(drain.outcome.is_some());
        assert!(probes >= 1, "{probes} probes");
    }
}
