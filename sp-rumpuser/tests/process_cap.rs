//! `SP_MAX_PROCS` bounds the kernel processes our clients hold (a stock
//! rump kernel panics when it runs out of files for a new process's
//! console): a guest over the cap is refused, a prefork over it answered
//! RFORK_FAILED, and room comes back when processes go.

mod fake;

use sp_client::Client;
use sp_proto::ErrorCode;
use sp_testkit::peers::{eventually, prefork};
use sp_testkit::rawpeer::RawPeer;

#[test]
fn processes_over_the_cap_are_refused_until_room_comes_back() {
    // The only test of this binary: the variable is read by
    // rumpuser_sp_init, as rump_server's environment would be.
    std::env::set_var("SP_MAX_PROCS", "3");
    let dir = tempfile::tempdir().unwrap();
    let url = fake::unix_url(&dir, "cap.sock");
    assert_eq!(fake::init(&url), 0);
    let a = Client::connect(&url).unwrap();
    let (pid_a, _) = a.getpid().unwrap();
    let b = Client::connect(&url).unwrap();
    let mut c = RawPeer::guest(&url, "c").unwrap();
    // A fourth process: a prefork is answered RFORK_FAILED, the
    // connection goes on; a fourth guest is refused.
    assert_eq!(prefork(&mut c, 2).unwrap(), Err(ErrorCode::RFORK_FAILED));
    assert_eq!(c.syscall(3, 20, &[]).unwrap().0, 0);
    assert!(Client::connect(&url).is_err(), "a fourth guest is refused");
    drop(a);
    eventually("a released", || !fake::alive(pid_a));
    let d = Client::connect(&url).unwrap();
    assert!(d.getpid().is_ok());
    assert!(b.getpid().is_ok());
    let v = fake::violations();
    assert!(v.is_empty(), "hypercall discipline broken: {v:?}");
}
