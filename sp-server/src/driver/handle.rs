//! What a running server shows the outside: its handle, its counters,
//! its errors, and the thread it runs on.

use crate::driver::conn::Completions;
use crate::driver::pool::{Pool, PoolStats};
use sp_transport::{Endpoint, Stream};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

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

pub(crate) struct Shared {
    pub(crate) stop: AtomicBool,
    /// Connected streams handed in by [`ServerHandle::adopt`].
    pub(crate) adopted: parking_lot::Mutex<Vec<Stream>>,
    /// Where workers leave finished calls; its waker wakes the loop.
    pub(crate) completions: Arc<Completions>,
    pub(crate) pool: Pool,
    /// The core's counters, published by the loop after each turn.
    pub(crate) connections: AtomicUsize,
    pub(crate) preforks: AtomicUsize,
    pub(crate) accepted: AtomicUsize,
    pub(crate) dropped: AtomicUsize,
}

/// A handle to a running server: stop it, read its counters.
#[derive(Clone)]
pub struct ServerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl ServerHandle {
    /// Asks the server to stop: it stops accepting, ends every connection,
    /// releases every process, removes its unix socket and returns from
    /// [`Server::run`](crate::Server::run).
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.completions.wake();
    }

    /// Serves an already connected stream as if it had been accepted
    /// (banner first). With `UnixStream::pair()` this gives an in-memory
    /// link for tests and fuzzing.
    pub fn adopt(&self, stream: Stream) {
        self.shared.adopted.lock().push(stream);
        self.shared.completions.wake();
    }

    /// The server's counters now.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            connections: s.connections.load(Ordering::Relaxed),
            preforks: s.preforks.load(Ordering::Relaxed),
            syscalls: s.completions.syscalls.load(Ordering::Relaxed),
            accepted: s.accepted.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            workers: s.pool.stats(),
        }
    }
}

/// A server running on its own thread; dropping it shuts the server down
/// and waits for it.
pub struct RunningServer {
    pub(crate) handle: ServerHandle,
    pub(crate) endpoint: Endpoint,
    pub(crate) thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
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
