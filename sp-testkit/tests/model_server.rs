//! The server with the model kernel behind it, driven by raw peers: blocked
//! calls never starve runnable ones, and processes are released.

use sp_proto::abi::Sysnum;
use sp_proto::args;
use sp_proto::Message;
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::rawpeer::RawPeer;
use std::collections::HashMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Serves the server's requests on `p` (COPYIN answered with `fill` bytes)
/// until every reqno in `want` has its SYSCALL response; returns them.
fn pump(p: &mut RawPeer, mut want: usize, fill: u8) -> HashMap<u64, (i32, [i64; 2])> {
    let mut got = HashMap::new();
    while want > 0 {
        let f = p.recv_msg().unwrap();
        match f.message().expect("a frame the protocol knows") {
            Message::CopyinReq { reqno, len, .. } => {
                p.send_msg(&Message::CopyinResp {
                    reqno,
                    data: &vec![fill; len as usize],
                })
                .unwrap();
            }
            Message::Copyout { .. } => {}
            Message::SyscallResp {
                reqno,
                error,
                retval,
            } => {
                got.insert(reqno, (error, retval));
                want -= 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

#[test]
fn three_hundred_blocked_pipe_reads_all_complete() {
    for t in Transport::ALL {
        let (s, kernel) = TestServer::model(t);
        let mut p = RawPeer::guest(&s.url(), "readers").unwrap();
        let n = 300u64;
        // A process has 128 descriptors (a rump kernel's RLIMIT_NOFILE):
        // 60 pipes, each read by 5 calls at once.
        let per_pipe = 5;
        let mut pipes = Vec::new();
        for i in 0..n / per_pipe {
            let (err, rv) = p.syscall(10 + i, Sysnum::PIPE, &[]).unwrap();
            assert_eq!(err, 0);
            for _ in 0..per_pipe {
                pipes.push((rv[0] as u64, rv[1] as u64));
            }
        }
        // 300 reads of empty pipes: each blocks a kernel thread.
        for (i, &(r, _)) in pipes.iter().enumerate() {
            p.syscall_async(
                1000 + i as u64,
                Sysnum::READ,
                &args::encode(&[r, 0x10_0000 + i as u64 * 16, 1]),
            );
        }
        assert!(
            kernel.wait_blocked_threads(n as usize, WAIT),
            "all reads block"
        );
        // Another client is served meanwhile.
        let mut other = RawPeer::guest(&s.url(), "other").unwrap();
        assert_eq!(other.syscall(2, Sysnum::GETPID, &[]).unwrap().0, 0);
        // A one-byte write per read, each a syscall that runs while 300 are
        // blocked.
        for (i, &(_, w)) in pipes.iter().enumerate() {
            p.syscall_async(
                5000 + i as u64,
                Sysnum::WRITE,
                &args::encode(&[w, 0x20_0000, 1]),
            );
        }
        let got = pump(&mut p, 2 * n as usize, b'z');
        for i in 0..n {
            assert_eq!(got[&(1000 + i)], (0, [1, 0]), "read {i}");
            assert_eq!(got[&(5000 + i)], (0, [1, 0]), "write {i}");
        }
        assert!(kernel.wait_idle(WAIT));
        let workers = s.server.stats().workers;
        assert!(workers.idle <= 16, "idle workers are bounded: {workers:?}");
    }
}

#[test]
fn disconnect_while_blocked_in_a_pipe_read_releases_the_process() {
    for t in Transport::ALL {
        let (s, kernel) = TestServer::model(t);
        let mut p = RawPeer::guest(&s.url(), "blocked").unwrap();
        let (_, rv) = p.syscall(2, Sysnum::PIPE, &[]).unwrap();
        p.syscall_async(3, Sysnum::READ, &args::encode(&[rv[0] as u64, 0x1000, 8]));
        assert!(kernel.wait_blocked_threads(1, WAIT));
        assert_eq!(kernel.process_count(), 1);
        drop(p);
        assert!(kernel.wait_idle(WAIT), "the blocked read returns");
        let deadline = std::time::Instant::now() + WAIT;
        while kernel.process_count() != 0 {
            assert!(std::time::Instant::now() < deadline, "process released");
            std::thread::yield_now();
        }
    }
}

#[test]
fn exec_interrupts_a_blocked_read_then_completes() {
    let (s, kernel) = TestServer::model(Transport::Unix);
    let mut p = RawPeer::guest(&s.url(), "before").unwrap();
    let (_, rv) = p.syscall(2, Sysnum::PIPE, &[]).unwrap();
    p.syscall_async(3, Sysnum::READ, &args::encode(&[rv[0] as u64, 0x1000, 8]));
    assert!(kernel.wait_blocked_threads(1, WAIT));
    p.send_msg(&Message::Handshake {
        reqno: 0,
        hs: sp_proto::Handshake::Exec { comm: b"after\0" },
    })
    .unwrap();
    // The read is told to exit (EINTR), then the exec answers.
    assert_eq!(
        p.recv_msg().unwrap().message(),
        Some(Message::SyscallResp {
            reqno: 3,
            error: 4,
            retval: [0, 0]
        })
    );
    assert_eq!(
        p.recv_msg().unwrap().message(),
        Some(Message::HandshakeResp { reqno: 0, error: 0 })
    );
    let (err, rv) = p.syscall(1, Sysnum::GETPID, &[]).unwrap();
    assert_eq!((err, rv), (0, [2, 1]));
    assert_eq!(kernel.comm(2).as_deref(), Some(&b"after"[..]));
}
