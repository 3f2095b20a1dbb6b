//! A small TCP proxy for fault tests: listens on `127.0.0.1:0`, forwards to an upstream address,
//! and can be switched at run time between passing connections through, refusing them (accepted,
//! then reset at once), black-holing them (accepted and read, never answered), and cutting every
//! live connection now. Plain threads, one pair per connection; dropped with the test.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// What the proxy does with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways to the upstream.
    Pass,
    /// Accept, then close at once with a TCP RST.
    Refuse,
    /// Accept and read everything, never answer, never close.
    BlackHole,
}

/// Connections seen per mode (for the figures of a test).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub passed: u64,
    pub refused: u64,
    pub blackholed: u64,
    pub cut: u64,
}

struct Shared {
    upstream: String,
    mode: Mutex<Mode>,
    live: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
    passed: AtomicU64,
    refused: AtomicU64,
    blackholed: AtomicU64,
    cut: AtomicU64,
}

/// A running proxy; stops accepting and cuts its connections on drop.
pub struct Proxy {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, for a config's `endpoint`.
    pub url: String,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Starts a proxy in [`Mode::Pass`] to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            mode: Mutex::new(Mode::Pass),
            live: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            passed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            blackholed: AtomicU64::new(0),
            cut: AtomicU64::new(0),
        });
        let s = shared.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    handle(&s, conn);
                }
            }
        });
        Proxy {
            addr,
            url: format!("http://{addr}"),
            shared,
        }
    }

    /// Switches what new connections get; live ones are left alone (see [`Proxy::cut_all`]).
    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Closes every live connection (passed or black-holed) now, both ways.
    pub fn cut_all(&self) {
        let live = std::mem::take(&mut *self.shared.live.lock().unwrap());
        for c in live {
            if c.shutdown(Shutdown::Both).is_ok() {
                self.shared.cut.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// [`Proxy::set_mode`], then [`Proxy::cut_all`]: the next request meets the new mode.
    pub fn set(&self, mode: Mode) {
        self.set_mode(mode);
        self.cut_all();
    }

    pub fn counts(&self) -> Counts {
        let s = &self.shared;
        Counts {
            passed: s.passed.load(Ordering::SeqCst),
            refused: s.refused.load(Ordering::SeqCst),
            blackholed: s.blackholed.load(Ordering::SeqCst),
            cut: s.cut.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        self.cut_all();
    }
}

fn handle(s: &Arc<Shared>, conn: TcpStream) {
    let mode = *s.mode.lock().unwrap();
    match mode {
        Mode::Refuse => {
            s.refused.fetch_add(1, Ordering::SeqCst);
            set_linger_zero(&conn);
            drop(conn); // RST
        }
        Mode::BlackHole => {
            s.blackholed.fetch_add(1, Ordering::SeqCst);
            remember(s, &conn);
            thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 64 * 1024];
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
        Mode::Pass => {
            let Ok(up) = TcpStream::connect(&s.upstream) else {
                set_linger_zero(&conn);
                return; // upstream down: the client sees a reset, as from a dead host
            };
            s.passed.fetch_add(1, Ordering::SeqCst);
            remember(s, &conn);
            remember(s, &up);
            let (c2, u2) = (conn.try_clone().unwrap(), up.try_clone().unwrap());
            thread::spawn(move || pump(conn, up));
            thread::spawn(move || pump(u2, c2));
        }
    }
}

/// Copies `from` → `to` until EOF or error, then half-closes `to`.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn remember(s: &Shared, c: &TcpStream) {
    if let Ok(c) = c.try_clone() {
        let mut live = s.live.lock().unwrap();
        // Forget connections that are already closed, so the list stays short in a long soak.
        live.retain(|c| c.peer_addr().is_ok() && c.take_error().ok().flatten().is_none());
        live.push(c);
    }
}

/// `SO_LINGER` {on, 0}: closing the socket sends a RST instead of a FIN.
fn set_linger_zero(c: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized `linger`.
    unsafe {
        libc::setsockopt(
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::linger>()).unwrap(),
        );
    }
}
