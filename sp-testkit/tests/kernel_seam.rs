//! What a kernel written against the `Kernel` trait can rely on: the
//! default methods for what it does not support, and a panicking call that
//! answers only that call (EIO) while the server and every other client
//! go on.

use sp_proto::{ErrorCode, Message};
use sp_server::{ClientPort, Errno, Kernel, Port, ProcId, SysResult};
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::peers::prefork;
use sp_testkit::rawpeer::RawPeer;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A kernel of getpid only, that panics on call 999: the four lifecycle
/// methods it does not need are the trait's defaults.
#[derive(Default)]
struct Tiny {
    next: AtomicU64,
}

impl Kernel for Tiny {
    fn spawn_guest(&self, _comm: &[u8], _port: Port) -> Result<ProcId, Errno> {
        Ok(ProcId(self.next.fetch_add(1, Ordering::Relaxed) + 2))
    }

    fn syscall(
        &self,
        proc: ProcId,
        sysnum: u32,
        _args: &[u8],
        _port: &dyn ClientPort,
    ) -> SysResult {
        match sysnum {
            20 => Ok([proc.0 as i64, 1]),
            999 => panic!("the kernel has a bug"),
            _ => Err(Errno::ENOSYS),
        }
    }

    fn release(&self, _proc: ProcId) {}

    fn pid(&self, proc: ProcId) -> i32 {
        proc.0 as i32
    }
}

#[test]
fn a_panicking_call_answers_eio_and_everyone_goes_on() {
    let s = TestServer::start(Arc::new(Tiny::default()), Transport::Unix);
    let mut a = RawPeer::guest(&s.url(), "a").unwrap();
    let mut b = RawPeer::guest(&s.url(), "b").unwrap();
    for round in 0..3 {
        let (err, _) = a.syscall(10 + round, 999, &[]).unwrap();
        assert_eq!(err, Errno::EIO.0, "round {round}");
        // The same client and another one are still served.
        assert_eq!(a.syscall(20 + round, 20, &[]).unwrap().0, 0);
        assert_eq!(b.syscall(30 + round, 20, &[]).unwrap().0, 0);
    }
    assert_eq!(s.server.stats().syscalls, 0, "nothing left in flight");
    // The server stops cleanly (a worker that died would hang this).
    drop(a);
    drop(b);
    s.server.stop().unwrap();
}

#[test]
fn a_kernel_without_fork_or_exec_gets_the_documented_defaults() {
    let s = TestServer::start(Arc::new(Tiny::default()), Transport::Unix);
    let mut a = RawPeer::guest(&s.url(), "a").unwrap();
    // PREFORK: refused, the connection goes on.
    assert_eq!(prefork(&mut a, 2).unwrap(), Err(ErrorCode::RFORK_FAILED));
    // EXEC: lwpexit and execnotify do nothing; the exec is answered and
    // the process goes on.
    a.send_msg(&Message::Handshake {
        reqno: 3,
        hs: sp_proto::Handshake::Exec { comm: b"new\0" },
    })
    .unwrap();
    assert!(matches!(
        a.recv_msg().unwrap().message(),
        Some(Message::HandshakeResp { reqno: 3, error: 0 })
    ));
    assert_eq!(a.syscall(4, 20, &[]).unwrap().0, 0);
}

/// A kernel whose call 55 answers early (`answer_now`) and then keeps
/// running until the test lets it return; it records releases.
struct EarlyAnswer {
    go: crossbeam_channel::Receiver<()>,
    returned: std::sync::atomic::AtomicBool,
    released_while_running: std::sync::atomic::AtomicBool,
    released: crossbeam_channel::Sender<ProcId>,
}

impl Kernel for EarlyAnswer {
    fn spawn_guest(&self, _comm: &[u8], _port: Port) -> Result<ProcId, Errno> {
        Ok(ProcId(2))
    }

    fn syscall(
        &self,
        _proc: ProcId,
        sysnum: u32,
        _args: &[u8],
        port: &dyn ClientPort,
    ) -> SysResult {
        if sysnum != 55 {
            return Err(Errno::ENOSYS);
        }
        port.answer_now(Ok([7, 0])).unwrap();
        let _ = self.go.recv();
        self.returned.store(true, Ordering::SeqCst);
        Ok([0, 0])
    }

    fn release(&self, proc: ProcId) {
        if !self.returned.load(Ordering::SeqCst) {
            self.released_while_running.store(true, Ordering::SeqCst);
        }
        let _ = self.released.send(proc);
    }

    fn pid(&self, proc: ProcId) -> i32 {
        proc.0 as i32
    }
}

#[test]
fn an_early_answer_does_not_end_the_call_for_the_server() {
    let (go_tx, go) = crossbeam_channel::bounded(1);
    let (released, released_rx) = crossbeam_channel::unbounded();
    let k = Arc::new(EarlyAnswer {
        go,
        returned: Default::default(),
        released_while_running: Default::default(),
        released,
    });
    let s = TestServer::start(k.clone(), Transport::Unix);
    let mut p = RawPeer::guest(&s.url(), "early").unwrap();
    // The answer comes while the call still runs in the kernel.
    assert_eq!(p.syscall(2, 55, &[]).unwrap(), (0, [7, 0]));
    assert_eq!(s.server.stats().syscalls, 1, "the call still runs");
    // The client leaves: its process must not be released under the call.
    drop(p);
    let gone = sp_testkit::peers::wait_for(std::time::Duration::from_secs(10), || {
        s.server.stats().connections == 0
    });
    assert!(gone, "the server saw the client leave");
    assert!(
        released_rx.try_recv().is_err(),
        "released while its call still ran"
    );
    go_tx.send(()).unwrap();
    let proc = released_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("released once the call returned");
    assert_eq!(proc, ProcId(2));
    assert!(!k.released_while_running.load(Ordering::SeqCst));
}
