//! Connecting: errors that name the URL, and the connect timeout on the
//! connect itself, the banner and the handshake answer. Every wait in here
//! is bounded by an explicit timeout, never by a sleep.

use super::*;
use crate::Errno;
use socket2::{Domain, SockAddr, SockRef, Socket, Type};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Short, so the tests are quick; the waits they bound would otherwise be
/// forever (or minutes, for a TCP connect).
const T: Duration = Duration::from_millis(50);

/// The connect error's I/O error, after checking that it is an
/// [`Error::Connect`] for `url` and that its message names `url`.
fn connect_source(e: &Error, url: &str) -> ErrorKind {
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("cannot connect to {url}: ")),
        "{msg}"
    );
    match e {
        Error::Connect { url: u, source } => {
            assert_eq!(u, url);
            source.kind()
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

/// Connects with timeout `T` and returns the error, checking that it came
/// within a bound far above `T` and far below "forever".
fn connect_fails(url: &str) -> Error {
    let start = Instant::now();
    let e = Client::connect_with(url, opts().connect_timeout(T)).unwrap_err();
    let took = start.elapsed();
    assert!(took >= T, "gave up after {took:?}, before the timeout");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    e
}

#[test]
fn missing_unix_socket_names_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("unix://{}/none", dir.path().display());
    for opts in [opts(), opts().connect_timeout(T)] {
        let e = Client::connect_with(&url, opts).unwrap_err();
        assert_eq!(connect_source(&e, &url), ErrorKind::NotFound);
        assert_eq!(e.errno(), Errno::ENOENT);
        let io = std::io::Error::from(e);
        assert_eq!(io.kind(), ErrorKind::NotFound);
        assert!(io.to_string().contains(&url), "{io}");
    }
}

#[test]
fn refused_tcp_connect_names_the_url() {
    // A port nobody listens on: bind one, then close it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    for opts in [opts(), opts().connect_timeout(Duration::from_secs(10))] {
        let e = Client::connect_with(&url, opts).unwrap_err();
        assert_eq!(connect_source(&e, &url), ErrorKind::ConnectionRefused);
        assert_eq!(e.errno(), Errno(61), "ECONNREFUSED");
    }
}

#[test]
fn unix_full_backlog_times_out() {
    // A listener with a backlog of 0 holds one unaccepted connection; the
    // next connect waits for room that never comes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.sock");
    let l = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
    l.bind(&SockAddr::unix(&path).unwrap()).unwrap();
    l.listen(0).unwrap();
    let _filler = UnixStream::connect(&path).unwrap();
    let url = format!("unix://{}", path.display());
    let e = connect_fails(&url);
    assert_eq!(connect_source(&e, &url), ErrorKind::TimedOut);
    assert!(e.to_string().contains("connect timed out"), "{e}");
    assert_eq!(e.errno(), Errno(60), "ETIMEDOUT");
}

#[test]
fn tcp_black_hole_times_out() {
    // A TCP listener whose accept queue is full drops new SYNs: to the
    // client it is a black hole. Fill it until a plain connect times out.
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&SockAddr::from(
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
    ))
    .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    let full = (0..16).any(|_| match TcpStream::connect_timeout(&addr, T) {
        Ok(s) => {
            fillers.push(s);
            false
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
            true
        }
    });
    assert!(full, "the accept queue never filled up");
    let url = format!("tcp://{addr}");
    let e = connect_fails(&url);
    assert_eq!(connect_source(&e, &url), ErrorKind::TimedOut);
    assert!(e.to_string().contains("connect timed out"), "{e}");
}

#[test]
fn silent_unix_server_banner_times_out() {
    // Never accepted: the connect succeeds (the backlog has room), and no
    // banner ever comes.
    let l = listener();
    let e = connect_fails(&l.url);
    assert_eq!(connect_source(&e, &l.url), ErrorKind::TimedOut);
    assert!(e.to_string().contains("no banner"), "{e}");
    drop(l);
}

#[test]
fn silent_tcp_server_banner_times_out() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let e = connect_fails(&url);
    assert_eq!(connect_source(&e, &url), ErrorKind::TimedOut);
    assert!(e.to_string().contains("no banner"), "{e}");
    let io = std::io::Error::from(e);
    assert_eq!(io.kind(), ErrorKind::TimedOut);
}

#[test]
fn unanswered_handshake_times_out() {
    let l = listener();
    let url = l.url.clone();
    let h = std::thread::spawn(move || {
        let mut p = l.accept();
        p.write(BANNER);
        let _handshake = p.next();
        // No answer; the client gives up and closes.
        assert!(p.at_eof());
    });
    let e = connect_fails(&url);
    assert_eq!(connect_source(&e, &url), ErrorKind::TimedOut);
    assert!(e.to_string().contains("handshake"), "{e}");
    h.join().unwrap();
}

#[test]
fn timeout_ends_with_the_handshake() {
    // A connection made under a timeout keeps no read timeout afterwards: a
    // call may take as long as the kernel needs.
    for tcp in [false, true] {
        let (url, h) = if tcp {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("tcp://{}", l.local_addr().unwrap());
            let h = std::thread::spawn(move || {
                serve_getpid_tcp(l.accept().unwrap().0);
            });
            (url, h)
        } else {
            let l = listener();
            let url = l.url.clone();
            let h = std::thread::spawn(move || {
                let mut p = l.accept();
                p.guest();
                let (r, _, _) = p.syscall();
                p.ret(r, 0, [4, 1]);
                assert!(p.at_eof());
            });
            (url, h)
        };
        let c =
            Client::connect_with(&url, opts().connect_timeout(Duration::from_secs(30))).unwrap();
        let conn = c.conn.read().clone();
        let sock = SockRef::from(conn.stream());
        assert_eq!(sock.read_timeout().unwrap(), None, "tcp {tcp}");
        assert_eq!(sock.write_timeout().unwrap(), None, "tcp {tcp}");
        assert!(crate::process::cloexec(conn.stream()).unwrap());
        if tcp {
            assert!(conn.stream().nodelay().unwrap(), "the connect hook ran");
        }
        drop(conn);
        assert_eq!(c.getpid(), Ok((4, 1)));
        drop(c);
        h.join().unwrap();
    }
}

/// A scripted server on a TCP stream: guest handshake and one getpid.
fn serve_getpid_tcp(s: TcpStream) {
    use sp_proto::{Deframer, Message, DEFAULT_MAX_FRAME};
    let mut s = s;
    s.write_all(BANNER).unwrap();
    let mut dec = Deframer::new(DEFAULT_MAX_FRAME);
    let mut next = |s: &mut TcpStream| -> Option<(u64, u16)> {
        loop {
            if let Some(f) = dec.next_frame().unwrap() {
                return Some((f.header.reqno(), f.header.typ().0));
            }
            let n = s.read(dec.read_buf()).unwrap();
            if n == 0 {
                return None;
            }
            dec.commit(n);
        }
    };
    let (r, _) = next(&mut s).unwrap();
    s.write_all(&Message::HandshakeResp { reqno: r, error: 0 }.to_vec())
        .unwrap();
    let (mut r, mut t) = next(&mut s).unwrap();
    if t == sp_proto::MsgType::EXT_HELLO.0 {
        // Answered as the C server answers a type it does not know.
        let e = Message::Error {
            reqno: r,
            code: sp_proto::ErrorCode::MALFORMED_REQUEST,
        };
        s.write_all(&e.to_vec()).unwrap();
        (r, t) = next(&mut s).unwrap();
    }
    assert_eq!(t, sp_proto::MsgType::SYSCALL.0);
    s.write_all(
        &Message::SyscallResp {
            reqno: r,
            error: 0,
            retval: [4, 1],
        }
        .to_vec(),
    )
    .unwrap();
    assert!(next(&mut s).is_none());
}
