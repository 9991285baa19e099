//! Random sequences of client actions, from three clients at once, against
//! a fresh server with the model kernel behind it, checked step by step
//! against a small model of what each answer must be; afterwards nothing
//! is left but the unclaimed preforks, and stopping the server releases
//! those too.

use proptest::prelude::*;
use proptest::test_runner::Config as PropConfig;
use sp_model::ModelKernel;
use sp_proto::abi::Sysnum;
use sp_proto::args;
use sp_proto::{Cookie, ErrorCode, Handshake, Message, MsgType};
use sp_server::Config;
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::peers::{call, eventually, expect_close, expect_frame, frame, prefork, raw_frame};
use sp_testkit::rawpeer::{OwnedFrame, RawPeer, Recv};
use std::sync::Arc;
use std::time::Duration;

const CLIENTS: usize = 3;
const MAX_FRAME: u64 = 16 * 1024;

/// Which cookie a fork handshake presents.
#[derive(Clone, Debug)]
enum CookieChoice {
    /// The k-th unclaimed one (modulo their number), to claim it.
    Right(usize),
    /// The k-th unclaimed one, to cancel it.
    Cancel(usize),
    /// Made-up bytes.
    Wrong([u8; 16]),
}

#[derive(Clone, Debug)]
enum Op {
    /// Absent: connect and read the banner. New: guest handshake.
    /// Running: a second guest handshake (refused, closed).
    Connect(usize),
    Getpid(usize),
    /// pipe, write the bytes (served from our COPYIN answer), read them
    /// back (COPYOUT), close both ends.
    PipeRoundTrip(usize, Vec<u8>),
    Prefork(usize),
    Fork(usize, CookieChoice),
    Exec(usize, u8),
    /// A RESP of some type with a request number nobody waits for.
    StrayResp(usize, u64, u16),
    Malformed(usize, u8),
    Disconnect(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CLIENTS;
    prop_oneof![
        3 => c.clone().prop_map(Op::Connect),
        2 => c.clone().prop_map(Op::Getpid),
        2 => (c.clone(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(i, d)| Op::PipeRoundTrip(i, d)),
        2 => c.clone().prop_map(Op::Prefork),
        2 => (c.clone(), prop_oneof![
            3 => any::<usize>().prop_map(CookieChoice::Right),
            1 => any::<usize>().prop_map(CookieChoice::Cancel),
            1 => any::<[u8; 16]>().prop_map(CookieChoice::Wrong),
        ]).prop_map(|(i, k)| Op::Fork(i, k)),
        1 => (c.clone(), any::<u8>()).prop_map(|(i, n)| Op::Exec(i, n)),
        1 => (c.clone(), any::<u64>(), prop::sample::select(vec![1u16, 2, 3, 6, 7, 40]))
            .prop_map(|(i, r, t)| Op::StrayResp(i, r, t)),
        1 => (c.clone(), 0u8..6).prop_map(|(i, k)| Op::Malformed(i, k)),
        1 => c.prop_map(Op::Disconnect),
    ]
}

struct Running {
    peer: RawPeer,
    pid: i32,
    /// The parent's pid: 1 for a guest and for a fork child (the kernel
    /// forks the prefork once more and lets it go, as the reference does).
    parent: i32,
    next_reqno: u64,
}

impl Running {
    fn reqno(&mut self) -> u64 {
        self.next_reqno += 1;
        self.next_reqno
    }
}

enum Client {
    Absent,
    /// Banner read, no handshake yet.
    New(RawPeer),
    Running(Running),
}

/// The model: the clients, the pids the kernel will hand out next, and
/// the unclaimed preforks (cookie, pid, parent pid).
struct World {
    url: String,
    kernel: Arc<ModelKernel>,
    clients: Vec<Client>,
    next_pid: i32,
    cookies: Vec<(Cookie, i32, i32)>,
}

impl World {
    fn take(&mut self, i: usize) -> Client {
        std::mem::replace(&mut self.clients[i], Client::Absent)
    }

    fn banner(&self) -> RawPeer {
        RawPeer::connect_banner(&self.url).expect("connect").0
    }

    fn step(&mut self, op: &Op) {
        match op.clone() {
            Op::Connect(i) => match self.take(i) {
                Client::Absent => self.clients[i] = Client::New(self.banner()),
                Client::New(mut p) => {
                    let comm = format!("c{i}\0");
                    p.send_msg(&Message::Handshake {
                        reqno: 1,
                        hs: Handshake::Guest {
                            comm: comm.as_bytes(),
                        },
                    })
                    .unwrap();
                    expect_frame(&mut p, &Message::HandshakeResp { reqno: 1, error: 0 }).unwrap();
                    let pid = self.next_pid;
                    self.next_pid += 1;
                    assert_eq!(
                        self.kernel.comm(pid).as_deref(),
                        Some(comm.trim_end_matches('\0').as_bytes())
                    );
                    self.clients[i] = Client::Running(Running {
                        peer: p,
                        pid,
                        parent: 1,
                        next_reqno: 1,
                    });
                }
                Client::Running(mut r) => {
                    r.peer
                        .send_msg(&Message::Handshake {
                            reqno: 9,
                            hs: Handshake::Guest { comm: b"again\0" },
                        })
                        .unwrap();
                    error_then_close(&mut r.peer, 9, ErrorCode::MALFORMED_REQUEST);
                }
            },
            Op::Getpid(i) => match self.take(i) {
                Client::Absent => {}
                Client::New(mut p) => {
                    let _ = p.send_msg(&Message::Syscall {
                        reqno: 5,
                        sysnum: Sysnum::GETPID.0,
                        args: &[],
                    });
                    error_then_close(&mut p, 5, ErrorCode::AUTH);
                }
                Client::Running(mut r) => {
                    let reqno = r.reqno();
                    let (err, rv) = r.peer.syscall(reqno, Sysnum::GETPID, &[]).unwrap();
                    assert_eq!((err, rv[0]), (0, i64::from(r.pid)), "getpid of client {i}");
                    // A child whose parent is gone was reparented to init.
                    assert!(
                        rv[1] == i64::from(r.parent) || rv[1] == 1,
                        "ppid {} of pid {} (parent {})",
                        rv[1],
                        r.pid,
                        r.parent
                    );
                    self.clients[i] = Client::Running(r);
                }
            },
            Op::PipeRoundTrip(i, data) => {
                if let Client::Running(r) = &mut self.clients[i] {
                    let n = data.len() as u64;
                    let reqno = r.reqno();
                    let (err, fds) = r.peer.syscall(reqno, Sysnum::PIPE, &[]).unwrap();
                    assert_eq!(err, 0, "pipe");
                    let (rd, wr) = (fds[0] as u64, fds[1] as u64);
                    let reqno = r.reqno();
                    let w = call(
                        &mut r.peer,
                        reqno,
                        Sysnum::WRITE,
                        &args::encode(&[wr, 0x1000, n]),
                        &[&data],
                        0,
                    )
                    .unwrap();
                    assert_eq!(
                        (w.error, w.retval[0], w.asked.clone()),
                        (0, n as i64, vec![n])
                    );
                    let reqno = r.reqno();
                    let rr = call(
                        &mut r.peer,
                        reqno,
                        Sysnum::READ,
                        &args::encode(&[rd, 0x2000, 64]),
                        &[],
                        0,
                    )
                    .unwrap();
                    assert_eq!((rr.error, rr.retval[0]), (0, n as i64));
                    assert_eq!(rr.copyouts, vec![data.clone()], "the bytes come back");
                    for fd in [rd, wr] {
                        let reqno = r.reqno();
                        assert_eq!(
                            r.peer
                                .syscall(reqno, Sysnum::CLOSE, &args::encode(&[fd]))
                                .unwrap()
                                .0,
                            0
                        );
                    }
                }
            }
            Op::Prefork(i) => match self.take(i) {
                Client::Absent => {}
                Client::New(mut p) => {
                    p.send_msg(&Message::Prefork { reqno: 6 }).unwrap();
                    error_then_close(&mut p, 6, ErrorCode::AUTH);
                }
                Client::Running(mut r) => {
                    let reqno = r.reqno();
                    let cookie = prefork(&mut r.peer, reqno).unwrap().expect("under the cap");
                    self.cookies.push((cookie, self.next_pid, r.pid));
                    self.next_pid += 1;
                    self.clients[i] = Client::Running(r);
                }
            },
            Op::Fork(i, choice) => {
                let mut p = match self.take(i) {
                    Client::Absent => self.banner(),
                    Client::New(p) => p,
                    Client::Running(mut r) => {
                        // A fork handshake on a running connection: refused,
                        // and the cookie it named (if any) is not spent.
                        let cookie = self.cookies.first().map_or([7; 16], |c| c.0);
                        r.peer
                            .send_msg(&Message::Handshake {
                                reqno: 8,
                                hs: Handshake::Fork { cookie, cancel: 0 },
                            })
                            .unwrap();
                        error_then_close(&mut r.peer, 8, ErrorCode::MALFORMED_REQUEST);
                        return;
                    }
                };
                let picked = match choice {
                    CookieChoice::Right(k) | CookieChoice::Cancel(k)
                        if !self.cookies.is_empty() =>
                    {
                        Some(self.cookies.remove(k % self.cookies.len()))
                    }
                    _ => None,
                };
                let cancel = matches!(choice, CookieChoice::Cancel(_)) as i32;
                let cookie = match (&picked, &choice) {
                    (Some(c), _) => c.0,
                    (None, CookieChoice::Wrong(w)) => *w,
                    (None, _) => [0x5a; 16],
                };
                p.send_msg(&Message::Handshake {
                    reqno: 1,
                    hs: Handshake::Fork { cookie, cancel },
                })
                .unwrap();
                let f = match p.recv().unwrap() {
                    Recv::Frame(f) => OwnedFrame(f).message().map(|m| format!("{m:?}")),
                    Recv::Closed => None,
                };
                match picked {
                    Some((_, prefork_pid, _)) if cancel == 0 => {
                        let ok = Message::HandshakeResp { reqno: 1, error: 0 };
                        assert_eq!(f, Some(format!("{ok:?}")), "claiming pid {prefork_pid}");
                        // The prefork is forked once more: the child takes
                        // the next pid, and with the prefork gone its
                        // parent is init.
                        let pid = self.next_pid;
                        self.next_pid += 1;
                        self.clients[i] = Client::Running(Running {
                            peer: p,
                            pid,
                            parent: 1,
                            next_reqno: 1,
                        });
                    }
                    Some(_) => assert_eq!(f, None, "a cancel closes without an answer"),
                    None => {
                        let want = Message::Error {
                            reqno: 1,
                            code: ErrorCode::INVALID_PREFORK,
                        };
                        assert_eq!(f, Some(format!("{want:?}")));
                        expect_close(&mut p).unwrap();
                    }
                }
            }
            Op::Exec(i, n) => match self.take(i) {
                Client::Absent => {}
                Client::New(mut p) => {
                    p.send_msg(&Message::Handshake {
                        reqno: 3,
                        hs: Handshake::Exec { comm: b"early\0" },
                    })
                    .unwrap();
                    error_then_close(&mut p, 3, ErrorCode::AUTH);
                }
                Client::Running(mut r) => {
                    let comm = format!("e{n}\0");
                    let reqno = r.reqno();
                    r.peer
                        .send_msg(&Message::Handshake {
                            reqno,
                            hs: Handshake::Exec {
                                comm: comm.as_bytes(),
                            },
                        })
                        .unwrap();
                    expect_frame(&mut r.peer, &Message::HandshakeResp { reqno, error: 0 }).unwrap();
                    assert_eq!(
                        self.kernel.comm(r.pid).as_deref(),
                        Some(comm.trim_end_matches('\0').as_bytes())
                    );
                    self.clients[i] = Client::Running(r);
                }
            },
            Op::StrayResp(i, reqno, typ) => {
                let bytes = frame(reqno, 1, typ, 0, &[0; 8]);
                match &mut self.clients[i] {
                    Client::Absent => {}
                    // Nothing is answered: the next exact expectation on
                    // this connection would see it.
                    Client::New(p) => p.send(&bytes).unwrap(),
                    Client::Running(r) => {
                        r.peer.send(&bytes).unwrap();
                        let reqno = r.reqno();
                        let (err, rv) = r.peer.syscall(reqno, Sysnum::GETPID, &[]).unwrap();
                        assert_eq!((err, rv[0]), (0, i64::from(r.pid)));
                    }
                }
            }
            Op::Malformed(i, kind) => match self.take(i) {
                Client::Absent => {}
                Client::New(mut p) => {
                    if malformed_new(&mut p, kind) {
                        self.clients[i] = Client::New(p);
                    }
                }
                Client::Running(mut r) => {
                    if malformed_running(&mut r.peer, kind) {
                        self.clients[i] = Client::Running(r);
                    }
                }
            },
            Op::Disconnect(i) => self.clients[i] = Client::Absent,
        }
    }
}

fn error_then_close(p: &mut RawPeer, reqno: u64, code: ErrorCode) {
    expect_frame(p, &Message::Error { reqno, code }).unwrap();
    expect_close(p).unwrap();
}

/// The malformed frame of `kind` (0..6).
fn malformed(kind: u8) -> Vec<u8> {
    match kind {
        0 => frame(70, 7, 0, 0, &[]),
        1 => frame(71, 2, 0, 1, &[]),
        2 => frame(72, 0, 9, 0, &[]),
        3 => raw_frame(23, 73, 0, 1, 20, &[]),
        4 => raw_frame(MAX_FRAME + 1, 74, 0, 1, 20, &[]),
        _ => frame(75, 0, MsgType::COPYIN.0, 0, &[0; 16]),
    }
}

/// Sends a malformed frame on a running connection and checks the answer;
/// returns whether the connection is still open.
fn malformed_running(p: &mut RawPeer, kind: u8) -> bool {
    let bytes = malformed(kind);
    let reqno = 70 + u64::from(kind);
    let _ = p.send(&bytes);
    match kind {
        // Unknown class, an unsolicited ERROR, a request type the server
        // does not take: answered, and the connection goes on.
        0..=2 | 5 => {
            let want = Message::Error {
                reqno,
                code: ErrorCode::MALFORMED_REQUEST,
            };
            expect_frame(p, &want).unwrap();
            true
        }
        // A length that cannot be framed.
        _ => {
            expect_close(p).unwrap();
            false
        }
    }
}

/// Sends a malformed frame before the handshake and checks the answer;
/// returns whether the connection is still open.
fn malformed_new(p: &mut RawPeer, kind: u8) -> bool {
    let bytes = malformed(kind);
    let reqno = 70 + u64::from(kind);
    let _ = p.send(&bytes);
    match kind {
        // The class is checked before the handshake state.
        0 | 1 => {
            let want = Message::Error {
                reqno,
                code: ErrorCode::MALFORMED_REQUEST,
            };
            expect_frame(p, &want).unwrap();
            true
        }
        2 | 5 => {
            error_then_close(p, reqno, ErrorCode::AUTH);
            false
        }
        _ => {
            expect_close(p).unwrap();
            false
        }
    }
}

fn run(ops: &[Op]) {
    let kernel = Arc::new(ModelKernel::new());
    let cfg = Config {
        max_frame: MAX_FRAME,
        // Never reached here: the cap has its own tests.
        prefork_cap: 1000,
        prefork_ttl: Duration::from_secs(600),
        ..Config::default()
    };
    let s = TestServer::start_with(kernel.clone(), Transport::Unix, cfg).unwrap();
    let mut w = World {
        url: s.url(),
        kernel: kernel.clone(),
        clients: (0..CLIENTS).map(|_| Client::Absent).collect(),
        next_pid: 2,
        cookies: Vec::new(),
    };
    for op in ops {
        w.step(op);
    }
    // Whoever is still running is still served.
    for i in 0..CLIENTS {
        w.step(&Op::Getpid(i));
    }
    w.clients.clear();
    // Only the unclaimed preforks are left.
    let mut left: Vec<i32> = w.cookies.iter().map(|c| c.1).collect();
    left.sort_unstable();
    eventually("every connection is released", || {
        let st = s.server.stats();
        st.connections == 0 && st.syscalls == 0 && kernel.pids() == left
    });
    assert_eq!(kernel.live_threads(), 0);
    assert_eq!(s.server.stats().preforks, left.len());
    // Stopping the server releases them.
    let handle = s.server.handle().clone();
    let TestServer { server, .. } = s;
    server.stop().unwrap();
    assert_eq!(kernel.process_count(), 0, "left: {:?}", kernel.pids());
    assert_eq!(kernel.live_threads(), 0);
    assert_eq!(handle.stats().syscalls, 0);
    assert_eq!(handle.stats().preforks, 0);
}

proptest! {
    #![proptest_config(PropConfig {
        cases: 64,
        failure_persistence: None,
        max_shrink_iters: 400,
        ..PropConfig::default()
    })]

    #[test]
    fn three_clients_in_any_order(ops in prop::collection::vec(op(), 1..=40)) {
        run(&ops);
    }
}

#[test]
fn a_sequence_that_uses_every_op() {
    use CookieChoice::*;
    use Op::*;
    run(&[
        Connect(0),
        Connect(0),
        Getpid(0),
        PipeRoundTrip(0, b"hello".to_vec()),
        Prefork(0),
        Prefork(0),
        Prefork(0),
        Fork(1, Right(0)),
        Getpid(1),
        Fork(2, Wrong([1; 16])),
        Fork(2, Cancel(0)),
        Exec(1, 7),
        Getpid(1),
        StrayResp(0, 0, 2),
        Malformed(0, 0),
        Malformed(0, 5),
        Connect(2),
        Malformed(2, 1),
        StrayResp(2, 3, 6),
        Connect(2),
        Getpid(2),
        Malformed(2, 3),
        Disconnect(0),
        Fork(0, Right(0)),
        Getpid(0),
        Connect(1),
        Prefork(1),
    ]);
}
