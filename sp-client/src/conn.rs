//! One connection to a server, shared by every thread of the client.
//!
//! # Design: leader/follower, no receiver thread
//!
//! Each request the client originates (SYSCALL, HANDSHAKE, PREFORK) gets a
//! reqno and a *slot* in `State::slots` before its frame is written. The
//! requesting thread then waits for its slot to be filled. There is no
//! dedicated receiver thread: among the waiting threads exactly one is the
//! *reader* (`State::reader_busy`), and only it touches the [`Deframer`]
//! (behind its own mutex, uncontended by construction). The reader reads
//! frames and
//!
//! - files each response (RESP or ERROR) into the slot of its reqno and
//!   wakes the waiters (a response nobody waits for is dropped);
//! - serves each server request itself: COPYIN/COPYINSTR and ANONMMAP are
//!   answered on the spot, COPYOUT is stored, RAISE delivered — whichever
//!   call the request belongs to, so two calls whose copies interleave never
//!   wait on each other;
//! - stops being the reader as soon as its *own* slot is filled (frames
//!   still buffered stay in the shared deframer), clears `reader_busy` and
//!   wakes the waiters, one of which takes over.
//!
//! Waiters sleep on one condvar, woken on every delivery, hand-over and
//! death (`notify_all`: simple, and the number of threads in a call is
//! small). When no call is in flight nobody reads; the server only sends
//! requests from inside a call, so nothing is lost (a RAISE sent between
//! calls is seen at the next call).
//!
//! Frames are written whole under `write` with vectored writes (header and
//! fixed body, then the borrowed payload), so a large payload is not copied.
//! Reqnos are taken under the same lock, so they go out in order.
//!
//! Lock order: `write` before `state`; the reader holds the memory registry
//! (or a mapping) then `write` while answering a COPYIN, and never holds
//! `state` across anything else. No lock is held while waiting for the
//! server, except by the reader, which holds only the deframer.
//!
//! Known limit (shared with the C client): the reader answers a COPYIN
//! under the write lock. If another thread is blocked writing a large
//! request because the server is not reading, and the server is not reading
//! because it is itself blocked writing to us (a server with blocking
//! writes, like the C one), the two wait on each other. Our server's writes
//! do not block its reading.
//!
//! When the connection dies (EOF, I/O error, protocol error, or a copy we
//! refused in close mode) `State::dead` is set once, the socket is shut
//! down, every waiter wakes with an error, and later requests fail fast.

use crate::error::{CopyKind, DisconnectReason, Error, HandshakeError, ProtocolError, RefusedCopy};
use crate::transport::{self, Stream};
use crate::{host_signal, Options};
use parking_lot::{Condvar, Mutex, MutexGuard};
use sp_proto::ext::{Features, Hello, SegFrame, EXT_VERSION, PROBE_REQNO};
use sp_proto::{
    Banner, BannerError, BodyError, Class, Cookie, Deframer, Encoded, Errno, ErrorCode, Frame,
    Handshake, Message, MsgType, MAX_BANNER,
};
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::memory::Memory;

/// Counters of what the client refused or delivered.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) refused_copyin: AtomicU64,
    pub(crate) refused_copyout: AtomicU64,
    pub(crate) signals: AtomicU64,
    pub(crate) ignored_signals: AtomicU64,
}

/// What every connection of one client shares: options, memory, counters.
pub(crate) struct Shared {
    pub(crate) opts: Options,
    pub(crate) mem: Memory,
    pub(crate) counters: Counters,
}

/// A response, owned.
#[derive(Debug)]
pub(crate) enum Reply {
    Handshake(i32),
    Syscall {
        error: i32,
        retval: [i64; 2],
    },
    Prefork(Cookie),
    /// The answer to EXT_HELLO.
    ExtHello(Hello),
    Error(ErrorCode),
    /// A response of a type the client never asks for.
    Other(MsgType),
    /// A response whose body did not decode.
    Malformed(BodyError),
}

impl Reply {
    /// The error for a reply that is not the `expected` kind.
    pub(crate) fn unexpected(self, expected: MsgType) -> Error {
        match self {
            Reply::Error(code) => Error::Refused(code),
            Reply::Malformed(e) => Error::Protocol(ProtocolError::Body(e)),
            Reply::Handshake(_) => unexpected(expected, MsgType::HANDSHAKE),
            Reply::Syscall { .. } => unexpected(expected, MsgType::SYSCALL),
            Reply::Prefork(_) => unexpected(expected, MsgType::PREFORK),
            Reply::ExtHello(_) => unexpected(expected, MsgType::EXT_HELLO),
            Reply::Other(t) => unexpected(expected, t),
        }
    }
}

fn unexpected(expected: MsgType, got: MsgType) -> Error {
    Error::Protocol(ProtocolError::UnexpectedReply { expected, got })
}

enum Slot {
    Pending,
    Done(Reply),
}

struct State {
    next_reqno: u64,
    slots: HashMap<u64, Slot>,
    reader_busy: bool,
    dead: Option<DisconnectReason>,
}

/// How a connection starts.
pub(crate) enum Start<'a> {
    /// A fresh connection: banner, then HANDSHAKE GUEST; first reqno 1.
    Guest { name: &'a [u8] },
    /// A fork child's connection: banner, then HANDSHAKE FORK; first reqno 1.
    Fork { cookie: Cookie, cancel: bool },
    /// An inherited connection after exec: no banner, HANDSHAKE EXEC; reqno 0.
    Exec { name: &'a [u8] },
}

pub(crate) struct Conn {
    stream: Stream,
    shared: Arc<Shared>,
    write: Mutex<()>,
    state: Mutex<State>,
    cond: Condvar,
    reader: Mutex<Deframer>,
    /// What the server agreed to on EXT_HELLO (nothing: a stock server,
    /// or the probe not sent).
    ext: AtomicU32,
    /// The server's frame limit and segment budget per call, from its
    /// EXT_HELLO answer.
    ext_max_frame: AtomicU64,
    ext_max_segs: AtomicU64,
}

/// Writes a whole frame: head and payload with vectored writes, retrying
/// short writes.
fn write_frame(stream: &Stream, e: &Encoded<'_>) -> io::Result<()> {
    sp_transport::write_frame(stream, e.head(), e.payload)
}

/// The comm body: the name up to any NUL, then one NUL.
fn comm_body(name: &[u8]) -> Vec<u8> {
    let mut v = sp_proto::comm_name(name).to_vec();
    v.push(0);
    v
}

impl Conn {
    /// Sets up a connection on `stream`: banner (unless `Start::Exec`) and
    /// handshake. Returns the connection and the banner read, if any.
    pub(crate) fn open(
        stream: Stream,
        shared: Arc<Shared>,
        start: Start<'_>,
    ) -> Result<(Arc<Conn>, Option<Banner>), Error> {
        let mut dec = Deframer::new(shared.opts.max_frame);
        // A new connection waits for the banner and the handshake answer at
        // most the connect timeout; an inherited one (exec) may wait as long
        // as the server takes to finish the old image's calls.
        let timeout = match start {
            Start::Exec { .. } => None,
            _ => shared.opts.connect_timeout,
        };
        if timeout.is_some() {
            transport::set_read_timeout(&stream, timeout)?;
        }
        let banner = match start {
            Start::Exec { .. } => None,
            _ => Some(read_banner(&stream, &mut dec, timeout)?),
        };
        let first = if matches!(start, Start::Exec { .. }) {
            0
        } else {
            1
        };
        let conn = Arc::new(Conn {
            stream,
            shared,
            write: Mutex::new(()),
            state: Mutex::new(State {
                next_reqno: first,
                slots: HashMap::new(),
                reader_busy: false,
                dead: None,
            }),
            cond: Condvar::new(),
            reader: Mutex::new(dec),
            ext: AtomicU32::new(0),
            ext_max_frame: AtomicU64::new(0),
            ext_max_segs: AtomicU64::new(0),
        });
        let hs_body;
        let hs = match start {
            Start::Guest { name } => {
                hs_body = comm_body(name);
                Handshake::Guest { comm: &hs_body }
            }
            Start::Exec { name } => {
                hs_body = comm_body(name);
                Handshake::Exec { comm: &hs_body }
            }
            Start::Fork { cookie, cancel } => Handshake::Fork {
                cookie,
                cancel: i32::from(cancel),
            },
        };
        if let Handshake::Fork { cancel: 1, .. } = hs {
            // A cancel is not answered: the server drops the prefork and the
            // connection.
            let reqno = conn.state.lock().next_reqno;
            conn.send(&Message::Handshake { reqno, hs })
                .map_err(Error::Disconnected)?;
            return Ok((conn, banner));
        }
        let reply = conn
            .request(|reqno| Message::Handshake { reqno, hs })
            .map_err(|e| match (e, timeout) {
                (Error::Disconnected(DisconnectReason::Io { kind, .. }), Some(t))
                    if is_timeout(kind) =>
                {
                    Error::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "no answer to the handshake within {:?}",
                            transport::nonzero(t)
                        ),
                    ))
                }
                (e, _) => e,
            })?;
        if let Reply::Handshake(0) = reply {
            if conn.shared.opts.extensions {
                // Within the connect timeout still: a server that never
                // answers fails the connect rather than hanging it.
                conn.negotiate()?;
            }
        }
        if timeout.is_some() {
            transport::set_read_timeout(&conn.stream, None)?;
        }
        match reply {
            Reply::Handshake(0) => Ok((conn, banner)),
            Reply::Handshake(e) => Err(Error::Handshake(HandshakeError::Failed(Errno(e)))),
            Reply::Error(code) => Err(Error::Handshake(HandshakeError::Refused(code))),
            other => Err(other.unexpected(MsgType::HANDSHAKE)),
        }
    }

    /// The socket's descriptor.
    pub(crate) fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Why the connection ended, if it did.
    pub(crate) fn dead_reason(&self) -> Option<DisconnectReason> {
        self.state.lock().dead.clone()
    }

    /// Number of requests waiting for a response.
    pub(crate) fn in_flight(&self) -> usize {
        self.state.lock().slots.len()
    }

    /// Ends the connection for `reason` (first reason wins), waking everyone.
    pub(crate) fn kill(&self, reason: DisconnectReason) {
        let mut st = self.state.lock();
        self.kill_locked(&mut st, reason);
    }

    fn kill_locked(&self, st: &mut State, reason: DisconnectReason) {
        if st.dead.is_none() {
            tracing::debug!("connection ends: {reason}");
            st.dead = Some(reason);
            // Shutting down (not just closing) makes the server see the end
            // and wakes a reader blocked in read().
            let _ = self.stream.shutdown(Shutdown::Both);
        }
        self.cond.notify_all();
    }

    /// Sends EXT_HELLO and keeps what the server agreed to. A stock
    /// server answers ERROR MALFORMED_REQUEST: the extension stays off and
    /// every later frame is what a stock client sends.
    fn negotiate(&self) -> Result<(), Error> {
        let hello = Hello {
            version: EXT_VERSION,
            features: Features::ALL,
            max_frame: self.shared.opts.max_frame,
            max_segment_bytes: 0,
        };
        let reply = self.send_request(Some(PROBE_REQNO), |reqno| {
            let m = Message::ExtHello { reqno, hello };
            let e = m.encode();
            write_frame(&self.stream, &e)
        })?;
        match reply {
            Reply::ExtHello(theirs) => {
                let agreed = theirs.features.intersect(Features::ALL);
                tracing::debug!(
                    "server speaks extension version {} with {agreed:?}",
                    theirs.version
                );
                self.ext_max_frame
                    .store(theirs.max_frame, Ordering::Relaxed);
                self.ext_max_segs
                    .store(theirs.max_segment_bytes, Ordering::Relaxed);
                self.ext.store(agreed.0, Ordering::Release);
            }
            Reply::Error(code) => {
                tracing::debug!("server does not speak the extension ({code})");
            }
            other => {
                tracing::warn!("unexpected answer to EXT_HELLO ({other:?}); extension off");
            }
        }
        Ok(())
    }

    /// The extension features the server agreed to.
    pub(crate) fn features(&self) -> Features {
        Features(self.ext.load(Ordering::Acquire))
    }

    /// The segments a call may carry: its read-only buffers (`Buf::In`,
    /// strings), in order, as many as fit the server's limits; `None` if
    /// the extension is off or nothing would be carried.
    pub(crate) fn segments_for<'b>(
        &self,
        args_len: usize,
        bufs: &'b [crate::Buf<'_>],
    ) -> Option<Vec<(u64, &'b [u8])>> {
        if !self.features().contains(Features::SEGMENTS) {
            return None;
        }
        let max_frame = self.ext_max_frame.load(Ordering::Relaxed);
        let max_segs = self.ext_max_segs.load(Ordering::Relaxed);
        let mut frame = sp_proto::ext::seg_frame_len(args_len, []);
        let mut data = 0u64;
        let mut out = Vec::new();
        for b in bufs
            .iter()
            .filter(|b| b.readable() && !b.writable() && !b.is_empty())
        {
            let len = b.len() as u64;
            let more = len + sp_proto::ext::DESC_LEN as u64;
            if out.len() == sp_proto::ext::MAX_SEGMENTS
                || frame + more > max_frame
                || data + len > max_segs
            {
                continue;
            }
            frame += more;
            data += len;
            out.push((b.addr(), b.bytes()));
        }
        (!out.is_empty()).then_some(out)
    }

    /// Sends a SYSCALL_SEG (the segments' bytes written straight from the
    /// caller's buffers) and waits for the response.
    pub(crate) fn request_seg(
        &self,
        sysnum: u32,
        args: &[u8],
        segs: &[(u64, &[u8])],
    ) -> Result<Reply, Error> {
        self.send_request(None, |reqno| {
            let f = SegFrame::new(reqno, sysnum, args, segs)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let mut parts: Vec<&[u8]> = Vec::with_capacity(segs.len() + 2);
            parts.push(f.head());
            parts.extend(segs.iter().map(|s| s.1));
            parts.push(f.tail());
            sp_transport::write_parts(&self.stream, &parts)
        })
    }

    /// Sends a request built from its reqno and waits for the response.
    pub(crate) fn request<'m>(
        &self,
        build: impl FnOnce(u64) -> Message<'m>,
    ) -> Result<Reply, Error> {
        self.send_request(None, |reqno| {
            write_frame(&self.stream, &build(reqno).encode())
        })
    }

    /// Takes a reqno (the next one, or `fixed`), writes the request with
    /// `write` under the write lock, and waits for the response.
    fn send_request(
        &self,
        fixed: Option<u64>,
        write: impl FnOnce(u64) -> io::Result<()>,
    ) -> Result<Reply, Error> {
        let reqno = {
            let _w = self.write.lock();
            let reqno = {
                let mut st = self.state.lock();
                if let Some(r) = &st.dead {
                    return Err(Error::Disconnected(r.clone()));
                }
                let r = match fixed {
                    Some(r) => r,
                    None => {
                        let r = st.next_reqno;
                        st.next_reqno = r.wrapping_add(1);
                        r
                    }
                };
                st.slots.insert(r, Slot::Pending);
                r
            };
            if let Err(e) = write(reqno) {
                let mut st = self.state.lock();
                st.slots.remove(&reqno);
                let reason = DisconnectReason::from_io(&e);
                self.kill_locked(&mut st, reason.clone());
                return Err(Error::Disconnected(st.dead.clone().unwrap_or(reason)));
            }
            reqno
        };
        self.wait(reqno)
    }

    /// Waits for the response to `reqno`, taking the reader role when free.
    fn wait(&self, reqno: u64) -> Result<Reply, Error> {
        let mut st = self.state.lock();
        loop {
            if let Some(Slot::Done(_)) = st.slots.get(&reqno) {
                if let Some(Slot::Done(r)) = st.slots.remove(&reqno) {
                    return Ok(r);
                }
            }
            if let Some(reason) = &st.dead {
                let err = match reason {
                    DisconnectReason::CopyRefused(r) => Error::CopyRefused(*r),
                    other => Error::Disconnected(other.clone()),
                };
                st.slots.remove(&reqno);
                return Err(err);
            }
            if st.reader_busy {
                self.cond.wait(&mut st);
                continue;
            }
            st.reader_busy = true;
            let res = MutexGuard::unlocked(&mut st, || {
                let guard = ReaderGuard(self);
                let r = self.lead(reqno);
                std::mem::forget(guard);
                r
            });
            st.reader_busy = false;
            if let Err(reason) = res {
                self.kill_locked(&mut st, reason);
            }
            // Hand the reader role over (or wake everyone on death).
            self.cond.notify_all();
        }
    }

    /// The reader's loop: processes frames until `own`'s response is in.
    fn lead(&self, own: u64) -> Result<(), DisconnectReason> {
        let mut dec = self.reader.lock();
        loop {
            loop {
                let frame = match dec.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return Err(DisconnectReason::Protocol(e.into())),
                };
                if self.dispatch(frame, own)? == Some(own) {
                    return Ok(());
                }
            }
            let buf = dec.read_buf();
            let n = loop {
                match (&self.stream).read(buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(DisconnectReason::from_io(&e)),
                }
            };
            if n == 0 {
                return Err(DisconnectReason::Eof);
            }
            dec.commit(n);
            // A death decided elsewhere (a failed write, close()) ends the
            // reading too, even if the socket still delivers bytes.
            if let Some(r) = self.state.lock().dead.clone() {
                return Err(r);
            }
        }
    }

    /// Handles one frame; returns the reqno of a response it delivered.
    fn dispatch(&self, frame: Frame<'_>, own: u64) -> Result<Option<u64>, DisconnectReason> {
        let h = frame.header;
        match h.class() {
            Class::RESP | Class::ERROR => {
                let reply = match frame.message() {
                    Ok(Message::HandshakeResp { error, .. }) => Reply::Handshake(error),
                    Ok(Message::SyscallResp { error, retval, .. }) => {
                        Reply::Syscall { error, retval }
                    }
                    Ok(Message::PreforkResp { cookie, .. }) => Reply::Prefork(cookie),
                    Ok(Message::ExtHelloResp { hello, .. }) => Reply::ExtHello(hello),
                    Ok(Message::Error { code, .. }) => Reply::Error(code),
                    Ok(_) => Reply::Other(h.typ()),
                    Err(e) => Reply::Malformed(e),
                };
                let reqno = h.reqno();
                let mut st = self.state.lock();
                match st.slots.get_mut(&reqno) {
                    Some(slot @ Slot::Pending) => {
                        *slot = Slot::Done(reply);
                        if reqno != own {
                            self.cond.notify_all();
                        }
                        Ok(Some(reqno))
                    }
                    _ => {
                        tracing::debug!(
                            "dropping {} {} for reqno {reqno} nobody waits for",
                            h.class(),
                            h.typ()
                        );
                        Ok(None)
                    }
                }
            }
            Class::REQ => self.serve(frame).map(|()| None),
            other => {
                tracing::warn!("ignoring a frame of unknown class {other}");
                Ok(None)
            }
        }
    }

    /// Serves a request of the server's.
    fn serve(&self, frame: Frame<'_>) -> Result<(), DisconnectReason> {
        match frame.message() {
            Ok(Message::CopyinReq {
                reqno,
                string,
                len,
                addr,
            }) => self.serve_copyin(reqno, string, len, addr),
            Ok(Message::Copyout { addr, data, .. }) => {
                if !self.shared.mem.copyout(addr, data) {
                    self.shared
                        .counters
                        .refused_copyout
                        .fetch_add(1, Ordering::Relaxed);
                    let r = RefusedCopy {
                        kind: CopyKind::Copyout,
                        addr,
                        len: data.len() as u64,
                    };
                    tracing::warn!("dropped: {r}");
                }
                Ok(())
            }
            Ok(Message::AnonmmapReq { reqno, size }) => {
                let addr = self
                    .shared
                    .mem
                    .anonmmap(size, self.shared.opts.max_anonmmap);
                self.send(&Message::AnonmmapResp { reqno, addr })
            }
            Ok(Message::Raise { signo, .. }) => {
                self.raise(signo);
                Ok(())
            }
            Ok(m) => {
                tracing::warn!("ignoring a {} request from the server", frame.header.typ());
                let _ = m;
                Ok(())
            }
            Err(BodyError::UnknownType { class, typ }) => {
                tracing::warn!("ignoring a {class} frame of unknown type {typ}");
                Ok(())
            }
            Err(e) => Err(DisconnectReason::Protocol(ProtocolError::Body(e))),
        }
    }

    fn serve_copyin(
        &self,
        reqno: u64,
        string: bool,
        len: u64,
        addr: u64,
    ) -> Result<(), DisconnectReason> {
        let answered = self.shared.mem.copyin(addr, len, string, |bytes| {
            self.send(&Message::CopyinResp { reqno, data: bytes })
        });
        if let Some(r) = answered {
            return r;
        }
        self.shared
            .counters
            .refused_copyin
            .fetch_add(1, Ordering::Relaxed);
        let kind = if string {
            CopyKind::Copyinstr
        } else {
            CopyKind::Copyin
        };
        let refused = RefusedCopy { kind, addr, len };
        if self.shared.opts.server_accepts_copy_errors {
            tracing::warn!("refused: {refused}; answering with an ERROR frame");
            self.send(&Message::Error {
                reqno,
                code: ErrorCode::MALFORMED_REQUEST,
            })
        } else {
            tracing::warn!("refused: {refused}; closing the connection");
            Err(DisconnectReason::CopyRefused(refused))
        }
    }

    fn raise(&self, signo: u32) {
        self.shared.counters.signals.fetch_add(1, Ordering::Relaxed);
        if let Some(cb) = &self.shared.opts.on_signal {
            cb(signo);
            return;
        }
        match host_signal(signo) {
            Some(host) => {
                // SAFETY: raise(3) has no memory-safety preconditions; the
                // signal's disposition is the process's business, exactly as
                // with the C client.
                let rc = unsafe { libc::raise(host) };
                if rc != 0 {
                    tracing::warn!("raise({host}) failed: {}", io::Error::last_os_error());
                }
            }
            None => {
                self.shared
                    .counters
                    .ignored_signals
                    .fetch_add(1, Ordering::Relaxed);
                let sig = sp_proto::abi::Signal(signo);
                tracing::warn!("ignoring RAISE of NetBSD signal {sig}, which has no host number");
            }
        }
    }

    /// Writes one frame of ours (an answer) under the write lock.
    pub(crate) fn send(&self, msg: &Message<'_>) -> Result<(), DisconnectReason> {
        let _w = self.write.lock();
        write_frame(&self.stream, &msg.encode()).map_err(|e| DisconnectReason::from_io(&e))
    }
}

/// Clears the reader role if the reader unwinds, so the others are not left
/// waiting for a reader that is gone.
struct ReaderGuard<'a>(&'a Conn);

impl Drop for ReaderGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        st.reader_busy = false;
        let reason = DisconnectReason::Io {
            kind: io::ErrorKind::Other,
            message: "the reader panicked".into(),
        };
        self.0.kill_locked(&mut st, reason);
    }
}

/// Whether a socket error is SO_RCVTIMEO running out (EAGAIN on Linux).
fn is_timeout(kind: io::ErrorKind) -> bool {
    matches!(kind, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Reads the banner line without reading past its newline: at most 95
/// bytes. A server sends nothing else before our handshake, but any bytes
/// that did come after the newline are handed to the deframer, not lost.
///
/// With a `timeout` (already set on the socket), a read that waits longer
/// fails with [`io::ErrorKind::TimedOut`].
fn read_banner(
    stream: &Stream,
    dec: &mut Deframer,
    timeout: Option<Duration>,
) -> Result<Banner, Error> {
    let mut buf = [0u8; MAX_BANNER];
    let mut have = 0;
    loop {
        let n = match (&*stream).read(&mut buf[have..]) {
            Ok(0) => return Err(Error::Disconnected(DisconnectReason::Eof)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Io(match timeout {
                    Some(t) if is_timeout(e.kind()) => io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "no banner from the server within {:?}",
                            transport::nonzero(t)
                        ),
                    ),
                    _ => e,
                }))
            }
        };
        have += n;
        match Banner::line_len(&buf[..have]) {
            Ok(Some(len)) => {
                let banner = Banner::parse(&buf[..len])?;
                banner.check_supported()?;
                dec.push(&buf[len..have]);
                return Ok(banner);
            }
            Ok(None) => {}
            Err(BannerError::TooLong(_)) => {
                return Err(Error::Protocol(ProtocolError::BannerTooLong))
            }
            Err(e) => return Err(Error::Banner(e)),
        }
    }
}
