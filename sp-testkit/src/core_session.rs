//! The server-session fuzz body on the sans-IO core: arbitrary client
//! bytes into a fresh [`Core`], driven by a deterministic simulated
//! kernel, with no socket, thread or clock (simulated time).
//!
//! Connection 0 gets the input, split into reads at points the input
//! itself chooses (its bytes are also the frames). Every prefork the core
//! hands out is claimed by a fork child on a connection of its own (or
//! cancelled), which then makes a call. System calls with an even number
//! return at once; odd ones block until their process's threads are told
//! to exit (an exec or a teardown), as a blocked read does. After the
//! input: the client closes, time passes every deadline, a fresh client is
//! served, and the server shuts down.
//!
//! Checked throughout:
//! - connection 0's output is the banner, then frames that decode into
//!   messages a server sends; every answer echoes a request the client
//!   sent that takes one, and there are no more answers than such
//!   requests;
//! - no frame is sent to a connection after its close, and no action
//!   names a connection that was never accepted;
//! - kernel operations are asked only for live connections, at most one
//!   at a time per connection;
//! - every call is done exactly once, every process the kernel made is
//!   released exactly once, and after shutdown nothing is left: no call,
//!   no process, no prefork, no connection.

use crate::fuzz::Answers;
use sp_proto::abi::Sysnum;
use sp_proto::capture::to_hex;
use sp_proto::{Deframer, Errno, Frame, Handshake, Message};
use sp_server::core::{Action, Call, ConnHandle, Core, Delivery, DropReason, PeerInfo};
use sp_server::{Config, ProcId};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The session core's frame limit: small, so the fuzzer reaches it.
pub const CORE_MAX_FRAME: u64 = 64 * 1024;

/// The configuration of the session core.
pub fn core_session_config() -> Config {
    Config {
        max_frame: CORE_MAX_FRAME,
        prefork_cap: 4,
        prefork_ttl: Duration::from_secs(1),
        handshake_timeout: Some(Duration::from_secs(1)),
        max_inflight_per_client: 8,
        segment_bytes_per_client: 16 * 1024,
        raise_nofile: false,
        ..Config::default()
    }
}

#[derive(Default)]
struct Peer {
    out: Vec<u8>,
    closed: bool,
    /// The driver reported its socket gone.
    gone: bool,
    /// A kernel operation asked and not yet answered.
    asking: bool,
}

/// The session core's banner, formatted once.
fn banner() -> &'static [u8] {
    static BANNER: OnceLock<Vec<u8>> = OnceLock::new();
    BANNER.get_or_init(|| {
        let b = core_session_config().banner.format();
        b.expect("the default banner formats")
    })
}

/// The simulated driver and kernel around one core. Tables are vectors
/// indexed by slot and process number (no hashing: the fuzzer's
/// comparison tracing makes a hash cost more than the core's work).
struct Sim {
    core: Core,
    now: Instant,
    /// By slot: the handle using it and its peer.
    peers: Vec<Option<(ConnHandle, Peer)>>,
    /// By process number: alive in the kernel (made and not released).
    procs: Vec<bool>,
    next_proc: u64,
    /// Calls that block until their process's threads exit.
    blocked: Vec<Call>,
    /// Calls done so far, to catch a double completion.
    handed: usize,
    done: usize,
    /// Fork handshakes to make for cookies handed out.
    cookies: Vec<[u8; 16]>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            core: Core::new(&core_session_config()).expect("the default banner formats"),
            now: Instant::now(),
            peers: Vec::new(),
            procs: Vec::new(),
            next_proc: 1,
            blocked: Vec::new(),
            handed: 0,
            done: 0,
            cookies: Vec::new(),
        }
    }

    fn accept(&mut self) -> ConnHandle {
        let h = self
            .core
            .accept(self.now, &PeerInfo::default())
            .expect("under the client limit");
        if self.peers.len() <= h.index() {
            self.peers.resize_with(h.index() + 1, || None);
        }
        let slot = &mut self.peers[h.index()];
        if let Some((old, p)) = slot {
            assert!(*old != h, "handle {h} handed out twice");
            assert!(p.gone, "slot of {h} reused before its socket was gone");
        }
        *slot = Some((h, Peer::default()));
        self.run();
        h
    }

    fn new_proc(&mut self) -> ProcId {
        self.next_proc += 1;
        self.procs.push(true);
        ProcId(self.next_proc)
    }

    fn alive(&self, p: ProcId) -> bool {
        let i = p.0.wrapping_sub(2) as usize;
        self.procs.get(i).copied().unwrap_or(false)
    }

    /// Marks `p` gone; false if it was not alive.
    fn kill(&mut self, p: ProcId) -> bool {
        let i = p.0.wrapping_sub(2) as usize;
        match self.procs.get_mut(i) {
            Some(alive) => std::mem::replace(alive, false),
            None => false,
        }
    }

    fn peer(&mut self, h: ConnHandle) -> &mut Peer {
        match self.peers.get_mut(h.index()) {
            Some(Some((owner, p))) if *owner == h => p,
            _ => panic!("an action names {h}, not a connection of this core"),
        }
    }

    fn asking(&mut self, h: ConnHandle) {
        let p = self.peer(h);
        assert!(!p.closed, "a kernel operation for closed {h}");
        assert!(!p.asking, "two kernel operations at once for {h}");
        p.asking = true;
    }

    fn answered(&mut self, h: ConnHandle) {
        self.peer(h).asking = false;
    }

    fn complete(&mut self, call: Call) {
        self.done += 1;
        let done = call.done();
        let answer = Message::SyscallResp {
            reqno: call.reqno,
            error: 0,
            retval: [0, 0],
        };
        // The answer goes out after the completion is handed in, as a
        // worker's does.
        let peer = self.peer(call.conn);
        let open = !peer.closed;
        self.core.call_done(done);
        if open {
            answer.encode_into(&mut self.peer(call.conn).out);
        }
    }

    /// Carries out every action, as a driver does, until none is left.
    fn run(&mut self) {
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Send { conn, frame } => {
                    let p = self.peer(conn);
                    assert!(!p.closed, "a frame sent to {conn} after its close");
                    p.out.extend_from_slice(&frame);
                    if let Ok(Some((f, _))) = Frame::parse(&frame, u64::MAX) {
                        if let Ok(Message::PreforkResp { cookie, .. }) = f.message() {
                            self.cookies.push(cookie);
                        }
                    }
                }
                Action::Close { conn, .. } => {
                    let p = self.peer(conn);
                    assert!(!p.closed, "{conn} closed twice");
                    p.closed = true;
                }
                Action::Deliver {
                    conn,
                    reqno,
                    delivery,
                } => {
                    // Nobody waits: the simulated calls never copy in.
                    if delivery == Delivery::Refused {
                        self.core.unmatched_error(conn, reqno);
                    }
                }
                Action::SpawnGuest { conn, comm } => {
                    self.asking(conn);
                    self.answered(conn);
                    let res = if comm == b"refuse" {
                        Err(Errno::EAGAIN)
                    } else {
                        Ok(self.new_proc())
                    };
                    self.core.spawned(conn, res);
                }
                Action::Prefork { conn, parent } => {
                    self.asking(conn);
                    self.answered(conn);
                    assert!(self.alive(parent), "prefork of a dead process");
                    let child = self.new_proc();
                    self.core.preforked(conn, self.now, Ok(child));
                }
                Action::Attach { conn, prefork } => {
                    self.asking(conn);
                    self.answered(conn);
                    assert!(self.alive(prefork), "attach of a dead prefork");
                    // As the reference does: fork once more, release the prefork.
                    self.kill(prefork);
                    let child = self.new_proc();
                    self.core.attached(conn, Ok(child));
                }
                Action::Syscall(call) => {
                    self.handed += 1;
                    assert!(self.alive(call.proc), "a call of a dead process");
                    if call.sysnum % 2 == 0 {
                        self.complete(call);
                    } else {
                        self.blocked.push(call);
                    }
                }
                Action::LwpExit { proc, .. } => {
                    let (woken, still): (Vec<Call>, Vec<Call>) =
                        self.blocked.drain(..).partition(|c| c.proc == proc);
                    self.blocked = still;
                    for c in woken {
                        self.complete(c);
                    }
                }
                Action::ExecNotify { proc, .. } => {
                    assert!(self.alive(proc), "execnotify of a dead process");
                    assert!(
                        !self.blocked.iter().any(|c| c.proc == proc),
                        "execnotify with calls in flight"
                    );
                }
                Action::Release { proc } => {
                    assert!(self.kill(proc), "{proc:?} released twice or never made");
                }
            }
        }
    }

    fn input(&mut self, h: ConnHandle, bytes: &[u8]) {
        self.core.handle_bytes(h, bytes);
        self.run();
        self.claim_cookies();
    }

    /// A fork child for every cookie handed out: it claims (or, for an
    /// odd first byte, cancels) the prefork and makes a call.
    fn claim_cookies(&mut self) {
        while let Some(cookie) = self.cookies.pop() {
            let child = self.accept();
            let cancel = i32::from(cookie[0] & 1);
            let b = handshake_then_getpid(Handshake::Fork { cookie, cancel });
            self.core.handle_bytes(child, &b);
            self.run();
            self.close(child);
        }
    }

    /// The client's socket is gone.
    fn close(&mut self, h: ConnHandle) {
        self.peer(h).gone = true;
        self.core.closed(h, DropReason::PeerClosed);
        self.run();
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
            self.core.handle_timeout(self.now);
            self.run();
        }
    }

    /// A fresh guest's getpid is answered.
    fn probe(&mut self) {
        let h = self.accept();
        let b = handshake_then_getpid(Handshake::Guest { comm: b"probe\0" });
        self.input(h, &b);
        let out = std::mem::take(&mut self.peer(h).out);
        let mut dec = Deframer::new(u64::MAX);
        dec.push(&out[banner().len()..]);
        let mut answered = false;
        while let Ok(Some(f)) = dec.next_frame() {
            if let Ok(Message::SyscallResp { reqno: 2, .. }) = f.message() {
                answered = true;
            }
        }
        assert!(answered, "a fresh guest is no longer served");
        self.close(h);
    }
}

/// A client's first bytes: handshake `hs` (reqno 1), then getpid (reqno 2).
fn handshake_then_getpid(hs: Handshake<'_>) -> Vec<u8> {
    let mut b = Message::Handshake { reqno: 1, hs }.to_vec();
    Message::Syscall {
        reqno: 2,
        sysnum: Sysnum::GETPID.0,
        args: &[],
    }
    .encode_into(&mut b);
    b
}

/// One client session of arbitrary bytes against a fresh core (see the
/// [module docs](self)). Panics if any check fails.
pub fn fuzz_core_session(data: &[u8]) {
    let mut sim = Sim::new();
    let h = sim.accept();
    // Read boundaries from the input: one input in eight (first byte under
    // 32) arrives in reads of 1 to 32 bytes, so frames split across reads
    // take the deframer's other paths.
    let cut = match data.first() {
        Some(&b) if b < 32 => usize::from(b) + 1,
        _ => usize::MAX,
    };
    let mut rest = data;
    while !rest.is_empty() {
        let n = cut.min(rest.len());
        let (now, later) = rest.split_at(n);
        sim.input(h, now);
        rest = later;
    }
    let out = std::mem::take(&mut sim.peer(h).out);
    if let Err(e) = check_output(data, &out) {
        panic!(
            "bad core output: {e}\ninput: {}\noutput: {}",
            to_hex(data),
            to_hex(&out)
        );
    }
    sim.close(h);
    // Every deadline passes: unclaimed preforks and silent clients go.
    sim.advance(Duration::from_secs(3600));
    sim.probe();
    sim.core.shutdown();
    sim.run();
    // Every socket reported gone: every slot and process freed.
    let open: Vec<ConnHandle> = sim
        .peers
        .iter()
        .flatten()
        .filter(|(_, p)| !p.gone)
        .map(|(h, _)| *h)
        .collect();
    for h in open {
        sim.close(h);
    }
    let blocked = std::mem::take(&mut sim.blocked);
    assert!(blocked.is_empty(), "calls still blocked after shutdown");
    assert_eq!(sim.handed, sim.done, "every call done once");
    let st = sim.core.stats();
    assert_eq!(
        (st.connections, st.syscalls, st.preforks),
        (0, 0, 0),
        "the core holds nothing after shutdown"
    );
    let leaked = sim.procs.iter().filter(|&&alive| alive).count();
    assert_eq!(leaked, 0, "processes leaked");
}

fn check_output(input: &[u8], output: &[u8]) -> Result<(), String> {
    let banner = banner();
    if !output.starts_with(banner) {
        return Err("the output does not start with the banner".into());
    }
    let mut answers = Answers::new(input, CORE_MAX_FRAME);
    let mut rest = &output[banner.len()..];
    while !rest.is_empty() {
        let (frame, used) = match Frame::parse(rest, u64::MAX) {
            Ok(Some(x)) => x,
            Ok(None) => return Err("a frame cut short".into()),
            Err(e) => return Err(format!("unframeable bytes: {e}")),
        };
        let msg = frame
            .message()
            .map_err(|e| format!("a frame that does not decode: {e}"))?;
        if !answers.check(&msg, frame.header.typ(), &rest[..used])? {
            return Err(format!("the core sent {msg:?}"));
        }
        rest = &rest[used..];
    }
    answers.finish()
}
