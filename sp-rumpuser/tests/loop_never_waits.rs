//! With a real kernel every hypercall may wait (`hyp_schedule` waits for a
//! free virtual CPU). Here the fake kernel hands out no CPU at all while a
//! client connects, forks and disconnects: the server's event loop must
//! keep answering everyone, since none of its kernel work runs on the loop.

mod fake;

use sp_proto::Message;
use sp_testkit::peers::{eventually, prefork};
use sp_testkit::rawpeer::RawPeer;

#[test]
fn no_client_waits_for_a_kernel_cpu_on_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let url = fake::unix_url(&dir, "gate.sock");
    assert_eq!(fake::init(&url), 0);
    let mut early = RawPeer::guest(&url, "early").unwrap();
    let (err, rv) = early.syscall(1, 20, &[]).unwrap();
    assert_eq!(err, 0);
    let early_pid = rv[0] as i32;

    fake::close_gate();
    // A guest handshake: its rfork waits for a CPU, its answer does not.
    let mut late = RawPeer::guest(&url, "late").unwrap();
    eventually("the rfork waits at the gate", || {
        fake::waiting_at_gate() >= 1
    });
    // A prefork is answered; its fork waits.
    let cookie = prefork(&mut early, 2).unwrap().unwrap();
    // A call of the late client waits for its process (and a CPU).
    late.syscall_async(1, 20, &[]);
    // A new connection still gets its banner, a bad frame its answer, and
    // a disconnect is taken in.
    let (mut third, banner) = RawPeer::connect_banner(&url).unwrap();
    assert!(banner.starts_with(b"RUMPSP-0.4-NetBSD-7.99.34/amd64"));
    third.send_msg(&Message::Prefork { reqno: 9 }).unwrap();
    assert!(matches!(
        third.recv_msg().unwrap().message(),
        Some(Message::Error { reqno: 9, .. })
    ));
    drop(third);
    let mut gone = RawPeer::guest(&url, "gone").unwrap();
    gone.syscall_async(1, 20, &[]);
    drop(gone);

    fake::open_gate();
    let f = late.recv_msg().unwrap();
    assert!(
        matches!(
            f.message(),
            Some(Message::SyscallResp {
                reqno: 1,
                error: 0,
                ..
            })
        ),
        "{:?}",
        f.message()
    );
    let child = sp_client::Client::fork_child(&url, cookie, sp_client::Options::new()).unwrap();
    let (cpid, _) = child.getpid().unwrap();
    assert!(cpid > early_pid);
    let v = fake::violations();
    assert!(v.is_empty(), "hypercall discipline broken: {v:?}");
}
