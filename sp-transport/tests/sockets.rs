//! Real sockets on loopback and in a temporary directory.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use socket2::SockRef;
use sp_transport::{
    connect, parse, Endpoint, ListenError, ListenOptions, Listener, PeerCred, Role, Stream,
};

fn bind(url: &str) -> Listener {
    let ep = parse(url, Role::Server).unwrap();
    Listener::bind(&ep, &ListenOptions::default()).unwrap()
}

fn unix_url(dir: &Path, name: &str) -> String {
    format!("unix://{}", dir.join(name).display())
}

/// The client sends a line from another thread; the server echoes it back.
fn echo(listener: &Listener) -> (Stream, Stream) {
    let ep = listener.local_endpoint();
    let (tx, rx) = mpsc::channel();
    let client = thread::spawn(move || {
        let mut c = connect(&ep).unwrap();
        c.write_all(b"ping\n").unwrap();
        let mut buf = [0; 5];
        c.read_exact(&mut buf).unwrap();
        tx.send(buf).unwrap();
        c
    });
    let server = listener.accept().unwrap();
    let mut buf = [0; 5];
    (&server).read_exact(&mut buf).unwrap();
    (&server).write_all(&buf).unwrap();
    assert_eq!(&rx.recv().unwrap(), b"ping\n");
    (client.join().unwrap(), server)
}

#[test]
fn unix_echo_mode_and_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let listener = bind(&unix_url(dir.path(), "s"));
    assert_eq!(listener.local_endpoint(), Endpoint::Unix(path.clone()));
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let (client, server) = echo(&listener);
    assert!(matches!(client, Stream::Unix(_)));
    assert_eq!(server.peer_ip(), None);
    // Both ends are this process: the peer's uid, gid and pid are ours,
    // and the log label names the uid and pid.
    let me = fs::metadata("/proc/self").unwrap();
    let pid = std::process::id() as i32;
    assert_eq!(server.peer_uid().unwrap(), Some(me.uid()));
    assert_eq!(
        server.peer_cred().unwrap(),
        Some(PeerCred {
            pid,
            uid: me.uid(),
            gid: me.gid()
        })
    );
    assert_eq!(
        server.peer_label(),
        format!("unix peer uid {} pid {pid}", me.uid())
    );
    assert!(!server.nodelay().unwrap());

    drop(listener);
    assert!(!path.exists(), "socket file left behind");
}

#[test]
fn unix_mode_option() {
    let dir = tempfile::tempdir().unwrap();
    let ep = parse(&unix_url(dir.path(), "s"), Role::Server).unwrap();
    let opts = ListenOptions {
        unix_mode: Some(0o660),
        ..ListenOptions::default()
    };
    let _l = Listener::bind(&ep, &opts).unwrap();
    let mode = fs::metadata(dir.path().join("s"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
}

#[test]
fn stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    // std leaves the file behind when the listener closes: a stale socket.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let listener = bind(&unix_url(dir.path(), "s"));
    echo(&listener);
}

#[test]
fn live_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = unix_url(dir.path(), "s");
    let first = bind(&url);
    let ep = parse(&url, Role::Server).unwrap();
    match Listener::bind(&ep, &ListenOptions::default()) {
        Err(ListenError::InUse { endpoint }) => assert_eq!(endpoint, ep),
        other => panic!("expected InUse, got {other:?}"),
    }
    // The refused bind left the first listener's file alone; the probe
    // connection is queued on it.
    let probe = first.accept().unwrap();
    assert_eq!((&probe).read(&mut [0; 1]).unwrap(), 0);
    echo(&first);
}

#[test]
fn non_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    fs::write(&file, b"keep me").unwrap();
    let link = dir.path().join("l");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let sub = dir.path().join("d");
    fs::create_dir(&sub).unwrap();
    for path in [&file, &link, &sub] {
        let ep = Endpoint::Unix(path.clone());
        match Listener::bind(&ep, &ListenOptions::default()) {
            Err(ListenError::NotASocket { path: p }) => assert_eq!(&p, path),
            other => panic!("expected NotASocket for {path:?}, got {other:?}"),
        }
    }
    assert_eq!(fs::read(&file).unwrap(), b"keep me");
    assert!(link.exists() && sub.is_dir());
}

#[test]
fn missing_directory_is_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let ep = Endpoint::Unix(dir.path().join("no/such/s"));
    match Listener::bind(&ep, &ListenOptions::default()) {
        Err(ListenError::Io { source, .. }) => assert_eq!(source.kind(), io::ErrorKind::NotFound),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn tcp_echo_nodelay_and_port_zero() {
    let listener = bind("tcp://127.0.0.1:0");
    let Endpoint::Tcp(local) = listener.local_endpoint() else {
        panic!("not tcp");
    };
    assert_eq!(*local.ip(), Ipv4Addr::LOCALHOST);
    assert_ne!(local.port(), 0);
    assert!(SockRef::from(&listener).reuse_address().unwrap());

    let (client, server) = echo(&listener);
    assert!(client.nodelay().unwrap());
    assert!(server.nodelay().unwrap());
    assert_eq!(client.peer_uid().unwrap(), None);
    assert_eq!(client.peer_cred().unwrap(), None);
    assert_eq!(client.peer_label(), local.to_string());
    assert_eq!(client.peer_uid().unwrap(), None);
}

#[test]
fn tcp_port_in_use() {
    let first = bind("tcp://127.0.0.1:0");
    match Listener::bind(&first.local_endpoint(), &ListenOptions::default()) {
        Err(ListenError::InUse { endpoint }) => assert_eq!(endpoint, first.local_endpoint()),
        other => panic!("expected InUse, got {other:?}"),
    }
}

#[test]
fn tcp6_echo() {
    let ep = parse("tcp6://[::1]:0", Role::Server).unwrap();
    let listener = match Listener::bind(&ep, &ListenOptions::default()) {
        Ok(l) => l,
        Err(ListenError::Io { source, .. })
            if matches!(
                source.kind(),
                io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
            ) || source.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
        {
            eprintln!("skipping: no IPv6 loopback ({source})");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let Endpoint::Tcp6(local) = listener.local_endpoint() else {
        panic!("not tcp6");
    };
    assert_ne!(local.port(), 0);
    let (client, server) = echo(&listener);
    assert!(client.nodelay().unwrap() && server.nodelay().unwrap());
    assert_eq!(server.peer_ip(), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
}

#[test]
fn nonblocking_listener_gives_blocking_streams() {
    let listener = bind("tcp://127.0.0.1:0");
    listener.set_nonblocking(true).unwrap();
    assert!(SockRef::from(&listener).nonblocking().unwrap());
    let err = listener.accept().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);

    let client = connect(&listener.local_endpoint()).unwrap();
    // A loopback connect has completed the handshake, so it is queued.
    let server = listener.accept().unwrap();
    assert!(!SockRef::from(&server).nonblocking().unwrap());
    server.set_nonblocking(true).unwrap();
    assert!(SockRef::from(&server).nonblocking().unwrap());
    drop(client);
}

#[test]
fn clone_and_shutdown() {
    let (a, b) = UnixStream::pair().unwrap();
    let (a, mut b) = (Stream::from(a), Stream::from(b));
    let a2 = a.try_clone().unwrap();
    (&a2).write_all(b"x").unwrap();
    a.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    b.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"x");
}

#[test]
fn from_owned_fd_detects_family() {
    let (a, _b) = UnixStream::pair().unwrap();
    let s = Stream::from_owned_fd(OwnedFd::from(a)).unwrap();
    assert!(matches!(s, Stream::Unix(_)));

    let listener = bind("tcp://127.0.0.1:0");
    let ep = listener.local_endpoint();
    let Endpoint::Tcp(sa) = ep else { panic!() };
    let c = TcpStream::connect(sa).unwrap();
    let s = Stream::from_owned_fd(OwnedFd::from(c)).unwrap();
    assert!(matches!(s, Stream::Tcp(_)));
    assert_eq!(s.peer_label(), sa.to_string());
    // Round trip through a raw descriptor.
    let s = Stream::from_owned_fd(OwnedFd::from(s)).unwrap();
    assert!(matches!(s, Stream::Tcp(_)));

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = Stream::from_owned_fd(OwnedFd::from(udp)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

    let file = tempfile::tempfile().unwrap();
    assert!(Stream::from_owned_fd(OwnedFd::from(file)).is_err());
}

/// A write to a peer that has gone is an EPIPE error, not a SIGPIPE: run
/// in a child copy of this test binary with SIGPIPE at its default action
/// (which kills), so a signal would show as the child's death.
#[test]
fn writing_to_a_departed_peer_is_epipe_not_sigpipe() {
    if std::env::var_os("SP_SIGPIPE_CHILD").is_some() {
        // SAFETY: restores the default disposition of SIGPIPE in this
        // single-purpose child process; no handler code is installed.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let s = Stream::Unix(a);
        let err = (&s).write(b"anyone?").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        let err = (&s).write_vectored(&[io::IoSlice::new(b"x")]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "writing_to_a_departed_peer_is_epipe_not_sigpipe",
            "--nocapture",
        ])
        .env("SP_SIGPIPE_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
