//! Abortive close for upload connections: every TCP connection the client opens gets
//! `SO_LINGER {on, 0}`, so whenever it is closed — the process dies (kill -9, power loss aside),
//! a request is cancelled (shutdown deadline, the file changed) or a timeout fires — the kernel
//! discards what is still in the socket's send buffer and sends a RST instead of a FIN.
//!
//! Why: a graceful close keeps sending the buffered bytes (several MiB on loopback, bandwidth ×
//! RTT on a WAN), so a dropped first request could still arrive whole and create a video nobody
//! ever learns the id of (an orphan). With a RST the service sees a truncated body.
//!
//! How: reqwest has no linger option and does not expose the socket. Its
//! [`connector_layer`](reqwest::ClientBuilder::connector_layer) hook sees each new connection
//! once, after TCP (and TLS) are set up, as a [`Connection`] whose [`HttpInfo`] names the local and
//! peer addresses. [`AbortiveCloseLayer`] finds the descriptor with that address pair among the
//! process's open sockets (`/proc/self/fd`, once per new connection, not per request) and sets the
//! option on it. Connection reuse, TLS and HTTP/2 are untouched: the layer returns the same
//! connection. A connection whose socket cannot be found or set is refused (an upload must not
//! go out on a connection that would close gracefully).
//!
//! The same socket also gets `TCP_NOTSENT_LOWAT` ([`NOTSENT_LOWAT`]): the connection takes more
//! body only once less than that is still unsent in the kernel, so "the last body byte left the
//! process" (what the journal records before a first request's last piece) is at most that much
//! ahead of "the last byte is on its way"; a RST discards only what is still unsent. Throughput is
//! unaffected: what is in flight is bounded by the congestion window, not by this.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::http::Extensions;
use hyper_util::client::legacy::connect::{Connection, HttpInfo};

use super::tcp_info::{Conn, ConnSlot};

/// Unsent bytes the kernel may hold before the connection asks for more of a body.
pub const NOTSENT_LOWAT: u32 = 128 * 1024;

/// Wraps a connector so that every connection it makes closes with a RST; with a slot, each new
/// connection is recorded in it ([`super::tcp_info`], for [`super::drain`]).
#[derive(Debug, Clone, Default)]
pub struct AbortiveCloseLayer {
    pub slot: Option<Arc<ConnSlot>>,
}

impl<S> tower_layer::Layer<S> for AbortiveCloseLayer {
    type Service = AbortiveClose<S>;

    fn layer(&self, inner: S) -> AbortiveClose<S> {
        AbortiveClose(inner, self.slot.clone())
    }
}

/// The connector service of [`AbortiveCloseLayer`].
#[derive(Debug, Clone)]
pub struct AbortiveClose<S>(S, Option<Arc<ConnSlot>>);

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, R> tower_service::Service<R> for AbortiveClose<S>
where
    S: tower_service::Service<R>,
    S::Response: Connection + Send + 'static,
    S::Error: From<io::Error> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let connecting = self.0.call(req);
        let slot = self.1.clone();
        Box::pin(async move {
            let conn = connecting.await?;
            let mut extras = Extensions::new();
            conn.connected().get_extras(&mut extras);
            let info = extras.get::<HttpInfo>().ok_or_else(|| {
                io::Error::other("abortive close: the connection has no TCP address to find it by")
            })?;
            let (local, peer) = (info.local_addr(), info.remote_addr());
            let fd = set_abortive_close(local, peer)?;
            if let Some(slot) = slot {
                let h2 = conn.connected().is_negotiated_h2();
                slot.set(Conn {
                    fd,
                    local,
                    peer,
                    h2,
                });
            }
            Ok(conn)
        })
    }
}

/// Sets `SO_LINGER {on, 0}` (and `TCP_NOTSENT_LOWAT`) on this process's TCP socket connected
/// from `local` to `peer`; returns its descriptor.
pub fn set_abortive_close(local: SocketAddr, peer: SocketAddr) -> io::Result<RawFd> {
    let Some(fd) = socket_fd(local, peer)? else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("abortive close: no socket {local} -> {peer} among this process's descriptors"),
        ));
    };
    // SAFETY: as in `socket_fd`: if the descriptor was closed since, the calls fail with EBADF.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = socket2::SockRef::from(&borrowed);
    sock.set_linger(Some(Duration::ZERO))?;
    sock.set_tcp_notsent_lowat(NOTSENT_LOWAT)?;
    Ok(fd)
}

/// The descriptor of this process's TCP socket connected from `local` to `peer`, if it has one.
fn socket_fd(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<RawFd>> {
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        // SAFETY: `fd` was open when listed; the borrow lives only for the calls below. If it was
        // closed meanwhile the calls fail with EBADF; if the number was reused, the address pair
        // (unique among connected TCP sockets) tells it is not ours.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&borrowed);
        let addr = |a: io::Result<socket2::SockAddr>| a.ok().and_then(|a| a.as_socket());
        if addr(sock.local_addr()) == Some(local) && addr(sock.peer_addr()) == Some(peer) {
            return Ok(Some(fd));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    /// What the server side reads after the client dropped its end with unsent bytes pending.
    fn server_sees(abortive: bool) -> io::Result<usize> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        if abortive {
            set_abortive_close(client.local_addr().unwrap(), client.peer_addr().unwrap()).unwrap();
        }
        drop(client);
        let mut buf = [0u8; 16];
        server.read(&mut buf)
    }

    #[test]
    fn finds_and_sets_the_socket() {
        assert_eq!(server_sees(false).unwrap(), 0, "a graceful close is an EOF");
        let e = server_sees(true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn an_unknown_pair_is_an_error() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let e = set_abortive_close(a, a).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    /// A listener whose connections have a small receive buffer: a client's unsent bytes stay in
    /// its own send buffer, where only an orderly close would still deliver them.
    fn small_window_listener() -> TcpListener {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        sock.bind(&addr.into()).unwrap();
        sock.listen(1).unwrap();
        sock.into()
    }

    /// An upload request given up while its body is still streaming: the server sees its
    /// connection reset, not an orderly end (which would deliver the bytes still buffered).
    ///
    /// The request goes as [`crate::api::Client::upload`] sends it: its body reads through a
    /// gate and the request is wrapped in [`crate::api::abandon::Sending`]. Dropped plainly
    /// instead, hyper takes it as cancelled and shuts the socket down (a FIN behind the buffered
    /// bytes) just before dropping it: a server reading meanwhile sees an orderly end, in about
    /// 6 runs in 10 on this machine.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_given_up_resets_its_connection() {
        use crate::api::abandon::{Gate, Sending};
        let listener = small_window_listener();
        let addr = listener.local_addr().unwrap();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (dropped_tx, dropped_rx) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = conn.read(&mut buf).unwrap();
            let _ = started_tx.send(());
            // Stop reading until the client gave the request up: its bytes pile up.
            let _ = dropped_rx.recv();
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => return Ok(total),
                    Ok(n) => total += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        });
        let url: reqwest::Url = format!("http://{addr}/").parse().unwrap();
        let client = crate::api::Client::new(crate::api::ClientOptions::new(url.clone())).unwrap();
        // A body that never ends while its gate is open.
        let gate = Gate::default();
        let open = gate.clone();
        let body = futures_util::stream::repeat_with(move || {
            if open.is_closed() {
                Err(io::Error::other("the request was given up"))
            } else {
                Ok(bytes::Bytes::from(vec![7u8; 256 << 10]))
            }
        });
        let request = client
            .http()
            .post(url)
            .body(reqwest::Body::wrap_stream(body))
            .send();
        let sending = Sending::new(request, gate);
        tokio::select! {
            r = sending => panic!("the request ended: {r:?}"),
            r = started_rx => r.unwrap(),
        }
        // `sending` is dropped: the request is given up.
        dropped_tx.send(()).unwrap();
        let end = tokio::task::spawn_blocking(move || server.join().unwrap())
            .await
            .unwrap();
        let e = end.expect_err("the server read an orderly end (FIN), not a reset");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    }
}
