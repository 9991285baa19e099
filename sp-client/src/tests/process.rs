//! Fork and exec.

use super::*;
use crate::process::cloexec;
use crate::{ForkResult, EXECFD_VAR};
use sp_proto::Message;
use std::os::fd::{AsRawFd, IntoRawFd};

/// The cookie of the fork capture.
const COOKIE: &str = "1d67ac3afcfbdaf6df737f06e84d3160";

fn cookie() -> [u8; 16] {
    unhex(COOKIE).try_into().unwrap()
}

/// Waits for our child `pid` to end; its exit status, `None` if it did
/// not exit (a signal killed it).
fn wait_child(pid: i32) -> Option<i32> {
    let pid = rustix::process::Pid::from_raw(pid).expect("a child's pid is positive");
    let (got, status) = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
        .unwrap()
        .expect("waitpid without WNOHANG reports the child");
    assert_eq!(got, pid);
    status.exit_status()
}

#[test]
fn prefork_returns_the_cookie() {
    let (c, h) = guest(|p| {
        let (r, _, _) = p.syscall();
        p.ret(r, 0, [2, 0]);
        // Bytes of fork.jsonl: PREFORK, reqno 3, empty.
        assert_eq!(
            p.raw().unwrap(),
            unhex("180000000000000003000000000000000000070000000000")
        );
        p.write(&unhex(&format!(
            "280000000000000003000000000000000100070000000000{COOKIE}"
        )));
    });
    assert_eq!(c.getpid(), Ok((2, 0)));
    assert_eq!(c.prefork().unwrap(), cookie());
    h.join().unwrap();
}

#[test]
fn prefork_refused() {
    let (c, h) = guest(|p| {
        let (hd, _) = p.next();
        p.send(Message::Error {
            reqno: hd.reqno(),
            code: sp_proto::ErrorCode::NOMEM,
        });
    });
    let e = c.prefork().unwrap_err();
    assert!(
        matches!(e, Error::Refused(sp_proto::ErrorCode::NOMEM)),
        "{e}"
    );
    h.join().unwrap();
}

#[test]
fn fork_child_handshake_bytes_match_capture() {
    let l = listener();
    let url = l.url.clone();
    let h = std::thread::spawn(move || {
        let mut p = l.accept();
        p.write(BANNER);
        let hs = p.raw().unwrap();
        assert_eq!(hs.len(), 44);
        assert_eq!(hs, unhex("2c00000000000000010000000000000000000000020000001d67ac3afcfbdaf6df737f06e84d316000000000"));
        p.write(&unhex(
            "1c000000000000000100000000000000010000000000000000000000",
        ));
        assert_eq!(
            p.raw().unwrap(),
            unhex("180000000000000002000000000000000000010014000000")
        );
        p.write(&unhex("300000000000000002000000000000000100010000000000000000002d7f000004000000000000000000000000000000"));
    });
    let c = Client::fork_child(&url, cookie(), opts()).unwrap();
    assert_eq!(c.getpid(), Ok((4, 0)));
    h.join().unwrap();
}

#[test]
fn cancel_prefork_sends_cancel_and_goes() {
    let l = listener();
    let url = l.url.clone();
    let h = std::thread::spawn(move || {
        let mut p = l.accept();
        p.write(BANNER);
        let (hd, body) = p.next();
        assert_eq!(
            Message::decode(&hd, &body).unwrap(),
            Message::Handshake {
                reqno: 1,
                hs: sp_proto::Handshake::Fork {
                    cookie: cookie(),
                    cancel: 1
                }
            }
        );
        assert!(p.at_eof());
    });
    Client::cancel_prefork(&url, cookie()).unwrap();
    h.join().unwrap();
}

#[test]
fn fork_connects_the_child_with_the_cookie() {
    let l = listener();
    let url = l.url.clone();
    let h = std::thread::spawn(move || {
        let mut parent = l.accept();
        parent.guest();
        let (hd, _) = parent.next();
        assert_eq!(hd.typ(), sp_proto::MsgType::PREFORK);
        parent.send(Message::PreforkResp {
            reqno: hd.reqno(),
            cookie: cookie(),
        });
        let mut child = l.accept();
        child.write(BANNER);
        let (hd, body) = child.next();
        assert_eq!(
            Message::decode(&hd, &body).unwrap(),
            Message::Handshake {
                reqno: 1,
                hs: sp_proto::Handshake::Fork {
                    cookie: cookie(),
                    cancel: 0
                }
            }
        );
        child.send(Message::HandshakeResp { reqno: 1, error: 0 });
        let (r, _, _) = child.syscall();
        child.ret(r, 0, [4, 0]);
        assert!(child.at_eof());
        let (r, _, _) = parent.syscall();
        parent.ret(r, 0, [2, 0]);
    });
    let c = Client::connect_with(&url, opts()).unwrap();
    let mapped = {
        // A mapping the child should inherit.
        let m = c.shared.mem.anonmmap(4096, 1 << 20);
        c.mapping(m).unwrap().write_at(0, b"inherited");
        m
    };
    // SAFETY: the child only uses its own new client and then _exits; no
    // other thread uses `c` across the fork.
    match unsafe { c.fork() }.unwrap() {
        ForkResult::Child(child) => {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                child.getpid() == Ok((4, 0))
                    && child
                        .mapping(mapped)
                        .is_some_and(|m| m.to_vec().starts_with(b"inherited"))
            }));
            drop(child);
            // SAFETY: _exit ends the child without running the test
            // harness's destructors or atexit handlers.
            unsafe { libc::_exit(if matches!(ok, Ok(true)) { 0 } else { 1 }) };
        }
        ForkResult::Parent { pid } => {
            assert_eq!(wait_child(pid), Some(0), "the child's exit status");
            assert_eq!(c.getpid(), Ok((2, 0)));
        }
    }
    h.join().unwrap();
}

#[test]
fn exec_handshake_on_the_same_socket_with_reqno_0() {
    let _env = ENV_LOCK.lock();
    let (a, b) = UnixStream::pair().unwrap();
    let mut p = Peer::new(b);
    let h = std::thread::spawn(move || {
        // No banner: straight to the exec handshake (bytes of exec.jsonl).
        assert_eq!(
            p.raw().unwrap(),
            unhex("240000000000000000000000000000000000000003000000637265665f636c69656e7400")
        );
        p.write(&unhex(
            "1c000000000000000000000000000000010000000000000000000000",
        ));
        assert_eq!(
            p.raw().unwrap(),
            unhex("180000000000000001000000000000000000010014000000")
        );
        p.write(&unhex("30000000000000000100000000000000010001000000000000000000d37f000002000000000000000000000000000000"));
    });
    let fd = a.into_raw_fd();
    std::env::set_var(EXECFD_VAR, format!("{fd},-1"));
    std::env::remove_var(crate::SERVER_VAR);
    // SAFETY: `fd` was released by `a` (into_raw_fd): nothing else owns it.
    let c = unsafe { Client::init(opts()) }.unwrap();
    assert!(
        std::env::var_os(EXECFD_VAR).is_none(),
        "the variable is consumed"
    );
    let stream = c.conn.read().clone();
    assert_eq!(stream.stream().as_raw_fd(), fd, "the descriptor adopted");
    assert!(
        cloexec(stream.stream()).unwrap(),
        "close-on-exec is back on"
    );
    assert!(c.banner().is_none() && c.url().is_none());
    assert_eq!(c.getpid(), Ok((2, 0)));
    h.join().unwrap();
}

#[test]
fn exec_env_errors() {
    let _env = ENV_LOCK.lock();
    // SAFETY: (all three calls) the variable names no descriptor, or one
    // that is not open (this process holds far fewer than 100000), so
    // nothing anyone owns is adopted.
    let adopt = || unsafe { Client::from_exec_env(opts()) };
    std::env::remove_var(EXECFD_VAR);
    assert!(matches!(adopt(), Err(Error::EnvUnset(EXECFD_VAR))));
    std::env::set_var(EXECFD_VAR, "nonsense");
    assert!(matches!(adopt(), Err(Error::ExecEnv(_))));
    // A descriptor that is not open is refused before it is adopted.
    std::env::set_var(EXECFD_VAR, "100000,-1");
    assert!(matches!(adopt(), Err(Error::Io(e)) if e.raw_os_error() == Some(libc::EBADF)));
    assert!(std::env::var_os(EXECFD_VAR).is_none());
}

#[test]
fn prepare_exec_and_failed_exec() {
    let _env = ENV_LOCK.lock();
    let (c, h) = guest(|p| assert!(p.at_eof()));
    let conn = c.conn.read().clone();
    let fd = conn.stream().as_raw_fd();
    assert!(cloexec(conn.stream()).unwrap());
    c.prepare_exec().unwrap();
    assert_eq!(std::env::var(EXECFD_VAR).unwrap(), format!("{fd},-1"));
    assert!(!cloexec(conn.stream()).unwrap());
    std::env::remove_var(EXECFD_VAR);
    // execve fails: the error comes back and close-on-exec is restored.
    let e = c.exec("/nonexistent/sp-client-test", &["x"], &["A=b"]);
    assert!(
        matches!(&e, Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound),
        "{e}"
    );
    assert!(cloexec(conn.stream()).unwrap());
    let e = c.exec("/bin/true", &["a\0b"], &[] as &[&str]);
    assert!(matches!(e, Error::Io(_)));
    let e = c.exec("/bin/true", &["true"], &["NOEQUALS"]);
    assert!(
        matches!(&e, Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidInput),
        "{e}"
    );
    assert!(cloexec(conn.stream()).unwrap());
    drop((c, conn));
    h.join().unwrap();
}

/// The image the exec test runs: only does anything when the exec test
/// started it (it is ignored otherwise).
#[test]
#[ignore = "run by exec_hands_the_connection_to_the_new_image"]
fn exec_target() {
    if std::env::var_os("SP_CLIENT_EXEC_TARGET").is_none() {
        return;
    }
    // SAFETY: this image was started by the exec of
    // exec_hands_the_connection_to_the_new_image, whose Client::exec named
    // the socket it handed over; nothing here has touched that descriptor.
    let code = match unsafe { Client::init(Options::default().name("exec_target")) } {
        Ok(c) if c.getpid() == Ok((2, 0)) => 0,
        _ => 3,
    };
    // SAFETY: ends this process at once with the verdict.
    unsafe { libc::_exit(code) };
}

#[test]
fn exec_hands_the_connection_to_the_new_image() {
    let _env = ENV_LOCK.lock();
    let (c, h) = guest(|p| {
        let (hd, body) = p.next();
        assert_eq!(
            Message::decode(&hd, &body).unwrap(),
            Message::Handshake {
                reqno: 0,
                hs: sp_proto::Handshake::Exec {
                    comm: b"exec_target\0"
                }
            }
        );
        p.send(Message::HandshakeResp { reqno: 0, error: 0 });
        let (r, _, _) = p.syscall();
        assert_eq!(r, 1);
        p.ret(r, 0, [2, 0]);
    });
    let exe = std::env::current_exe().unwrap();
    let args = [
        "sp-client-test",
        "--exact",
        "tests::process::exec_target",
        "--ignored",
        "--nocapture",
        "-q",
    ];
    let mut env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    env.push("SP_CLIENT_EXEC_TARGET=1".into());
    // SAFETY: the child only execs (or _exits if that fails); nothing else
    // in this process is used by it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let _ = c.exec(&exe, &args, &env);
        // SAFETY: the exec failed; leave the child at once.
        unsafe { libc::_exit(4) };
    }
    assert_eq!(wait_child(pid), Some(0), "the child's exit status");
    h.join().unwrap();
}
