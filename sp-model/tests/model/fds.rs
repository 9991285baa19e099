//! Descriptor tables: close, dup, dup2, dup3, fcntl, limits.

use super::T;
use sp_model::{num, FD_LIMIT};
use sp_proto::abi::{fcntl, mode, oflag, Errno, Sysnum};

#[test]
fn a_guest_starts_with_the_console_on_0_1_2() {
    let t = T::new();
    assert_eq!(t.fds(), [0, 1, 2]);
    // The first open gets 3, as on a stock rump kernel.
    assert_eq!(t.open("/dev/null", oflag::O_RDONLY, 0), Ok(3));
    // One write-only description behind all three.
    for fd in 0..3u64 {
        assert_eq!(
            t.ok(Sysnum::FCNTL, &[fd, fcntl::F_GETFL.into(), 0]),
            i64::from(oflag::O_WRONLY)
        );
        assert_eq!(t.ok(Sysnum::FCNTL, &[fd, fcntl::F_GETFD.into(), 0]), 0);
    }
    t.ok(
        Sysnum::FCNTL,
        &[1, fcntl::F_SETFL.into(), oflag::O_APPEND.into()],
    );
    assert_eq!(
        t.ok(Sysnum::FCNTL, &[2, fcntl::F_GETFL.into(), 0]),
        i64::from(oflag::O_WRONLY | oflag::O_APPEND)
    );
    // rumpcons has no FIONBIO: O_NONBLOCK is refused.
    assert_eq!(
        t.err(
            Sysnum::FCNTL,
            &[1, fcntl::F_SETFL.into(), oflag::O_NONBLOCK.into()]
        ),
        Errno::ENOTTY
    );
    // Writes land in the console; reads are refused (write-only).
    assert_eq!(t.write(1, b"hello "), Ok(6));
    assert_eq!(t.write(2, b"console"), Ok(7));
    assert_eq!(t.k.console_output(), b"hello console");
    assert_eq!(t.read(0, 4), Err(Errno::EBADF));
    // A character device, mode 0600, everything else zero.
    let st = t.fstat(0).unwrap();
    assert_eq!(st.st_mode.get(), mode::S_IFCHR | 0o600);
    assert_eq!(
        (st.st_ino.get(), st.st_dev.get(), st.st_rdev.get()),
        (0, 0, 0)
    );
    assert_eq!(
        (st.st_nlink.get(), st.st_size.get(), st.st_blksize.get()),
        (0, 0, 0)
    );
    // Not a vnode: no seek, no sync, no truncate, no chdir, no chmod.
    assert_eq!(t.err(Sysnum::LSEEK, &[0, 0, 0, 0]), Errno::ESPIPE);
    let buf = t.port.alloc(b"x".to_vec());
    assert_eq!(t.err(Sysnum::PWRITE, &[1, buf, 1, 0, 0]), Errno::ESPIPE);
    assert_eq!(t.err(Sysnum::PREAD, &[1, buf, 1, 0, 0]), Errno::EBADF);
    assert_eq!(t.err(Sysnum::FSYNC, &[0]), Errno::EINVAL);
    assert_eq!(t.err(Sysnum::FTRUNCATE, &[1, 0, 0]), Errno::EINVAL);
    assert_eq!(t.err(Sysnum::FCHDIR, &[0]), Errno::EINVAL);
    assert_eq!(t.err(Sysnum::GETDENTS, &[0, buf, 1]), Errno::EINVAL);
    assert_eq!(t.err(num::FCHMOD, &[0, 0o644]), Errno::EINVAL);
    // The console is not in the namespace.
    assert_eq!(t.stat("/dev/console"), Err(Errno::ENOENT));
    // A second guest has a console of its own (its own description).
    let u = T::on(t.k.clone());
    assert_eq!(u.fds(), [0, 1, 2]);
    assert_eq!(
        u.ok(Sysnum::FCNTL, &[2, fcntl::F_GETFL.into(), 0]),
        i64::from(oflag::O_WRONLY)
    );
}

#[test]
fn close_and_lowest_free() {
    let t = T::new();
    let fds: Vec<i32> = (0..5)
        .map(|_| t.open("/dev/null", oflag::O_RDONLY, 0).unwrap())
        .collect();
    assert_eq!(fds, [3, 4, 5, 6, 7]);
    t.ok(Sysnum::CLOSE, &[4]);
    t.ok(Sysnum::CLOSE, &[6]);
    t.ok(Sysnum::CLOSE, &[0]);
    assert_eq!(t.err(Sysnum::CLOSE, &[6]), Errno::EBADF);
    assert_eq!(t.err(Sysnum::CLOSE, &[(-1i64) as u64]), Errno::EBADF);
    assert_eq!(t.err(Sysnum::CLOSE, &[FD_LIMIT as u64]), Errno::EBADF);
    assert_eq!(t.open("/dev/null", oflag::O_RDONLY, 0), Ok(0));
    assert_eq!(t.open("/dev/null", oflag::O_RDONLY, 0), Ok(4));
    assert_eq!(t.open("/dev/null", oflag::O_RDONLY, 0), Ok(6));
    assert_eq!(t.open("/dev/null", oflag::O_RDONLY, 0), Ok(8));
    assert_eq!(t.fds(), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn emfile_at_the_limit() {
    let t = T::new();
    assert_eq!(FD_LIMIT, 128, "a rump kernel's RLIMIT_NOFILE");
    for i in 3..FD_LIMIT {
        assert_eq!(t.open("/dev/null", oflag::O_RDONLY, 0), Ok(i as i32));
    }
    assert_eq!(t.open("/dev/null", oflag::O_RDONLY, 0), Err(Errno::EMFILE));
    // O_CREAT does not create a file it cannot open.
    assert_eq!(
        t.open("/tmp/new", oflag::O_CREAT | oflag::O_RDWR, 0o644),
        Err(Errno::EMFILE)
    );
    assert_eq!(t.stat("/tmp/new"), Err(Errno::ENOENT));
    assert_eq!(t.err(Sysnum::DUP, &[0]), Errno::EMFILE);
    assert_eq!(t.err(Sysnum::PIPE, &[]), Errno::EMFILE);
    // With one slot free, pipe needs two and leaves none behind.
    t.ok(Sysnum::CLOSE, &[100]);
    assert_eq!(t.err(Sysnum::PIPE, &[]), Errno::EMFILE);
    assert_eq!(t.fds().len(), FD_LIMIT - 1);
    assert_eq!(t.ok(Sysnum::DUP, &[0]), 100);
}

#[test]
fn dup_shares_the_offset_not_cloexec() {
    let t = T::new();
    t.create("/tmp/f", b"abcdef");
    let a = t
        .open("/tmp/f", oflag::O_RDONLY | oflag::O_CLOEXEC, 0)
        .unwrap();
    let b = t.ok(Sysnum::DUP, &[a as u64]) as i32;
    assert_eq!(b, 4);
    assert_eq!(t.read(a, 2).unwrap(), b"ab");
    assert_eq!(t.read(b, 2).unwrap(), b"cd");
    assert_eq!(
        t.ok(Sysnum::FCNTL, &[a as u64, fcntl::F_GETFD.into(), 0]),
        1
    );
    assert_eq!(
        t.ok(Sysnum::FCNTL, &[b as u64, fcntl::F_GETFD.into(), 0]),
        0
    );
    // Closing one leaves the other open.
    t.ok(Sysnum::CLOSE, &[a as u64]);
    assert_eq!(t.read(b, 10).unwrap(), b"ef");
    assert_eq!(t.err(Sysnum::DUP, &[a as u64]), Errno::EBADF);
}

#[test]
fn dup2_semantics() {
    let t = T::new();
    t.create("/tmp/f", b"12345");
    let a = t.open("/tmp/f", oflag::O_RDONLY, 0).unwrap() as u64;
    let other = t
        .open("/dev/null", oflag::O_RDONLY | oflag::O_CLOEXEC, 0)
        .unwrap() as u64;
    // Onto an open descriptor: it is closed first.
    assert_eq!(t.ok(Sysnum::DUP2, &[a, other]), other as i64);
    assert_eq!(t.read(other as i32, 2).unwrap(), b"12");
    assert_eq!(t.read(a as i32, 2).unwrap(), b"34");
    assert_eq!(t.ok(Sysnum::FCNTL, &[other, fcntl::F_GETFD.into(), 0]), 0);
    // Onto a high free descriptor.
    assert_eq!(t.ok(Sysnum::DUP2, &[a, 100]), 100);
    assert_eq!(t.fds(), [0, 1, 2, 3, 4, 100]);
    // Onto itself: nothing changes, close-on-exec included.
    t.ok(Sysnum::FCNTL, &[a, fcntl::F_SETFD.into(), 1]);
    assert_eq!(t.ok(Sysnum::DUP2, &[a, a]), a as i64);
    assert_eq!(t.ok(Sysnum::FCNTL, &[a, fcntl::F_GETFD.into(), 0]), 1);
    // Errors.
    assert_eq!(t.err(Sysnum::DUP2, &[55, 3]), Errno::EBADF);
    assert_eq!(t.err(Sysnum::DUP2, &[55, 55]), Errno::EBADF);
    assert_eq!(t.err(Sysnum::DUP2, &[a, FD_LIMIT as u64]), Errno::EBADF);
    assert_eq!(t.err(Sysnum::DUP2, &[a, (-1i64) as u64]), Errno::EBADF);
}

#[test]
fn dup3_semantics() {
    let t = T::new();
    let a = t.open("/dev/null", oflag::O_RDONLY, 0).unwrap() as u64;
    assert_eq!(t.ok(Sysnum::DUP3, &[a, 5, oflag::O_CLOEXEC.into()]), 5);
    assert_eq!(t.ok(Sysnum::FCNTL, &[5, fcntl::F_GETFD.into(), 0]), 1);
    assert_eq!(t.ok(Sysnum::DUP3, &[a, 5, 0]), 5);
    assert_eq!(t.ok(Sysnum::FCNTL, &[5, fcntl::F_GETFD.into(), 0]), 0);
    // Onto itself: nothing happens and the flags are not even looked at,
    // as NetBSD's dodup has it.
    assert_eq!(t.ok(Sysnum::DUP3, &[a, a, 0]), a as i64);
    assert_eq!(t.ok(Sysnum::DUP3, &[a, a, 0x12345]), a as i64);
    assert_eq!(
        t.err(Sysnum::DUP3, &[a, 6, oflag::O_APPEND.into()]),
        Errno::EINVAL
    );
    assert_eq!(t.err(Sysnum::DUP3, &[9, 6, 0]), Errno::EBADF);
    assert_eq!(t.err(Sysnum::DUP3, &[a, FD_LIMIT as u64, 0]), Errno::EBADF);
    // O_NONBLOCK goes on the shared description.
    assert_eq!(t.ok(Sysnum::DUP3, &[a, 7, oflag::O_NONBLOCK.into()]), 7);
    assert_eq!(
        t.ok(Sysnum::FCNTL, &[a, fcntl::F_GETFL.into(), 0]),
        i64::from(oflag::O_NONBLOCK)
    );
}

#[test]
fn fcntl_commands() {
    let t = T::new();
    t.create("/tmp/f", b"abc");
    let a = t
        .open("/tmp/f", oflag::O_RDWR | oflag::O_NONBLOCK, 0)
        .unwrap() as u64;
    let f = |cmd: u32, arg: u64| t.call(Sysnum::FCNTL, &[a, cmd.into(), arg]).map(|r| r[0]);
    // F_DUPFD: lowest at or above arg, close-on-exec clear.
    assert_eq!(f(fcntl::F_DUPFD, 10), Ok(10));
    assert_eq!(f(fcntl::F_DUPFD, 10), Ok(11));
    assert_eq!(f(fcntl::F_DUPFD, 0), Ok(4));
    assert_eq!(t.ok(Sysnum::FCNTL, &[10, fcntl::F_GETFD.into(), 0]), 0);
    assert_eq!(f(fcntl::F_DUPFD_CLOEXEC, 3), Ok(5));
    assert_eq!(t.ok(Sysnum::FCNTL, &[5, fcntl::F_GETFD.into(), 0]), 1);
    assert_eq!(f(fcntl::F_DUPFD, FD_LIMIT as u64), Err(Errno::EINVAL));
    assert_eq!(f(fcntl::F_DUPFD, (-1i64) as u64), Err(Errno::EINVAL));
    // The dups share the description: reads advance one offset.
    assert_eq!(t.read(10, 1).unwrap(), b"a");
    assert_eq!(t.read(11, 1).unwrap(), b"b");
    // F_GETFD / F_SETFD.
    assert_eq!(f(fcntl::F_GETFD, 0), Ok(0));
    assert_eq!(f(fcntl::F_SETFD, fcntl::FD_CLOEXEC.into()), Ok(0));
    assert_eq!(f(fcntl::F_GETFD, 0), Ok(1));
    assert_eq!(f(fcntl::F_SETFD, 0), Ok(0));
    assert_eq!(f(fcntl::F_GETFD, 0), Ok(0));
    // F_GETFL / F_SETFL: the access mode stays, O_APPEND and O_NONBLOCK
    // change, and the dups see it.
    assert_eq!(
        f(fcntl::F_GETFL, 0),
        Ok((oflag::O_RDWR | oflag::O_NONBLOCK).into())
    );
    assert_eq!(
        f(
            fcntl::F_SETFL,
            (oflag::O_APPEND | oflag::O_WRONLY | oflag::O_CREAT).into()
        ),
        Ok(0)
    );
    assert_eq!(
        f(fcntl::F_GETFL, 0),
        Ok((oflag::O_RDWR | oflag::O_APPEND).into())
    );
    assert_eq!(
        t.ok(Sysnum::FCNTL, &[10, fcntl::F_GETFL.into(), 0]),
        i64::from(oflag::O_RDWR | oflag::O_APPEND)
    );
    // NetBSD adds one to the argument first (FFLAGS): 3 is O_NONBLOCK, 7
    // is O_APPEND, -1 is nothing.
    assert_eq!(f(fcntl::F_SETFL, 3), Ok(0));
    assert_eq!(
        f(fcntl::F_GETFL, 0),
        Ok((oflag::O_RDWR | oflag::O_NONBLOCK).into())
    );
    assert_eq!(f(fcntl::F_SETFL, 7), Ok(0));
    assert_eq!(
        f(fcntl::F_GETFL, 0),
        Ok((oflag::O_RDWR | oflag::O_APPEND).into())
    );
    assert_eq!(f(fcntl::F_SETFL, (-1i64) as u64), Ok(0));
    assert_eq!(f(fcntl::F_GETFL, 0), Ok(oflag::O_RDWR.into()));
    // O_ASYNC, O_SYNC, O_DSYNC and O_NOSIGPIPE are status flags too.
    let more = 0x40 | 0x80 | 0x1_0000 | 0x100_0000;
    assert_eq!(f(fcntl::F_SETFL, more), Ok(0));
    assert_eq!(
        f(fcntl::F_GETFL, 0),
        Ok(i64::from(oflag::O_RDWR) | more as i64)
    );
    // Unknown command; bad descriptor first.
    assert_eq!(f(99, 0), Err(Errno::EINVAL));
    assert_eq!(t.err(Sysnum::FCNTL, &[77, 99, 0]), Errno::EBADF);
    assert_eq!(
        t.err(Sysnum::FCNTL, &[77, fcntl::F_GETFD.into(), 0]),
        Errno::EBADF
    );
    // F_GETFD needs no third slot.
    assert_eq!(
        t.call(Sysnum::FCNTL, &[a, fcntl::F_GETFD.into()]),
        Ok([0, 0])
    );
}

#[test]
fn open_cloexec_sets_the_descriptor_flag() {
    let t = T::new();
    let a = t
        .open("/dev/null", oflag::O_RDONLY | oflag::O_CLOEXEC, 0)
        .unwrap() as u64;
    assert_eq!(t.ok(Sysnum::FCNTL, &[a, fcntl::F_GETFD.into(), 0]), 1);
    // O_CLOEXEC is not a status flag.
    assert_eq!(t.ok(Sysnum::FCNTL, &[a, fcntl::F_GETFL.into(), 0]), 0);
}

#[test]
fn f_setfl_where_the_object_refuses() {
    let t = T::new();
    // /dev/null has no FIONBIO or FIOASYNC: ENODEV, and nothing changes.
    let n = t.open("/dev/null", oflag::O_RDWR, 0).unwrap() as u64;
    let setfl = |fd: u64, v: u32| t.call(Sysnum::FCNTL, &[fd, fcntl::F_SETFL.into(), v.into()]);
    assert_eq!(setfl(n, oflag::O_NONBLOCK), Err(Errno(19)));
    assert_eq!(t.ok(Sysnum::FCNTL, &[n, fcntl::F_GETFL.into(), 0]), 2);
    assert_eq!(setfl(n, oflag::O_APPEND), Ok([0, 0]));
    // A file on the root file system (rumpfs) refuses fcntl from a
    // remote process.
    let r = t
        .open("/rootfile", oflag::O_CREAT | oflag::O_RDWR, 0o644)
        .unwrap() as u64;
    assert_eq!(setfl(r, oflag::O_APPEND), Err(Errno::EINVAL));
    // tmpfs and pipes take it.
    let m = t
        .open("/tmp/f", oflag::O_CREAT | oflag::O_RDWR, 0o644)
        .unwrap() as u64;
    assert_eq!(setfl(m, oflag::O_NONBLOCK), Ok([0, 0]));
    let (pr, _) = t.pipe();
    assert_eq!(setfl(pr as u64, oflag::O_NONBLOCK), Ok([0, 0]));
}

#[test]
fn fcntl_closem_maxfd_nosigpipe_owner_and_locks() {
    let t = T::new();
    let f = |fd: i64, cmd: u32, arg: i64| {
        t.call(Sysnum::FCNTL, &[fd as u64, cmd.into(), arg as u64])
            .map(|r| r[0])
    };
    // F_MAXFD: the highest open descriptor; the fd slot is not looked at.
    assert_eq!(f(99, 11, 0), Ok(2));
    let fds: Vec<i32> = (0..4)
        .map(|_| t.open("/dev/null", oflag::O_RDONLY, 0).unwrap())
        .collect();
    assert_eq!(f(-1, 11, 0), Ok(6));
    // F_CLOSEM closes from fd up, fd open or not.
    assert_eq!(f(fds[1] as i64, 10, 0), Ok(0));
    assert_eq!(t.fds(), [0, 1, 2, 3]);
    assert_eq!(f(77, 10, 0), Ok(0));
    assert_eq!(f(-1, 10, 0), Err(Errno::EBADF));
    // F_GETNOSIGPIPE / F_SETNOSIGPIPE: the O_NOSIGPIPE status flag.
    let (r, w) = t.pipe();
    assert_eq!(f(w.into(), 13, 0), Ok(0));
    assert_eq!(f(w.into(), 14, 5), Ok(0));
    assert_eq!(f(w.into(), 13, 0), Ok(1));
    assert_eq!(f(w.into(), fcntl::F_GETFL, 0), Ok(0x100_0001));
    t.ok(Sysnum::CLOSE, &[r as u64]);
    assert_eq!(t.write(w, b"x"), Err(Errno::EPIPE));
    assert!(t.port.raised().is_empty(), "no SIGPIPE");
    assert_eq!(f(w.into(), 14, 0), Ok(0));
    assert_eq!(t.write(w, b"x"), Err(Errno::EPIPE));
    assert_eq!(t.port.raised().len(), 1);
    // F_GETOWN / F_SETOWN: a pipe keeps an existing pid.
    let (r, _w) = t.pipe();
    assert_eq!(f(r.into(), 5, 0), Ok(0));
    assert_eq!(f(r.into(), 6, 2), Ok(0));
    assert_eq!(f(r.into(), 5, 0), Ok(2));
    assert_eq!(f(r.into(), 6, 9999), Err(Errno::ESRCH));
    assert_eq!(f(r.into(), 6, -2), Err(Errno::EINVAL));
    // Others answer as their ioctls do.
    assert_eq!(f(1, 5, 0), Err(Errno::ENOTTY), "the console");
    let null = t.open("/dev/null", oflag::O_RDONLY, 0).unwrap();
    assert_eq!(f(null.into(), 6, 2), Err(Errno(19)), "a device: ENODEV");
    let root = t.open("/", oflag::O_RDONLY, 0).unwrap();
    assert_eq!(f(root.into(), 5, 0), Err(Errno::EOPNOTSUPP), "rumpfs");
    let tmp = t.open("/tmp", oflag::O_RDONLY, 0).unwrap();
    assert_eq!(f(tmp.into(), 5, 0), Err(Errno(-4)), "tmpfs: EPASSTHROUGH");
    // Record locks: the flock is read first, then the descriptor; not
    // modelled beyond that.
    let fl = t.port.alloc_zeroed(24);
    assert_eq!(f(tmp.into(), 7, 0x10), Err(Errno::EFAULT));
    assert_eq!(f(99, 8, fl as i64), Err(Errno::EBADF));
    assert_eq!(f(tmp.into(), 8, fl as i64), Err(Errno::EINVAL));
    // F_DUPFD keeps the low 32 bits of its argument.
    assert_eq!(f(tmp.into(), fcntl::F_DUPFD, (1 << 32) + 50), Ok(50));
}
