//! One process's operation that waits in the kernel (here a release, as a
//! real kernel's may wait for a vnode lock held by a call that waits for
//! its client) holds up only that process: other clients still get new
//! processes, fork and run calls.

mod fake;

use sp_client::{Client, Options};
use sp_testkit::peers::eventually;

#[test]
fn a_stuck_release_stalls_no_other_process() {
    let dir = tempfile::tempdir().unwrap();
    let url = fake::unix_url(&dir, "ops.sock");
    assert_eq!(fake::init(&url), 0);
    let a = Client::connect(&url).unwrap();
    let (pid_a, _) = a.getpid().unwrap();
    fake::stall_release_of(pid_a);
    drop(a);
    eventually("a's release waits in the kernel", || fake::stalled() == 1);

    // Meanwhile another client is born, forks and is served (on a thread
    // of its own, so that a server that stalls fails the test, bounded by
    // an explicit timeout, instead of hanging it).
    let (tx, rx) = std::sync::mpsc::channel();
    let b_url = url.clone();
    std::thread::spawn(move || {
        let b = Client::connect(&b_url).unwrap();
        let (pid_b, _) = b.getpid().unwrap();
        let cookie = b.prefork().unwrap();
        let child = Client::fork_child(&b_url, cookie, Options::new()).unwrap();
        let (pid_c, _) = child.getpid().unwrap();
        let _ = tx.send((pid_b, pid_c));
    });
    let (pid_b, pid_c) = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("another client is served while a's release waits");
    assert_ne!(pid_b, pid_a);
    assert!(pid_c > pid_b);
    assert!(fake::alive(pid_a), "a is still being released");

    fake::end_stall();
    eventually("a released", || !fake::alive(pid_a));
    let v = fake::violations();
    assert!(v.is_empty(), "hypercall discipline broken: {v:?}");
}
