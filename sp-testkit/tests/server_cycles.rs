//! The server's cycles and error answers over unix and tcp, driven by a raw
//! peer against the capture stub kernel (pids from 2; write = COPYIN,
//! read = COPYOUT of i & 0xff, open = COPYINSTR, 1000 = ANONMMAP,
//! 1001 = RAISE).

use sp_model::stub::StubKernel;
use sp_proto::args;
use sp_proto::{ErrorCode, Handshake, Message};
use sp_server::Config;
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::peers::eventually;
use sp_testkit::peers::expect_frame;
use sp_testkit::rawpeer::{RawPeer, Recv};
use std::sync::Arc;
use std::time::Duration;

fn server(t: Transport) -> TestServer {
    TestServer::start(Arc::new(StubKernel::new()), t)
}

fn server_with(t: Transport, config: Config) -> TestServer {
    TestServer::start_with(Arc::new(StubKernel::new()), t, config).unwrap()
}

fn each_transport(f: impl Fn(Transport)) {
    for t in Transport::ALL {
        f(t);
    }
}

#[test]
fn copyin_copyout_copyinstr_anonmmap_raise() {
    each_transport(|t| {
        let s = server(t);
        let mut p = RawPeer::guest(&s.url(), "cycles").unwrap();
        // write: the server asks for the bytes, we answer, it returns n.
        p.send_msg(&Message::Syscall {
            reqno: 2,
            sysnum: 4,
            args: &args::encode(&[1, 0x1000, 5]),
        })
        .unwrap();
        let f = p.recv_msg().unwrap();
        assert_eq!(
            f.message(),
            Some(Message::CopyinReq {
                reqno: 0,
                string: false,
                len: 5,
                addr: 0x1000
            })
        );
        p.send_msg(&Message::CopyinResp {
            reqno: 0,
            data: b"hello",
        })
        .unwrap();
        expect_frame(
            &mut p,
            &Message::SyscallResp {
                reqno: 2,
                error: 0,
                retval: [5, 0],
            },
        )
        .unwrap();
        // read: a COPYOUT carries the bytes, then the answer.
        p.send_msg(&Message::Syscall {
            reqno: 3,
            sysnum: 3,
            args: &args::encode(&[0, 0x2000, 4]),
        })
        .unwrap();
        let f = p.recv_msg().unwrap();
        assert_eq!(
            f.message(),
            Some(Message::Copyout {
                reqno: 1,
                string: false,
                addr: 0x2000,
                data: &[0, 1, 2, 3]
            })
        );
        expect_frame(
            &mut p,
            &Message::SyscallResp {
                reqno: 3,
                error: 0,
                retval: [4, 0],
            },
        )
        .unwrap();
        // open: COPYINSTR of at most 1024 bytes.
        p.send_msg(&Message::Syscall {
            reqno: 4,
            sysnum: 5,
            args: &args::encode(&[0x3000, 0, 0]),
        })
        .unwrap();
        let f = p.recv_msg().unwrap();
        assert_eq!(
            f.message(),
            Some(Message::CopyinReq {
                reqno: 2,
                string: true,
                len: 1024,
                addr: 0x3000
            })
        );
        p.send_msg(&Message::CopyinResp {
            reqno: 2,
            data: b"/ok\0",
        })
        .unwrap();
        expect_frame(
            &mut p,
            &Message::SyscallResp {
                reqno: 4,
                error: 0,
                retval: [3, 0],
            },
        )
        .unwrap();
        // anonmmap: the client's address comes back as the result.
        p.send_msg(&Message::Syscall {
            reqno: 5,
            sysnum: 1000,
            args: &args::encode(&[65536]),
        })
        .unwrap();
        let f = p.recv_msg().unwrap();
        assert_eq!(
            f.message(),
            Some(Message::AnonmmapReq {
                reqno: 3,
                size: 65536
            })
        );
        p.send_msg(&Message::AnonmmapResp {
            reqno: 3,
            addr: 0x7000_0000,
        })
        .unwrap();
        let r = p.recv_msg().unwrap();
        assert_eq!(
            r.message(),
            Some(Message::SyscallResp {
                reqno: 5,
                error: 0,
                retval: [0x7000_0000, 0]
            })
        );
        // A client that could not map: ENOMEM.
        p.send_msg(&Message::Syscall {
            reqno: 6,
            sysnum: 1000,
            args: &args::encode(&[65536]),
        })
        .unwrap();
        p.recv_msg().unwrap();
        p.send_msg(&Message::AnonmmapResp { reqno: 4, addr: 0 })
            .unwrap();
        expect_frame(
            &mut p,
            &Message::SyscallResp {
                reqno: 6,
                error: 12,
                retval: [0, 0],
            },
        )
        .unwrap();
        // raise: a RAISE request with reqno 0, no answer expected.
        p.send_msg(&Message::Syscall {
            reqno: 7,
            sysnum: 1001,
            args: &args::encode(&[30]),
        })
        .unwrap();
        expect_frame(
            &mut p,
            &Message::Raise {
                reqno: 0,
                signo: 30,
            },
        )
        .unwrap();
        expect_frame(
            &mut p,
            &Message::SyscallResp {
                reqno: 7,
                error: 0,
                retval: [0, 0],
            },
        )
        .unwrap();
    });
}

#[test]
fn bad_copy_answers_fail_the_copy_with_efault() {
    each_transport(|t| {
        let s = server(t);
        let mut p = RawPeer::guest(&s.url(), "efault").unwrap();
        // Short COPYIN answer.
        p.syscall_async(2, 4, &args::encode(&[1, 0x1000, 8]));
        let f = p.recv_msg().unwrap();
        let r = f.header().reqno();
        p.send_msg(&Message::CopyinResp {
            reqno: r,
            data: b"abc",
        })
        .unwrap();
        expect_frame(
            &mut p,
            &Message::SyscallResp {
                reqno: 2,
                error: 14,
                retval: [0, 0],
            },
        )
        .unwrap();
        // Long COPYIN answer.
        p.syscall_async(3, 4, &args::encode(&[1, 0x1000, 2]));
        let r = p.recv_msg().unwrap().header().reqno();
        p.send_msg(&Message::CopyinResp {
            reqno: r,
            data: b"abcdef",
        })
        .unwrap();
        expect_frame(
            &mut p,
            &Message::SyscallResp {
                reqno: 3,
                error: 14,
                retval: [0, 0],
            },
        )
        .unwrap();
        // ERROR answer to a COPYIN (our extension).
        p.syscall_async(4, 4, &args::encode(&[1, 0x1000, 2]));
        let r = p.recv_msg().unwrap().header().reqno();
        p.send_msg(&Message::Error {
            reqno: r,
            code: ErrorCode::MALFORMED_REQUEST,
        })
        .unwrap();
        expect_frame(
            &mut p,
            &Message::SyscallResp {
                reqno: 4,
                error: 14,
                retval: [0, 0],
            },
        )
        .unwrap();
        // COPYINSTR answer longer than asked.
        p.syscall_async(5, 5, &args::encode(&[0x3000, 0, 0]));
        let r = p.recv_msg().unwrap().header().reqno();
        p.send_msg(&Message::CopyinResp {
            reqno: r,
            data: &vec![b'a'; 1025],
        })
        .unwrap();
        expect_frame(
            &mut p,
            &Message::SyscallResp {
                reqno: 5,
                error: 14,
                retval: [0, 0],
            },
        )
        .unwrap();
        // ERROR answer to ANONMMAP.
        p.syscall_async(6, 1000, &args::encode(&[4096]));
        let r = p.recv_msg().unwrap().header().reqno();
        p.send_msg(&Message::Error {
            reqno: r,
            code: ErrorCode::NOMEM,
        })
        .unwrap();
        expect_frame(
            &mut p,
            &Message::SyscallResp {
                reqno: 6,
                error: 14,
                retval: [0, 0],
            },
        )
        .unwrap();
        // An argument block shorter than the call needs: EFAULT.
        assert_eq!(p.syscall(7, 4, &args::encode(&[1])).unwrap(), (14, [0, 0]));
        // An ERROR frame nobody waits for is malformed; the connection lives.
        p.send_msg(&Message::Error {
            reqno: 99,
            code: ErrorCode::AUTH,
        })
        .unwrap();
        expect_frame(
            &mut p,
            &Message::Error {
                reqno: 99,
                code: ErrorCode::MALFORMED_REQUEST,
            },
        )
        .unwrap();
        assert_eq!(p.syscall(8, 20, &[]).unwrap().0, 0);
    });
}

#[test]
fn frame_over_the_limit_ends_only_that_connection() {
    each_transport(|t| {
        let s = server_with(
            t,
            Config {
                max_frame: 4096,
                ..Config::default()
            },
        );
        let mut good = RawPeer::guest(&s.url(), "good").unwrap();
        let mut bad = RawPeer::guest(&s.url(), "bad").unwrap();
        bad.send_msg(&Message::Syscall {
            reqno: 2,
            sysnum: 20,
            args: &vec![0; 8192],
        })
        .unwrap_or(());
        assert_eq!(bad.recv().unwrap(), Recv::Closed);
        assert_eq!(good.syscall(2, 20, &[]).unwrap().0, 0);
        assert!(s.server.stats().dropped >= 1);
    });
}

#[test]
fn prefork_fork_handshake_and_cancel() {
    each_transport(|t| {
        let s = server(t);
        let mut parent = RawPeer::guest(&s.url(), "parent").unwrap();
        parent.send_msg(&Message::Prefork { reqno: 2 }).unwrap();
        let Some(Message::PreforkResp { reqno: 2, cookie }) = parent.recv_msg().unwrap().message()
        else {
            panic!("no prefork response")
        };
        assert_eq!(s.server.stats().preforks, 1);
        // The parent may exit right after the host fork.
        drop(parent);
        let (mut child, _) = RawPeer::connect_banner(&s.url()).unwrap();
        child
            .send_msg(&Message::Handshake {
                reqno: 1,
                hs: Handshake::Fork { cookie, cancel: 0 },
            })
            .unwrap();
        expect_frame(&mut child, &Message::HandshakeResp { reqno: 1, error: 0 }).unwrap();
        // The stub forks the prefork once more: guest 2, prefork 3, child 4.
        assert_eq!(child.syscall(2, 20, &[]).unwrap(), (0, [4, 0]));
        assert_eq!(s.server.stats().preforks, 0);
        // A cookie is good once.
        let (mut again, _) = RawPeer::connect_banner(&s.url()).unwrap();
        again
            .send_msg(&Message::Handshake {
                reqno: 1,
                hs: Handshake::Fork { cookie, cancel: 0 },
            })
            .unwrap();
        expect_frame(
            &mut again,
            &Message::Error {
                reqno: 1,
                code: ErrorCode::INVALID_PREFORK,
            },
        )
        .unwrap();
        assert_eq!(again.recv().unwrap(), Recv::Closed);
        // Cancel: the prefork is discarded and the connection closed, no answer.
        let mut p2 = RawPeer::guest(&s.url(), "p2").unwrap();
        p2.send_msg(&Message::Prefork { reqno: 2 }).unwrap();
        let Some(Message::PreforkResp { cookie, .. }) = p2.recv_msg().unwrap().message() else {
            panic!()
        };
        let (mut c2, _) = RawPeer::connect_banner(&s.url()).unwrap();
        c2.send_msg(&Message::Handshake {
            reqno: 1,
            hs: Handshake::Fork { cookie, cancel: 1 },
        })
        .unwrap();
        assert_eq!(c2.recv().unwrap(), Recv::Closed);
        assert_eq!(s.server.stats().preforks, 0);
    });
}

#[test]
fn prefork_cap_and_expiry() {
    let cfg = Config {
        prefork_cap: 3,
        prefork_ttl: Duration::from_millis(100),
        ..Config::default()
    };
    let s = server_with(Transport::Unix, cfg);
    let mut p = RawPeer::guest(&s.url(), "flood").unwrap();
    for i in 0..3 {
        p.send_msg(&Message::Prefork { reqno: 2 + i }).unwrap();
        assert!(matches!(
            p.recv_msg().unwrap().message(),
            Some(Message::PreforkResp { .. })
        ));
    }
    p.send_msg(&Message::Prefork { reqno: 9 }).unwrap();
    expect_frame(
        &mut p,
        &Message::Error {
            reqno: 9,
            code: ErrorCode::TRYAGAIN,
        },
    )
    .unwrap();
    // The time-to-live reclaims them, and the cap frees up.
    eventually("preforks expire", || s.server.stats().preforks == 0);
    p.send_msg(&Message::Prefork { reqno: 10 }).unwrap();
    assert!(matches!(
        p.recv_msg().unwrap().message(),
        Some(Message::PreforkResp { reqno: 10, .. })
    ));
}

#[test]
fn exec_waits_for_inflight_calls_and_refuses_a_second() {
    each_transport(|t| {
        let s = server(t);
        let mut p = RawPeer::guest(&s.url(), "before").unwrap();
        // A write waits in the kernel for our COPYIN answer.
        p.syscall_async(2, 4, &args::encode(&[1, 0x1000, 3]));
        let r = p.recv_msg().unwrap().header().reqno();
        p.send_msg(&Message::Handshake {
            reqno: 0,
            hs: Handshake::Exec { comm: b"after\0" },
        })
        .unwrap();
        // Only once the call is answered does the exec complete: the
        // syscall's answer comes first.
        p.send_msg(&Message::CopyinResp {
            reqno: r,
            data: b"xyz",
        })
        .unwrap();
        expect_frame(
            &mut p,
            &Message::SyscallResp {
                reqno: 2,
                error: 0,
                retval: [3, 0],
            },
        )
        .unwrap();
        expect_frame(&mut p, &Message::HandshakeResp { reqno: 0, error: 0 }).unwrap();
        assert_eq!(p.syscall(1, 20, &[]).unwrap(), (0, [2, 0]));
        // An exec while one is in progress: INEXEC and the connection ends.
        p.syscall_async(2, 4, &args::encode(&[1, 0x1000, 3]));
        p.recv_msg().unwrap();
        p.send_msg(&Message::Handshake {
            reqno: 3,
            hs: Handshake::Exec { comm: b"one\0" },
        })
        .unwrap();
        p.send_msg(&Message::Handshake {
            reqno: 4,
            hs: Handshake::Exec { comm: b"two\0" },
        })
        .unwrap();
        expect_frame(
            &mut p,
            &Message::Error {
                reqno: 4,
                code: ErrorCode::INEXEC,
            },
        )
        .unwrap();
        p.expect_closed().unwrap();
        eventually("the process is released", || {
            s.server.stats().syscalls == 0 && s.server.stats().connections == 0
        });
    });
}

#[test]
fn disconnect_mid_copyin_fails_the_copy_and_frees_everything() {
    each_transport(|t| {
        let s = server(t);
        let mut p = RawPeer::guest(&s.url(), "gone").unwrap();
        p.syscall_async(2, 4, &args::encode(&[1, 0x1000, 3]));
        p.recv_msg().unwrap();
        assert_eq!(s.server.stats().syscalls, 1);
        drop(p);
        eventually("the call returns", || s.server.stats().syscalls == 0);
        eventually("the connection is gone", || {
            s.server.stats().connections == 0
        });
        let mut q = RawPeer::guest(&s.url(), "next").unwrap();
        assert_eq!(q.syscall(2, 20, &[]).unwrap().0, 0);
    });
}

#[test]
fn a_client_that_does_not_read_is_dropped_and_others_go_on() {
    each_transport(|t| {
        // A call's output waits for its client; one that reads nothing
        // for the stall timeout is dropped.
        let cfg = Config {
            send_queue_bytes: 1 << 20,
            send_stall_timeout: Duration::from_millis(300),
            ..Config::default()
        };
        let s = server_with(t, cfg);
        let mut hog = RawPeer::guest(&s.url(), "hog").unwrap();
        let mut other = RawPeer::guest(&s.url(), "other").unwrap();
        // Each read answers with a 256 KiB COPYOUT the hog never reads.
        let mut sent = 0;
        while s.server.stats().dropped == 0 && sent < 1000 {
            if hog
                .send_msg(&Message::Syscall {
                    reqno: 2 + sent,
                    sysnum: 3,
                    args: &args::encode(&[0, 0x1000, 256 << 10]),
                })
                .is_err()
            {
                break;
            }
            sent += 1;
            // Meanwhile the other client is served.
            if sent % 8 == 0 {
                assert_eq!(other.syscall(1000 + sent, 20, &[]).unwrap().0, 0);
            }
        }
        eventually("the hog is dropped", || s.server.stats().dropped >= 1);
        assert_eq!(other.syscall(2, 20, &[]).unwrap().0, 0);
    });
}

#[test]
fn client_limit_closes_the_extra_connection() {
    let s = server_with(
        Transport::Unix,
        Config {
            max_clients: 2,
            ..Config::default()
        },
    );
    let _a = RawPeer::guest(&s.url(), "a").unwrap();
    let _b = RawPeer::guest(&s.url(), "b").unwrap();
    let mut c = RawPeer::connect(&s.url()).unwrap();
    assert_eq!(c.recv().unwrap(), Recv::Closed);
}

#[test]
fn shutdown_removes_the_socket_and_releases_clients() {
    let s = server(Transport::Unix);
    let url = s.url();
    let path = url.strip_prefix("unix://").unwrap().to_string();
    let mut p = RawPeer::guest(&url, "x").unwrap();
    assert!(std::path::Path::new(&path).exists());
    let TestServer { server, .. } = s;
    server.stop().unwrap();
    assert!(!std::path::Path::new(&path).exists());
    assert_eq!(p.recv().unwrap(), Recv::Closed);
}

#[test]
fn peer_uid_allowlist_on_unix() {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    let s = server_with(
        Transport::Unix,
        Config {
            allowed_uids: Some(vec![me.wrapping_add(1)]),
            ..Config::default()
        },
    );
    let mut refused = RawPeer::connect(&s.url()).unwrap();
    assert_eq!(
        refused.recv().unwrap(),
        Recv::Closed,
        "a refused peer gets no banner"
    );
    assert_eq!(s.server.stats().dropped, 1);
    let ok = server_with(
        Transport::Unix,
        Config {
            allowed_uids: Some(vec![me]),
            ..Config::default()
        },
    );
    let mut p = RawPeer::guest(&ok.url(), "me").unwrap();
    assert_eq!(p.syscall(2, 20, &[]).unwrap().0, 0);
}

#[test]
fn source_network_allowlist_on_tcp() {
    let nets = vec!["10.0.0.0/8".parse().unwrap()];
    let s = server_with(
        Transport::Tcp,
        Config {
            allowed_nets: Some(nets),
            ..Config::default()
        },
    );
    let mut refused = RawPeer::connect(&s.url()).unwrap();
    assert_eq!(refused.recv().unwrap(), Recv::Closed);
    let nets = vec!["127.0.0.0/8".parse().unwrap()];
    let ok = server_with(
        Transport::Tcp,
        Config {
            allowed_nets: Some(nets),
            ..Config::default()
        },
    );
    let mut p = RawPeer::guest(&ok.url(), "local").unwrap();
    assert_eq!(p.syscall(2, 20, &[]).unwrap().0, 0);
}

#[test]
fn unix_socket_is_private_by_default() {
    use std::os::unix::fs::PermissionsExt;
    let s = server(Transport::Unix);
    let path = s.url().strip_prefix("unix://").unwrap().to_string();
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn adopted_socket_pair_is_served_like_an_accepted_client() {
    let s = server(Transport::Unix);
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    s.server.handle().adopt(sp_transport::Stream::Unix(a));
    let mut p = RawPeer::from_stream(sp_transport::Stream::Unix(b)).unwrap();
    assert!(p.read_banner().unwrap().starts_with(b"RUMPSP-0.4-"));
    p.send_msg(&Message::Handshake {
        reqno: 1,
        hs: Handshake::Guest { comm: b"pair\0" },
    })
    .unwrap();
    expect_frame(&mut p, &Message::HandshakeResp { reqno: 1, error: 0 }).unwrap();
    assert_eq!(p.syscall(2, 20, &[]).unwrap(), (0, [2, 0]));
}

/// A kernel that claims every call may run inline, to check that a call
/// which then waits for the client fails with EFAULT instead of stalling
/// the event loop.
struct InlineEverything(StubKernel);

impl sp_server::Kernel for InlineEverything {
    fn spawn_guest(
        &self,
        comm: &[u8],
        port: sp_server::Port,
    ) -> Result<sp_server::ProcId, sp_proto::Errno> {
        self.0.spawn_guest(comm, port)
    }
    fn prefork(&self, parent: sp_server::ProcId) -> Result<sp_server::ProcId, sp_proto::Errno> {
        self.0.prefork(parent)
    }
    fn attach_prefork(
        &self,
        p: sp_server::ProcId,
        port: sp_server::Port,
    ) -> Result<sp_server::ProcId, sp_proto::Errno> {
        self.0.attach_prefork(p, port)
    }
    fn syscall(
        &self,
        proc: sp_server::ProcId,
        n: u32,
        args: &[u8],
        port: &dyn sp_server::ClientPort,
    ) -> sp_proto::SysResult {
        self.0.syscall(proc, n, args, port)
    }
    fn lwpexit(&self, proc: sp_server::ProcId) {
        self.0.lwpexit(proc)
    }
    fn execnotify(&self, proc: sp_server::ProcId, comm: &[u8]) {
        self.0.execnotify(proc, comm)
    }
    fn release(&self, proc: sp_server::ProcId) {
        self.0.release(proc)
    }
    fn pid(&self, proc: sp_server::ProcId) -> i32 {
        self.0.pid(proc)
    }
    fn runs_inline(&self, _sysnum: u32) -> bool {
        true
    }
}

#[test]
fn an_inline_call_that_waits_for_the_client_fails_instead_of_stalling() {
    let s = TestServer::start(
        Arc::new(InlineEverything(StubKernel::new())),
        Transport::Unix,
    );
    let mut p = RawPeer::guest(&s.url(), "inline").unwrap();
    assert_eq!(p.syscall(2, 20, &[]).unwrap(), (0, [2, 0]));
    // write needs a COPYIN: refused at once with EFAULT, nothing sent.
    assert_eq!(
        p.syscall(3, 4, &args::encode(&[1, 0x1000, 4])).unwrap(),
        (14, [0, 0])
    );
    // read only pushes a COPYOUT: allowed inline.
    p.syscall_async(4, 3, &args::encode(&[0, 0x2000, 2]));
    expect_frame(
        &mut p,
        &Message::Copyout {
            reqno: 0,
            string: false,
            addr: 0x2000,
            data: &[0, 1],
        },
    )
    .unwrap();
    expect_frame(
        &mut p,
        &Message::SyscallResp {
            reqno: 4,
            error: 0,
            retval: [2, 0],
        },
    )
    .unwrap();
}

#[test]
fn a_connection_without_a_handshake_is_closed_at_the_timeout() {
    let cfg = Config {
        handshake_timeout: Some(Duration::from_millis(200)),
        ..Config::default()
    };
    let s = server_with(Transport::Unix, cfg);
    // Silent after the banner, and a slow one that sends half a handshake.
    let (mut silent, _) = RawPeer::connect_banner(&s.url()).unwrap();
    let (mut slow, _) = RawPeer::connect_banner(&s.url()).unwrap();
    let hs = Message::Handshake {
        reqno: 1,
        hs: Handshake::Guest { comm: b"slow\0" },
    }
    .to_vec();
    slow.send(&hs[..10]).unwrap();
    // A client that completes its handshake in time is not affected.
    let mut good = RawPeer::guest(&s.url(), "good").unwrap();
    assert_eq!(silent.recv().unwrap(), Recv::Closed);
    assert_eq!(slow.recv().unwrap(), Recv::Closed);
    assert_eq!(s.server.stats().dropped, 2);
    assert_eq!(good.syscall(2, 20, &[]).unwrap().0, 0);
}

#[test]
fn calls_in_flight_per_client_are_capped() {
    let cfg = Config {
        max_inflight_per_client: 2,
        ..Config::default()
    };
    let s = server_with(Transport::Unix, cfg);
    let mut p = RawPeer::guest(&s.url(), "greedy").unwrap();
    // Two writes wait for COPYIN answers we hold back: each holds a thread.
    p.syscall_async(2, 4, &args::encode(&[1, 0x1000, 1]));
    let r1 = p.recv_msg().unwrap().header().reqno();
    p.syscall_async(3, 4, &args::encode(&[1, 0x1000, 1]));
    let r2 = p.recv_msg().unwrap().header().reqno();
    // A third is refused without taking a thread.
    p.syscall_async(4, 4, &args::encode(&[1, 0x1000, 1]));
    expect_frame(
        &mut p,
        &Message::Error {
            reqno: 4,
            code: ErrorCode::TRYAGAIN,
        },
    )
    .unwrap();
    // Answering one frees its slot.
    p.send_msg(&Message::CopyinResp {
        reqno: r1,
        data: b"a",
    })
    .unwrap();
    expect_frame(
        &mut p,
        &Message::SyscallResp {
            reqno: 2,
            error: 0,
            retval: [1, 0],
        },
    )
    .unwrap();
    p.syscall_async(5, 4, &args::encode(&[1, 0x1000, 1]));
    let r3 = p.recv_msg().unwrap().header().reqno();
    for (r, want) in [(r2, 3), (r3, 5)] {
        p.send_msg(&Message::CopyinResp {
            reqno: r,
            data: b"b",
        })
        .unwrap();
        expect_frame(
            &mut p,
            &Message::SyscallResp {
                reqno: want,
                error: 0,
                retval: [1, 0],
            },
        )
        .unwrap();
    }
}

#[test]
fn preforks_are_capped_across_clients_too() {
    let cfg = Config {
        prefork_cap: 16,
        prefork_total_cap: 2,
        ..Config::default()
    };
    let s = server_with(Transport::Unix, cfg);
    let mut a = RawPeer::guest(&s.url(), "a").unwrap();
    for r in [2, 3] {
        a.send_msg(&Message::Prefork { reqno: r }).unwrap();
        assert!(matches!(
            a.recv_msg().unwrap().message(),
            Some(Message::PreforkResp { .. })
        ));
    }
    // A reconnecting (or another) client gets no fresh allowance past the total.
    let mut b = RawPeer::guest(&s.url(), "b").unwrap();
    b.send_msg(&Message::Prefork { reqno: 2 }).unwrap();
    expect_frame(
        &mut b,
        &Message::Error {
            reqno: 2,
            code: ErrorCode::TRYAGAIN,
        },
    )
    .unwrap();
    assert_eq!(s.server.stats().preforks, 2);
}
