//! A client may vanish at any point of any cycle. After each, with the
//! model kernel behind the server: nothing hangs, the process table is
//! back to what it was, no kernel thread is left running, the server
//! counts no call in flight, and a fresh client is served.
//!
//! (A blocked pipe read, the parent of a prefork and a torn fork handshake
//! are in model_server.rs and hardening_prefork.rs.)

use sp_model::ModelKernel;
use sp_proto::abi::{misc, oflag, Sysnum};
use sp_proto::args;
use sp_proto::{Handshake, Message};
use sp_server::ProcId;
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::peers::{call, eventually, WAIT};
use sp_testkit::rawpeer::RawPeer;
use std::sync::Arc;

/// Where the client is when it disconnects.
struct Point {
    name: &'static str,
    /// Whether the connection does a guest handshake first.
    guest: bool,
    /// Drives the connection to the point.
    drive: fn(&mut RawPeer, &ModelKernel),
}

fn copyin_req(p: &mut RawPeer) -> (u64, u64, bool) {
    match p.recv_msg().unwrap().message() {
        Some(Message::CopyinReq {
            reqno, len, string, ..
        }) => (reqno, len, string),
        other => panic!("expected a COPYIN, got {other:?}"),
    }
}

fn pipe(p: &mut RawPeer) -> (u64, u64) {
    let (err, rv) = p.syscall(2, Sysnum::PIPE, &[]).unwrap();
    assert_eq!(err, 0);
    (rv[0] as u64, rv[1] as u64)
}

fn points() -> Vec<Point> {
    vec![
        Point {
            name: "after the banner, before a byte",
            guest: false,
            drive: |p, _| {
                p.read_banner().unwrap();
            },
        },
        Point {
            name: "mid-header before the handshake",
            guest: false,
            drive: |p, _| {
                p.read_banner().unwrap();
                let hs = Message::Handshake {
                    reqno: 1,
                    hs: Handshake::Guest { comm: b"x\0" },
                }
                .to_vec();
                p.send(&hs[..10]).unwrap();
            },
        },
        Point {
            name: "a syscall's header without its body",
            guest: true,
            drive: |p, _| {
                let w = Message::Syscall {
                    reqno: 2,
                    sysnum: Sysnum::WRITE.0,
                    args: &args::encode(&[1, 0x1000, 4]),
                }
                .to_vec();
                p.send(&w[..24]).unwrap();
            },
        },
        Point {
            name: "half a syscall's body",
            guest: true,
            drive: |p, _| {
                let w = Message::Syscall {
                    reqno: 2,
                    sysnum: Sysnum::WRITE.0,
                    args: &args::encode(&[1, 0x1000, 4]),
                }
                .to_vec();
                p.send(&w[..36]).unwrap();
            },
        },
        Point {
            name: "right after sending calls, reading nothing",
            guest: true,
            drive: |p, _| {
                let (_, w) = pipe(p);
                p.syscall_async(3, Sysnum::WRITE, &args::encode(&[w, 0x1000, 4]));
                p.syscall_async(4, Sysnum::GETPID, &[]);
            },
        },
        Point {
            name: "mid-copyin",
            guest: true,
            drive: |p, k| {
                let (_, w) = pipe(p);
                p.syscall_async(3, Sysnum::WRITE, &args::encode(&[w, 0x1000, 4]));
                assert_eq!(copyin_req(p).1, 4);
                assert!(k.wait_live_threads(1, WAIT));
            },
        },
        Point {
            name: "mid-copyinstr",
            guest: true,
            drive: |p, _| {
                let flags = u64::from(oflag::O_CREAT | oflag::O_RDWR);
                p.syscall_async(2, Sysnum::OPEN, &args::encode(&[0x3000, flags, 0o644]));
                let (_, len, string) = copyin_req(p);
                assert!(string && len == 1024);
            },
        },
        Point {
            name: "mid-anonmmap",
            guest: true,
            drive: |p, _| {
                let flags = u64::from(misc::MAP_ANON | misc::MAP_PRIVATE);
                p.syscall_async(
                    2,
                    Sysnum::MMAP,
                    &args::encode(&[0, 8192, 3, flags, u64::MAX, 0, 0]),
                );
                match p.recv_msg().unwrap().message() {
                    Some(Message::AnonmmapReq { size: 8192, .. }) => {}
                    other => panic!("expected ANONMMAP, got {other:?}"),
                }
            },
        },
        Point {
            name: "blocked in a pipe write (the pipe is full)",
            guest: true,
            drive: |p, k| {
                let (_, w) = pipe(p);
                // 128 KiB into a pipe nobody reads (it grows to 64 KiB for
                // so large a write): after the copyin the writer waits for
                // room.
                p.syscall_async(3, Sysnum::WRITE, &args::encode(&[w, 0x1000, 128 << 10]));
                let (r, len, _) = copyin_req(p);
                p.send_msg(&Message::CopyinResp {
                    reqno: r,
                    data: &vec![7u8; len as usize],
                })
                .unwrap();
                assert!(k.wait_blocked_threads(1, WAIT), "the writer blocks");
            },
        },
        Point {
            name: "during an exec's drain",
            guest: true,
            drive: |p, k| {
                let (_, w) = pipe(p);
                // A call waiting for the client keeps the exec from
                // completing; the client never answers it.
                p.syscall_async(3, Sysnum::WRITE, &args::encode(&[w, 0x1000, 4]));
                copyin_req(p);
                p.send_msg(&Message::Handshake {
                    reqno: 4,
                    hs: Handshake::Exec { comm: b"never\0" },
                })
                .unwrap();
                let pid = *k.pids().last().unwrap();
                let proc = ProcId(pid as u64);
                eventually("the exec has told the threads to exit", || {
                    k.proc_info(proc).is_some_and(|i| i.exiting)
                });
                assert_eq!(k.live_threads(), 1, "the exec waits for the write");
            },
        },
        Point {
            name: "with many calls in flight and blocked",
            guest: true,
            drive: |p, k| {
                let mut readers = Vec::new();
                for i in 0..5 {
                    let (err, rv) = p.syscall(100 + i, Sysnum::PIPE, &[]).unwrap();
                    assert_eq!(err, 0);
                    readers.push(rv[0] as u64);
                }
                for (i, r) in readers.iter().enumerate() {
                    p.syscall_async(
                        200 + i as u64,
                        Sysnum::READ,
                        &args::encode(&[*r, 0x2000, 8]),
                    );
                }
                assert!(k.wait_blocked_threads(5, WAIT));
                for i in 0..20 {
                    p.syscall_async(300 + i, Sysnum::WRITE, &args::encode(&[1, 0x1000, 4]));
                }
                for _ in 0..20 {
                    copyin_req(p);
                }
                assert!(k.wait_live_threads(25, WAIT));
            },
        },
        Point {
            name: "while the server sends a large COPYOUT",
            guest: true,
            drive: |p, _| {
                let flags = u64::from(oflag::O_CREAT | oflag::O_RDWR);
                let r = call(
                    p,
                    2,
                    Sysnum::OPEN,
                    &args::encode(&[0x3000, flags, 0o644]),
                    &[b"/tmp/big\0"],
                    0,
                )
                .unwrap();
                let fd = r.retval[0] as u64;
                assert_eq!(
                    p.syscall(3, Sysnum::FTRUNCATE, &args::encode(&[fd, 0, 4 << 20]))
                        .unwrap()
                        .0,
                    0
                );
                // 4 MiB of COPYOUT the client never reads.
                p.syscall_async(
                    4,
                    Sysnum::PREAD,
                    &args::encode(&[fd, 0x10_0000, 4 << 20, 0, 0]),
                );
                p.syscall_async(
                    5,
                    Sysnum::PREAD,
                    &args::encode(&[fd, 0x10_0000, 4 << 20, 0, 0]),
                );
            },
        },
    ]
}

fn settle(s: &TestServer, kernel: &ModelKernel, what: &str) {
    eventually(&format!("{what}: everything is released"), || {
        let st = s.server.stats();
        st.connections == 0
            && st.syscalls == 0
            && kernel.process_count() == 0
            && kernel.live_threads() == 0
    });
    assert_eq!(kernel.blocked_threads(), 0, "{what}");
}

#[test]
fn a_disconnect_at_any_point_releases_everything() {
    for t in Transport::ALL {
        let kernel = Arc::new(ModelKernel::new());
        let s = TestServer::start(kernel.clone(), t);
        for point in points() {
            let what = format!("{t:?}, {}", point.name);
            let mut p = if point.guest {
                RawPeer::guest(&s.url(), "vanish").unwrap()
            } else {
                RawPeer::connect(&s.url()).unwrap()
            };
            (point.drive)(&mut p, &kernel);
            drop(p);
            settle(&s, &kernel, &what);
            // The server still serves, and its fresh client is released too.
            let mut fresh = RawPeer::guest(&s.url(), "fresh").unwrap();
            let (err, rv) = fresh.syscall(2, Sysnum::GETPID, &[]).unwrap();
            assert_eq!((err, rv[1]), (0, 1), "{what}: a fresh client is served");
            drop(fresh);
            settle(&s, &kernel, &what);
        }
        // Files outlive processes; nothing else does.
        assert_eq!(s.server.stats().preforks, 0);
    }
}
