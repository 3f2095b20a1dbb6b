//! The sockets of a client with a pool of its own, and what `TCP_INFO` says of their sending
//! side (for [`super::drain`]).
//!
//! A client's connector records each connection it opens ([`ConnSlot`], filled by
//! [`super::linger`]); a body finds its own among them as the one whose bytes sent grow while it
//! streams ([`SendState::bytes_sent`]). Descriptors are only ever borrowed, never duplicated: a
//! duplicate would keep the socket open past its close, and delay its RST.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Mutex;

/// Connections a slot remembers (a client with its own pool rarely holds more than one).
const REMEMBERED: usize = 4;

/// A TCP connection of this process: its descriptor and the address pair that tells it is still
/// the same socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    pub fd: RawFd,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// HTTP/2 was negotiated (ALPN): the endpoint's HTTP/2 stack reads the socket for its
    /// streams, so the socket says nothing of what the handler has read.
    pub h2: bool,
}

/// The connections a client opened last, newest first.
#[derive(Debug, Default)]
pub struct ConnSlot(Mutex<Vec<Conn>>);

impl ConnSlot {
    /// Records a new connection.
    pub fn set(&self, conn: Conn) {
        let mut conns = self.0.lock().unwrap_or_else(|p| p.into_inner());
        conns.insert(0, conn);
        conns.truncate(REMEMBERED);
    }

    /// The connections recorded, newest first.
    pub fn get(&self) -> Vec<Conn> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What `TCP_INFO` says of a connection's sending side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendState {
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    /// Bytes in the socket not yet sent.
    pub notsent: u32,
    /// Bytes sent over the connection's life; `None` on kernels before 4.19.
    pub bytes_sent: Option<u64>,
    /// The peer's advertised receive window in bytes; `None` on kernels before 5.4.
    pub window: Option<u32>,
}

impl SendState {
    /// Everything handed to the socket has been acknowledged.
    pub fn idle(&self) -> bool {
        self.unacked == 0 && self.notsent == 0
    }
}

/// The kernel's `struct tcp_info` up to `tcpi_snd_wnd` (`linux/tcp.h`); older kernels fill less.
/// Every `u64` sits at a multiple of 8, so the layout is the same on 32-bit targets.
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
    bytes_sent: u64,
    bytes_retrans: u64,
    dsack_dups_to_rcv_ooopack: [u32; 3],
    snd_wnd: u32,
}

/// Reads `TCP_INFO` of `conn`, after checking its descriptor still is that connection.
pub fn send_state(conn: &Conn) -> io::Result<SendState> {
    // SAFETY: the borrow lives only for the calls below. If the descriptor was closed they fail
    // with EBADF; if its number was reused, the address pair tells it is another socket (a
    // reuse between the check and `getsockopt` costs one wrong reading, never memory).
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
    let notsent_end = std::mem::offset_of!(TcpInfo, notsent_bytes) + 4;
    let sent_end = std::mem::offset_of!(TcpInfo, bytes_sent) + 8;
    let window_end = std::mem::offset_of!(TcpInfo, snd_wnd) + 4;
    Ok(SendState {
        unacked: info.unacked,
        notsent: if filled(notsent_end) {
            info.notsent_bytes
        } else {
            0
        },
        bytes_sent: filled(sent_end).then_some(info.bytes_sent),
        window: filled(window_end).then_some(info.snd_wnd),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    pub(crate) fn conn_of(s: &TcpStream) -> Conn {
        Conn {
            fd: s.as_raw_fd(),
            local: s.local_addr().unwrap(),
            peer: s.peer_addr().unwrap(),
            h2: false,
        }
    }

    #[test]
    fn the_layout_is_the_kernels() {
        assert_eq!(std::mem::offset_of!(TcpInfo, unacked), 24);
        assert_eq!(std::mem::offset_of!(TcpInfo, notsent_bytes), 144);
        assert_eq!(std::mem::offset_of!(TcpInfo, bytes_sent), 200);
        assert_eq!(std::mem::offset_of!(TcpInfo, snd_wnd), 228);
        assert_eq!(std::mem::size_of::<TcpInfo>(), 232);
    }

    #[test]
    fn reads_the_send_state_and_refuses_another_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let conn = conn_of(&client);
        let s = send_state(&conn).unwrap();
        assert_eq!((s.unacked, s.notsent), (0, 0));
        assert!(s.window.is_some_and(|w| w > 0), "{s:?}");
        let before = s.bytes_sent.unwrap();
        client.write_all(&[1u8; 1000]).unwrap();
        let after = send_state(&conn).unwrap().bytes_sent.unwrap();
        assert_eq!(after - before, 1000);
        let other = Conn {
            peer: "127.0.0.1:9".parse().unwrap(),
            ..conn
        };
        assert_eq!(
            send_state(&other).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn a_slot_keeps_the_newest_connections_first() {
        let slot = ConnSlot::default();
        let c = |port: u16| Conn {
            fd: 3,
            local: format!("127.0.0.1:{port}").parse().unwrap(),
            peer: "127.0.0.1:1".parse().unwrap(),
            h2: false,
        };
        for port in 1..=6 {
            slot.set(c(port));
        }
        let ports: Vec<u16> = slot.get().iter().map(|c| c.local.port()).collect();
        assert_eq!(ports, vec![6, 5, 4, 3]);
    }
}
