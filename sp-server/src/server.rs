//! The event loop: accepts clients, reads and frames their bytes, answers
//! handshakes and preforks in place, and hands system calls to the pool.

use crate::config::Config;
use crate::conn::{after_drain, Body, Conn, ConnPort, InlinePort, WaitKind};
use crate::kernel::{Kernel, Port};
use crate::pool::{Pool, PoolStats};
use crate::prefork::{PreforkError, Registry as Preforks};
use crate::segments::Segments;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;
use sp_proto::ext::{Features, Hello, EXT_VERSION, TRAILER_LEN};
use sp_proto::{
    comm_name, BodyError, Class, Deframer, ErrorCode, Frame, Handshake, Header, Message, MsgType,
    HEADER_LEN,
};
use sp_transport::{Endpoint, ListenOptions, Listener, Role, Stream};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Size of the loop's scratch read buffer. Frames with a longer body are
/// received detached: into a buffer of their own, which a COPYIN answer or
/// a SYSCALL_SEG hands on to its call without a copy.
const SCRATCH: usize = 64 * 1024;
/// Bytes read from one connection per loop turn before others get a go.
const READ_BUDGET: usize = 256 * 1024;

/// Why a server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The URL does not parse.
    #[error("bad URL: {0}")]
    Url(#[from] sp_transport::UrlError),
    /// The socket could not be bound.
    #[error("cannot listen: {0}")]
    Listen(#[from] sp_transport::ListenError),
    /// The configured banner is malformed.
    #[error("bad banner: {0}")]
    Banner(#[from] sp_proto::BannerError),
    /// The event loop failed.
    #[error("event loop: {0}")]
    Io(#[from] io::Error),
}

/// A snapshot of the server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections open.
    pub connections: usize,
    /// Unclaimed preforks.
    pub preforks: usize,
    /// System calls in flight.
    pub syscalls: usize,
    /// Connections accepted since start.
    pub accepted: usize,
    /// Connections dropped for misbehaviour (bad frames, full send queue,
    /// refused peers, over the client limit).
    pub dropped: usize,
    /// The worker pool.
    pub workers: PoolStats,
}

struct Shared {
    stop: AtomicBool,
    /// Connected streams handed in by [`ServerHandle::adopt`].
    adopted: parking_lot::Mutex<Vec<Stream>>,
    waker: Waker,
    pool: Pool,
    connections: AtomicUsize,
    preforks: AtomicUsize,
    syscalls: Arc<AtomicUsize>,
    accepted: AtomicUsize,
    dropped: AtomicUsize,
}

/// A handle to a running server: stop it, read its counters.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl ServerHandle {
    /// Asks the server to stop: it stops accepting, ends every connection,
    /// releases every process, removes its unix socket and returns from
    /// [`Server::run`].
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.shared.waker.wake();
    }

    /// Serves an already connected stream as if it had been accepted
    /// (banner first). With `UnixStream::pair()` this gives an in-memory
    /// link for tests and fuzzing.
    pub fn adopt(&self, stream: Stream) {
        self.shared.adopted.lock().push(stream);
        let _ = self.shared.waker.wake();
    }

    /// The server's counters now.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            connections: s.connections.load(Ordering::Relaxed),
            preforks: s.preforks.load(Ordering::Relaxed),
            syscalls: s.syscalls.load(Ordering::Relaxed),
            accepted: s.accepted.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            workers: s.pool.stats(),
        }
    }
}

/// Phase of a connection, as the loop sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Waiting for the first handshake.
    New,
    /// Handshake done.
    Running,
    /// An error answer was sent; input is ignored until the socket closes.
    Closing,
}

struct LoopConn {
    conn: Arc<Conn>,
    deframer: Deframer,
    phase: Phase,
}

/// What the loop does with a connection after a frame.
enum Next {
    Continue,
    /// Stop reading: an answer-and-close is under way.
    Closing,
}

/// Everything the frame handlers need besides the connection table.
struct Ctx {
    kernel: Arc<dyn Kernel>,
    config: Config,
    shared: Arc<Shared>,
    preforks: Preforks,
}

/// A sysproxy server bound to its socket, ready to [`run`](Server::run).
pub struct Server {
    listener: Listener,
    endpoint: Endpoint,
    poll: Poll,
    registry: Arc<Registry>,
    conns: Slab<LoopConn>,
    banner: Vec<u8>,
    ctx: Ctx,
    ready: Vec<usize>,
    /// Where small frames are read, for every connection in turn.
    scratch: Box<[u8]>,
    /// Connections waiting for their handshake, in accept order (so in
    /// deadline order): (deadline, slab key, connection id).
    pending: std::collections::VecDeque<(Instant, usize, u64)>,
}

impl Server {
    /// Binds `url` and prepares to serve `kernel`.
    pub fn bind(url: &str, kernel: Arc<dyn Kernel>, config: Config) -> Result<Server, ServerError> {
        let ep = sp_transport::parse(url, Role::Server)?;
        Server::bind_endpoint(&ep, kernel, config)
    }

    /// Binds an already parsed endpoint.
    pub fn bind_endpoint(
        ep: &Endpoint,
        kernel: Arc<dyn Kernel>,
        config: Config,
    ) -> Result<Server, ServerError> {
        let banner = config.banner.format()?;
        if config.raise_nofile {
            if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
                tracing::warn!("cannot raise RLIMIT_NOFILE: {e}");
            }
        }
        let opts = ListenOptions {
            unix_mode: Some(config.unix_mode),
            ..ListenOptions::default()
        };
        let listener = Listener::bind(ep, &opts)?;
        listener.set_nonblocking(true)?;
        let endpoint = listener.local_endpoint();
        let poll = Poll::new()?;
        let registry = Arc::new(poll.registry().try_clone()?);
        let fd = listener.as_raw_fd();
        registry.register(&mut SourceFd(&fd), LISTENER, Interest::READABLE)?;
        let waker = Waker::new(&registry, WAKER)?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            adopted: parking_lot::Mutex::new(Vec::new()),
            waker,
            pool: Pool::new(config.max_idle_workers, config.idle_linger),
            connections: AtomicUsize::new(0),
            preforks: AtomicUsize::new(0),
            syscalls: Arc::new(AtomicUsize::new(0)),
            accepted: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        });
        let preforks = Preforks::new(config.prefork_cap, config.prefork_ttl);
        Ok(Server {
            listener,
            endpoint,
            poll,
            registry,
            conns: Slab::new(),
            banner,
            ctx: Ctx {
                kernel,
                config,
                shared,
                preforks,
            },
            ready: Vec::new(),
            scratch: vec![0u8; SCRATCH].into_boxed_slice(),
            pending: std::collections::VecDeque::new(),
        })
    }

    /// The endpoint actually bound (a tcp port 0 resolved).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A handle to stop the server and read its counters.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.ctx.shared.clone(),
        }
    }

    /// Runs the server on a new thread.
    pub fn spawn(self) -> io::Result<RunningServer> {
        let handle = self.handle();
        let endpoint = self.endpoint.clone();
        let thread = std::thread::Builder::new()
            .name("sp-server".into())
            .spawn(move || self.run())?;
        Ok(RunningServer {
            handle,
            endpoint,
            thread: Some(thread),
        })
    }

    /// Serves until [`ServerHandle::shutdown`] is called.
    pub fn run(mut self) -> Result<(), ServerError> {
        let mut events = Events::with_capacity(1024);
        while !self.ctx.shared.stop.load(Ordering::Acquire) {
            let timeout = if !self.ready.is_empty() {
                Some(Duration::ZERO)
            } else {
                let handshake = self.pending.front().map(|p| p.0);
                let next = match (self.ctx.preforks.next_expiry(), handshake) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                next.map(|t| t.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {
                        let adopted = std::mem::take(&mut *self.ctx.shared.adopted.lock());
                        for stream in adopted {
                            self.admit(stream);
                        }
                    }
                    Token(t) => {
                        if ev.is_writable() {
                            if let Some(lc) = self.conns.get(t) {
                                lc.conn.flush();
                            }
                        }
                        let closed = ev.is_read_closed() || ev.is_error();
                        if ev.is_readable() || closed {
                            self.read_conn(t, !closed);
                        }
                    }
                }
            }
            for t in std::mem::take(&mut self.ready) {
                self.read_conn(t, false);
            }
            self.expire_preforks();
            self.expire_handshakes();
        }
        self.shutdown_all();
        Ok(())
    }

    fn expire_preforks(&mut self) {
        if self.ctx.preforks.len() == 0 {
            return;
        }
        for p in self.ctx.preforks.expire(Instant::now()) {
            tracing::info!("prefork (pid {}) expired unclaimed", self.ctx.kernel.pid(p));
            self.ctx.kernel.release(p);
        }
        self.ctx
            .shared
            .preforks
            .store(self.ctx.preforks.len(), Ordering::Relaxed);
    }

    /// Closes connections that did not complete their handshake in time.
    fn expire_handshakes(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some(&(deadline, t, id)) = self.pending.front() {
            if deadline > now {
                return;
            }
            self.pending.pop_front();
            let late = self
                .conns
                .get(t)
                .is_some_and(|lc| lc.conn.id == id && lc.phase == Phase::New);
            if late {
                self.teardown(t, "no handshake within the handshake timeout", true);
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog.
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            };
            self.admit(stream);
        }
    }

    fn refuse(&self, stream: &Stream, why: &str) {
        tracing::warn!("refusing client from {}: {why}", stream.peer_label());
        self.ctx.shared.dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn admit(&mut self, stream: Stream) {
        let cfg = &self.ctx.config;
        if self.conns.len() >= cfg.max_clients {
            return self.refuse(
                &stream,
                &format!("at the limit of {} clients", cfg.max_clients),
            );
        }
        if let Some(uids) = &cfg.allowed_uids {
            if let Stream::Unix(_) = stream {
                match stream.peer_uid() {
                    Ok(Some(uid)) if uids.contains(&uid) => {}
                    Ok(Some(uid)) => {
                        return self.refuse(&stream, &format!("uid {uid} not allowed"))
                    }
                    _ => return self.refuse(&stream, "peer uid unknown"),
                }
            }
        }
        if let Some(nets) = &cfg.allowed_nets {
            if let Some(ip) = stream.peer_ip() {
                if !nets.iter().any(|n| n.contains(ip)) {
                    return self.refuse(&stream, &format!("address {ip} not allowed"));
                }
            }
        }
        if let Err(e) = stream.set_nonblocking(true) {
            return self.refuse(&stream, &e.to_string());
        }
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        let conn = Arc::new(Conn::new(
            token,
            stream,
            self.registry.clone(),
            cfg.send_queue_bytes,
            cfg.send_stall_timeout,
        ));
        let fd = conn.stream.as_raw_fd();
        if let Err(e) = self
            .registry
            .register(&mut SourceFd(&fd), token, Interest::READABLE)
        {
            tracing::warn!(
                "cannot register client from {}: {e}",
                conn.stream.peer_label()
            );
            return;
        }
        if conn.send_parts(&self.banner, &[], false).is_err() {
            let _ = self.registry.deregister(&mut SourceFd(&fd));
            return;
        }
        tracing::debug!("accepted client from {}", conn.stream.peer_label());
        if let Some(limit) = cfg.handshake_timeout {
            self.pending
                .push_back((Instant::now() + limit, token.0, conn.id));
        }
        entry.insert(LoopConn {
            conn,
            deframer: Deframer::new(cfg.max_frame).with_detach(SCRATCH),
            phase: Phase::New,
        });
        self.ctx.shared.accepted.fetch_add(1, Ordering::Relaxed);
        self.ctx
            .shared
            .connections
            .store(self.conns.len(), Ordering::Relaxed);
    }

    /// Reads what `t` has sent and handles every whole frame.
    ///
    /// Small frames are read into the loop's scratch buffer and handled in
    /// place, so an idle connection holds no buffer of its own; only the
    /// tail of a frame that has not fully arrived is kept per connection,
    /// and the rest of it is then read straight into the connection's
    /// deframer: a large frame's body into a buffer of its own, without
    /// zero-filling it, which its call or waiting copy then takes as is. A
    /// read that returns less than offered means the socket is drained
    /// (epoll reports new bytes as a new edge), which saves the EAGAIN
    /// read; not when the event already said the peer closed
    /// (`short_read_ends` false): that close was reported with this edge
    /// and must be read now.
    fn read_conn(&mut self, t: usize, short_read_ends: bool) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(lc) = self.conns.get_mut(t) else {
                return;
            };
            if !lc.deframer.is_detached() {
                // The common case, checked without a call.
            } else if let Some((body, missing)) = lc.deframer.detached_body() {
                let before = body.len();
                let res = read_appending(&lc.conn.stream, body, missing);
                let n = body.len() - before;
                let drained = match res {
                    // Less than the frame and no error: the peer closed.
                    Ok(()) if n < missing => {
                        return self.teardown(t, "closed by the client", false)
                    }
                    Ok(()) => false,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
                    Err(e) => return self.teardown(t, &format!("read failed: {e}"), false),
                };
                if n > 0 {
                    if let Err(why) = self.ctx.frames(lc) {
                        return self.teardown(t, &why, true);
                    }
                }
                if drained {
                    return;
                }
                budget = budget.saturating_sub(n);
                if budget == 0 {
                    self.ready.push(t);
                    return;
                }
                continue;
            }
            let direct = lc.deframer.is_mid_frame();
            let buf: &mut [u8] = if direct {
                lc.deframer.read_buf()
            } else {
                &mut self.scratch
            };
            let offered = buf.len();
            let res = (&lc.conn.stream).read(buf);
            let n = match res {
                Ok(0) => return self.teardown(t, "closed by the client", false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    lc.deframer.shrink();
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.teardown(t, &format!("read failed: {e}"), false),
            };
            let handled = if direct {
                lc.deframer.commit(n);
                self.ctx.frames(lc)
            } else {
                self.ctx.frames_in_place(lc, &self.scratch[..n])
            };
            if let Err(why) = handled {
                return self.teardown(t, &why, true);
            }
            if n < offered && short_read_ends {
                if let Some(lc) = self.conns.get_mut(t) {
                    lc.deframer.shrink();
                }
                return;
            }
            budget = budget.saturating_sub(n);
            if budget == 0 {
                self.ready.push(t);
                return;
            }
        }
    }

    fn teardown(&mut self, t: usize, why: &str, misbehaved: bool) {
        let Some(lc) = self.conns.try_remove(t) else {
            return;
        };
        let conn = lc.conn;
        let fd = conn.stream.as_raw_fd();
        let _ = self.registry.deregister(&mut SourceFd(&fd));
        let send_reason = conn.drop_reason();
        let (why, misbehaved) = match &send_reason {
            Some(r) => (r.as_str(), true),
            None => (why, misbehaved),
        };
        if misbehaved {
            tracing::warn!("dropping {}: {why}", conn.describe());
            self.ctx.shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::info!("{} disconnected: {why}", conn.describe());
        }
        let proc = conn.procs.lock().proc;
        if let Some(p) = proc {
            self.ctx.kernel.lwpexit(p);
        }
        conn.dead.store(true, Ordering::Release);
        conn.close();
        conn.wake_all();
        after_drain(&conn, &*self.ctx.kernel);
        self.ctx
            .shared
            .connections
            .store(self.conns.len(), Ordering::Relaxed);
    }

    fn shutdown_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for t in keys {
            self.teardown(t, "server shutting down", false);
        }
        for p in self.ctx.preforks.drain() {
            self.ctx.kernel.release(p);
        }
        self.ctx.shared.preforks.store(0, Ordering::Relaxed);
        if !self.ctx.shared.pool.shutdown(Duration::from_secs(5)) {
            tracing::warn!("some system calls did not return within 5 s of shutdown");
        }
        tracing::info!("server on {} stopped", self.endpoint);
    }
}

impl Ctx {
    /// Handles every whole frame buffered for `lc`. An error ends the
    /// connection at once (the stream is out of step).
    /// Handles the whole frames at the start of `bytes` (read while the
    /// connection had nothing buffered) without copying them, and keeps the
    /// incomplete tail in the connection's deframer.
    fn frames_in_place(&mut self, lc: &mut LoopConn, mut bytes: &[u8]) -> Result<(), String> {
        let max = lc.deframer.max_frame();
        while lc.phase != Phase::Closing {
            match Frame::parse(bytes, max) {
                Ok(Some((frame, used))) => {
                    let body = Body::Borrowed(frame.body);
                    if let Next::Closing = self.frame(&lc.conn, &mut lc.phase, &frame.header, body)
                    {
                        lc.phase = Phase::Closing;
                    }
                    bytes = &bytes[used..];
                }
                Ok(None) => {
                    lc.deframer.push(bytes);
                    // A header over the limit is refused before its body.
                    return match lc.deframer.next_frame() {
                        Err(e) => Err(e.to_string()),
                        Ok(_) => Ok(()),
                    };
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    fn frames(&mut self, lc: &mut LoopConn) -> Result<(), String> {
        loop {
            if lc.phase == Phase::Closing {
                // Input after an answer-and-close is ignored.
                lc.deframer = Deframer::new(lc.deframer.max_frame());
                return Ok(());
            }
            // A large frame received detached is handed on as it is.
            if let Some((header, body)) = lc.deframer.take_detached() {
                if let Next::Closing =
                    self.frame(&lc.conn, &mut lc.phase, &header, Body::Owned(body))
                {
                    lc.phase = Phase::Closing;
                }
                continue;
            }
            let frame = match lc.deframer.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            let header = frame.header;
            let next = self.frame(&lc.conn, &mut lc.phase, &header, Body::Borrowed(frame.body));
            if let Next::Closing = next {
                lc.phase = Phase::Closing;
            }
        }
    }

    fn error(&self, conn: &Conn, reqno: u64, code: ErrorCode) {
        let _ = conn.send(&Message::Error { reqno, code });
    }

    fn error_close(&self, conn: &Conn, reqno: u64, code: ErrorCode, why: &str) -> Next {
        tracing::warn!("{}: {why}; answering {code} and closing", conn.describe());
        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        conn.send_and_close(&Message::Error { reqno, code });
        Next::Closing
    }

    fn frame(&mut self, conn: &Arc<Conn>, phase: &mut Phase, h: &Header, body: Body<'_>) -> Next {
        let reqno = h.reqno();
        match h.class() {
            Class::RESP => {
                let kind = match h.typ() {
                    MsgType::COPYIN | MsgType::COPYINSTR => Some(WaitKind::Copyin),
                    MsgType::ANONMMAP => Some(WaitKind::Anonmmap),
                    _ => None,
                };
                // An answer nobody waits for is dropped silently.
                conn.deliver(reqno, kind, body);
                Next::Continue
            }
            Class::ERROR => {
                // Our extension: an ERROR answer fails the copy it answers.
                if !conn.deliver(reqno, None, Body::Borrowed(&[])) {
                    self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST);
                }
                Next::Continue
            }
            Class::REQ if *phase == Phase::New => self.first_request(conn, phase, h, body.bytes()),
            Class::REQ => self.request(conn, h, body),
            _ => {
                // The class is checked before the handshake state.
                self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST);
                Next::Continue
            }
        }
    }

    fn first_request(
        &mut self,
        conn: &Arc<Conn>,
        phase: &mut Phase,
        h: &Header,
        body: &[u8],
    ) -> Next {
        let reqno = h.reqno();
        if h.typ() != MsgType::HANDSHAKE {
            return self.error_close(
                conn,
                reqno,
                ErrorCode::AUTH,
                &format!("{} before the handshake", h.typ()),
            );
        }
        let hs = match Message::decode(h, body) {
            Ok(Message::Handshake { hs, .. }) => hs,
            other => {
                let why = malformed(&other);
                return self.error_close(conn, reqno, ErrorCode::MALFORMED_REQUEST, &why);
            }
        };
        let port: Port = Arc::new(ConnPort::new(conn.clone()));
        let proc = match hs {
            Handshake::Guest { comm } => {
                let comm = comm_name(comm);
                match self.kernel.spawn_guest(comm, port) {
                    Ok(p) => {
                        conn.ident.lock().1 = String::from_utf8_lossy(comm).into_owned();
                        p
                    }
                    Err(e) => {
                        let why = format!("kernel refused a new process: {e}");
                        return self.error_close(conn, reqno, ErrorCode::RFORK_FAILED, &why);
                    }
                }
            }
            Handshake::Fork { cookie, cancel } => {
                let Some(prefork) = self.preforks.take(&cookie) else {
                    return self.error_close(
                        conn,
                        reqno,
                        ErrorCode::INVALID_PREFORK,
                        "unknown prefork cookie",
                    );
                };
                self.shared
                    .preforks
                    .store(self.preforks.len(), Ordering::Relaxed);
                if cancel != 0 {
                    tracing::info!("prefork (pid {}) cancelled", self.kernel.pid(prefork));
                    self.kernel.release(prefork);
                    conn.close();
                    return Next::Closing;
                }
                match self.kernel.attach_prefork(prefork, port) {
                    Ok(p) => {
                        conn.ident.lock().1 = "fork child".into();
                        p
                    }
                    Err(e) => {
                        // Taken out of the registry, so no time-to-live
                        // would ever reach it: release it here.
                        self.kernel.release(prefork);
                        let why = format!("kernel could not attach the prefork: {e}");
                        return self.error_close(conn, reqno, ErrorCode::RFORK_FAILED, &why);
                    }
                }
            }
            other => {
                let why = format!("{} handshake on a new connection", other.kind());
                return self.error_close(conn, reqno, ErrorCode::AUTH, &why);
            }
        };
        conn.procs.lock().proc = Some(proc);
        conn.ident.lock().0 = self.kernel.pid(proc);
        *phase = Phase::Running;
        let _ = conn.send(&Message::HandshakeResp { reqno, error: 0 });
        tracing::debug!("{} joined", conn.describe());
        Next::Continue
    }

    fn request(&mut self, conn: &Arc<Conn>, h: &Header, owned: Body<'_>) -> Next {
        let reqno = h.reqno();
        if h.typ() == MsgType::SYSCALL_SEG {
            return self.syscall_seg(conn, h, owned);
        }
        let body = owned.bytes();
        let (proc, in_exec) = {
            let ps = conn.procs.lock();
            (ps.proc, ps.exec.is_some())
        };
        let Some(proc) = proc else {
            // Running implies a process; should that ever not hold, the
            // connection ends rather than the server.
            return self.error_close(conn, reqno, ErrorCode::MALFORMED_REQUEST, "no process");
        };
        match h.typ() {
            MsgType::SYSCALL => {
                self.syscall(conn, proc, reqno, h.sysnum(), body);
                Next::Continue
            }
            MsgType::HANDSHAKE => {
                let comm = match Message::decode(h, body) {
                    Ok(Message::Handshake {
                        hs: Handshake::Exec { comm },
                        ..
                    }) => comm_name(comm),
                    Ok(Message::Handshake { hs, .. }) => {
                        let why = format!("{} handshake on a running connection", hs.kind());
                        return self.error_close(conn, reqno, ErrorCode::MALFORMED_REQUEST, &why);
                    }
                    other => {
                        let why = malformed(&other);
                        return self.error_close(conn, reqno, ErrorCode::MALFORMED_REQUEST, &why);
                    }
                };
                if in_exec {
                    return self.error_close(
                        conn,
                        reqno,
                        ErrorCode::INEXEC,
                        "exec while an exec is in progress",
                    );
                }
                conn.procs.lock().exec = Some((reqno, comm.to_vec()));
                // The new image may be a stock client: it asks again if
                // it speaks the extension.
                conn.ext.store(0, Ordering::Release);
                // Threads exit; the last call to return finishes the exec.
                self.kernel.lwpexit(proc);
                after_drain(conn, &*self.kernel);
                Next::Continue
            }
            MsgType::PREFORK if !body.is_empty() => {
                // PREFORK has no body; the reference never looks, we refuse.
                self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST);
                Next::Continue
            }
            MsgType::PREFORK => {
                if in_exec {
                    return self.error_close(conn, reqno, ErrorCode::INEXEC, "prefork during exec");
                }
                self.prefork(conn, proc, reqno);
                Next::Continue
            }
            MsgType::EXT_HELLO if self.config.extensions => {
                self.ext_hello(conn, h, body);
                Next::Continue
            }
            other => {
                tracing::debug!("{}: request of type {other} refused", conn.describe());
                self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST);
                Next::Continue
            }
        }
    }

    /// Most segment bytes one SYSCALL_SEG may carry: what the per-client
    /// budget and the frame limit leave (a frame also holds its header,
    /// trailer, arguments and descriptors; the client accounts for those
    /// against `max_frame`).
    fn max_segment_bytes(&self) -> u64 {
        let frame_room = self
            .config
            .max_frame
            .saturating_sub((HEADER_LEN + TRAILER_LEN) as u64);
        frame_room.min(self.config.segment_bytes_per_client as u64)
    }

    /// EXT_HELLO: the features both sides speak, and our limits. From now
    /// on this client's image may send SYSCALL_SEG.
    fn ext_hello(&self, conn: &Conn, h: &Header, body: &[u8]) {
        let reqno = h.reqno();
        let Some(theirs) = sp_proto::ext::Hello::from_bytes(body) else {
            tracing::debug!(
                "{}: EXT_HELLO with a body of {} bytes",
                conn.describe(),
                body.len()
            );
            return self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST);
        };
        let ours = if self.config.segment_bytes_per_client > 0 {
            Features::ALL
        } else {
            Features::COPY_ERRORS
        };
        let agreed = ours.intersect(theirs.features);
        conn.ext.store(agreed.0, Ordering::Release);
        tracing::debug!(
            "{}: extension version {} agreed on {agreed:?}",
            conn.describe(),
            theirs.version
        );
        let hello = Hello {
            version: EXT_VERSION,
            features: agreed,
            max_frame: self.config.max_frame,
            max_segment_bytes: self.max_segment_bytes(),
        };
        let _ = conn.send(&Message::ExtHelloResp { reqno, hello });
    }

    /// SYSCALL_SEG: a system call with the bytes of the buffers it reads.
    /// Refused as an unknown type (as a stock server refuses it) unless
    /// this client's image agreed on segments.
    fn syscall_seg(&mut self, conn: &Arc<Conn>, h: &Header, body: Body<'_>) -> Next {
        let reqno = h.reqno();
        let agreed = Features(conn.ext.load(Ordering::Acquire));
        if !agreed.contains(Features::SEGMENTS) {
            tracing::debug!("{}: SYSCALL_SEG without EXT_HELLO refused", conn.describe());
            self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST);
            return Next::Continue;
        }
        let Some(proc) = conn.procs.lock().proc else {
            return self.error_close(conn, reqno, ErrorCode::MALFORMED_REQUEST, "no process");
        };
        // Held while the call runs: counted against the client's budget.
        let size = body.bytes().len();
        let held = conn.seg_bytes.fetch_add(size, Ordering::AcqRel);
        if held + size > self.config.segment_bytes_per_client {
            conn.seg_bytes.fetch_sub(size, Ordering::AcqRel);
            tracing::debug!(
                "{}: segments over {} bytes in flight; answering TRYAGAIN",
                conn.describe(),
                self.config.segment_bytes_per_client
            );
            self.error(conn, reqno, ErrorCode::TRYAGAIN);
            return Next::Continue;
        }
        let split = Segments::split(body.into_vec());
        let (args, segs) = match split {
            Ok(v) => v,
            Err(e) => {
                conn.seg_bytes.fetch_sub(size, Ordering::AcqRel);
                tracing::debug!("{}: malformed SYSCALL_SEG: {e}", conn.describe());
                self.error(conn, reqno, ErrorCode::MALFORMED_REQUEST);
                return Next::Continue;
            }
        };
        let sysnum = h.sysnum();
        let segs = Box::new(segs);
        let carried = crate::kernel::Carried { segs: &segs };
        let inline = self.kernel.runs_inline(sysnum)
            || self.kernel.runs_inline_with(proc, sysnum, &args, &carried);
        self.dispatch(conn, proc, reqno, sysnum, args, Some(segs), size, inline);
        Next::Continue
    }

    fn prefork(&mut self, conn: &Arc<Conn>, proc: crate::ProcId, reqno: u64) {
        // Keyed by an id never reused: a new connection on the same slab
        // slot must not inherit a departed client's preforks.
        let owner = conn.id;
        if !self.preforks.has_room(owner) {
            tracing::warn!(
                "{}: prefork refused, {} unclaimed already",
                conn.describe(),
                self.config.prefork_cap
            );
            return self.error(conn, reqno, ErrorCode::TRYAGAIN);
        }
        if self.preforks.len() >= self.config.prefork_total_cap {
            tracing::warn!(
                "{}: prefork refused, {} unclaimed on the server",
                conn.describe(),
                self.config.prefork_total_cap
            );
            return self.error(conn, reqno, ErrorCode::TRYAGAIN);
        }
        let child = match self.kernel.prefork(proc) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("{}: kernel prefork failed: {e}", conn.describe());
                return self.error(conn, reqno, ErrorCode::RFORK_FAILED);
            }
        };
        match self.preforks.insert(owner, child, Instant::now()) {
            Ok(cookie) => {
                self.shared
                    .preforks
                    .store(self.preforks.len(), Ordering::Relaxed);
                let _ = conn.send(&Message::PreforkResp { reqno, cookie });
            }
            Err(e) => {
                self.kernel.release(child);
                let code = if e == PreforkError::Cap {
                    ErrorCode::TRYAGAIN
                } else {
                    ErrorCode::NOMEM
                };
                self.error(conn, reqno, code);
            }
        }
    }

    fn syscall(&self, conn: &Arc<Conn>, proc: crate::ProcId, reqno: u64, sysnum: u32, args: &[u8]) {
        if self.kernel.runs_inline(sysnum) {
            // No hand-off: the kernel promised this call neither blocks nor
            // waits for the client.
            let port = ConnPort::for_call(conn.clone(), reqno, false, None);
            let res = guarded_syscall(&*self.kernel, proc, sysnum, args, &InlinePort(&port));
            port.answer(res);
            return;
        }
        self.dispatch(conn, proc, reqno, sysnum, args.to_vec(), None, 0, false);
    }

    /// Runs a call on a worker, or on the loop (`inline`: the kernel said
    /// it may), with the segments its request carried; `seg_held` bytes of
    /// the client's segment budget are given back when it returns.
    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &self,
        conn: &Arc<Conn>,
        proc: crate::ProcId,
        reqno: u64,
        sysnum: u32,
        args: Vec<u8>,
        segs: Option<Box<Segments>>,
        seg_held: usize,
        inline: bool,
    ) {
        if inline {
            let port = ConnPort::for_call(conn.clone(), reqno, false, segs);
            let res = guarded_syscall(&*self.kernel, proc, sysnum, &args, &InlinePort(&port));
            conn.seg_bytes.fetch_sub(seg_held, Ordering::AcqRel);
            port.answer(res);
            return;
        }
        // The slot is given back before the answer is sent, so a client
        // that has its answer may rely on the slot being free.
        if conn.busy.fetch_add(1, Ordering::AcqRel) >= self.config.max_inflight_per_client {
            conn.busy.fetch_sub(1, Ordering::AcqRel);
            conn.seg_bytes.fetch_sub(seg_held, Ordering::AcqRel);
            tracing::warn!(
                "{}: {} calls in flight already; answering TRYAGAIN",
                conn.describe(),
                self.config.max_inflight_per_client
            );
            return self.error(conn, reqno, ErrorCode::TRYAGAIN);
        }
        conn.procs.lock().inflight += 1;
        let counter = self.shared.syscalls.clone();
        counter.fetch_add(1, Ordering::Relaxed);
        let conn = conn.clone();
        let kernel = self.kernel.clone();
        self.shared.pool.execute(move || {
            let port = ConnPort::for_call(conn.clone(), reqno, true, segs);
            let res = guarded_syscall(&*kernel, proc, sysnum, &args, &port);
            conn.busy.fetch_sub(1, Ordering::AcqRel);
            conn.seg_bytes.fetch_sub(seg_held, Ordering::AcqRel);
            port.answer(res);
            counter.fetch_sub(1, Ordering::Relaxed);
            conn.procs.lock().inflight -= 1;
            after_drain(&conn, &*kernel);
        });
    }
}

/// Appends at most `missing` bytes from `stream` to `body`, into its spare
/// capacity without zero-filling it (`read_to_end` on a `Take`), until the
/// socket would block (`Err(WouldBlock)`), the bytes are in, or the peer
/// closed (`Ok` with fewer bytes).
fn read_appending(stream: &Stream, body: &mut Vec<u8>, missing: usize) -> io::Result<()> {
    let limit = missing as u64;
    match stream {
        Stream::Unix(s) => s.take(limit).read_to_end(body).map(drop),
        Stream::Tcp(s) => s.take(limit).read_to_end(body).map(drop),
    }
}

/// Why a frame that should have been a handshake request is malformed.
fn malformed(decoded: &Result<Message<'_>, BodyError>) -> String {
    match decoded {
        Err(e) => e.to_string(),
        Ok(m) => format!("not a handshake request: {m:?}"),
    }
}

/// Runs one system call; a kernel that panics answers that call EIO and
/// is logged, and the server and every other client go on.
fn guarded_syscall(
    kernel: &dyn Kernel,
    proc: crate::ProcId,
    sysnum: u32,
    args: &[u8],
    port: &dyn crate::ClientPort,
) -> sp_proto::SysResult {
    let run = std::panic::AssertUnwindSafe(|| kernel.syscall(proc, sysnum, args, port));
    std::panic::catch_unwind(run).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        tracing::error!(
            "kernel panicked in system call {sysnum} of pid {}: {what}; answering EIO",
            kernel.pid(proc)
        );
        Err(sp_proto::Errno::EIO)
    })
}

/// A server running on its own thread; dropping it shuts the server down
/// and waits for it.
pub struct RunningServer {
    handle: ServerHandle,
    endpoint: Endpoint,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl RunningServer {
    /// The endpoint the server listens on.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        self.endpoint.to_string()
    }

    /// A handle to the server.
    pub fn handle(&self) -> &ServerHandle {
        &self.handle
    }

    /// The server's counters now.
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), ServerError> {
        self.handle.shutdown();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("server thread panicked").into())),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}
