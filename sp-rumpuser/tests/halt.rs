//! A client's `reboot(2)` halts the kernel from inside the call: the
//! kernel calls `rumpuser_sp_fini`, which must answer that call (the
//! process is about to exit), remove the unix socket and stop serving,
//! with no hypercall after it.

mod fake;

use sp_testkit::rawpeer::RawPeer;

#[test]
fn fini_answers_the_halting_call_and_removes_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let url = fake::unix_url(&dir, "halt.sock");
    let path = dir.path().join("halt.sock");
    assert_eq!(fake::init(&url), 0);
    let mut bystander = RawPeer::guest(&url, "bystander").unwrap();
    let mut p = RawPeer::guest(&url, "halter").unwrap();
    // reboot(RB_HALT, NULL): answered error 0 before the process dies.
    let (err, rv) = p.syscall(1, 208, &sp_proto::args::encode(&[8, 0])).unwrap();
    assert_eq!((err, rv), (0, [0, 0]));
    assert!(fake::with(|w| w.halted));
    assert!(!path.exists(), "the socket is removed at once");
    // No call reaches the halted kernel: the server is stopping and the
    // bystander's calls fail or its connection ends.
    let sent = bystander.send_msg(&sp_proto::Message::Syscall {
        reqno: 1,
        sysnum: 20,
        args: &[],
    });
    match sent.and_then(|()| bystander.recv()) {
        Ok(sp_testkit::rawpeer::Recv::Closed) | Err(_) => {}
        Ok(sp_testkit::rawpeer::Recv::Frame(f)) => {
            let f = sp_testkit::rawpeer::OwnedFrame(f);
            let m = f.message().unwrap();
            assert!(
                matches!(m, sp_proto::Message::SyscallResp { error, .. } if error != 0),
                "{m:?}"
            );
        }
    }
    let v = fake::violations();
    assert!(v.is_empty(), "hypercall discipline broken: {v:?}");
}
