//! Our server inside a (fake) rump kernel, driven through the C ABI: the
//! test binary defines `rumpuser__hyp`, `rumpuser_sp_init` finds it, and
//! sp-client runs every cycle against it while the fake checks the
//! hypercall discipline.

mod fake;

use sp_client::{Client, Options};
use sp_proto::abi::oflag::{O_CREAT, O_RDWR};
use sp_proto::args;
use sp_proto::{Handshake, Message};
use sp_testkit::peers::{eventually, fork_handshake, prefork};
use sp_testkit::rawpeer::RawPeer;
use std::ffi::c_void;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

fn server() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = fake::unix_url(&dir, "rump.sock");
    assert_eq!(fake::init(&url), 0, "rumpuser_sp_init failed");
    (dir, url)
}

fn clean() {
    let v = fake::violations();
    assert!(v.is_empty(), "hypercall discipline broken: {v:?}");
}

fn pid_rforks(pid: i32) -> Vec<i32> {
    fake::with(|w| {
        w.rforks
            .iter()
            .filter(|(_, parent)| *parent == pid)
            .map(|(f, _)| *f)
            .collect()
    })
}

#[test]
fn handshake_and_getpid_reach_each_clients_own_process() {
    let (_d, url) = server();
    let a = Client::connect(&url).unwrap();
    let b = Client::connect(&url).unwrap();
    let (pa, ppa) = a.getpid().unwrap();
    let (pb, _) = b.getpid().unwrap();
    assert_ne!(pa, pb);
    assert_eq!(ppa, 1, "a guest forks off process 1");
    assert!(fake::alive(pa) && fake::alive(pb));
    // The banner is built from rumpuser_sp_init's arguments.
    let banner = a.banner().unwrap();
    assert_eq!(
        (
            banner.ostype.as_str(),
            banner.osrelease.as_str(),
            banner.machine.as_str()
        ),
        ("NetBSD", "7.99.34", "amd64")
    );
    drop(a);
    eventually("process a released", || !fake::alive(pa));
    assert!(fake::alive(pb));
    clean();
}

#[test]
fn copyin_copyinstr_and_copyout_carry_the_bytes() {
    let (_d, url) = server();
    let c = Client::connect(&url).unwrap();
    let fd = c.open("/f-copies", O_RDWR | O_CREAT, 0o644).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    assert_eq!(c.write(fd, &data).unwrap(), data.len());
    let mut back = vec![0u8; data.len()];
    assert_eq!(c.read(fd, &mut back).unwrap(), data.len());
    assert_eq!(back, data);
    c.close(fd).unwrap();
    clean();
}

#[test]
fn anonmmap_and_raise_reach_the_client() {
    let (_d, url) = server();
    let (tx, rx) = mpsc::channel();
    let tx = parking_lot::Mutex::new(tx);
    let target = Client::connect_with(
        &url,
        Options::new().on_signal(move |sig| {
            let _ = tx.lock().send(sig);
        }),
    )
    .unwrap();
    let (tpid, _) = target.getpid().unwrap();
    let killer = Client::connect(&url).unwrap();
    killer.kill(tpid, 30).unwrap();
    // The client reads the RAISE with its next answer.
    target.getpid().unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 30);

    let addr = target.mmap_anon(8192).unwrap();
    assert!(
        target.mapping(addr).is_some(),
        "the client mapped {addr:#x}"
    );
    clean();
}

#[test]
fn prefork_and_fork_follow_the_double_fork() {
    let (_d, url) = server();
    let parent = Client::connect(&url).unwrap();
    let (ppid, _) = parent.getpid().unwrap();
    let cookie = parent.prefork().unwrap();
    let child = Client::fork_child(&url, cookie, Options::new()).unwrap();
    let (cpid, cppid) = child.getpid().unwrap();
    // The prefork (flags RFFD_COPY off the parent) is forked once more
    // (RFFD_SHARE) and released: the child's parent is the prefork.
    assert_eq!(pid_rforks(ppid), vec![1]);
    assert_eq!(pid_rforks(cppid), vec![0]);
    assert!(cpid > cppid && cppid > ppid);
    eventually("the prefork released", || !fake::alive(cppid));
    assert!(fake::alive(cpid));
    // The child's arg reaches the child's own client.
    let fd = child.open("/f-fork", O_RDWR | O_CREAT, 0o644).unwrap();
    assert_eq!(child.write(fd, b"child").unwrap(), 5);
    clean();
}

#[test]
fn exec_drains_then_notifies_once() {
    let (_d, url) = server();
    let mut p = RawPeer::guest(&url, "before").unwrap();
    let (_, rv) = p.syscall(1, 20, &[]).unwrap();
    let pid = rv[0] as i32;
    // A read blocked on an empty pipe: the exec wakes it (EINTR) first.
    let (_, fds) = p.syscall(2, 42, &[]).unwrap();
    p.syscall_async(3, 3, &args::encode(&[fds[0] as u64, 0x1000, 16]));
    eventually("the read holds an lwp", || {
        fake::with(|w| w.procs.get(&pid).is_some_and(|p| p.lwps == 2))
    });
    p.send_msg(&Message::Handshake {
        reqno: 4,
        hs: Handshake::Exec { comm: b"after\0" },
    })
    .unwrap();
    let mut saw = Vec::new();
    while saw.len() < 2 {
        let f = p.recv_msg().unwrap();
        match f.message() {
            Some(Message::SyscallResp {
                reqno: 3, error, ..
            }) => saw.push(("read", error)),
            Some(Message::HandshakeResp { reqno: 4, error }) => saw.push(("exec", error)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(saw, vec![("read", 4), ("exec", 0)]);
    // Calls run again after the exec.
    let (err, rv) = p.syscall(5, 20, &[]).unwrap();
    assert_eq!((err, rv[0] as i32), (0, pid));
    assert_eq!(
        fake::with(|w| w.execnotified.iter().filter(|e| e.0 == pid).count()),
        1
    );
    assert_eq!(fake::with(|w| w.procs[&pid].comm.clone()), "after");
    clean();
}

#[test]
fn eight_threads_share_one_client() {
    let (_d, url) = server();
    let c = Arc::new(Client::connect(&url).unwrap());
    let (pid, _) = c.getpid().unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                let name = format!("/f-thread-{t}");
                let fd = c.open(&name, O_RDWR | O_CREAT, 0o644).unwrap();
                for i in 0..50u8 {
                    assert_eq!(c.getpid().unwrap().0, pid);
                    assert_eq!(c.write(fd, &[t as u8, i]).unwrap(), 2);
                }
                let mut back = vec![0u8; 100];
                assert_eq!(c.read(fd, &mut back).unwrap(), 100);
                assert!(back
                    .chunks(2)
                    .enumerate()
                    .all(|(i, w)| w == [t as u8, i as u8]));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    clean();
}

#[test]
fn disconnect_while_blocked_releases_the_process() {
    let (_d, url) = server();
    let mut p = RawPeer::guest(&url, "blocked").unwrap();
    let (_, rv) = p.syscall(1, 20, &[]).unwrap();
    let pid = rv[0] as i32;
    let (_, fds) = p.syscall(2, 42, &[]).unwrap();
    p.syscall_async(3, 3, &args::encode(&[fds[0] as u64, 0x1000, 16]));
    eventually("the read holds an lwp", || {
        fake::with(|w| w.procs.get(&pid).is_some_and(|p| p.lwps == 2))
    });
    drop(p);
    eventually("the process released", || !fake::alive(pid));
    assert!(fake::with(|w| w.released.contains(&pid)));
    clean();
}

#[test]
fn numbers_outside_the_table_and_short_blocks_never_reach_the_kernel_raw() {
    let (_d, url) = server();
    let mut p = RawPeer::guest(&url, "hostile").unwrap();
    for (i, num) in [0x8000_0000u32, 0xffff_ffff, 512, 100_000]
        .into_iter()
        .enumerate()
    {
        let (err, _) = p.syscall(i as u64 + 1, num, &[1, 2, 3]).unwrap();
        assert_eq!(err, 78, "syscall {num:#x}: ENOSYS");
    }
    // An empty block for a call of three arguments reads zeros (write of
    // 0 bytes to fd 0: EBADF in the fake, never a read past the block).
    let (err, _) = p.syscall(10, 4, &[]).unwrap();
    assert_eq!(err, 9);
    let (err, _) = p.syscall(11, 20, &[0xff; 5]).unwrap();
    assert_eq!(err, 0, "getpid with a ragged block");
    let (err, _) = p.syscall(12, 20, &[]).unwrap();
    assert_eq!(err, 0);
    clean();
}

#[test]
fn fork_handshake_with_a_stale_cookie_is_refused() {
    let (_d, url) = server();
    let mut parent = RawPeer::guest(&url, "parent").unwrap();
    let cookie = prefork(&mut parent, 1).unwrap().unwrap();
    let mut child = RawPeer::connect(&url).unwrap();
    let first = fork_handshake(&mut child, cookie, 0).unwrap();
    assert!(matches!(
        first.as_ref().and_then(|f| f.message()),
        Some(Message::HandshakeResp { error: 0, .. })
    ));
    let mut again = RawPeer::connect(&url).unwrap();
    let second = fork_handshake(&mut again, cookie, 0).unwrap();
    assert!(matches!(
        second.as_ref().and_then(|f| f.message()),
        Some(Message::Error { .. })
    ));
    // The parent is still served.
    let (err, _) = parent.syscall(2, 20, &[]).unwrap();
    assert_eq!(err, 0);
    clean();
}

#[test]
fn the_c_edge_refuses_bad_pointers_and_unknown_args() {
    use sp_rumpuser::*;
    let mut buf = [0u8; 8];
    let mut len: usize = 8;
    let mut addr: *mut c_void = std::ptr::null_mut();
    // SAFETY: the pointers are valid or null on purpose; the functions
    // must refuse null and unknown args without touching anything.
    unsafe {
        assert_eq!(
            rumpuser_sp_copyin(
                999_999 as *mut c_void,
                8 as *const c_void,
                buf.as_mut_ptr().cast(),
                8
            ),
            14
        );
        assert_eq!(
            rumpuser_sp_copyin(
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null_mut(),
                8
            ),
            14
        );
        assert_eq!(
            rumpuser_sp_copyin(
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null_mut(),
                0
            ),
            0
        );
        assert_eq!(
            rumpuser_sp_copyinstr(
                999_999 as *mut c_void,
                8 as *const c_void,
                buf.as_mut_ptr().cast(),
                std::ptr::null_mut()
            ),
            14
        );
        assert_eq!(
            rumpuser_sp_copyinstr(
                999_999 as *mut c_void,
                8 as *const c_void,
                buf.as_mut_ptr().cast(),
                &mut len
            ),
            14
        );
        assert_eq!(
            rumpuser_sp_copyout(
                999_999 as *mut c_void,
                std::ptr::null(),
                8 as *mut c_void,
                4
            ),
            14
        );
        assert_eq!(
            rumpuser_sp_copyout(
                999_999 as *mut c_void,
                buf.as_ptr().cast(),
                8 as *mut c_void,
                4
            ),
            14
        );
        assert_eq!(
            rumpuser_sp_anonmmap(999_999 as *mut c_void, 4096, std::ptr::null_mut()),
            14
        );
        assert_eq!(
            rumpuser_sp_anonmmap(999_999 as *mut c_void, 4096, &mut addr),
            14
        );
        assert_ne!(rumpuser_sp_raise(999_999 as *mut c_void, 30), 0);
        assert_eq!(rumpuser_sp_raise(999_999 as *mut c_void, -1), 22);
        assert_eq!(
            rumpuser_sp_init(
                std::ptr::null(),
                c"NetBSD".as_ptr(),
                c"7".as_ptr(),
                c"amd64".as_ptr()
            ),
            22
        );
        assert_eq!(
            rumpuser_sp_init(
                c"bogus://x".as_ptr(),
                c"NetBSD".as_ptr(),
                c"7".as_ptr(),
                c"amd64".as_ptr()
            ),
            22
        );
        assert_eq!(
            rumpuser_sp_init(
                c"tcp://1.2.3.4:99999".as_ptr(),
                c"NetBSD".as_ptr(),
                c"7".as_ptr(),
                c"amd64".as_ptr()
            ),
            34
        );
    }
    // A URL already served is EADDRINUSE.
    let (_d, url) = server();
    assert_eq!(fake::init(&url), 48);
}
