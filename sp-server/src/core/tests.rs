//! The core on simulated time: handshakes, preforks, exec and teardown,
//! with no socket, no thread and no sleep.

use super::*;
use sp_proto::ext::Features;
use std::time::Duration;

fn config() -> Config {
    Config {
        handshake_timeout: Some(Duration::from_secs(5)),
        prefork_ttl: Duration::from_secs(60),
        prefork_cap: 2,
        max_inflight_per_client: 3,
        ..Config::default()
    }
}

/// A core, a clock and a tiny kernel: process ids handed out in order.
struct Sim {
    core: Core,
    now: Instant,
    next_proc: u64,
}

impl Sim {
    fn new(config: Config) -> Sim {
        Sim {
            core: Core::new(&config).unwrap(),
            now: Instant::now(),
            next_proc: 10,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
            self.core.handle_timeout(self.now);
        }
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.core.poll_action()).collect()
    }

    fn accept(&mut self) -> ConnHandle {
        let h = self.core.accept(self.now, &PeerInfo::default()).unwrap();
        let banner = Config::default().banner.format().unwrap();
        match self.actions().as_slice() {
            [Action::Send { conn, frame }] if *conn == h && *frame == banner => {}
            other => panic!("expected the banner, got {other:?}"),
        }
        h
    }

    fn input(&mut self, h: ConnHandle, msg: Message<'_>) -> Vec<Action> {
        self.core.handle_bytes(h, &msg.to_vec());
        self.actions()
    }

    fn proc(&mut self) -> ProcId {
        self.next_proc += 1;
        ProcId(self.next_proc)
    }

    /// A guest handshake answered by the kernel; returns its process.
    fn guest(&mut self, h: ConnHandle) -> ProcId {
        let acts = self.input(h, guest_hs(1));
        assert!(
            matches!(acts.as_slice(), [Action::SpawnGuest { conn, comm }] if *conn == h && comm == b"t")
        );
        let p = self.proc();
        self.core.spawned(h, Ok(p));
        assert_eq!(sends(&self.actions()), vec![hs_resp(1)]);
        p
    }

    /// A prefork answered by the kernel; returns the child and cookie.
    fn prefork(&mut self, h: ConnHandle, reqno: u64) -> (ProcId, Cookie) {
        let acts = self.input(h, Message::Prefork { reqno });
        assert!(matches!(acts.as_slice(), [Action::Prefork { conn, .. }] if *conn == h));
        let child = self.proc();
        self.core.preforked(h, self.now, Ok(child));
        match self.actions().as_slice() {
            [Action::Send { frame, .. }] => match decode(frame) {
                Message::PreforkResp { reqno: r, cookie } if r == reqno => (child, cookie),
                other => panic!("expected a prefork answer, got {other:?}"),
            },
            other => panic!("expected a prefork answer, got {other:?}"),
        }
    }
}

use sp_proto::Cookie;

fn guest_hs(reqno: u64) -> Message<'static> {
    Message::Handshake {
        reqno,
        hs: Handshake::Guest { comm: b"t\0" },
    }
}

fn hs_resp(reqno: u64) -> Message<'static> {
    Message::HandshakeResp { reqno, error: 0 }
}

fn syscall(reqno: u64) -> Message<'static> {
    Message::Syscall {
        reqno,
        sysnum: 20,
        args: &[],
    }
}

fn decode(frame: &[u8]) -> Message<'_> {
    let (f, used) = Frame::parse(frame, u64::MAX).unwrap().unwrap();
    assert_eq!(used, frame.len());
    f.message().unwrap()
}

fn sends(actions: &[Action]) -> Vec<Message<'_>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { frame, .. } => Some(decode(frame)),
            _ => None,
        })
        .collect()
}

fn calls(actions: Vec<Action>) -> Vec<Call> {
    actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Syscall(c) => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn a_guest_handshake_waits_for_the_kernel_then_its_calls_run() {
    let mut s = Sim::new(config());
    let h = s.accept();
    // The handshake and a call in one read: the call waits for the
    // kernel's answer to the handshake.
    let mut bytes = guest_hs(1).to_vec();
    bytes.extend(syscall(2).to_vec());
    s.core.handle_bytes(h, &bytes);
    let acts = s.actions();
    assert!(
        matches!(acts.as_slice(), [Action::SpawnGuest { .. }]),
        "{acts:?}"
    );
    s.core.spawned(h, Ok(ProcId(7)));
    let acts = s.actions();
    assert_eq!(sends(&acts), vec![hs_resp(1)]);
    let calls = calls(acts);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].proc, calls[0].reqno, calls[0].sysnum),
        (ProcId(7), 2, 20)
    );
    assert_eq!(s.core.inflight(h), 1);
    s.core.call_done(calls[0].done());
    assert_eq!(s.core.inflight(h), 0);
    assert_eq!(s.core.stats().syscalls, 0);
}

#[test]
fn a_kernel_refusal_answers_rfork_failed_and_ends_the_connection() {
    let mut s = Sim::new(config());
    let h = s.accept();
    s.input(h, guest_hs(1));
    s.core.spawned(h, Err(Errno::EAGAIN));
    let acts = s.actions();
    assert_eq!(
        sends(&acts),
        vec![Message::Error {
            reqno: 1,
            code: ErrorCode::RFORK_FAILED
        }]
    );
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::Close {
            reason: DropReason::KernelRefused(Errno::EAGAIN),
            flush: true,
            ..
        }
    )));
    assert!(!s.core.is_live(h));
    assert_eq!(s.core.stats().dropped, 1);
}

#[test]
fn a_silent_client_is_closed_at_its_handshake_deadline_not_before() {
    let mut s = Sim::new(config());
    let silent = s.accept();
    s.advance(Duration::from_secs(2));
    let joined = s.accept();
    s.guest(joined);
    assert_eq!(s.core.poll_timeout(), Some(s.now + Duration::from_secs(3)));
    s.advance(Duration::from_millis(2999));
    assert!(s.actions().is_empty());
    s.advance(Duration::from_millis(1));
    let acts = s.actions();
    assert!(
        matches!(acts.as_slice(), [Action::Close { conn, reason: DropReason::HandshakeTimeout(_), flush: false }] if *conn == silent),
        "{acts:?}"
    );
    // The one that joined in time has no deadline.
    s.advance(Duration::from_secs(10));
    assert!(s.actions().is_empty());
    assert!(s.core.is_live(joined));
    assert_eq!(s.core.poll_timeout(), None);
}

#[test]
fn a_prefork_is_claimed_once_by_its_cookie() {
    let mut s = Sim::new(config());
    let parent = s.accept();
    s.guest(parent);
    let (child, cookie) = s.prefork(parent, 5);
    let fork = s.accept();
    let acts = s.input(
        fork,
        Message::Handshake {
            reqno: 9,
            hs: Handshake::Fork { cookie, cancel: 0 },
        },
    );
    assert!(
        matches!(acts.as_slice(), [Action::Attach { conn, prefork }] if *conn == fork && *prefork == child)
    );
    s.core.attached(fork, Ok(ProcId(99)));
    assert_eq!(sends(&s.actions()), vec![hs_resp(9)]);
    assert_eq!(s.core.stats().preforks, 0);
    // The same cookie again: refused, closed.
    let again = s.accept();
    let acts = s.input(
        again,
        Message::Handshake {
            reqno: 3,
            hs: Handshake::Fork { cookie, cancel: 0 },
        },
    );
    assert_eq!(
        sends(&acts),
        vec![Message::Error {
            reqno: 3,
            code: ErrorCode::INVALID_PREFORK
        }]
    );
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::Close {
            reason: DropReason::Misbehaved(Misbehaviour::UnknownCookie),
            ..
        }
    )));
}

#[test]
fn an_unclaimed_prefork_is_released_at_its_ttl_even_after_its_parent_left() {
    let mut s = Sim::new(config());
    let parent = s.accept();
    let pp = s.guest(parent);
    let (child, _) = s.prefork(parent, 5);
    s.core.closed(parent, DropReason::PeerClosed);
    let acts = s.actions();
    assert!(
        matches!(acts.as_slice(), [
        Action::LwpExit { proc, .. },
        Action::Close { reason: DropReason::PeerClosed, .. },
        Action::Release { proc: released },
    ] if *proc == pp && *released == pp),
        "{acts:?}"
    );
    assert_eq!(s.core.stats().preforks, 1);
    s.advance(Duration::from_secs(59));
    assert!(s.actions().is_empty());
    s.advance(Duration::from_secs(1));
    let acts = s.actions();
    assert!(matches!(acts.as_slice(), [Action::Release { proc }] if *proc == child));
    assert_eq!(s.core.stats().preforks, 0);
    assert_eq!(s.core.poll_timeout(), None);
}

#[test]
fn preforks_past_the_cap_are_tryagain_and_a_cancel_releases_the_prefork() {
    let mut s = Sim::new(config());
    let parent = s.accept();
    s.guest(parent);
    let (c1, cookie) = s.prefork(parent, 1);
    s.prefork(parent, 2);
    let acts = s.input(parent, Message::Prefork { reqno: 3 });
    assert_eq!(
        sends(&acts),
        vec![Message::Error {
            reqno: 3,
            code: ErrorCode::TRYAGAIN
        }]
    );
    let fork = s.accept();
    let acts = s.input(
        fork,
        Message::Handshake {
            reqno: 4,
            hs: Handshake::Fork { cookie, cancel: 1 },
        },
    );
    assert!(
        matches!(acts.as_slice(), [
        Action::Release { proc },
        Action::Close { reason: DropReason::PreforkCancelled, flush: false, .. },
    ] if *proc == c1),
        "{acts:?}"
    );
    // Room for one more now.
    s.prefork(parent, 5);
}

#[test]
fn an_exec_waits_for_the_calls_in_flight_then_answers_after_them() {
    let mut s = Sim::new(config());
    let h = s.accept();
    let p = s.guest(h);
    let mut running = calls(s.input(h, syscall(2)));
    running.extend(calls(s.input(h, syscall(3))));
    assert_eq!(s.core.inflight(h), 2);
    let acts = s.input(
        h,
        Message::Handshake {
            reqno: 4,
            hs: Handshake::Exec { comm: b"sh\0" },
        },
    );
    assert!(matches!(acts.as_slice(), [Action::LwpExit { proc, .. }] if *proc == p));
    // A second exec meanwhile is refused and ends the connection.
    s.core.call_done(running.pop().unwrap().done());
    assert!(s.actions().is_empty(), "one call still runs");
    s.core.call_done(running.pop().unwrap().done());
    let acts = s.actions();
    assert!(
        matches!(acts.as_slice(), [
        Action::ExecNotify { proc, comm, .. },
        Action::Send { .. },
    ] if *proc == p && comm == b"sh"),
        "{acts:?}"
    );
    assert_eq!(sends(&acts), vec![hs_resp(4)]);
    // The exec is over: calls and another exec are served again.
    assert_eq!(calls(s.input(h, syscall(5))).len(), 1);
}

#[test]
fn an_exec_during_an_exec_or_a_prefork_during_one_ends_the_connection() {
    for second in [
        Message::Handshake {
            reqno: 5,
            hs: Handshake::Exec { comm: b"x\0" },
        },
        Message::Prefork { reqno: 5 },
    ] {
        let mut s = Sim::new(config());
        let h = s.accept();
        s.guest(h);
        let _running = calls(s.input(h, syscall(2)));
        s.input(
            h,
            Message::Handshake {
                reqno: 4,
                hs: Handshake::Exec { comm: b"sh\0" },
            },
        );
        let acts = s.input(h, second);
        assert_eq!(
            sends(&acts),
            vec![Message::Error {
                reqno: 5,
                code: ErrorCode::INEXEC
            }]
        );
        assert!(!s.core.is_live(h));
    }
}

#[test]
fn a_client_gone_mid_call_has_its_process_released_after_the_call() {
    let mut s = Sim::new(config());
    let h = s.accept();
    let p = s.guest(h);
    let call = calls(s.input(h, syscall(2))).pop().unwrap();
    s.core.closed(h, DropReason::PeerClosed);
    let acts = s.actions();
    assert!(
        matches!(
            acts.as_slice(),
            [Action::LwpExit { .. }, Action::Close { .. }]
        ),
        "{acts:?}"
    );
    assert_eq!(s.core.stats().connections, 0);
    // The slot is not reused while the call runs.
    let other = s.accept();
    assert_ne!(other.index(), h.index());
    s.core.call_done(call.done());
    let acts = s.actions();
    assert!(matches!(acts.as_slice(), [Action::Release { proc }] if *proc == p));
    // Now it is, under a new generation: the old handle reaches nothing.
    let reused = s.accept();
    assert_eq!(reused.index(), h.index());
    assert_ne!(reused, h);
    s.core.closed(h, DropReason::PeerClosed);
    s.core.handle_bytes(h, &guest_hs(1).to_vec());
    assert!(s.actions().is_empty());
    assert!(s.core.is_live(reused));
}

#[test]
fn calls_past_the_per_client_cap_are_tryagain_until_one_is_done() {
    let mut s = Sim::new(config());
    let h = s.accept();
    s.guest(h);
    let mut running = Vec::new();
    for r in 0..3 {
        running.extend(calls(s.input(h, syscall(10 + r))));
    }
    let acts = s.input(h, syscall(13));
    assert_eq!(
        sends(&acts),
        vec![Message::Error {
            reqno: 13,
            code: ErrorCode::TRYAGAIN
        }]
    );
    s.core.call_done(running.pop().unwrap().done());
    assert_eq!(calls(s.input(h, syscall(14))).len(), 1);
}

#[test]
fn requests_before_the_handshake_and_bad_frames_end_the_connection() {
    let mut s = Sim::new(config());
    let h = s.accept();
    let acts = s.input(h, syscall(1));
    assert_eq!(
        sends(&acts),
        vec![Message::Error {
            reqno: 1,
            code: ErrorCode::AUTH
        }]
    );
    assert!(!s.core.is_live(h));
    // Input after that is ignored.
    assert!(s.input(h, guest_hs(2)).is_empty());

    let h = s.accept();
    let bad = Header::new(3, 1, Class::REQ, MsgType::SYSCALL, 0);
    s.core.handle_bytes(h, &bad.to_bytes());
    let acts = s.actions();
    assert!(
        matches!(
            acts.as_slice(),
            [Action::Close {
                reason: DropReason::Misbehaved(Misbehaviour::Frame(_)),
                flush: false,
                ..
            }]
        ),
        "{acts:?}"
    );
}

#[test]
fn copy_answers_are_delivered_and_a_stray_error_is_refused() {
    let mut s = Sim::new(config());
    let h = s.accept();
    s.guest(h);
    let acts = s.input(
        h,
        Message::CopyinResp {
            reqno: 4,
            data: b"abc",
        },
    );
    assert!(
        matches!(acts.as_slice(), [Action::Deliver { reqno: 4, delivery: Delivery::Copyin(d), .. }] if d == b"abc")
    );
    let acts = s.input(
        h,
        Message::Error {
            reqno: 6,
            code: ErrorCode::MALFORMED_REQUEST,
        },
    );
    assert!(matches!(
        acts.as_slice(),
        [Action::Deliver {
            reqno: 6,
            delivery: Delivery::Refused,
            ..
        }]
    ));
    s.core.unmatched_error(h, 6);
    assert_eq!(
        sends(&s.actions()),
        vec![Message::Error {
            reqno: 6,
            code: ErrorCode::MALFORMED_REQUEST
        }]
    );
}

#[test]
fn segments_need_the_extension_and_count_against_the_budget() {
    let mut s = Sim::new(Config {
        segment_bytes_per_client: 100,
        ..config()
    });
    let h = s.accept();
    s.guest(h);
    let seg_frame = |reqno| {
        let data = [7u8; 40];
        let f = sp_proto::ext::SegFrame::new(reqno, 4, &[0u8; 8], &[(0x1000, &data[..])]).unwrap();
        f.to_vec(&[&data[..]])
    };
    s.core.handle_bytes(h, &seg_frame(1));
    assert_eq!(
        sends(&s.actions()),
        vec![Message::Error {
            reqno: 1,
            code: ErrorCode::MALFORMED_REQUEST
        }],
        "no EXT_HELLO yet"
    );
    let hello = Hello {
        version: EXT_VERSION,
        features: Features::ALL,
        max_frame: 0,
        max_segment_bytes: 0,
    };
    s.input(h, Message::ExtHello { reqno: 50, hello });
    s.core.handle_bytes(h, &seg_frame(2));
    let first = calls(s.actions());
    assert_eq!(first.len(), 1);
    assert!(first[0].segs.is_some());
    // The second would pass the 100-byte budget while the first runs.
    s.core.handle_bytes(h, &seg_frame(3));
    assert_eq!(
        sends(&s.actions()),
        vec![Message::Error {
            reqno: 3,
            code: ErrorCode::TRYAGAIN
        }]
    );
    s.core.call_done(first[0].done());
    s.core.handle_bytes(h, &seg_frame(4));
    assert_eq!(calls(s.actions()).len(), 1);
}

#[test]
fn the_client_limit_and_allowlists_refuse_at_accept() {
    let mut s = Sim::new(Config {
        max_clients: 1,
        allowed_uids: Some(vec![1000]),
        ..config()
    });
    let unix = |uid| PeerInfo {
        unix: true,
        uid,
        ip: None,
    };
    assert_eq!(s.core.accept(s.now, &unix(Some(0))), Err(Refusal::Uid(0)));
    assert_eq!(s.core.accept(s.now, &unix(None)), Err(Refusal::UidUnknown));
    let h = s.core.accept(s.now, &unix(Some(1000))).unwrap();
    assert_eq!(
        s.core.accept(s.now, &unix(Some(1000))),
        Err(Refusal::AtLimit(1))
    );
    s.core.closed(h, DropReason::PeerClosed);
    assert!(s.core.accept(s.now, &unix(Some(1000))).is_ok());
    assert_eq!(s.core.stats().dropped, 3);
}

#[test]
fn shutdown_ends_every_connection_and_releases_every_prefork() {
    let mut s = Sim::new(config());
    let a = s.accept();
    let pa = s.guest(a);
    let (child, _) = s.prefork(a, 1);
    let _b = s.accept();
    s.core.shutdown();
    let acts = s.actions();
    let closes = acts
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Close {
                    reason: DropReason::Shutdown,
                    ..
                }
            )
        })
        .count();
    assert_eq!(closes, 2);
    let released: Vec<ProcId> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Release { proc } => Some(*proc),
            _ => None,
        })
        .collect();
    assert!(
        released.contains(&pa) && released.contains(&child),
        "{acts:?}"
    );
}

#[test]
fn a_recycled_argument_buffer_carries_only_the_next_calls_arguments() {
    let mut s = Sim::new(config());
    let h = s.accept();
    s.guest(h);
    let long = Message::Syscall {
        reqno: 2,
        sysnum: 4,
        args: &[7u8; 24],
    };
    let call = calls(s.input(h, long)).pop().unwrap();
    let done = call.done();
    s.core.recycle(call.args);
    s.core.call_done(done);
    let short = Message::Syscall {
        reqno: 3,
        sysnum: 20,
        args: &[1u8; 8],
    };
    let call = calls(s.input(h, short)).pop().unwrap();
    assert_eq!(call.args, vec![1u8; 8]);
}
