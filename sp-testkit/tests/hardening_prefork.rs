//! Preforks under attack and under neglect, with the model kernel's process
//! table as the witness: a flood hits the cap and the time-to-live empties
//! the table again; a prefork outlives its parent and a torn or wrong fork
//! handshake does not burn it; nobody claims one without its cookie.

use sp_model::ModelKernel;
use sp_proto::abi::{Errno, SysResult};
use sp_proto::{Cookie, ErrorCode, Message};
use sp_server::{ClientPort, Config, Kernel, Port, ProcId};
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::peers::{eventually, expect_close, fork_handshake, prefork};
use sp_testkit::rawpeer::RawPeer;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn start(cap: usize, ttl: Duration) -> (TestServer, Arc<ModelKernel>) {
    let kernel = Arc::new(ModelKernel::new());
    let cfg = Config {
        prefork_cap: cap,
        prefork_ttl: ttl,
        ..Config::default()
    };
    let s = TestServer::start_with(kernel.clone(), Transport::Unix, cfg).expect("server starts");
    (s, kernel)
}

fn claim(url: &str, cookie: Cookie) -> RawPeer {
    let mut p = RawPeer::connect(url).unwrap();
    let f = fork_handshake(&mut p, cookie, 0).unwrap();
    assert_eq!(
        f.as_ref().and_then(|f| f.message()),
        Some(Message::HandshakeResp { reqno: 1, error: 0 }),
        "the right cookie is accepted"
    );
    p
}

#[test]
fn a_prefork_flood_hits_the_cap_and_the_ttl_empties_the_process_table() {
    let cap = 8;
    let (s, kernel) = start(cap, Duration::from_secs(1));
    let mut p = RawPeer::guest(&s.url(), "flood").unwrap();
    let mut cookies = HashSet::new();
    for i in 0..cap as u64 {
        let c = prefork(&mut p, 2 + i).unwrap().expect("under the cap");
        assert!(cookies.insert(c), "every cookie is fresh");
    }
    assert_eq!(kernel.process_count(), 1 + cap);
    // Asking forever: every further ask is TRYAGAIN and costs the kernel
    // nothing.
    for i in 0..40 {
        assert_eq!(
            prefork(&mut p, 100 + i).unwrap(),
            Err(ErrorCode::TRYAGAIN),
            "ask {i} past the cap"
        );
    }
    assert_eq!(
        kernel.process_count(),
        1 + cap,
        "no process made past the cap"
    );
    assert_eq!(s.server.stats().preforks, cap);
    // The time-to-live reclaims them all; the parent is untouched.
    eventually("the preforks expire", || {
        kernel.process_count() == 1 && s.server.stats().preforks == 0
    });
    assert_eq!(kernel.pids(), vec![2]);
    assert_eq!(p.syscall(200, 20, &[]).unwrap(), (0, [2, 1]));
    // And the cap is free again.
    assert!(prefork(&mut p, 201).unwrap().is_ok());
}

#[test]
fn a_claimed_child_is_not_reclaimed_by_the_ttl() {
    let (s, kernel) = start(4, Duration::from_millis(200));
    let mut parent = RawPeer::guest(&s.url(), "parent").unwrap();
    let claimed = prefork(&mut parent, 2).unwrap().unwrap();
    let _unclaimed = prefork(&mut parent, 3).unwrap().unwrap();
    let mut child = claim(&s.url(), claimed);
    // The unclaimed one expiring shows the time-to-live has passed.
    eventually("the unclaimed prefork expires", || {
        s.server.stats().preforks == 0 && kernel.process_count() == 2
    });
    // The claimed prefork (3) forked once more and was let go, as in the
    // reference: its child is 5 (4 is the other prefork), a child of init.
    assert_eq!(kernel.pids(), vec![2, 5], "parent and claimed child remain");
    assert_eq!(child.syscall(2, 20, &[]).unwrap(), (0, [5, 1]));
}

#[test]
fn a_prefork_outlives_its_parent_and_is_claimed_later() {
    let (s, kernel) = start(4, Duration::from_millis(300));
    let mut parent = RawPeer::guest(&s.url(), "daemon").unwrap();
    let c1 = prefork(&mut parent, 2).unwrap().unwrap();
    let _c2 = prefork(&mut parent, 3).unwrap().unwrap();
    // The parent exits right after its host fork, as daemon() does.
    drop(parent);
    eventually("the parent is released, the preforks are not", || {
        kernel.pids() == vec![3, 4]
    });
    let mut child = claim(&s.url(), c1);
    // The claimed prefork's own child (5) takes over; its parent is init.
    assert_eq!(child.syscall(2, 20, &[]).unwrap(), (0, [5, 1]));
    // The other is never claimed and expires.
    eventually("the unclaimed prefork expires", || kernel.pids() == vec![5]);
    drop(child);
    eventually("the child is released", || kernel.process_count() == 0);
    assert_eq!(kernel.live_threads(), 0);
    assert_eq!(s.server.stats().syscalls, 0);
}

#[test]
fn a_torn_fork_handshake_does_not_burn_the_prefork() {
    let (s, kernel) = start(4, Duration::from_secs(60));
    let mut parent = RawPeer::guest(&s.url(), "parent").unwrap();
    let cookie = prefork(&mut parent, 2).unwrap().unwrap();
    // A child sends 30 of the 44 bytes of its handshake and dies.
    let (mut torn, _) = RawPeer::connect_banner(&s.url()).unwrap();
    let hs = Message::Handshake {
        reqno: 1,
        hs: sp_proto::Handshake::Fork { cookie, cancel: 0 },
    }
    .to_vec();
    torn.send(&hs[..30]).unwrap();
    drop(torn);
    eventually("the torn connection is gone", || {
        s.server.stats().connections == 1
    });
    assert_eq!(s.server.stats().preforks, 1);
    assert_eq!(kernel.process_count(), 2);
    let mut child = claim(&s.url(), cookie);
    assert_eq!(child.syscall(2, 20, &[]).unwrap(), (0, [4, 1]));
}

#[test]
fn wrong_cookies_never_claim_and_never_burn_a_prefork() {
    let (s, kernel) = start(4, Duration::from_secs(60));
    let mut parent = RawPeer::guest(&s.url(), "parent").unwrap();
    let cookie = prefork(&mut parent, 2).unwrap().unwrap();
    let mut wrong = Vec::new();
    for bit in 0..128 {
        let mut c = cookie;
        c[bit / 8] ^= 1 << (bit % 8);
        wrong.push(c);
    }
    wrong.push([0; 16]);
    wrong.push([0xff; 16]);
    for (i, c) in wrong.iter().enumerate() {
        let mut p = RawPeer::connect(&s.url()).unwrap();
        // A cancel with a wrong cookie is refused the same way.
        let cancel = (i % 2) as i32;
        let f = fork_handshake(&mut p, *c, cancel).unwrap();
        assert_eq!(
            f.and_then(|f| f.message().map(|m| format!("{m:?}"))),
            Some(format!(
                "{:?}",
                Message::Error {
                    reqno: 1,
                    code: ErrorCode::INVALID_PREFORK
                }
            )),
            "wrong cookie {i}"
        );
        expect_close(&mut p).unwrap();
    }
    assert_eq!(s.server.stats().preforks, 1, "the prefork is still there");
    assert_eq!(kernel.process_count(), 2);
    let mut child = claim(&s.url(), cookie);
    assert_eq!(child.syscall(2, 20, &[]).unwrap(), (0, [4, 1]));
    // Claimed once: the same cookie is now wrong.
    let mut again = RawPeer::connect(&s.url()).unwrap();
    let f = fork_handshake(&mut again, cookie, 0).unwrap().unwrap();
    assert_eq!(
        f.message(),
        Some(Message::Error {
            reqno: 1,
            code: ErrorCode::INVALID_PREFORK
        })
    );
    assert_eq!(kernel.process_count(), 2);
}

/// The registry keys a parent's allowance by `token | conn_ptr << 20`
/// (server.rs `Ctx::prefork`). After a parent disconnects, a new
/// connection very likely gets the same slab token and the same `Conn`
/// allocation, and so inherits the departed parent's unclaimed preforks
/// against its cap.
#[test]

fn a_new_connection_does_not_inherit_a_departed_ones_prefork_allowance() {
    let cap = 2;
    let (s, kernel) = start(cap, Duration::from_secs(60));
    let mut held = 0;
    for round in 0..8 {
        let mut p = RawPeer::guest(&s.url(), "parent").unwrap();
        for i in 0..cap as u64 {
            let got = prefork(&mut p, 2 + i).unwrap();
            assert!(
                got.is_ok(),
                "round {round}: a fresh connection holding no prefork was refused \
                 ({got:?}) with {held} preforks of departed parents outstanding"
            );
            held += 1;
        }
        drop(p);
        eventually("the parent is released", || {
            s.server.stats().connections == 0 && kernel.process_count() == held
        });
    }
}

/// A kernel that refuses to attach any prefork (say, out of memory at that
/// moment); everything else is the model's.
struct RefusesAttach {
    inner: Arc<ModelKernel>,
    refuse: AtomicBool,
}

impl Kernel for RefusesAttach {
    fn spawn_guest(&self, comm: &[u8], port: Port) -> Result<ProcId, Errno> {
        self.inner.spawn_guest(comm, port)
    }
    fn prefork(&self, parent: ProcId) -> Result<ProcId, Errno> {
        self.inner.prefork(parent)
    }
    fn attach_prefork(&self, prefork: ProcId, port: Port) -> Result<ProcId, Errno> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(Errno::ENOMEM);
        }
        self.inner.attach_prefork(prefork, port)
    }
    fn syscall(&self, proc: ProcId, sysnum: u32, args: &[u8], port: &dyn ClientPort) -> SysResult {
        self.inner.syscall(proc, sysnum, args, port)
    }
    fn lwpexit(&self, proc: ProcId) {
        self.inner.lwpexit(proc)
    }
    fn execnotify(&self, proc: ProcId, comm: &[u8]) {
        self.inner.execnotify(proc, comm)
    }
    fn release(&self, proc: ProcId) {
        self.inner.release(proc)
    }
    fn pid(&self, proc: ProcId) -> i32 {
        self.inner.pid(proc)
    }
    fn runs_inline(&self, sysnum: u32) -> bool {
        self.inner.runs_inline(sysnum)
    }
}

/// When the kernel cannot attach a claimed prefork, the server answers
/// RFORK_FAILED and closes, but the prefork, already taken out of the
/// registry, is never released: no time-to-live reaches it any more.
#[test]

fn a_prefork_the_kernel_cannot_attach_is_released() {
    let model = Arc::new(ModelKernel::new());
    let kernel = Arc::new(RefusesAttach {
        inner: model.clone(),
        refuse: AtomicBool::new(true),
    });
    let cfg = Config {
        prefork_ttl: Duration::from_millis(200),
        ..Config::default()
    };
    let s = TestServer::start_with(kernel, Transport::Unix, cfg).unwrap();
    let mut parent = RawPeer::guest(&s.url(), "parent").unwrap();
    let cookie = prefork(&mut parent, 2).unwrap().unwrap();
    let _expiring = prefork(&mut parent, 3).unwrap().unwrap();
    let mut child = RawPeer::connect(&s.url()).unwrap();
    let f = fork_handshake(&mut child, cookie, 0).unwrap().unwrap();
    assert_eq!(
        f.message(),
        Some(Message::Error {
            reqno: 1,
            code: ErrorCode::RFORK_FAILED
        })
    );
    expect_close(&mut child).unwrap();
    // Once the other prefork has expired, only the parent may remain.
    eventually("the other prefork expires", || {
        s.server.stats().preforks == 0
    });
    assert!(
        sp_testkit::peers::wait_for(Duration::from_secs(5), || model.process_count() == 1),
        "processes left: {:?} (the failed prefork leaked)",
        model.pids()
    );
}

#[test]
fn a_failed_attach_answers_rfork_failed_and_the_parent_goes_on() {
    let model = Arc::new(ModelKernel::new());
    let kernel = Arc::new(RefusesAttach {
        inner: model.clone(),
        refuse: AtomicBool::new(true),
    });
    let s = TestServer::start_with(kernel.clone(), Transport::Unix, Config::default()).unwrap();
    let mut parent = RawPeer::guest(&s.url(), "parent").unwrap();
    let cookie = prefork(&mut parent, 2).unwrap().unwrap();
    let mut child = RawPeer::connect(&s.url()).unwrap();
    let f = fork_handshake(&mut child, cookie, 0).unwrap().unwrap();
    assert_eq!(
        f.message(),
        Some(Message::Error {
            reqno: 1,
            code: ErrorCode::RFORK_FAILED
        })
    );
    expect_close(&mut child).unwrap();
    assert_eq!(parent.syscall(3, 20, &[]).unwrap(), (0, [2, 1]));
    // The kernel recovers: the next prefork is claimed normally.
    kernel.refuse.store(false, Ordering::SeqCst);
    let cookie = prefork(&mut parent, 4).unwrap().unwrap();
    let mut p = RawPeer::connect(&s.url()).unwrap();
    let f = fork_handshake(&mut p, cookie, 0).unwrap().unwrap();
    assert_eq!(
        f.message(),
        Some(Message::HandshakeResp { reqno: 1, error: 0 })
    );
    // Guest 2, the prefork that failed 3, this one 4, forked once more
    // into 5 and let go: 5's parent is init.
    assert_eq!(p.syscall(2, 20, &[]).unwrap(), (0, [5, 1]));
}
