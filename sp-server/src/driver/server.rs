//! The event loop: a thin driver around the [`Core`]. It accepts
//! clients, reads their bytes into the core, carries out the core's
//! actions (sends, closes, kernel operations), runs system calls inline or
//! on the pool, and hands their completions back to the core.

use crate::config::Config;
use crate::core::{Action, ConnHandle, Core, Delivery, Done, DropReason, PeerInfo};
use crate::driver::conn::{Completions, Conn};
use crate::driver::handle::{RunningServer, ServerError, ServerHandle, Shared};
use crate::driver::pool::Pool;
use crate::driver::port::{ConnPort, InlinePort};
use crate::kernel::{Carried, Kernel, Port, ProcId};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use sp_proto::Errno;
use sp_transport::{Endpoint, ListenOptions, Listener, Role, Stream};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Size of the loop's scratch read buffer: frames up to the core's
/// detach size are read here and handled in place.
const SCRATCH: usize = crate::core::DETACH_OVER;
/// Bytes read from one connection per loop turn before others get a go.
const READ_BUDGET: usize = 256 * 1024;
/// How long shutdown waits for the calls in flight to return.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// A sysproxy server bound to its socket, ready to [`run`](Server::run).
pub struct Server {
    listener: Listener,
    endpoint: Endpoint,
    poll: Poll,
    registry: Arc<Registry>,
    core: Core,
    /// The driver's half of each connection, at its handle's index.
    conns: Vec<Option<Arc<Conn>>>,
    kernel: Arc<dyn Kernel>,
    shared: Arc<Shared>,
    ready: Vec<usize>,
    /// Where small frames are read, for every connection in turn.
    scratch: Box<[u8]>,
    /// Completions taken from the workers, reused.
    done: Vec<Done>,
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
        let core = Core::new(&config)?;
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
            completions: Arc::new(Completions::new(waker)),
            pool: Pool::new(config.max_idle_workers, config.idle_linger),
            connections: AtomicUsize::new(0),
            preforks: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        });
        Ok(Server {
            listener,
            endpoint,
            poll,
            registry,
            core,
            conns: Vec::new(),
            kernel,
            shared,
            ready: Vec::new(),
            scratch: vec![0u8; SCRATCH].into_boxed_slice(),
            done: Vec::new(),
        })
    }

    /// The endpoint actually bound (a tcp port 0 resolved).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A handle to stop the server and read its counters.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
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
        while !self.shared.stop.load(Ordering::Acquire) {
            // Before sleeping: a completion left without a wakeup is
            // handed over now.
            self.take_completions();
            let timeout = if !self.ready.is_empty() {
                Some(Duration::ZERO)
            } else {
                let next = self.core.poll_timeout();
                next.map(|t| t.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            // Before any read: a client that has an answer finds its call
            // done in the core.
            self.take_completions();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {
                        let adopted = std::mem::take(&mut *self.shared.adopted.lock());
                        for stream in adopted {
                            self.admit(stream);
                        }
                    }
                    Token(t) => {
                        if ev.is_writable() {
                            if let Some(Some(c)) = self.conns.get(t) {
                                c.flush();
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
            if let Some(deadline) = self.core.poll_timeout() {
                let now = Instant::now();
                if deadline <= now {
                    self.core.handle_timeout(now);
                    self.run_actions();
                }
            }
            self.publish_stats();
        }
        self.shutdown_all();
        Ok(())
    }

    /// The driver's half of `h`, if its socket is still open.
    fn conn(&self, h: ConnHandle) -> Option<&Arc<Conn>> {
        self.conns
            .get(h.index())?
            .as_ref()
            .filter(|c| c.handle == h)
    }

    /// Hands the workers' completions to the core.
    fn take_completions(&mut self) {
        self.shared.completions.take(&mut self.done);
        if self.done.is_empty() {
            return;
        }
        for d in self.done.drain(..) {
            self.core.call_done(d);
        }
        self.run_actions();
    }

    /// Carries out what the core asks, in order.
    fn run_actions(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Send { conn, frame } => {
                    // The counters first: a client that has this frame
                    // (a prefork's cookie) or sees its socket shut finds
                    // them current.
                    self.publish_stats();
                    if let Some(c) = self.conn(conn) {
                        let _ = c.send_parts(&frame, &[], false, None);
                    }
                }
                Action::Close {
                    conn,
                    reason,
                    flush,
                } => {
                    self.publish_stats();
                    self.close(conn, reason, flush)
                }
                Action::Deliver {
                    conn,
                    reqno,
                    delivery,
                } => {
                    let refused = delivery == Delivery::Refused;
                    let delivered = self.conn(conn).is_some_and(|c| c.deliver(reqno, delivery));
                    if !delivered && refused {
                        self.core.unmatched_error(conn, reqno);
                    }
                }
                Action::SpawnGuest { conn, comm } => {
                    let name = String::from_utf8_lossy(&comm).into_owned();
                    let res = self.join(conn, name, |k, port| k.spawn_guest(&comm, port));
                    self.core.spawned(conn, res);
                }
                Action::Attach { conn, prefork } => {
                    let name = "fork child".to_string();
                    let res = self.join(conn, name, |k, port| k.attach_prefork(prefork, port));
                    self.core.attached(conn, res);
                }
                Action::Prefork { conn, parent } => {
                    let res = self.kernel.prefork(parent);
                    self.core.preforked(conn, Instant::now(), res);
                }
                Action::Syscall(call) => self.run_call(call),
                Action::LwpExit { conn, proc } => {
                    if let Some(c) = self.conn(conn) {
                        c.watch.store(true, Ordering::Release);
                    }
                    self.kernel.lwpexit(proc);
                }
                Action::ExecNotify { conn, proc, comm } => {
                    self.kernel.execnotify(proc, &comm);
                    if let Some(c) = self.conn(conn) {
                        c.ident.lock().1 = String::from_utf8_lossy(&comm).into_owned();
                        // The exec is over: completions need no wakeup.
                        c.watch.store(false, Ordering::Release);
                    }
                }
                Action::Release { proc } => {
                    // A test (or operator) that sees the process gone finds
                    // the counters current.
                    self.publish_stats();
                    self.kernel.release(proc)
                }
            }
        }
    }

    /// Gives `conn` a process through `make` (spawn or attach), with a
    /// port the kernel keeps; names the connection in log lines.
    fn join(
        &self,
        conn: ConnHandle,
        name: String,
        make: impl FnOnce(&dyn Kernel, Port) -> Result<ProcId, Errno>,
    ) -> Result<ProcId, Errno> {
        let c = self.conn(conn).ok_or(Errno::ENOTCONN)?;
        let port: Port = Arc::new(ConnPort::new(c.clone()));
        let proc = make(&*self.kernel, port)?;
        *c.ident.lock() = (self.kernel.pid(proc), name);
        tracing::debug!("{} joined", c.describe());
        Ok(proc)
    }

    /// Copies the core's counters where [`ServerHandle::stats`] reads them.
    fn publish_stats(&self) {
        let st = self.core.stats();
        let s = &self.shared;
        s.connections.store(st.connections, Ordering::Relaxed);
        s.preforks.store(st.preforks, Ordering::Relaxed);
        s.accepted.store(st.accepted, Ordering::Relaxed);
        s.dropped.store(st.dropped, Ordering::Relaxed);
    }

    /// Runs a call in place (the kernel said it neither blocks nor waits
    /// for the client) or on a worker.
    fn run_call(&mut self, call: crate::core::Call) {
        let done = call.done();
        let Some(conn) = self.conn(call.conn).cloned() else {
            return self.core.call_done(done);
        };
        let kernel = &self.kernel;
        let inline = kernel.runs_inline(call.sysnum)
            || call.segs.as_deref().is_some_and(|segs| {
                let carried = Carried { segs };
                kernel.runs_inline_with(call.proc, call.sysnum, &call.args, &carried)
            });
        if inline {
            let port = ConnPort::for_call(conn, call.reqno, false, call.segs, None);
            let res = guarded_syscall(
                &**kernel,
                call.proc,
                call.sysnum,
                &call.args,
                &InlinePort(&port),
            );
            port.finish(res);
            self.core.recycle(call.args);
            // After the answer: whatever the core sends because the call is
            // done (an exec's answer) follows it.
            return self.core.call_done(done);
        }
        self.shared
            .completions
            .syscalls
            .fetch_add(1, Ordering::Relaxed);
        let kernel = kernel.clone();
        self.shared.pool.execute(move || {
            let port = ConnPort::for_call(conn, call.reqno, true, call.segs, Some(done));
            let res = guarded_syscall(&*kernel, call.proc, call.sysnum, &call.args, &port);
            port.finish(res);
        });
    }

    /// Carries out a [`Action::Close`]: calls waiting for the client fail,
    /// the socket is shut (after the queued bytes with `flush`); its
    /// hangup then reports it gone.
    fn close(&mut self, h: ConnHandle, reason: DropReason, flush: bool) {
        let Some(c) = self.conn(h) else { return };
        if reason.is_drop() {
            tracing::warn!("dropping {}: {reason}", c.describe());
        } else {
            tracing::info!("{} disconnected: {reason}", c.describe());
        }
        c.watch.store(true, Ordering::Release);
        c.dead.store(true, Ordering::Release);
        if flush {
            c.send_and_close_queued();
        } else {
            c.close();
        }
        c.wake_all();
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

    fn admit(&mut self, stream: Stream) {
        let unix = matches!(stream, Stream::Unix(_));
        let peer = PeerInfo {
            unix,
            uid: match (&self.core.config().allowed_uids, unix) {
                (Some(_), true) => stream.peer_uid().ok().flatten(),
                _ => None,
            },
            ip: stream.peer_ip(),
        };
        if let Err(e) = stream.set_nonblocking(true) {
            tracing::warn!("refusing client from {}: {e}", stream.peer_label());
            return;
        }
        let h = match self.core.accept(Instant::now(), &peer) {
            Ok(h) => h,
            Err(why) => {
                tracing::warn!("refusing client from {}: {why}", stream.peer_label());
                // Counted before the stream closes: a refused client that
                // sees the close finds the counters current.
                self.publish_stats();
                return;
            }
        };
        let cfg = self.core.config();
        let conn = Arc::new(Conn::new(
            h,
            stream,
            self.registry.clone(),
            self.shared.completions.clone(),
            cfg.send_queue_bytes,
            cfg.send_stall_timeout,
        ));
        let fd = conn.stream.as_raw_fd();
        if let Err(e) = self
            .registry
            .register(&mut SourceFd(&fd), conn.token, Interest::READABLE)
        {
            tracing::warn!(
                "cannot register client from {}: {e}",
                conn.stream.peer_label()
            );
            self.core.closed(h, DropReason::Io(e.kind()));
            self.run_actions();
            return;
        }
        tracing::debug!("accepted client from {}", conn.stream.peer_label());
        if self.conns.len() <= h.index() {
            self.conns.resize_with(h.index() + 1, || None);
        }
        self.conns[h.index()] = Some(conn);
        self.run_actions();
    }

    /// Reads what `t` has sent into the core, which handles every whole
    /// frame.
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
        let Some(Some(conn)) = self.conns.get(t) else {
            return;
        };
        let conn = conn.clone();
        let h = conn.handle;
        loop {
            // Gone meanwhile (the core closed it and the hangup was read).
            if !matches!(self.conns.get(t), Some(Some(c)) if c.handle == h) {
                return;
            }
            if let Some(d) = self.core.deframer(h).filter(|d| d.is_detached()) {
                if let Some((body, missing)) = d.detached_body() {
                    let before = body.len();
                    let res = read_appending(&conn.stream, body, missing);
                    let n = body.len() - before;
                    let drained = match res {
                        // Less than the frame and no error: the peer closed.
                        Ok(()) if n < missing => {
                            return self.socket_gone(t, DropReason::PeerClosed)
                        }
                        Ok(()) => false,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
                        Err(e) => return self.socket_gone(t, DropReason::Io(e.kind())),
                    };
                    if n > 0 {
                        self.core.handle_buffered(h);
                        self.run_actions();
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
            }
            let mut deframer = self.core.deframer(h).filter(|d| d.is_mid_frame());
            let buf: &mut [u8] = match &mut deframer {
                Some(d) => d.read_buf(),
                None => &mut self.scratch,
            };
            let offered = buf.len();
            let n = match (&conn.stream).read(buf) {
                Ok(0) => return self.socket_gone(t, DropReason::PeerClosed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(d) = self.core.deframer(h) {
                        d.shrink();
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.socket_gone(t, DropReason::Io(e.kind())),
            };
            match deframer {
                Some(d) => {
                    d.commit(n);
                    self.core.handle_buffered(h);
                }
                None => self.core.handle_bytes(h, &self.scratch[..n]),
            }
            self.run_actions();
            if n < offered && short_read_ends {
                if let Some(d) = self.core.deframer(h) {
                    d.shrink();
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

    /// The socket of the connection at `t` is gone: the core ends the
    /// connection (if it had not), then the driver forgets it.
    fn socket_gone(&mut self, t: usize, reason: DropReason) {
        let Some(Some(conn)) = self.conns.get(t) else {
            return;
        };
        let conn = conn.clone();
        // The send side's reason is the real one (the client stopped
        // reading, and the socket was shut for it).
        let reason = conn.drop_reason().unwrap_or(reason);
        self.core.closed(conn.handle, reason);
        self.run_actions();
        self.conns[t] = None;
        let fd = conn.stream.as_raw_fd();
        let _ = self.registry.deregister(&mut SourceFd(&fd));
        conn.dead.store(true, Ordering::Release);
        conn.close();
        conn.wake_all();
    }

    fn shutdown_all(&mut self) {
        self.core.shutdown();
        self.run_actions();
        // Every connection is watched now: each completion wakes the loop,
        // and the core releases each process once its calls are back.
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        let mut events = Events::with_capacity(64);
        loop {
            self.take_completions();
            if self.core.stats().syscalls == 0 {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("some system calls did not return within 5 s of shutdown");
                break;
            }
            let _ = self.poll.poll(&mut events, Some(left));
        }
        // What a handle reads after the stop: no prefork, no call left.
        self.publish_stats();
        let left = deadline.saturating_duration_since(Instant::now());
        self.shared
            .pool
            .shutdown(left.max(Duration::from_millis(100)));
        tracing::info!("server on {} stopped", self.endpoint);
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
