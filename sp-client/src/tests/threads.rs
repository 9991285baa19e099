//! Many threads on one connection.

use super::*;
use crate::error::DisconnectReason;
use crate::{Call, Errno};
use sp_proto::abi::Sysnum;
use sp_proto::Message;
use std::collections::HashMap;
use std::sync::Barrier;

const THREADS: usize = 8;

#[test]
fn eight_threads_with_interleaved_copyins() {
    let (c, h) = guest(|p| {
        // Every thread's write arrives before anything is answered.
        let mut calls = Vec::new();
        for _ in 0..THREADS {
            let (r, n, a) = p.syscall();
            assert_eq!(n, Sysnum::WRITE);
            calls.push((r, a[0], a[1], a[2]));
        }
        // All COPYINs go out back to back, in an order unrelated to the
        // calls', and only then are the answers read: whichever thread is
        // reading must serve them all.
        let order: Vec<usize> = (0..THREADS).map(|i| (i * 5 + 3) % THREADS).collect();
        for (k, &i) in order.iter().enumerate() {
            let (_, _, addr, len) = calls[i];
            p.send(Message::CopyinReq {
                reqno: k as u64,
                string: false,
                len,
                addr,
            });
        }
        let mut answers = HashMap::new();
        for _ in 0..THREADS {
            let (hd, body) = p.next();
            match Message::decode(&hd, &body).unwrap() {
                Message::CopyinResp { reqno, data } => answers.insert(reqno, data.to_vec()),
                m => panic!("{m:?}"),
            };
        }
        for (k, &i) in order.iter().enumerate() {
            let fd = calls[i].1 as u8;
            assert_eq!(
                answers[&(k as u64)],
                vec![fd; 16],
                "copy {k} served thread {i}'s bytes"
            );
        }
        // Replies in reverse order of the calls.
        for &(r, fd, _, _) in calls.iter().rev() {
            p.ret(r, 0, [100 + fd as i64, 0]);
        }
    });
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (c, barrier) = (&c, &barrier);
                s.spawn(move || {
                    let data = [i as u8; 16];
                    barrier.wait();
                    let n = c.call(Call::new(Sysnum::WRITE).int(i as i32).input(&data).arg(16));
                    assert_eq!(n, Ok([100 + i as i64, 0]));
                })
            })
            .collect();
        for t in handles {
            t.join().unwrap();
        }
    });
    assert_eq!(c.in_flight(), 0);
    h.join().unwrap();
}

#[test]
fn copies_of_one_call_served_while_another_call_is_answered() {
    // Call A's COPYOUT and call B's COPYIN interleave with B's response
    // arriving before A's: neither waits on the other.
    let (c, h) = guest(|p| {
        let (ra, _, aa) = p.syscall();
        let (rb, _, ab) = p.syscall();
        let (ra, aa, rb, ab) = if aa[0] == 1 {
            (ra, aa, rb, ab)
        } else {
            (rb, ab, ra, aa)
        };
        p.send(Message::Copyout {
            reqno: 0,
            string: false,
            addr: aa[1],
            data: b"AAAA",
        });
        p.send(Message::CopyinReq {
            reqno: 1,
            string: false,
            len: 4,
            addr: ab[1],
        });
        assert_eq!(p.copyin_resp(1), b"BBBB");
        p.ret(rb, 0, [4, 0]);
        p.ret(ra, 0, [4, 0]);
    });
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            let mut buf = [0u8; 4];
            barrier.wait();
            assert_eq!(c.read(1, &mut buf), Ok(4));
            assert_eq!(&buf, b"AAAA");
        });
        let b = s.spawn(|| {
            barrier.wait();
            assert_eq!(c.write(2, b"BBBB"), Ok(4));
        });
        a.join().unwrap();
        b.join().unwrap();
    });
    h.join().unwrap();
}

#[test]
fn server_disconnect_mid_call_wakes_every_waiter() {
    let (c, h) = guest(|p| {
        for _ in 0..4 {
            let _ = p.syscall();
        }
        // Every call is in flight; the server goes away.
        p.s.shutdown(std::net::Shutdown::Both).unwrap();
    });
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let e = c.call_detailed(Call::new(Sysnum::GETPID)).unwrap_err();
                    assert!(
                        matches!(e, Error::Disconnected(DisconnectReason::Eof)),
                        "{e}"
                    );
                })
            })
            .collect();
        for t in handles {
            t.join().unwrap();
        }
    });
    h.join().unwrap();
    assert!(!c.is_connected());
    assert_eq!(c.getpid(), Err(Errno::ENOTCONN), "later calls fail fast");
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn disconnect_from_another_thread_wakes_the_reader() {
    let (c, h) = guest(|p| {
        // Never answers; waits for the client to go away. (The disconnect
        // may come before the request is written: then no frame comes.)
        while p.raw().is_some() {}
    });
    std::thread::scope(|s| {
        let t = s.spawn(|| c.getpid());
        // Wait (without sleeping blindly) until the call is in flight.
        while c.in_flight() == 0 {
            std::thread::yield_now();
        }
        c.disconnect();
        assert_eq!(t.join().unwrap(), Err(Errno::ENOTCONN));
    });
    h.join().unwrap();
}
