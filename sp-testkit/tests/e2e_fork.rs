//! End to end, fork: a real host fork whose child claims the kernel's
//! prefork and shares the parent's descriptions (file offsets, pipes), and
//! the prefork cycle without a host fork (claim, cancel, bad cookie). Over
//! unix and tcp, our client against our server with the model kernel.
//!
//! The host fork happens inside the test process, which has other threads
//! (libtest's, the server's): the child only uses the new client made for
//! it, prints nothing, never panics, and leaves with `_exit`, reporting
//! through its exit status and through a kernel pipe. The child lives only
//! for a few calls, so the copies of other tests' sockets it holds meanwhile
//! delay nothing for long.

use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions, WaitStatus};
use sp_client::{Client, Error, ForkResult, HandshakeError, Options};
use sp_proto::abi::{misc, oflag};
use sp_proto::ErrorCode;
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::peers::{eventually, WAIT};
use std::time::{Duration, Instant};

fn opts(name: &str) -> Options {
    Options::new()
        .name(name)
        .server_accepts_copy_errors(true)
        .on_signal(|_| {})
}

/// Waits for host child `pid` with a deadline (killing it on timeout);
/// returns its wait status.
fn wait_child(pid: i32) -> WaitStatus {
    let pid = Pid::from_raw(pid).expect("a child pid");
    let deadline = Instant::now() + WAIT;
    loop {
        match waitpid(Some(pid), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => return status,
            Ok(None) => {}
            Err(e) => panic!("waitpid: {e}"),
        }
        if Instant::now() > deadline {
            let _ = kill_process(pid, Signal::KILL);
            let _ = waitpid(Some(pid), WaitOptions::empty());
            panic!("the fork child did not exit in time");
        }
        // tidy:allow-sleep: polls waitpid(WNOHANG) under an explicit deadline
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// What the fork child checks; returns its exit code (0: all good). It
/// must not panic or print: it runs in a forked copy of a multi-threaded
/// process.
fn child_checks(child: &Client, parent_pid: i32, fd: i32, w: i32) -> i32 {
    let Ok((pid, ppid)) = child.getpid() else {
        return 10;
    };
    // As in a stock rump kernel: the prefork (parent + 1) is forked once
    // more and let go, so the child is parent + 2 and its parent is init.
    if pid != parent_pid + 2 {
        return 11;
    }
    if ppid != 1 {
        return 12;
    }
    // The file opened before the fork, read at the shared offset (4).
    let mut three = [0u8; 3];
    if child.read(fd, &mut three) != Ok(3) {
        return 13;
    }
    if &three != b"456" {
        return 14;
    }
    // The pipe created before the fork carries data to the parent.
    let msg = format!("child pid={pid} ppid={ppid}");
    if child.write(w, msg.as_bytes()) != Ok(msg.len()) {
        return 15;
    }
    if child.fstat(w).is_err() {
        return 16;
    }
    0
}

#[test]
fn host_fork_child_claims_the_prefork_and_shares_descriptors() {
    for t in Transport::ALL {
        let (s, k) = TestServer::model(t);
        let c = Client::connect_with(&s.url(), opts("e2e-fork")).unwrap();
        let (pid, _) = c.getpid().unwrap();
        assert_eq!(pid, 2);
        let fd = c
            .open("/tmp/forked", oflag::O_CREAT | oflag::O_RDWR, 0o644)
            .unwrap();
        assert_eq!(c.write(fd, b"0123456789"), Ok(10));
        assert_eq!(c.lseek(fd, 4, misc::SEEK_SET), Ok(4));
        let (r, w) = c.pipe().unwrap();

        let me = std::process::id();
        // SAFETY: no other thread uses `c` (or any client) across the fork;
        // the child only uses the new client `fork` made for it, calls
        // nothing that takes a lock another thread of this process could
        // hold (no printing, no panics), and leaves with _exit.
        let forked = unsafe { c.fork() };
        if forked.is_err() && std::process::id() != me {
            // The host fork went through but the child could not claim the
            // prefork: leave at once rather than unwind through libtest.
            // SAFETY: as below, _exit ends the forked child without running
            // any destructor of the copied process.
            unsafe { libc::_exit(20) }
        }
        match forked.expect("prefork and host fork") {
            ForkResult::Child(child) => {
                let code = child_checks(&child, pid, fd, w);
                // SAFETY: _exit ends the forked child at once, without
                // running libtest's or any other destructors or atexit
                // handlers of the copied process.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { pid: host_pid } => {
                let status = wait_child(host_pid);
                assert_eq!(
                    status.exit_status(),
                    Some(0),
                    "{t:?}: the fork child failed: {status:?}"
                );
            }
        }

        // The parent's view: its pid unchanged, the offset moved by the
        // child's read, the child's message in the pipe.
        assert_eq!(c.getpid(), Ok((2, 1)));
        assert_eq!(c.lseek(fd, 0, misc::SEEK_CUR), Ok(7), "shared offset");
        c.close(w).unwrap();
        let mut buf = [0u8; 64];
        let n = c.read(r, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"child pid=4 ppid=1", "{t:?}");
        // Once the child's process is released (its descriptors closed),
        // the pipe has no writer left: end of file.
        eventually("the child's process is released", || k.process_count() == 1);
        assert_eq!(c.read(r, &mut buf), Ok(0));
        assert_eq!(s.server.stats().preforks, 0, "the prefork was claimed");
        assert!(k.wait_idle(WAIT));
    }
}

#[test]
fn prefork_claimed_by_fork_child_in_process() {
    for t in Transport::ALL {
        let (s, k) = TestServer::model(t);
        let url = s.url();
        let parent = Client::connect_with(&url, opts("e2e-parent")).unwrap();
        let fd = parent
            .open("/tmp/shared", oflag::O_CREAT | oflag::O_RDWR, 0o644)
            .unwrap();
        parent.write(fd, b"abcdef").unwrap();
        parent.lseek(fd, 2, misc::SEEK_SET).unwrap();
        let (r, w) = parent.pipe().unwrap();

        let cookie = parent.prefork().unwrap();
        assert_eq!(s.server.stats().preforks, 1);
        assert_eq!(k.process_count(), 2, "the prefork is a process");
        let child = Client::fork_child(&url, cookie, opts("e2e-child")).unwrap();
        assert_eq!(s.server.stats().preforks, 0);
        // The prefork (pid 3) forked once more and released, as the
        // reference does: the child is pid 4, its parent init.
        assert_eq!(child.getpid(), Ok((4, 1)), "{t:?}");
        assert_eq!(k.pids(), [2, 4]);
        assert_eq!(
            k.comm(4).as_deref(),
            Some(&b"e2e-parent"[..]),
            "a fork keeps the parent's name"
        );
        // The descriptor table was copied: same descriptions, shared offset.
        let mut two = [0u8; 2];
        assert_eq!(child.read(fd, &mut two), Ok(2));
        assert_eq!(&two, b"cd");
        assert_eq!(parent.lseek(fd, 0, misc::SEEK_CUR), Ok(4));
        assert_eq!(child.write(w, b"to parent"), Ok(9));
        let mut buf = [0u8; 16];
        assert_eq!(parent.read(r, &mut buf), Ok(9));
        assert_eq!(&buf[..9], b"to parent");
        // ...but the tables are separate.
        child.close(fd).unwrap();
        assert!(parent.fstat(fd).is_ok());
        let info = k.proc_info(k.proc_by_pid(4).unwrap()).unwrap();
        assert_eq!(info.ppid, 1);
        assert!(!info.fds.contains(&fd));

        // The same cookie cannot be claimed twice.
        let again = Client::fork_child(&url, cookie, opts("e2e-again")).unwrap_err();
        assert!(
            matches!(
                again,
                Error::Handshake(HandshakeError::Refused(ErrorCode::INVALID_PREFORK))
            ),
            "{again}"
        );

        // A prefork can be cancelled.
        let cookie = parent.prefork().unwrap();
        assert_eq!(s.server.stats().preforks, 1);
        Client::cancel_prefork(&url, cookie).unwrap();
        eventually("the cancelled prefork goes", || {
            s.server.stats().preforks == 0 && k.process_count() == 2
        });

        drop(child);
        drop(parent);
        eventually("every process is released", || k.process_count() == 0);
    }
}
