//! Pipes: data, EOF, EPIPE, blocking and waking across threads.

use super::{iovecs, T, WAIT};
use crossbeam_channel::bounded;
use sp_model::{BIG_PIPE_SIZE, MAX_BIG_PIPES, PIPE_BUF, PIPE_SIZE};
use sp_proto::abi::{fcntl, mode, oflag, Errno, Signal, Sysnum};
use sp_server::Kernel;
use std::thread;

#[test]
fn pipe_data_flows_in_order() {
    let t = T::new();
    let (r, w) = t.pipe();
    assert_eq!((r, w), (3, 4));
    assert_eq!(t.write(w, b"hello "), Ok(6));
    assert_eq!(t.write(w, b"pipe"), Ok(4));
    assert_eq!(t.read(r, 3).unwrap(), b"hel");
    assert_eq!(t.read(r, 100).unwrap(), b"lo pipe");
    // Wrong ends.
    assert_eq!(t.read(w, 1), Err(Errno::EBADF));
    assert_eq!(t.write(r, b"x"), Err(Errno::EBADF));
    // lseek on a pipe.
    assert_eq!(t.err(Sysnum::LSEEK, &[r as u64, 0, 0, 0]), Errno::ESPIPE);
    assert_eq!(t.err(Sysnum::LSEEK, &[w as u64, 0, 0, 0]), Errno::ESPIPE);
    // fstat, as NetBSD's pipe_stat: a FIFO, mode 0600, the buffered byte
    // count, one block while anything is buffered, st_dev, st_ino,
    // st_nlink and st_rdev left 0.
    let st = t.fstat(r).unwrap();
    assert_eq!((st.st_size.get(), st.st_blocks.get()), (0, 0));
    assert_eq!(t.write(w, b"abc"), Ok(3));
    let st = t.fstat(r).unwrap();
    assert_eq!(st.st_mode.get(), mode::S_IFIFO | 0o600);
    assert_eq!((st.st_size.get(), st.st_blocks.get()), (3, 1));
    assert_eq!(st.st_blksize.get(), PIPE_SIZE as u32);
    assert_eq!(
        (
            st.st_dev.get(),
            st.st_ino.get(),
            st.st_nlink.get(),
            st.st_rdev.get()
        ),
        (0, 0, 0, 0)
    );
    // The write end holds no bytes of its own: size 0, the read side's
    // blksize.
    let ws = t.fstat(w).unwrap();
    assert_eq!((ws.st_size.get(), ws.st_blocks.get()), (0, 0));
    assert_eq!(ws.st_blksize.get(), PIPE_SIZE as u32);
    assert_eq!(
        t.ok(Sysnum::FCNTL, &[r as u64, fcntl::F_GETFL.into(), 0]),
        i64::from(oflag::O_RDONLY)
    );
    assert_eq!(
        t.ok(Sysnum::FCNTL, &[w as u64, fcntl::F_GETFL.into(), 0]),
        i64::from(oflag::O_WRONLY)
    );
}

#[test]
fn eof_after_all_writers_close() {
    let t = T::new();
    let (r, w) = t.pipe();
    let w2 = t.ok(Sysnum::DUP, &[w as u64]);
    assert_eq!(t.write(w, b"last"), Ok(4));
    t.ok(Sysnum::CLOSE, &[w as u64]);
    assert_eq!(t.read(r, 100).unwrap(), b"last");
    // A writer (the dup) is still open: nonblocking read says EAGAIN.
    t.ok(
        Sysnum::FCNTL,
        &[r as u64, fcntl::F_SETFL.into(), oflag::O_NONBLOCK.into()],
    );
    assert_eq!(t.read(r, 100), Err(Errno::EAGAIN));
    t.ok(Sysnum::CLOSE, &[w2 as u64]);
    assert_eq!(t.read(r, 100).unwrap(), b"");
    assert_eq!(t.read(r, 100).unwrap(), b"");
}

#[test]
fn epipe_raises_sigpipe() {
    let t = T::new();
    let (r, w) = t.pipe();
    t.ok(Sysnum::CLOSE, &[r as u64]);
    assert_eq!(t.write(w, b"x"), Err(Errno::EPIPE));
    assert_eq!(t.port.raised(), [Signal::SIGPIPE.0]);
    // No COPYIN happens: even a bad buffer gives EPIPE.
    assert_eq!(t.err(Sysnum::WRITE, &[w as u64, 0x10, 5]), Errno::EPIPE);
    assert_eq!(t.port.raised(), [Signal::SIGPIPE.0, Signal::SIGPIPE.0]);
    // writev too.
    let iov = t.port.alloc(iovecs(&[(0x10, 5)]));
    assert_eq!(t.err(Sysnum::WRITEV, &[w as u64, iov, 1]), Errno::EPIPE);
    assert_eq!(t.port.raised().len(), 3);
    // O_NOSIGPIPE: EPIPE without the signal.
    t.ok(
        Sysnum::FCNTL,
        &[w as u64, fcntl::F_SETFL.into(), 0x100_0000],
    );
    assert_eq!(t.write(w, b"x"), Err(Errno::EPIPE));
    assert_eq!(t.port.raised().len(), 3);
}

#[test]
fn pipe2_copies_out_fds_and_flags() {
    let t = T::new();
    t.open("/dev/null", oflag::O_RDONLY, 0).unwrap();
    let fds = t.port.alloc_zeroed(8);
    let flags = oflag::O_CLOEXEC | oflag::O_NONBLOCK;
    assert_eq!(t.call(Sysnum::PIPE2, &[fds, flags.into()]), Ok([0, 0]));
    let raw = t.port.read(fds, 8);
    let r = i32::from_le_bytes(raw[..4].try_into().unwrap());
    let w = i32::from_le_bytes(raw[4..].try_into().unwrap());
    assert_eq!((r, w), (4, 5));
    for fd in [r, w] {
        assert_eq!(
            t.ok(Sysnum::FCNTL, &[fd as u64, fcntl::F_GETFD.into(), 0]),
            1
        );
    }
    // NetBSD's pipe2 keeps every flag it was given in the description,
    // O_CLOEXEC included, and F_GETFL shows them.
    assert_eq!(
        t.ok(Sysnum::FCNTL, &[w as u64, fcntl::F_GETFL.into(), 0]),
        i64::from(oflag::O_WRONLY | flags)
    );
    assert_eq!(t.read(r, 10), Err(Errno::EAGAIN));
    assert_eq!(t.write(w, b"ok"), Ok(2));
    assert_eq!(t.read(r, 10).unwrap(), b"ok");
    assert_eq!(
        t.err(Sysnum::PIPE2, &[fds, oflag::O_APPEND.into()]),
        Errno::EINVAL
    );
    // Without flags: blocking, no close-on-exec.
    assert_eq!(t.call(Sysnum::PIPE2, &[fds, 0]), Ok([0, 0]));
    let r2 = i32::from_le_bytes(t.port.read(fds, 4).try_into().unwrap());
    assert_eq!(
        t.ok(Sysnum::FCNTL, &[r2 as u64, fcntl::F_GETFD.into(), 0]),
        0
    );
}

#[test]
fn nonblocking_write_fills_the_pipe() {
    let t = T::new();
    let (r, w) = t.pipe();
    t.ok(
        Sysnum::FCNTL,
        &[w as u64, fcntl::F_SETFL.into(), oflag::O_NONBLOCK.into()],
    );
    let big = vec![7u8; PIPE_SIZE];
    // Full, then EAGAIN.
    assert_eq!(t.write(w, &big), Ok(PIPE_SIZE as i64));
    assert_eq!(t.write(w, b"x"), Err(Errno::EAGAIN));
    // Room for less than PIPE_BUF: a small write is all or nothing.
    assert_eq!(t.read(r, 100).unwrap().len(), 100);
    assert_eq!(t.write(w, &[1; PIPE_BUF]), Err(Errno::EAGAIN));
    assert_eq!(t.write(w, &[1; 100]), Ok(100));
    // A large write into a non-empty pipe does not grow it: partial.
    assert_eq!(t.read(r, 1000).unwrap().len(), 1000);
    assert_eq!(t.write(w, &vec![2; PIPE_SIZE + 100]), Ok(1000));
}

#[test]
fn a_large_write_into_an_empty_pipe_grows_it() {
    let t = T::new();
    let (r, w) = t.pipe2_nonblock();
    // More than PIPE_SIZE into an empty pipe: it grows to BIG_PIPE_SIZE,
    // as NetBSD's does, and stays so.
    let big = vec![7u8; BIG_PIPE_SIZE + 100];
    assert_eq!(t.write(w, &big), Ok(BIG_PIPE_SIZE as i64));
    let st = t.fstat(r).unwrap();
    assert_eq!(st.st_size.get(), BIG_PIPE_SIZE as i64);
    assert_eq!(st.st_blksize.get(), BIG_PIPE_SIZE as u32);
    assert_eq!(t.fstat(w).unwrap().st_blksize.get(), BIG_PIPE_SIZE as u32);
    assert_eq!(t.read(r, BIG_PIPE_SIZE).unwrap().len(), BIG_PIPE_SIZE);
    assert_eq!(t.write(w, &big[..600]), Ok(600));
    assert_eq!(t.write(w, &big), Ok((BIG_PIPE_SIZE - 600) as i64));
    // At most MAX_BIG_PIPES grow in a kernel; closing the read end of one
    // makes room for another.
    let mut pipes = vec![(r, w)];
    for _ in 1..MAX_BIG_PIPES {
        let (r, w) = t.pipe2_nonblock();
        assert_eq!(t.write(w, &big), Ok(BIG_PIPE_SIZE as i64));
        pipes.push((r, w));
    }
    let (r, w) = t.pipe2_nonblock();
    assert_eq!(
        t.write(w, &big),
        Ok(PIPE_SIZE as i64),
        "the 33rd stays small"
    );
    let (r0, w0) = pipes[0];
    t.ok(Sysnum::CLOSE, &[r0 as u64]);
    assert_eq!(
        t.fstat(w0).unwrap().st_blksize.get(),
        0,
        "no reader, no buffer"
    );
    let (r2, w2) = t.pipe2_nonblock();
    assert_eq!(t.write(w2, &big), Ok(BIG_PIPE_SIZE as i64));
    let _ = (r, r2);
}

#[test]
fn blocked_reader_wakes_on_data() {
    let t = T::new();
    let (r, w) = t.pipe();
    let (tx, rx) = bounded(1);
    let t2 = t.clone();
    let h = thread::spawn(move || tx.send(t2.read(r, 100)).unwrap());
    // The reader is inside the kernel, waiting on the pipe.
    assert!(t.k.wait_blocked_threads(1, WAIT), "reader never blocked");
    assert!(rx.try_recv().is_err());
    assert_eq!(t.k.live_threads(), 1);
    assert_eq!(t.k.proc_info(t.p).unwrap().threads, 1);
    assert_eq!(t.write(w, b"wake"), Ok(4));
    assert_eq!(rx.recv_timeout(WAIT).unwrap().unwrap(), b"wake");
    h.join().unwrap();
    assert!(t.k.wait_idle(WAIT));
    assert_eq!(t.k.blocked_threads(), 0);
}

#[test]
fn blocked_reader_sees_eof_when_writers_close() {
    let t = T::new();
    let (r, w) = t.pipe();
    let (tx, rx) = bounded(1);
    let t2 = t.clone();
    let h = thread::spawn(move || tx.send(t2.read(r, 100)).unwrap());
    assert!(t.k.wait_blocked_threads(1, WAIT));
    t.ok(Sysnum::CLOSE, &[w as u64]);
    assert_eq!(rx.recv_timeout(WAIT).unwrap().unwrap(), b"");
    h.join().unwrap();
}

#[test]
fn blocked_writer_wakes_when_reader_drains_or_closes() {
    let t = T::new();
    let (r, w) = t.pipe();
    let big: Vec<u8> = (0..PIPE_SIZE * 3).map(|i| (i % 253) as u8).collect();
    let (tx, rx) = bounded(1);
    let (t2, data) = (t.clone(), big.clone());
    let h = thread::spawn(move || tx.send(t2.write(w, &data)).unwrap());
    let mut got = Vec::new();
    while got.len() < big.len() {
        let chunk = t.read(r, 5000).unwrap();
        assert!(!chunk.is_empty());
        got.extend(chunk);
    }
    assert_eq!(got, big);
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), Ok(big.len() as i64));
    h.join().unwrap();

    // A writer blocked on a full pipe gets EPIPE when the reader goes.
    let (tx, rx) = bounded(1);
    let t2 = t.clone();
    let h = thread::spawn(move || tx.send(t2.write(w, &vec![0; BIG_PIPE_SIZE + 1])).unwrap());
    assert!(t.k.wait_blocked_threads(1, WAIT));
    t.ok(Sysnum::CLOSE, &[r as u64]);
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), Err(Errno::EPIPE));
    assert_eq!(t.port.raised(), [Signal::SIGPIPE.0]);
    h.join().unwrap();
}

#[test]
fn lwpexit_wakes_blocked_reader_with_eintr() {
    let t = T::new();
    let (r, _w) = t.pipe();
    let (tx, rx) = bounded(2);
    let mut hs = Vec::new();
    for _ in 0..2 {
        let (t2, tx) = (t.clone(), tx.clone());
        hs.push(thread::spawn(move || tx.send(t2.read(r, 10)).unwrap()));
    }
    assert!(t.k.wait_blocked_threads(2, WAIT));
    t.k.lwpexit(t.p);
    for _ in 0..2 {
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), Err(Errno::EINTR));
    }
    for h in hs {
        h.join().unwrap();
    }
    // New calls are refused until execnotify.
    assert_eq!(t.err(Sysnum::GETPID, &[]), Errno::EINTR);
    assert!(t.k.proc_info(t.p).unwrap().exiting);
    t.k.execnotify(t.p, b"again");
    assert_eq!(t.call(Sysnum::GETPID, &[]), Ok([2, 1]));
    assert!(!t.k.proc_info(t.p).unwrap().exiting);
}

#[test]
fn lwpexit_wakes_blocked_writer_after_partial_write() {
    let t = T::new();
    let (_r, w) = t.pipe();
    let (tx, rx) = bounded(1);
    let t2 = t.clone();
    let h = thread::spawn(move || tx.send(t2.write(w, &vec![1; BIG_PIPE_SIZE * 2])).unwrap());
    assert!(t.k.wait_blocked_threads(1, WAIT));
    t.k.lwpexit(t.p);
    // Half went in before the wait (the pipe grew): the count, not EINTR.
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), Ok(BIG_PIPE_SIZE as i64));
    h.join().unwrap();
}

#[test]
fn lwpexit_leaves_other_processes_alone() {
    let t = T::new();
    let u = T::on(t.k.clone());
    let (r, _w) = u.pipe();
    let (tx, rx) = bounded(1);
    let u2 = u.clone();
    let h = thread::spawn(move || tx.send(u2.read(r, 10)).unwrap());
    assert!(t.k.wait_blocked_threads(1, WAIT));
    t.k.lwpexit(t.p);
    assert_eq!(t.err(Sysnum::GETPID, &[]), Errno::EINTR);
    assert_eq!(u.call(Sysnum::GETPID, &[]), Ok([3, 1]));
    // u's reader still waits; wake it with data.
    assert!(rx.try_recv().is_err());
    assert_eq!(t.k.blocked_threads(), 1);
    let w = 4;
    assert_eq!(u.write(w, b"z"), Ok(1));
    assert_eq!(rx.recv_timeout(WAIT).unwrap().unwrap(), b"z");
    h.join().unwrap();
}

#[test]
fn many_readers_and_writers() {
    let t = T::new();
    let (r, w) = t.pipe();
    let writers = 4;
    let per = 2000;
    let (tx, rx) = bounded(writers + 1);
    let mut hs = Vec::new();
    for i in 0..writers {
        let (t2, tx) = (t.clone(), tx.clone());
        hs.push(thread::spawn(move || {
            for _ in 0..per {
                // Writes of up to PIPE_BUF are never interleaved.
                assert_eq!(t2.write(w, &[i as u8; 16]), Ok(16));
            }
            tx.send(()).unwrap();
        }));
    }
    let mut counts = [0usize; 4];
    let mut total = 0;
    while total < writers * per * 16 {
        let chunk = t.read(r, 16).unwrap();
        assert_eq!(chunk.len(), 16, "records stay whole when read 16 at a time");
        assert!(chunk.iter().all(|&b| b == chunk[0]));
        counts[chunk[0] as usize] += 1;
        total += 16;
    }
    assert_eq!(counts, [per; 4]);
    for _ in 0..writers {
        rx.recv_timeout(WAIT).unwrap();
    }
    for h in hs {
        h.join().unwrap();
    }
    assert!(t.k.wait_idle(WAIT));
    // The kernel is still usable.
    assert_eq!(
        t.k.syscall(t.p, Sysnum::GETPID.0, &[], &*t.port),
        Ok([2, 1])
    );
}
