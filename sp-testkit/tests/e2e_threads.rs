//! End to end, many threads on one client: concurrent calls whose copies
//! interleave on the one connection, a call blocked in the kernel while the
//! others go on, and a disconnect while a call is blocked. Over unix and tcp,
//! our client against our server with the model kernel.

use sp_client::{Client, DisconnectReason, Errno, Options};
use sp_proto::abi::{misc, oflag};
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::peers::{eventually, pattern, WAIT};
use std::time::Duration;

/// Upper bound for anything a test waits for.
/// Worker threads sharing one client.
const THREADS: usize = 8;
/// Write/read rounds per worker.
const ROUNDS: usize = 40;

fn connect(s: &TestServer, name: &str) -> Client {
    let o = Options::new()
        .name(name)
        .server_accepts_copy_errors(true)
        .on_signal(|_| {});
    Client::connect_with(&s.url(), o).expect("connects")
}

/// Disconnects the client if the test panics, so that threads blocked in
/// the kernel return and the scope they run in can end.
struct DisconnectOnPanic<'a>(&'a Client);

impl Drop for DisconnectOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.disconnect();
        }
    }
}

/// One worker: appends distinct chunks to its own file, reading back a
/// piece after each write, then checks the whole file three ways.
fn worker(c: &Client, i: usize) {
    let path = format!("/tmp/worker-{i}");
    let fd = c
        .open(
            &path,
            oflag::O_CREAT | oflag::O_RDWR | oflag::O_TRUNC,
            0o644,
        )
        .unwrap();
    let mut expect = Vec::new();
    for round in 0..ROUNDS {
        // Sizes from 1 byte to ~20 KiB, different per thread and round.
        let len = 1 + (i * 7919 + round * 104_729) % 20_000;
        let chunk = pattern((i * 1000 + round) as u64, len);
        assert_eq!(c.write(fd, &chunk), Ok(len), "worker {i} round {round}");
        expect.extend_from_slice(&chunk);
        // Read back a piece of what is there so far.
        let off = (round * 1237) % expect.len();
        let n = (expect.len() - off).min(4096);
        let mut back = vec![0u8; n];
        assert_eq!(c.pread(fd, &mut back, off as i64), Ok(n));
        assert!(
            back[..] == expect[off..off + n],
            "worker {i} round {round}: pread at {off} differs"
        );
        // Every few rounds, overwrite in place with pwrite.
        if round % 5 == 4 {
            let patch = pattern((i * 77 + round) as u64 + 1_000_000, 300.min(expect.len()));
            let at = expect.len() - patch.len();
            assert_eq!(c.pwrite(fd, &patch, at as i64), Ok(patch.len()));
            expect[at..].copy_from_slice(&patch);
        }
    }
    assert_eq!(c.fstat(fd).unwrap().size(), expect.len() as u64);
    assert_eq!(c.lseek(fd, 0, misc::SEEK_SET), Ok(0));
    let mut all = vec![0u8; expect.len()];
    let mut got = 0;
    while got < all.len() {
        let n = c.read(fd, &mut all[got..]).unwrap();
        assert!(n > 0, "worker {i}: short file");
        got += n;
    }
    assert!(all == expect, "worker {i}: read back differs");
    c.close(fd).unwrap();
    // And by name, through a fresh descriptor.
    let fd = c.open(&path, oflag::O_RDONLY, 0).unwrap();
    let mut again = vec![0u8; expect.len()];
    assert_eq!(c.pread(fd, &mut again, 0), Ok(expect.len()));
    assert!(again == expect, "worker {i}: pread of everything differs");
    c.close(fd).unwrap();
}

#[test]
fn eight_threads_with_interleaved_copies_and_a_blocked_reader() {
    for t in Transport::ALL {
        let (s, k) = TestServer::model(t);
        let c = connect(&s, "e2e-threads");
        let c = &c;
        let (r, w) = c.pipe().unwrap();
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        std::thread::scope(|sc| {
            let _guard = DisconnectOnPanic(c);
            // One thread blocks in a pipe read for the whole run.
            let reader = sc.spawn(move || {
                let mut buf = [0u8; 64];
                let res = c.read(r, &mut buf);
                let _ = done_tx.send(());
                res.map(|n| buf[..n].to_vec())
            });
            assert!(
                k.wait_blocked_threads(1, WAIT),
                "{t:?}: the reader blocks in the kernel"
            );
            let workers: Vec<_> = (0..THREADS)
                .map(|i| sc.spawn(move || worker(c, i)))
                .collect();
            for h in workers {
                h.join().expect("a worker failed");
            }
            assert!(done_rx.try_recv().is_err(), "the reader is still blocked");
            assert_eq!(k.blocked_threads(), 1);
            assert_eq!(c.in_flight(), 1);
            // Unblock it.
            assert_eq!(c.write(w, b"wake up"), Ok(7));
            assert_eq!(done_rx.recv_timeout(WAIT), Ok(()), "the reader wakes");
            assert_eq!(reader.join().unwrap(), Ok(b"wake up".to_vec()));
        });
        assert!(k.wait_idle(WAIT));
        assert_eq!(c.in_flight(), 0);
        assert!(c.is_connected());
        assert_eq!(c.refused_copies().refused_copyin, 0);
        assert_eq!(c.refused_copies().refused_copyout, 0);
        let names = c.read_dir("/tmp").unwrap();
        assert_eq!(
            names
                .iter()
                .filter(|e| e.name().starts_with(b"worker-"))
                .count(),
            THREADS
        );
    }
}

#[test]
fn many_threads_blocked_on_pipes_are_woken_in_turn() {
    const PIPES: usize = 6;
    for t in Transport::ALL {
        let (s, k) = TestServer::model(t);
        let c = connect(&s, "e2e-pipes");
        let c = &c;
        let pipes: Vec<(i32, i32)> = (0..PIPES).map(|_| c.pipe().unwrap()).collect();
        std::thread::scope(|sc| {
            let _guard = DisconnectOnPanic(c);
            let readers: Vec<_> = pipes
                .iter()
                .map(|&(r, _)| {
                    sc.spawn(move || {
                        let mut buf = [0u8; 16];
                        c.read(r, &mut buf).map(|n| buf[..n].to_vec())
                    })
                })
                .collect();
            assert!(k.wait_blocked_threads(PIPES, WAIT), "{t:?}: all block");
            // Wake them last to first; each gets its own pipe's bytes.
            for (i, &(_, w)) in pipes.iter().enumerate().rev() {
                let msg = format!("pipe {i}");
                assert_eq!(c.write(w, msg.as_bytes()), Ok(msg.len()));
            }
            for (i, h) in readers.into_iter().enumerate() {
                assert_eq!(h.join().unwrap(), Ok(format!("pipe {i}").into_bytes()));
            }
        });
        assert!(k.wait_idle(WAIT));
    }
}

#[test]
fn disconnect_while_a_call_is_blocked() {
    for t in Transport::ALL {
        let (s, k) = TestServer::model(t);
        let c = connect(&s, "e2e-disconnect");
        let c = &c;
        let (r, _w) = c.pipe().unwrap();
        let (res_tx, res_rx) = crossbeam_channel::bounded(1);
        std::thread::scope(|sc| {
            let _guard = DisconnectOnPanic(c);
            sc.spawn(move || {
                let mut buf = [0u8; 8];
                let _ = res_tx.send(c.read(r, &mut buf));
            });
            assert!(k.wait_blocked_threads(1, WAIT), "{t:?}: the read blocks");
            assert_eq!(k.process_count(), 1);
            assert_eq!(c.in_flight(), 1);
            c.disconnect();
            let res = res_rx
                .recv_timeout(Duration::from_secs(5))
                .expect("the blocked call returns promptly");
            assert_eq!(res, Err(Errno::ENOTCONN), "{t:?}");
        });
        assert_eq!(c.disconnect_reason(), Some(DisconnectReason::Closed));
        assert!(!c.is_connected());
        assert_eq!(c.getpid(), Err(Errno::ENOTCONN), "later calls fail fast");
        assert_eq!(c.in_flight(), 0);
        // The server sees the end: the kernel thread is woken and the
        // process released.
        eventually("the process is released", || k.process_count() == 0);
        assert!(k.wait_idle(WAIT), "the blocked kernel thread returns");
        assert_eq!(k.live_threads(), 0);
        assert_eq!(k.blocked_threads(), 0);
        eventually("the server drops the connection", || {
            s.server.stats().connections == 0
        });
        // The server still serves others.
        let other = connect(&s, "e2e-after");
        assert_eq!(other.getpid(), Ok((3, 1)));
    }
}
