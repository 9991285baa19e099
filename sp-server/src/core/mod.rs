//! The server's protocol core, sans-IO: every connection's state machine
//! (banner, handshake, prefork, exec, system calls in flight, teardown)
//! and the server-wide tables (the prefork registry, handshake deadlines,
//! the client limit), with no socket, no thread and no clock.
//!
//! A driver feeds a [`Core`] what happened: a client accepted
//! ([`Core::accept`]), bytes received ([`Core::handle_bytes`]), a kernel
//! operation's result ([`Core::spawned`], [`Core::preforked`],
//! [`Core::attached`]), a call finished ([`Core::call_done`]), a socket
//! gone ([`Core::closed`]), the time ([`Core::handle_timeout`]). Each time
//! it then takes the core's [`Action`]s in order ([`Core::poll_action`]):
//! frames to send, connections to close, kernel operations and system
//! calls to run, client answers to hand to the calls waiting for them. It
//! sleeps until [`Core::poll_timeout`] at most. Time is whatever the driver
//! says it is: the tests drive a core on simulated time.
//!
//! The driver in this crate (`Server`) is one event loop over mio and a
//! pool of workers; a system call's own traffic with its client (copies,
//! the answer) goes over the socket from the worker, and only its
//! completion comes back to the core.
//!
//! ```
//! use sp_server::core::{Action, Core, PeerInfo};
//! use sp_server::{Config, ProcId};
//! use sp_proto::{Handshake, Message};
//! use std::time::Instant;
//!
//! let mut core = Core::new(&Config::default()).unwrap();
//! let now = Instant::now();
//! let conn = core.accept(now, &PeerInfo::default()).unwrap();
//! assert!(matches!(core.poll_action(), Some(Action::Send { .. }))); // the banner
//!
//! let hs = Message::Handshake { reqno: 1, hs: Handshake::Guest { comm: b"ls\0" } };
//! core.handle_bytes(conn, &hs.to_vec());
//! let Some(Action::SpawnGuest { comm, .. }) = core.poll_action() else { panic!() };
//! assert_eq!(comm, b"ls");
//! core.spawned(conn, Ok(ProcId(7)));
//! let Some(Action::Send { frame, .. }) = core.poll_action() else { panic!() };
//! assert_eq!(frame, Message::HandshakeResp { reqno: 1, error: 0 }.to_vec());
//! ```

mod preforks;
mod reason;
mod segments;
#[cfg(test)]
mod tests;

pub use reason::{Cause, DropReason, Misbehaviour};
pub use segments::Segments;

use crate::config::Config;
use crate::kernel::ProcId;
use preforks::{PreforkError, Registry};
use sp_proto::ext::{Features, Hello, EXT_VERSION, TRAILER_LEN};
use sp_proto::{
    comm_name, BannerError, Class, Deframer, Errno, ErrorCode, Frame, Handshake, Header, Message,
    MsgType, HEADER_LEN,
};
use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

/// Bodies longer than this are received detached: into a buffer of their
/// own, which a COPYIN answer or a SYSCALL_SEG hands on without a copy.
pub const DETACH_OVER: usize = 64 * 1024;

/// A connection of a [`Core`]: its slot and the slot's generation, so a
/// handle kept past its connection's end never reaches the next one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ConnHandle {
    index: u32,
    gen: u32,
}

impl ConnHandle {
    /// The slot: small, dense, reused after the connection is gone (a
    /// driver may index its own table by it).
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// A unique key over the core's life (slot and generation).
    fn key(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.index)
    }
}

impl fmt::Display for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.gen)
    }
}

/// What the driver knows of a new client, for the admission policy.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    /// Connected over a unix socket.
    pub unix: bool,
    /// The peer's uid (unix sockets), if the host told it.
    pub uid: Option<u32>,
    /// The peer's address (tcp).
    pub ip: Option<IpAddr>,
}

/// Why a client was not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The server holds `max_clients` connections already.
    #[error("at the limit of {0} clients")]
    AtLimit(usize),
    /// The peer's uid is not on the allowlist.
    #[error("uid {0} not allowed")]
    Uid(u32),
    /// A uid allowlist is set and the host did not tell the peer's uid.
    #[error("peer uid unknown")]
    UidUnknown,
    /// The peer's address is outside every allowed network.
    #[error("address {0} not allowed")]
    Address(IpAddr),
}

/// A system call to run: on a worker, or in place when the kernel says it
/// neither blocks nor waits for the client.
#[derive(Debug)]
pub struct Call {
    /// Whose call.
    pub conn: ConnHandle,
    /// The calling process.
    pub proc: ProcId,
    /// The request number its answer echoes.
    pub reqno: u64,
    /// The system call number.
    pub sysnum: u32,
    /// The argument block.
    pub args: Vec<u8>,
    /// The bytes of buffers it reads, if its request carried them
    /// (SYSCALL_SEG).
    pub segs: Option<Box<Segments>>,
    seg_bytes: usize,
}

impl Call {
    /// What [`Core::call_done`] takes back when the call has returned.
    pub fn done(&self) -> Done {
        Done {
            conn: self.conn,
            seg_bytes: self.seg_bytes,
        }
    }
}

/// A finished call, for [`Core::call_done`].
#[derive(Clone, Copy, Debug)]
pub struct Done {
    conn: ConnHandle,
    seg_bytes: usize,
}

/// A client's answer to one of the server's requests (COPYIN, COPYINSTR,
/// ANONMMAP), for the call waiting on it.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The bytes of a COPYIN or COPYINSTR.
    Copyin(Vec<u8>),
    /// The body of an ANONMMAP answer (the address).
    Anonmmap(Vec<u8>),
    /// A response of another type: the copy waiting fails.
    Mismatch,
    /// An ERROR frame (our extension): the copy waiting fails; if no copy
    /// waits, the driver reports it with [`Core::unmatched_error`].
    Refused,
}

/// Bytes the core sends: one of its own small frames (an answer, an
/// error, a cookie), held in place, or the banner, shared. No allocation
/// per frame; dereferences to the bytes.
#[derive(Clone)]
pub struct OutFrame(Out);

#[derive(Clone)]
enum Out {
    Inline { len: u8, bytes: [u8; INLINE_FRAME] },
    Shared(std::sync::Arc<[u8]>),
}

/// The largest frame the core sends: an EXT_HELLO answer (24 + 24 bytes).
const INLINE_FRAME: usize = 64;

impl OutFrame {
    fn encode(msg: &Message<'_>) -> OutFrame {
        let e = msg.encode();
        let (head, payload) = (e.head(), e.payload);
        let len = head.len() + payload.len();
        if len <= INLINE_FRAME {
            let mut bytes = [0u8; INLINE_FRAME];
            bytes[..head.len()].copy_from_slice(head);
            bytes[head.len()..len].copy_from_slice(payload);
            // `len` fits: INLINE_FRAME is below 256.
            return OutFrame(Out::Inline {
                len: len as u8,
                bytes,
            });
        }
        let mut v = Vec::with_capacity(len);
        v.extend_from_slice(head);
        v.extend_from_slice(payload);
        OutFrame(Out::Shared(v.into()))
    }
}

impl std::ops::Deref for OutFrame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Out::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Out::Shared(b) => b,
        }
    }
}

impl fmt::Debug for OutFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OutFrame({} bytes)", self.len())
    }
}

impl PartialEq<[u8]> for OutFrame {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<Vec<u8>> for OutFrame {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == **other
    }
}

/// What the driver does next, in order.
#[derive(Debug)]
pub enum Action {
    /// Write `frame` to the client (never wait for it: queue what the
    /// socket does not take).
    Send {
        /// To whom.
        conn: ConnHandle,
        /// A whole frame, or the banner.
        frame: OutFrame,
    },
    /// End the connection: no more input is handled, calls waiting for
    /// the client fail. With `flush`, what is queued (an ERROR answer)
    /// goes out first. The driver reports the socket gone with
    /// [`Core::closed`].
    Close {
        /// Which.
        conn: ConnHandle,
        /// Why.
        reason: DropReason,
        /// Send what is queued first.
        flush: bool,
    },
    /// Hand a client's answer to the call waiting for `reqno`.
    Deliver {
        /// Whose.
        conn: ConnHandle,
        /// The server request it answers.
        reqno: u64,
        /// The answer.
        delivery: Delivery,
    },
    /// Create a guest process named `comm`; report with [`Core::spawned`].
    SpawnGuest {
        /// For whom.
        conn: ConnHandle,
        /// The name, without NUL.
        comm: Vec<u8>,
    },
    /// Fork `parent` for a later fork handshake; report with
    /// [`Core::preforked`].
    Prefork {
        /// Whose.
        conn: ConnHandle,
        /// The process to fork.
        parent: ProcId,
    },
    /// Bind `prefork` to this connection; report with [`Core::attached`].
    Attach {
        /// The new connection.
        conn: ConnHandle,
        /// The claimed prefork.
        prefork: ProcId,
    },
    /// Run a system call; report with [`Core::call_done`] before its
    /// answer is written (so the slot is free once the client has it).
    Syscall(Call),
    /// Tell every thread of `proc` to exit (exec, or its client is gone).
    LwpExit {
        /// Whose.
        conn: ConnHandle,
        /// The process.
        proc: ProcId,
    },
    /// The exec drained: rename `proc` to `comm` and let it run again.
    /// The handshake answer follows as a `Send`.
    ExecNotify {
        /// Whose.
        conn: ConnHandle,
        /// The process.
        proc: ProcId,
        /// The new name, without NUL.
        comm: Vec<u8>,
    },
    /// Free a process: its client is gone and its calls have returned, or
    /// a prefork was never claimed.
    Release {
        /// The process.
        proc: ProcId,
    },
}

/// The core's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// Connections open (accepted and not yet reported closed).
    pub connections: usize,
    /// Unclaimed preforks.
    pub preforks: usize,
    /// Connections accepted since start.
    pub accepted: usize,
    /// Connections dropped or refused for misbehaviour or policy.
    pub dropped: usize,
    /// System calls handed out and not yet done.
    pub syscalls: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Waiting for the first handshake.
    New,
    /// Handshake done.
    Running,
    /// Ended: input is ignored; the slot is freed once the socket is gone
    /// and every call has returned.
    Dead,
}

/// A kernel operation asked of the driver; the connection's input waits
/// for its result.
#[derive(Clone, Copy, Debug)]
enum Pending {
    Guest { reqno: u64 },
    Attach { reqno: u64, prefork: ProcId },
    Prefork { reqno: u64 },
}

struct Conn {
    phase: Phase,
    deframer: Deframer,
    proc: Option<ProcId>,
    pending: Option<Pending>,
    /// Calls handed out and not done: the one in-flight count.
    inflight: usize,
    /// An exec waiting for the calls in flight to drain: (reqno, comm).
    exec: Option<(u64, Vec<u8>)>,
    /// Extension features agreed with this client's image.
    ext: Features,
    /// Segment bytes held by calls in flight.
    seg_bytes: usize,
    /// The driver reported the socket gone.
    socket_gone: bool,
    released: bool,
}

/// A slot of the connection table. The connection is boxed: the table
/// stays 16 bytes a slot, so growing it copies (and leaves behind, in the
/// allocator) little, and a slot left free holds no deframer.
struct Slot {
    gen: u32,
    conn: Option<Box<Conn>>,
}

/// A frame's body: borrowed from the read buffer, or received into a
/// buffer of its own that can be handed on without a copy.
enum Body<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Body<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Borrowed(b) => b,
            Body::Owned(v) => v,
        }
    }

    fn into_vec(self) -> Vec<u8> {
        match self {
            Body::Borrowed(b) => b.to_vec(),
            Body::Owned(v) => v,
        }
    }
}

/// The protocol state of a whole server. See the [module docs](self).
pub struct Core {
    config: Config,
    banner: OutFrame,
    slots: Vec<Slot>,
    free: Vec<u32>,
    open: usize,
    preforks: Registry,
    /// Handshake deadlines in accept order, so in deadline order.
    handshakes: VecDeque<(Instant, ConnHandle)>,
    actions: VecDeque<Action>,
    accepted: usize,
    dropped: usize,
    syscalls: usize,
    /// Argument buffers given back by [`Core::recycle`], reused for the
    /// next calls (no allocation per call run in place).
    spare: Vec<Vec<u8>>,
}

/// Most argument buffers kept for reuse, and the largest kept.
const SPARE_ARGS: usize = 8;
const SPARE_ARG_BYTES: usize = 256;

impl Core {
    /// A core with `config`'s limits; fails if its banner is malformed.
    pub fn new(config: &Config) -> Result<Core, BannerError> {
        Ok(Core {
            banner: OutFrame(Out::Shared(config.banner.format()?.into())),
            config: config.clone(),
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            preforks: Registry::new(config.prefork_cap, config.prefork_ttl),
            handshakes: VecDeque::new(),
            actions: VecDeque::new(),
            accepted: 0,
            dropped: 0,
            syscalls: 0,
            spare: Vec::new(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Core::handle_timeout`] must be called next: the earliest
    /// handshake deadline or prefork expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let hs = self.handshakes.front().map(|h| h.0);
        match (hs, self.preforks.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The counters now.
    pub fn stats(&self) -> CoreStats {
        CoreStats {
            connections: self.open,
            preforks: self.preforks.len(),
            accepted: self.accepted,
            dropped: self.dropped,
            syscalls: self.syscalls,
        }
    }

    /// Calls of `conn` handed out and not done (0 for a handle gone).
    pub fn inflight(&self, conn: ConnHandle) -> usize {
        self.get(conn).map_or(0, |c| c.inflight)
    }

    /// Whether `conn` is a connection of this core still taking input.
    pub fn is_live(&self, conn: ConnHandle) -> bool {
        self.get(conn).is_some_and(|c| c.phase != Phase::Dead)
    }

    fn get(&self, h: ConnHandle) -> Option<&Conn> {
        let slot = self.slots.get(h.index())?;
        (slot.gen == h.gen).then_some(())?;
        slot.conn.as_deref()
    }

    fn get_mut(&mut self, h: ConnHandle) -> Option<&mut Conn> {
        let slot = self.slots.get_mut(h.index())?;
        (slot.gen == h.gen).then_some(())?;
        slot.conn.as_deref_mut()
    }

    fn send(&mut self, conn: ConnHandle, msg: &Message<'_>) {
        let frame = OutFrame::encode(msg);
        self.actions.push_back(Action::Send { conn, frame });
    }

    fn error(&mut self, conn: ConnHandle, reqno: u64, code: ErrorCode) {
        self.send(conn, &Message::Error { reqno, code });
    }

    // ---- admission and teardown -------------------------------------

    /// Admits a new client (or says why not): its banner is the first
    /// action, and its handshake deadline starts now.
    pub fn accept(&mut self, now: Instant, peer: &PeerInfo) -> Result<ConnHandle, Refusal> {
        let refusal = self.admission(peer);
        if let Err(r) = refusal {
            self.dropped += 1;
            return Err(r);
        }
        let conn = Conn {
            phase: Phase::New,
            deframer: Deframer::new(self.config.max_frame).with_detach(DETACH_OVER),
            proc: None,
            pending: None,
            inflight: 0,
            exec: None,
            ext: Features::NONE,
            seg_bytes: 0,
            socket_gone: false,
            released: false,
        };
        let h = match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.conn = Some(Box::new(conn));
                ConnHandle {
                    index: i,
                    gen: slot.gen,
                }
            }
            None => {
                let index = u32::try_from(self.slots.len()).map_err(|_| {
                    self.dropped += 1;
                    Refusal::AtLimit(self.slots.len())
                })?;
                self.slots.push(Slot {
                    gen: 0,
                    conn: Some(Box::new(conn)),
                });
                ConnHandle { index, gen: 0 }
            }
        };
        self.open += 1;
        self.accepted += 1;
        if let Some(limit) = self.config.handshake_timeout {
            self.handshakes.push_back((now + limit, h));
        }
        let banner = self.banner.clone();
        self.actions.push_back(Action::Send {
            conn: h,
            frame: banner,
        });
        Ok(h)
    }

    fn admission(&self, peer: &PeerInfo) -> Result<(), Refusal> {
        let cfg = &self.config;
        if self.open >= cfg.max_clients {
            return Err(Refusal::AtLimit(cfg.max_clients));
        }
        if let (Some(uids), true) = (&cfg.allowed_uids, peer.unix) {
            match peer.uid {
                Some(uid) if uids.contains(&uid) => {}
                Some(uid) => return Err(Refusal::Uid(uid)),
                None => return Err(Refusal::UidUnknown),
            }
        }
        if let (Some(nets), Some(ip)) = (&cfg.allowed_nets, peer.ip) {
            if !nets.iter().any(|n| n.contains(ip)) {
                return Err(Refusal::Address(ip));
            }
        }
        Ok(())
    }

    /// The driver's socket for `conn` is gone (the peer closed, a socket
    /// call failed, or after a [`Action::Close`]). Ends the connection if
    /// it was not ended already; its slot is freed once its calls return.
    pub fn closed(&mut self, conn: ConnHandle, reason: DropReason) {
        let Some(c) = self.get_mut(conn) else { return };
        if c.socket_gone {
            return;
        }
        c.socket_gone = true;
        self.open -= 1;
        if self.get(conn).is_some_and(|c| c.phase != Phase::Dead) {
            self.end(conn, reason, false);
        }
        self.settle(conn);
    }

    /// Ends `conn`: its threads told to exit, the driver told to close.
    fn end(&mut self, conn: ConnHandle, reason: DropReason, flush: bool) {
        let Some(c) = self.get_mut(conn) else { return };
        if c.phase == Phase::Dead {
            return;
        }
        c.phase = Phase::Dead;
        c.exec = None;
        c.deframer = Deframer::new(0);
        let proc = c.proc;
        if reason.is_drop() {
            self.dropped += 1;
        }
        if let Some(proc) = proc {
            self.actions.push_back(Action::LwpExit { conn, proc });
        }
        self.actions.push_back(Action::Close {
            conn,
            reason,
            flush,
        });
        // Nothing in flight: the process goes at once.
        self.settle(conn);
    }

    /// Answers ERROR `code` and ends the connection once that is written.
    fn error_close(&mut self, conn: ConnHandle, reqno: u64, code: ErrorCode, reason: DropReason) {
        self.error(conn, reqno, code);
        self.end(conn, reason, true);
    }

    /// Finishes what waits on a connection with no call in flight: an
    /// exec, the release of a dead connection's process, its slot.
    fn settle(&mut self, conn: ConnHandle) {
        let Some(c) = self.get_mut(conn) else { return };
        if c.inflight > 0 || c.pending.is_some() {
            return;
        }
        if c.phase == Phase::Dead {
            if let (Some(proc), false) = (c.proc, c.released) {
                c.released = true;
                self.actions.push_back(Action::Release { proc });
            }
            if self.get(conn).is_some_and(|c| c.socket_gone) {
                let slot = &mut self.slots[conn.index()];
                slot.conn = None;
                slot.gen = slot.gen.wrapping_add(1);
                self.free.push(conn.index);
            }
            return;
        }
        let (Some(proc), Some((reqno, comm))) = (c.proc, c.exec.take()) else {
            return;
        };
        self.actions
            .push_back(Action::ExecNotify { conn, proc, comm });
        self.send(conn, &Message::HandshakeResp { reqno, error: 0 });
    }

    /// Handshake deadlines and prefork expiry at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, h)) = self.handshakes.front() {
            if deadline > now {
                break;
            }
            self.handshakes.pop_front();
            if self.get(h).is_some_and(|c| c.phase == Phase::New) {
                let limit = self.config.handshake_timeout.unwrap_or_default();
                self.end(h, DropReason::HandshakeTimeout(limit), false);
            }
        }
        for proc in self.preforks.expire(now) {
            tracing::info!("an unclaimed prefork expired");
            self.actions.push_back(Action::Release { proc });
        }
    }

    /// Ends every connection and releases every unclaimed prefork.
    pub fn shutdown(&mut self) {
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if slot.conn.is_some() {
                let h = ConnHandle {
                    index: i as u32,
                    gen: slot.gen,
                };
                self.end(h, DropReason::Shutdown, false);
            }
        }
        for proc in self.preforks.drain() {
            self.actions.push_back(Action::Release { proc });
        }
        self.handshakes.clear();
    }

    // ---- kernel results ----------------------------------------------

    /// The result of an [`Action::SpawnGuest`].
    pub fn spawned(&mut self, conn: ConnHandle, res: Result<ProcId, Errno>) {
        let Some(Pending::Guest { reqno }) = self.take_pending(conn) else {
            if let Ok(p) = res {
                self.actions.push_back(Action::Release { proc: p });
            }
            return;
        };
        self.joined(conn, reqno, res);
    }

    /// The result of an [`Action::Attach`].
    pub fn attached(&mut self, conn: ConnHandle, res: Result<ProcId, Errno>) {
        let Some(Pending::Attach { reqno, prefork }) = self.take_pending(conn) else {
            if let Ok(p) = res {
                self.actions.push_back(Action::Release { proc: p });
            }
            return;
        };
        if res.is_err() {
            // Out of the registry, so no time-to-live reaches it.
            self.actions.push_back(Action::Release { proc: prefork });
        }
        self.joined(conn, reqno, res);
    }

    fn joined(&mut self, conn: ConnHandle, reqno: u64, res: Result<ProcId, Errno>) {
        let Some(c) = self.get_mut(conn) else { return };
        match res {
            Ok(proc) => {
                c.proc = Some(proc);
                if c.phase == Phase::Dead {
                    // Ended meanwhile: the process is released below.
                    return self.settle(conn);
                }
                c.phase = Phase::Running;
                self.send(conn, &Message::HandshakeResp { reqno, error: 0 });
                self.drain_frames(conn);
            }
            Err(e) => {
                if c.phase == Phase::Dead {
                    return self.settle(conn);
                }
                self.error_close(
                    conn,
                    reqno,
                    ErrorCode::RFORK_FAILED,
                    DropReason::KernelRefused(e),
                );
                self.settle(conn);
            }
        }
    }

    /// The result of an [`Action::Prefork`].
    pub fn preforked(&mut self, conn: ConnHandle, now: Instant, res: Result<ProcId, Errno>) {
        let pending = self.take_pending(conn);
        let Some(Pending::Prefork { reqno }) = pending else {
            if let Ok(p) = res {
                self.actions.push_back(Action::Release { proc: p });
            }
            return;
        };
        let dead = !self.is_live(conn);
        match res {
            Ok(child) if dead => self.actions.push_back(Action::Release { proc: child }),
            Ok(child) => match self.preforks.insert(conn.key(), child, now) {
                Ok(cookie) => self.send(conn, &Message::PreforkResp { reqno, cookie }),
                Err(e) => {
                    self.actions.push_back(Action::Release { proc: child });
                    let code = match e {
                        PreforkError::Cap => ErrorCode::TRYAGAIN,
                        PreforkError::Random => ErrorCode::NOMEM,
                    };
                    self.error(conn, reqno, code);
                }
            },
            Err(e) => {
                tracing::warn!("{conn}: kernel prefork failed: {e}");
                if !dead {
                    self.error(conn, reqno, ErrorCode::RFORK_FAILED);
                }
            }
        }
        self.settle(conn);
        self.drain_frames(conn);
    }

    fn take_pending(&mut self, conn: ConnHandle) -> Option<Pending> {
        self.get_mut(conn)?.pending.take()
    }

    /// A call handed out by [`Action::Syscall`] has returned (call before
    /// its answer is written).
    pub fn call_done(&mut self, done: Done) {
        let conn = done.conn;
        let Some(c) = self.get_mut(conn) else { return };
        c.inflight -= 1;
        c.seg_bytes -= done.seg_bytes;
        self.syscalls -= 1;
        self.settle(conn);
    }

    /// Gives a finished call's argument buffer back for reuse (a driver
    /// that runs calls in place saves an allocation per call).
    pub fn recycle(&mut self, mut args: Vec<u8>) {
        if self.spare.len() < SPARE_ARGS && args.capacity() <= SPARE_ARG_BYTES {
            args.clear();
            self.spare.push(args);
        }
    }

    /// An ERROR frame that answered no waiting copy (the driver found
    /// nobody waiting for [`Delivery::Refused`]): answered
    /// MALFORMED_REQUEST, as any stray request is.
    pub fn unmatched_error(&mut self, conn: ConnHandle, reqno: u64) {
        if self.is_live(conn) {
            self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST);
        }
    }

    // ---- input ---------------------------------------------------------

    /// Bytes received on `conn`: every whole frame is handled (in place,
    /// when nothing was buffered), the rest kept for later. Ignored once
    /// the connection has ended.
    pub fn handle_bytes(&mut self, conn: ConnHandle, mut bytes: &[u8]) {
        let Some(c) = self.get(conn) else { return };
        if c.phase == Phase::Dead {
            return;
        }
        if c.deframer.buffered() == 0 && !c.deframer.is_detached() {
            let max = c.deframer.max_frame();
            while self.takes_input(conn) {
                match Frame::parse(bytes, max) {
                    Ok(Some((frame, used))) => {
                        self.frame(conn, &frame.header, Body::Borrowed(frame.body));
                        bytes = &bytes[used..];
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let reason = DropReason::Misbehaved(Misbehaviour::Frame(e));
                        return self.end(conn, reason, false);
                    }
                }
            }
        }
        match self.get_mut(conn) {
            // Every byte handled in place: the common case, done.
            Some(c) if bytes.is_empty() && c.deframer.buffered() == 0 => {}
            Some(c) if c.phase != Phase::Dead => {
                c.deframer.push(bytes);
                self.drain_frames(conn);
            }
            _ => {}
        }
    }

    /// The connection's deframer, for a driver that reads straight into
    /// it (a frame's tail, a large body, see `Deframer::read_buf` and
    /// `Deframer::detached_body`); `None` once the connection has ended.
    /// Call [`Core::handle_buffered`] after.
    pub fn deframer(&mut self, conn: ConnHandle) -> Option<&mut Deframer> {
        let c = self.get_mut(conn)?;
        (c.phase != Phase::Dead).then_some(&mut c.deframer)
    }

    /// Handles the whole frames a driver read into [`Core::deframer`].
    pub fn handle_buffered(&mut self, conn: ConnHandle) {
        self.drain_frames(conn);
    }

    /// Whether `conn` handles input now: live, and not waiting for a
    /// kernel operation's result.
    fn takes_input(&self, conn: ConnHandle) -> bool {
        self.get(conn)
            .is_some_and(|c| c.phase != Phase::Dead && c.pending.is_none())
    }

    fn drain_frames(&mut self, conn: ConnHandle) {
        while self.takes_input(conn) {
            let Some(c) = self.get_mut(conn) else { return };
            if let Some((header, body)) = c.deframer.take_detached() {
                self.frame(conn, &header, Body::Owned(body));
                continue;
            }
            // The frame borrows the deframer, which lives in the table the
            // handler changes: lend it out for the call.
            let mut deframer = std::mem::replace(&mut c.deframer, Deframer::new(0));
            let res = match deframer.next_frame() {
                Ok(Some(f)) => {
                    let header = f.header;
                    self.frame(conn, &header, Body::Borrowed(f.body));
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(e) => Err(e),
            };
            match self.get_mut(conn) {
                Some(c) if c.phase != Phase::Dead => c.deframer = deframer,
                _ => return,
            }
            match res {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    let reason = DropReason::Misbehaved(Misbehaviour::Frame(e));
                    return self.end(conn, reason, false);
                }
            }
        }
    }

    fn frame(&mut self, conn: ConnHandle, h: &Header, body: Body<'_>) {
        let reqno = h.reqno();
        match h.class() {
            Class::RESP => {
                let delivery = match h.typ() {
                    MsgType::COPYIN | MsgType::COPYINSTR => Delivery::Copyin(body.into_vec()),
                    MsgType::ANONMMAP => Delivery::Anonmmap(body.into_vec()),
                    _ => Delivery::Mismatch,
                };
                self.actions.push_back(Action::Deliver {
                    conn,
                    reqno,
                    delivery,
                });
            }
            Class::ERROR => self.actions.push_back(Action::Deliver {
                conn,
                reqno,
                delivery: Delivery::Refused,
            }),
            Class::REQ if self.get(conn).is_some_and(|c| c.phase == Phase::New) => {
                self.first_request(conn, h, body.bytes())
            }
            Class::REQ => self.request(conn, h, body),
            // The class is checked before the handshake state.
            _ => self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST),
        }
    }

    fn first_request(&mut self, conn: ConnHandle, h: &Header, body: &[u8]) {
        let reqno = h.reqno();
        if h.typ() != MsgType::HANDSHAKE {
            let m = Misbehaviour::BeforeHandshake(h.typ());
            return self.error_close(conn, reqno, ErrorCode::AUTH, DropReason::Misbehaved(m));
        }
        let hs = match Message::decode(h, body) {
            Ok(Message::Handshake { hs, .. }) => hs,
            other => return self.malformed_handshake(conn, reqno, other.err()),
        };
        match hs {
            Handshake::Guest { comm } => {
                let comm = comm_name(comm).to_vec();
                self.set_pending(conn, Pending::Guest { reqno });
                self.actions.push_back(Action::SpawnGuest { conn, comm });
            }
            Handshake::Fork { cookie, cancel } => {
                let Some(prefork) = self.preforks.take(&cookie) else {
                    let m = Misbehaviour::UnknownCookie;
                    let reason = DropReason::Misbehaved(m);
                    return self.error_close(conn, reqno, ErrorCode::INVALID_PREFORK, reason);
                };
                if cancel != 0 {
                    tracing::info!("{conn}: prefork cancelled");
                    self.actions.push_back(Action::Release { proc: prefork });
                    return self.end(conn, DropReason::PreforkCancelled, false);
                }
                self.set_pending(conn, Pending::Attach { reqno, prefork });
                self.actions.push_back(Action::Attach { conn, prefork });
            }
            other => {
                let m = Misbehaviour::WrongHandshake(other.kind());
                self.error_close(conn, reqno, ErrorCode::AUTH, DropReason::Misbehaved(m))
            }
        }
    }

    fn malformed_handshake(
        &mut self,
        conn: ConnHandle,
        reqno: u64,
        e: Option<sp_proto::BodyError>,
    ) {
        let m = match e {
            Some(e) => Misbehaviour::BadHandshake(e),
            None => Misbehaviour::NotAHandshake,
        };
        let reason = DropReason::Misbehaved(m);
        self.error_close(conn, reqno, ErrorCode::MALFORMED_REQUEST, reason)
    }

    fn set_pending(&mut self, conn: ConnHandle, p: Pending) {
        if let Some(c) = self.get_mut(conn) {
            c.pending = Some(p);
        }
    }

    fn request(&mut self, conn: ConnHandle, h: &Header, body: Body<'_>) {
        let reqno = h.reqno();
        let Some(c) = self.get(conn) else { return };
        let (Some(proc), in_exec) = (c.proc, c.exec.is_some()) else {
            return;
        };
        match h.typ() {
            MsgType::SYSCALL => {
                let args = match body {
                    Body::Borrowed(b) => {
                        let mut v = self.spare.pop().unwrap_or_default();
                        v.extend_from_slice(b);
                        v
                    }
                    Body::Owned(v) => v,
                };
                self.dispatch(conn, proc, reqno, h.sysnum(), args, None, 0);
            }
            MsgType::SYSCALL_SEG => self.syscall_seg(conn, proc, h, body),
            MsgType::HANDSHAKE => {
                let comm = match Message::decode(h, body.bytes()) {
                    Ok(Message::Handshake {
                        hs: Handshake::Exec { comm },
                        ..
                    }) => comm_name(comm).to_vec(),
                    Ok(Message::Handshake { hs, .. }) => {
                        let m = Misbehaviour::WrongHandshake(hs.kind());
                        let code = ErrorCode::MALFORMED_REQUEST;
                        return self.error_close(conn, reqno, code, DropReason::Misbehaved(m));
                    }
                    other => return self.malformed_handshake(conn, reqno, other.err()),
                };
                if in_exec {
                    let m = Misbehaviour::ExecDuringExec;
                    let reason = DropReason::Misbehaved(m);
                    return self.error_close(conn, reqno, ErrorCode::INEXEC, reason);
                }
                let Some(c) = self.get_mut(conn) else { return };
                c.exec = Some((reqno, comm));
                // The new image may be a stock client: it asks again if it
                // speaks the extension.
                c.ext = Features::NONE;
                // Threads exit; the last call to return finishes the exec.
                self.actions.push_back(Action::LwpExit { conn, proc });
                self.settle(conn);
            }
            // PREFORK has no body; the reference never looks, we refuse.
            MsgType::PREFORK if !body.bytes().is_empty() => {
                self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST)
            }
            MsgType::PREFORK if in_exec => {
                let reason = DropReason::Misbehaved(Misbehaviour::PreforkDuringExec);
                self.error_close(conn, reqno, ErrorCode::INEXEC, reason)
            }
            MsgType::PREFORK => self.prefork(conn, proc, reqno),
            MsgType::EXT_HELLO if self.config.extensions => self.ext_hello(conn, reqno, body),
            _ => self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST),
        }
    }

    fn prefork(&mut self, conn: ConnHandle, parent: ProcId, reqno: u64) {
        if !self.preforks.has_room(conn.key()) {
            tracing::warn!(
                "{conn}: prefork refused, {} unclaimed already",
                self.config.prefork_cap
            );
            return self.error(conn, reqno, ErrorCode::TRYAGAIN);
        }
        if self.preforks.len() >= self.config.prefork_total_cap {
            tracing::warn!(
                "{conn}: prefork refused, {} unclaimed on the server",
                self.config.prefork_total_cap
            );
            return self.error(conn, reqno, ErrorCode::TRYAGAIN);
        }
        self.set_pending(conn, Pending::Prefork { reqno });
        self.actions.push_back(Action::Prefork { conn, parent });
    }

    /// Most segment bytes one SYSCALL_SEG may carry: what the per-client
    /// budget and the frame limit leave.
    fn max_segment_bytes(&self) -> u64 {
        let frame_room = self
            .config
            .max_frame
            .saturating_sub((HEADER_LEN + TRAILER_LEN) as u64);
        frame_room.min(self.config.segment_bytes_per_client as u64)
    }

    /// EXT_HELLO: the features both sides speak, and our limits.
    fn ext_hello(&mut self, conn: ConnHandle, reqno: u64, body: Body<'_>) {
        let Some(theirs) = Hello::from_bytes(body.bytes()) else {
            return self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST);
        };
        let ours = if self.config.segment_bytes_per_client > 0 {
            Features::ALL
        } else {
            Features::COPY_ERRORS
        };
        let agreed = ours.intersect(theirs.features);
        if let Some(c) = self.get_mut(conn) {
            c.ext = agreed;
        }
        let hello = Hello {
            version: EXT_VERSION,
            features: agreed,
            max_frame: self.config.max_frame,
            max_segment_bytes: self.max_segment_bytes(),
        };
        self.send(conn, &Message::ExtHelloResp { reqno, hello });
    }

    /// SYSCALL_SEG: refused as an unknown type (as a stock server refuses
    /// it) unless this client's image agreed on segments.
    fn syscall_seg(&mut self, conn: ConnHandle, proc: ProcId, h: &Header, body: Body<'_>) {
        let reqno = h.reqno();
        let budget = self.config.segment_bytes_per_client;
        let Some(c) = self.get_mut(conn) else { return };
        if !c.ext.contains(Features::SEGMENTS) {
            return self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST);
        }
        let size = body.bytes().len();
        if c.seg_bytes + size > budget {
            return self.error(conn, reqno, ErrorCode::TRYAGAIN);
        }
        match Segments::split(body.into_vec()) {
            Ok((args, segs)) => {
                let segs = Some(Box::new(segs));
                self.dispatch(conn, proc, reqno, h.sysnum(), args, segs, size)
            }
            Err(e) => {
                tracing::debug!("{conn}: malformed SYSCALL_SEG: {e}");
                self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &mut self,
        conn: ConnHandle,
        proc: ProcId,
        reqno: u64,
        sysnum: u32,
        args: Vec<u8>,
        segs: Option<Box<Segments>>,
        seg_bytes: usize,
    ) {
        let cap = self.config.max_inflight_per_client;
        let Some(c) = self.get_mut(conn) else { return };
        if c.inflight >= cap {
            tracing::warn!("{conn}: {cap} calls in flight already; answering TRYAGAIN");
            return self.error(conn, reqno, ErrorCode::TRYAGAIN);
        }
        c.inflight += 1;
        c.seg_bytes += seg_bytes;
        self.syscalls += 1;
        self.actions.push_back(Action::Syscall(Call {
            conn,
            proc,
            reqno,
            sysnum,
            args,
            segs,
            seg_bytes,
        }));
    }
}
