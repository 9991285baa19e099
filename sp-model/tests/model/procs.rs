//! Processes: spawn, prefork, attach, release, execnotify, kill, mmap,
//! umask inheritance, and the no-lock-across-the-client rule.

use super::{iovecs, T, WAIT};
use crossbeam_channel::bounded;
use sp_model::{ModelKernel, ProcInfo};
use sp_proto::abi::{fcntl, misc, oflag, Errno, Signal, Sysnum};
use sp_server::{Kernel, ProcId};
use sp_testkit::memport::MemPort;
use std::sync::Arc;
use std::thread;

#[test]
fn pids_ppids_and_names() {
    let k = Arc::new(ModelKernel::new());
    assert_eq!(k.process_count(), 0);
    assert_eq!(k.comm(1).unwrap(), b"init");
    let a = T::on(k.clone());
    let b = T::on(k.clone());
    assert_eq!((a.pid(), b.pid()), (2, 3));
    assert_eq!(a.call(Sysnum::GETPID, &[]), Ok([2, 1]));
    assert_eq!(b.call(Sysnum::GETPID, &[]), Ok([3, 1]));
    assert_eq!(b.call(Sysnum::GETPPID, &[]), Ok([1, 0]));
    assert_eq!(k.pids(), [2, 3]);
    assert_eq!(k.proc_by_pid(3), Some(b.p));
    assert_eq!(k.proc_by_pid(1), Some(ProcId(1)));
    assert_eq!(k.proc_by_pid(9), None);
    // The name stops at the first NUL and at 16 bytes.
    let port = MemPort::shared();
    let c = k.spawn_guest(b"name\0junk", port.clone()).unwrap();
    assert_eq!(k.comm(4).unwrap(), b"name");
    let d = k.spawn_guest(b"a-very-long-program-name", port).unwrap();
    assert_eq!(k.comm(k.pid(d)).unwrap(), b"a-very-long-prog");
    assert_eq!(
        k.proc_info(c).unwrap(),
        ProcInfo {
            pid: 4,
            ppid: 1,
            comm: b"name".to_vec(),
            threads: 0,
            exiting: false,
            attached: true,
            fds: vec![0, 1, 2],
            umask: 0o022,
        }
    );
    assert_eq!(k.process_count(), 4);
}

#[test]
fn prefork_copies_the_table_and_shares_offsets() {
    let t = T::new();
    t.create("/tmp/f", b"0123456789");
    let fd = t.open("/tmp/f", oflag::O_RDONLY, 0).unwrap();
    let ce = t
        .open("/dev/null", oflag::O_RDONLY | oflag::O_CLOEXEC, 0)
        .unwrap();
    t.ok(Sysnum::UMASK, &[0o027]);
    t.mkdir("/tmp/wd");
    t.ok(Sysnum::CHDIR, &[t.s("/tmp/wd")]);
    assert_eq!(t.read(fd, 2).unwrap(), b"01");

    let pf = t.k.prefork(t.p).unwrap();
    let info = t.k.proc_info(pf).unwrap();
    assert_eq!((info.pid, info.ppid, info.attached), (3, 2, false));
    assert_eq!(info.fds, [0, 1, 2, fd, ce]);
    assert_eq!(info.umask, 0o027);
    assert_eq!(info.comm, b"test");
    // Attaching forks the prefork once more and lets the prefork go, as
    // the reference server does: the child is pid 4, and its parent (the
    // prefork) gone, its ppid is 1.
    let cport = MemPort::shared();
    let c = t.k.attach_prefork(pf, cport.clone()).unwrap();
    assert_ne!(c, pf);
    assert_eq!(t.k.proc_info(pf), None);
    assert_eq!(t.k.attach_prefork(pf, cport.clone()), Err(Errno::ESRCH));
    let info = t.k.proc_info(c).unwrap();
    assert_eq!((info.pid, info.ppid, info.attached), (4, 1, true));
    assert_eq!(info.comm, b"test");
    assert_eq!(t.k.pids(), [2, 4]);
    let child = t.with(c, cport);
    assert_eq!(child.call(Sysnum::GETPID, &[]), Ok([4, 1]));
    assert_eq!(child.call(Sysnum::GETPPID, &[]), Ok([1, 0]));
    assert_eq!(child.getcwd().unwrap(), b"/tmp/wd");
    // Same description: the offset is shared both ways.
    assert_eq!(child.read(fd, 3).unwrap(), b"234");
    assert_eq!(t.read(fd, 2).unwrap(), b"56");
    // close-on-exec is copied per descriptor.
    assert_eq!(
        child.ok(Sysnum::FCNTL, &[ce as u64, fcntl::F_GETFD.into(), 0]),
        1
    );
    // The tables are separate: closing in one leaves the other.
    child.ok(Sysnum::CLOSE, &[fd as u64]);
    assert_eq!(t.read(fd, 2).unwrap(), b"78");
    assert_eq!(child.read(fd, 1), Err(Errno::EBADF));
    let nfd = child.open("/dev/null", oflag::O_RDONLY, 0).unwrap();
    assert_eq!(nfd, fd);
    assert_eq!(t.fds(), [0, 1, 2, fd, ce]);
    // The next guest's pid comes after the two the fork used.
    assert_eq!(T::on(t.k.clone()).pid(), 5);
    // And so are cwd and umask.
    child.ok(Sysnum::CHDIR, &[child.s("/")]);
    child.ok(Sysnum::UMASK, &[0]);
    assert_eq!(t.getcwd().unwrap(), b"/tmp/wd");
    assert_eq!(t.ok(Sysnum::UMASK, &[0o027]), 0o027);
}

#[test]
fn a_pipe_across_a_fork() {
    let t = T::new();
    let (r, w) = t.pipe();
    let pf = t.k.prefork(t.p).unwrap();
    let child = t.with(
        t.k.attach_prefork(pf, MemPort::shared()).unwrap(),
        MemPort::shared(),
    );
    // Parent writes, child reads.
    assert_eq!(t.write(w, b"to child"), Ok(8));
    assert_eq!(child.read(r, 100).unwrap(), b"to child");
    // The parent closing its write end is not EOF: the child's copy is
    // the same description, still open.
    let (tx, rx) = bounded(1);
    let c2 = child.clone();
    let h = thread::spawn(move || tx.send(c2.read(r, 100)).unwrap());
    assert!(t.k.wait_blocked_threads(1, WAIT));
    t.ok(Sysnum::CLOSE, &[w as u64]);
    assert!(rx.try_recv().is_err());
    assert_eq!(child.write(w, b"self"), Ok(4));
    assert_eq!(rx.recv_timeout(WAIT).unwrap().unwrap(), b"self");
    h.join().unwrap();
    // Both write ends closed: EOF.
    child.ok(Sysnum::CLOSE, &[w as u64]);
    assert_eq!(child.read(r, 100).unwrap(), b"");
}

#[test]
fn release_closes_pipes_so_peers_see_eof_and_epipe() {
    let t = T::new();
    let (r, w) = t.pipe();
    let (r2, w2) = t.pipe();
    let pf = t.k.prefork(t.p).unwrap();
    let child = t.with(
        t.k.attach_prefork(pf, MemPort::shared()).unwrap(),
        MemPort::shared(),
    );
    // Parent keeps r and w2; child keeps w and r2.
    t.ok(Sysnum::CLOSE, &[w as u64]);
    t.ok(Sysnum::CLOSE, &[r2 as u64]);
    child.ok(Sysnum::CLOSE, &[r as u64]);
    child.ok(Sysnum::CLOSE, &[w2 as u64]);
    // The parent blocks reading from the child.
    let (tx, rx) = bounded(1);
    let t2 = t.clone();
    let h = thread::spawn(move || tx.send(t2.read(r, 100)).unwrap());
    assert!(t.k.wait_blocked_threads(1, WAIT));
    assert_eq!(t.k.process_count(), 2);
    t.k.release(child.p);
    assert_eq!(rx.recv_timeout(WAIT).unwrap().unwrap(), b"", "EOF");
    h.join().unwrap();
    assert_eq!(t.write(w2, b"x"), Err(Errno::EPIPE));
    assert_eq!(t.port.raised(), [Signal::SIGPIPE.0]);
    assert_eq!(t.k.process_count(), 1);
    assert_eq!(t.k.pid(child.p), -1);
    assert_eq!(child.err(Sysnum::GETPID, &[]), Errno::ESRCH);
    // Releasing twice, or init, does nothing.
    t.k.release(child.p);
    t.k.release(ProcId(1));
    assert_eq!(t.k.comm(1).unwrap(), b"init");
}

#[test]
fn release_wakes_blocked_calls_and_frees_unclaimed_preforks() {
    let t = T::new();
    let (r, _w) = t.pipe();
    let pf = t.k.prefork(t.p).unwrap();
    let (tx, rx) = bounded(1);
    let t2 = t.clone();
    let h = thread::spawn(move || tx.send(t2.read(r, 1)).unwrap());
    assert!(t.k.wait_blocked_threads(1, WAIT));
    // The prefork holds a write end too; releasing the parent interrupts
    // its reader (the writer of the prefork is still open).
    t.k.release(t.p);
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), Err(Errno::EINTR));
    h.join().unwrap();
    // The prefork outlives its parent and is reparented to init.
    assert_eq!(t.k.proc_info(pf).unwrap().ppid, 1);
    t.k.release(pf);
    assert_eq!(t.k.process_count(), 0);
}

#[test]
fn execnotify_closes_cloexec_and_renames() {
    let t = T::new();
    let keep = t.open("/dev/null", oflag::O_RDONLY, 0).unwrap();
    let gone = t
        .open("/dev/null", oflag::O_RDONLY | oflag::O_CLOEXEC, 0)
        .unwrap();
    let (r, w) = t.pipe();
    t.ok(Sysnum::FCNTL, &[w as u64, fcntl::F_SETFD.into(), 1]);
    let dup = t.ok(
        Sysnum::FCNTL,
        &[keep as u64, fcntl::F_DUPFD_CLOEXEC.into(), 10],
    ) as i32;
    assert_eq!(t.fds(), [0, 1, 2, keep, gone, r, w, dup]);
    t.k.lwpexit(t.p);
    t.k.execnotify(t.p, b"newprog\0");
    assert_eq!(t.fds(), [0, 1, 2, keep, r]);
    assert_eq!(t.k.comm(2).unwrap(), b"newprog");
    // The write end closed with the exec: the read end sees EOF.
    assert_eq!(t.read(r, 10).unwrap(), b"");
    assert_eq!(t.read(gone, 1), Err(Errno::EBADF));
    // execnotify without lwpexit works too.
    t.k.execnotify(t.p, b"third");
    assert_eq!(t.k.comm(2).unwrap(), b"third");
    assert_eq!(t.fds(), [0, 1, 2, keep, r]);
}

#[test]
fn kill_raises_on_the_target_client() {
    let t = T::new();
    let u = T::on(t.k.clone());
    assert_eq!(
        t.ok(Sysnum::KILL, &[u.pid() as u64, Signal::SIGUSR1.0.into()]),
        0
    );
    assert_eq!(u.port.raised(), [Signal::SIGUSR1.0]);
    assert!(t.port.raised().is_empty());
    // Signal 0 only checks.
    assert_eq!(t.ok(Sysnum::KILL, &[u.pid() as u64, 0]), 0);
    assert_eq!(u.port.raised().len(), 1);
    // To itself, and pid 0 (itself).
    assert_eq!(
        t.ok(Sysnum::KILL, &[t.pid() as u64, Signal::SIGTERM.0.into()]),
        0
    );
    assert_eq!(t.ok(Sysnum::KILL, &[0, Signal::SIGHUP.0.into()]), 0);
    assert_eq!(t.port.raised(), [Signal::SIGTERM.0, Signal::SIGHUP.0]);
    // Errors.
    assert_eq!(t.err(Sysnum::KILL, &[99, 15]), Errno::ESRCH);
    assert_eq!(t.err(Sysnum::KILL, &[99, 0]), Errno::ESRCH);
    assert_eq!(t.err(Sysnum::KILL, &[(-1i64) as u64, 15]), Errno::ESRCH);
    assert_eq!(t.err(Sysnum::KILL, &[u.pid() as u64, 64]), Errno::EINVAL);
    assert_eq!(
        t.err(Sysnum::KILL, &[u.pid() as u64, (-1i64) as u64]),
        Errno::EINVAL
    );
    // init and an unattached prefork take and drop signals.
    assert_eq!(t.ok(Sysnum::KILL, &[1, 15]), 0);
    let pf = t.k.prefork(u.p).unwrap();
    assert_eq!(t.ok(Sysnum::KILL, &[t.k.pid(pf) as u64, 15]), 0);
    // A target whose client is gone.
    u.port.disconnect();
    assert_eq!(t.err(Sysnum::KILL, &[u.pid() as u64, 15]), Errno::ESRCH);
    // A released process is gone.
    t.k.release(u.p);
    assert_eq!(t.err(Sysnum::KILL, &[u.pid() as u64, 0]), Errno::ESRCH);
}

#[test]
fn mmap_anon_goes_to_the_client() {
    let t = T::new();
    let anon = u64::from(misc::MAP_ANON | misc::MAP_PRIVATE);
    let minus1 = (-1i64) as u64;
    let addr = t.ok(Sysnum::MMAP, &[0, 8192, 3, anon, minus1, 0, 0]) as u64;
    assert_eq!(t.port.read(addr, 8192), vec![0; 8192]);
    let addr2 = t.ok(Sysnum::MMAP, &[0, 100, 3, anon, minus1, 0, 0]) as u64;
    assert_ne!(addr, addr2);
    // Not anonymous, an fd with MAP_ANON, a zero length.
    assert_eq!(
        t.err(
            Sysnum::MMAP,
            &[0, 8192, 3, misc::MAP_SHARED.into(), 0, 0, 0]
        ),
        Errno::EINVAL
    );
    assert_eq!(
        t.err(Sysnum::MMAP, &[0, 8192, 3, anon, 3, 0, 0]),
        Errno::EINVAL
    );
    assert_eq!(
        t.err(Sysnum::MMAP, &[0, 0, 3, anon, minus1, 0, 0]),
        Errno::EINVAL
    );
    // The client's refusal comes back.
    assert_eq!(
        t.err(Sysnum::MMAP, &[0, 1 << 40, 3, anon, minus1, 0, 0]),
        Errno::ENOMEM
    );
}

#[test]
fn a_client_that_is_gone() {
    let t = T::new();
    t.port.disconnect();
    assert_eq!(t.err(Sysnum::OPEN, &[0x1000, 0, 0]), Errno::EFAULT);
    let (r, w) = t.pipe();
    assert_eq!(t.err(Sysnum::WRITE, &[w as u64, 0x1000, 1]), Errno::EFAULT);
    t.port.set_disconnected(false);
    assert_eq!(t.write(w, b"lost"), Ok(4));
    let buf = t.port.alloc_zeroed(4);
    t.port.disconnect();
    // The read consumed the bytes; the copyout failed: EFAULT, data lost.
    assert_eq!(t.err(Sysnum::READ, &[r as u64, buf, 4]), Errno::EFAULT);
    t.port.set_disconnected(false);
    t.ok(
        Sysnum::FCNTL,
        &[r as u64, fcntl::F_SETFL.into(), oflag::O_NONBLOCK.into()],
    );
    assert_eq!(t.read(r, 4), Err(Errno::EAGAIN));
}

#[test]
fn no_kernel_lock_is_held_while_waiting_for_the_client() {
    // While the kernel waits in a COPYIN or COPYINSTR, another thread runs
    // calls of the same process that take every kind of lock. If the
    // kernel held one, the hook would deadlock (and time out).
    let t = T::new();
    t.create("/tmp/f", b"data");
    let fd = t.open("/tmp/f", oflag::O_RDWR, 0).unwrap();
    let (r, w) = t.pipe();
    let other = t.clone();
    let other_port = MemPort::shared();
    let other = other.with(other.p, other_port);
    let buf = other.port.alloc_zeroed(256);
    let name = other.port.alloc_cstr(b"/tmp/f");
    let hook = move || {
        let (tx, rx) = bounded(1);
        let o = other.clone();
        thread::spawn(move || {
            let res = (
                o.call(Sysnum::GETPID, &[]),
                o.call(Sysnum::FSTAT, &[fd as u64, buf]),
                o.call(Sysnum::STAT, &[name, buf]),
                o.call(Sysnum::PREAD, &[fd as u64, buf, 4, 0, 0]),
                o.call(Sysnum::DUP, &[fd as u64])
                    .and_then(|[d, _]| o.call(Sysnum::CLOSE, &[d as u64])),
                o.call(Sysnum::FCNTL, &[r as u64, fcntl::F_GETFL.into(), 0]),
                o.call(Sysnum::LSEEK, &[fd as u64, 0, 0, misc::SEEK_CUR.into()]),
            );
            tx.send(res).unwrap();
        });
        let res = rx
            .recv_timeout(WAIT)
            .expect("a kernel lock is held across a COPYIN");
        assert!(res.0.is_ok() && res.1.is_ok() && res.2.is_ok() && res.3.is_ok());
        assert!(res.4.is_ok() && res.5.is_ok() && res.6.is_ok());
    };
    t.port.set_copyin_hook(Some(Arc::new(hook)));
    assert_eq!(t.write(fd, b"DATA"), Ok(4));
    assert_eq!(t.write(w, b"pipe"), Ok(4));
    assert!(t.stat("/tmp/f").is_ok());
    let iov = t.port.alloc(iovecs(&[(t.port.alloc(b"v".to_vec()), 1)]));
    assert_eq!(t.ok(Sysnum::WRITEV, &[fd as u64, iov, 1]), 1);
    t.ok(Sysnum::RENAME, &[t.s("/tmp/f"), t.s("/tmp/g")]);
    t.port.set_copyin_hook(None);
    assert_eq!(t.content("/tmp/g"), b"DATAv");
}

#[test]
fn concurrent_processes_and_files() {
    let k = Arc::new(ModelKernel::new());
    let mut hs = Vec::new();
    for i in 0..8 {
        let t = T::on(k.clone());
        hs.push(thread::spawn(move || {
            let dir = format!("/tmp/p{i}");
            t.mkdir(&dir);
            for j in 0..50 {
                let path = format!("{dir}/f{j}");
                t.create(&path, path.as_bytes());
                assert_eq!(t.content(&path), path.as_bytes());
                if j % 2 == 0 {
                    t.ok(Sysnum::RENAME, &[t.s(&path), t.s(&format!("{path}.x"))]);
                }
            }
            assert_eq!(t.names(&dir).len(), 52);
            let pf = t.k.prefork(t.p).unwrap();
            t.k.release(pf);
            t.k.release(t.p);
        }));
    }
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(k.process_count(), 0);
    assert_eq!(k.live_threads(), 0);
    let t = T::on(k);
    assert_eq!(t.names("/tmp").len(), 10);
    assert_eq!(t.pid(), 2 + 16);
}
