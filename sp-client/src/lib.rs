//! A client of the rump kernel "sysproxy" protocol: system calls made here
//! run inside a kernel that lives in a server process.
//!
//! ```no_run
//! use sp_client::abi::oflag;
//! use sp_client::{Client, Options};
//! use std::io::{Read, Write};
//! use std::time::Duration;
//!
//! // The server's URL, as the C client takes it from RUMP_SERVER.
//! let opts = Options::new().connect_timeout(Duration::from_secs(5));
//! let client = Client::connect_with("unix:///tmp/rump.sock", opts)?;
//! let (pid, _ppid) = client.getpid()?;
//!
//! // Whole files, and files as std::io handles.
//! client.write_file("/tmp/hello", format!("hi from pid {pid}\n"))?;
//! let mut f = client.open_file("/tmp/hello")?;
//! let mut text = String::new();
//! f.read_to_string(&mut text)?;
//! let append = oflag::O_WRONLY | oflag::O_CREAT | oflag::O_APPEND;
//! let mut log = client.open_file_with("/tmp/log", append, 0o644)?;
//! log.write_all(text.as_bytes())?;
//! log.close()?;
//!
//! // Decoded status and directory entries.
//! let st = client.stat("/tmp/hello")?;
//! assert!(st.is_file() && st.size() == text.len() as u64);
//! for entry in client.read_dir("/tmp")? {
//!     println!("{} {:?}", entry.name_lossy(), entry.file_type());
//! }
//!
//! // The raw system calls are there too, with NetBSD's numbers and flags.
//! let fd = client.open("/tmp/raw", oflag::O_CREAT | oflag::O_RDWR, 0o644)?;
//! client.write(fd, b"raw")?;
//! client.close(fd)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `examples/` has small tools built on it: `rcat` (cat a remote file),
//! `rcp` (copy files in and out) and `rls` (list a remote directory).
//!
//! # Files
//!
//! [`Client::open_file`], [`Client::create_file`] and
//! [`Client::open_file_with`] return a [`RemoteFile`]: `Read`, `Write` and
//! `Seek`, closed on drop. [`Client::read_file`] and [`Client::write_file`]
//! move whole files. [`Client::stat`], [`Client::lstat`] and
//! [`Client::fstat`] return a decoded [`Stat`], [`Client::read_dir`] a
//! list of [`DirEntry`]; the `*_raw` variants return NetBSD's structures
//! ([`abi::Stat`], [`abi::Dirent`]) as they came.
//!
//! # What the server may touch
//!
//! The C client lets the server read and write any address of the process.
//! This one does not, by default: a call exposes only the buffers its caller
//! names ([`Buf`], [`Call`]), plus the anonymous memory the server asked for
//! ([`Mapping`]). The exposed buffers are copied into owned vectors when the
//! call starts and the writable ones copied back when it ends, so the
//! server's copies never dereference an address: one memcpy per exposed
//! buffer (two for writable ones) is the price of not trusting the server.
//! While several calls are in flight, the server may touch the buffers of
//! any of them (its copy requests do not say which call they serve). A copy
//! outside them is refused, logged with `tracing::warn!` and counted
//! ([`Client::refused_copies`]); see [`Options::server_accepts_copy_errors`]
//! for how a refused COPYIN is answered. A refused COPYOUT is dropped and
//! fails every call in flight at the time with EFAULT. The unsafe
//! [`Client::set_raw_memory`] restores the C behaviour.
//!
//! # Threads
//!
//! [`Client`] is `Send + Sync`: any number of threads may make calls at once
//! over its one connection; they are told apart by request number. There is
//! no receiver thread: one waiting thread at a time reads for all of them,
//! hands other threads their responses and serves the server's copy
//! requests, and passes the role on when its own response has come.
//!
//! # Errors
//!
//! The typed wrappers ([`Client::open`], [`Client::read`], ...) return a
//! NetBSD [`Errno`]: the kernel's, or one standing for a local failure
//! (ENOTCONN once disconnected, EFAULT for a refused copy, EIO for a broken
//! protocol). [`Client::syscall_detailed`] and [`Client::call_detailed`]
//! return the full [`Error`]; [`Client::disconnect_reason`] tells why a
//! connection ended.
//!
//! [`Errno`] prints only its name; [`ErrnoExt::describe`] (or
//! [`RemoteErrno`]) prints `ENOENT (No such file or directory)`, as
//! [`Error`] does. Both convert to [`std::io::Error`]: [`Error`] with `?`
//! or `From`, an [`Errno`] with [`errno_to_io`] or, on a whole result,
//! [`IoResultExt::into_io`]; the kind is the closest [`std::io::ErrorKind`]
//! ([`errno_kind`]) and [`io_errno`] recovers the errno.
//!
//! # Processes
//!
//! [`Client::fork`] (or [`Client::prefork`] + [`Client::fork_child`]) keeps
//! the kernel process in step with a host fork; [`Client::exec`] (or
//! [`Client::prepare_exec`]) hands the connection to the next image, which
//! picks it up with [`Client::init`] / [`Client::from_exec_env`].
//!
//! # SIGPIPE
//!
//! A write to a connection the server has closed does not raise SIGPIPE:
//! the socket is written with `send(2)` and `MSG_NOSIGNAL` (by
//! `sp-transport`), so the write fails with EPIPE and the connection is
//! lost ([`DisconnectReason::Io`]; the call fails with ENOTCONN). A host
//! program that keeps SIGPIPE at its default action (a C program, a
//! fuzzer) is not killed by it, unlike with the C client. A SIGPIPE the
//! server *raises* (a RAISE request) is delivered like any other signal
//! (see [`Options::on_signal`]).

mod buf;
mod calls;
mod conn;
mod errno;
mod error;
mod file;
mod fuzz;
mod memory;
mod process;
mod stat;
mod transport;

#[cfg(test)]
mod tests;

pub use buf::{Buf, Call};
pub use errno::{
    errno_description, errno_kind, errno_name, errno_to_io, io_errno, ErrnoExt, IoResultExt,
    RemoteErrno,
};
pub use error::{CopyKind, DisconnectReason, Error, HandshakeError, ProtocolError, RefusedCopy};
pub use file::{RemoteFile, IO_CHUNK};
pub use fuzz::fuzz_server_bytes;
pub use memory::Mapping;
pub use process::{ForkResult, EXECFD_VAR};
pub use sp_proto::ext::Features;
pub use sp_proto::{
    Banner, BannerError, BodyError, Cookie, DecodeError, Errno, ErrorCode, MsgType,
};
pub use sp_transport::UrlError;
pub use stat::{DirEntry, FileTime, FileType, Stat};

/// NetBSD's numbers and structures, as they cross the wire: open flags
/// ([`abi::oflag`]), `SEEK_*` and `R_OK`-style constants ([`abi::misc`]),
/// `fcntl` commands ([`abi::fcntl`]), syscall numbers ([`abi::Sysnum`]),
/// signal numbers ([`abi::Signal`]), file type bits ([`abi::mode`],
/// [`abi::dt`]), and the raw `struct stat` ([`abi::Stat`]), `struct
/// dirent` ([`abi::Dirent`]) and `struct iovec` ([`abi::Iovec`]). They are
/// NetBSD's, not the host's: use these, not `libc`'s, in calls to the
/// remote kernel.
pub use sp_proto::abi;

use conn::{Conn, Counters, Reply, Shared, Start};
use parking_lot::{Mutex, RwLock};
use sp_proto::{Message, DEFAULT_MAX_FRAME};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The environment variable naming the server, as for the C client.
pub const SERVER_VAR: &str = "RUMP_SERVER";

/// A callback for signals the server raises in this client; it gets the
/// NetBSD signal number (see [`host_signal`]).
pub type SignalHandler = Arc<dyn Fn(u32) + Send + Sync>;

/// What to do when the connection is lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reconnect {
    /// Stay disconnected: every later call fails with ENOTCONN.
    #[default]
    Never,
    /// The next call after a loss connects again, retrying for up to
    /// `timeout`, with a new guest handshake. The kernel process, its
    /// descriptors and everything else of the old connection are gone: the
    /// client starts over as a new process. Calls in flight at the loss
    /// still fail.
    Retry {
        /// How long to keep trying.
        timeout: Duration,
    },
}

/// Connection options.
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// The process name sent in the handshake; `None`: this process's name
    /// from `/proc/self/comm`, like the C client.
    pub name: Option<String>,
    /// Whether the server takes an ERROR frame as the answer to a COPYIN it
    /// asked for (our Rust server does, and fails that copy with EFAULT).
    /// When false (the default), a refused COPYIN closes the connection
    /// instead, since the C server's kernel thread would wait for an answer
    /// forever: always correct, but it ends the session. Do not set it for
    /// the C server: it answers an ERROR frame with an ERROR frame of its
    /// own, which carries the server's reqno and could be taken for the
    /// answer to one of our requests.
    pub server_accepts_copy_errors: bool,
    /// Who gets the signals the server raises; `None`: they are raised in
    /// this process, translated to the host's numbers, like the C client.
    pub on_signal: Option<SignalHandler>,
    /// Reconnect policy (like `rumpclient_setconnretry`).
    pub reconnect: Reconnect,
    /// Largest frame accepted from the server; a longer one ends the
    /// connection.
    pub max_frame: u64,
    /// Largest ANONMMAP honoured; a larger one is answered with address 0
    /// (the server reports ENOMEM).
    pub max_anonmmap: u64,
    /// How long a new connection may take: the connect itself, and then
    /// each wait for the server's banner and for the answer to the
    /// handshake (reconnects and fork children included; not the exec
    /// handshake, which waits for the old image's calls). `None` (the
    /// default, like the C client): wait as long as the system does. A
    /// zero duration counts as 1 ms. Running out is an [`Error::Connect`]
    /// of kind [`std::io::ErrorKind::TimedOut`].
    pub connect_timeout: Option<Duration>,
    /// Whether to ask the server for the extension (`docs/extension.md`)
    /// after each handshake (default true): one EXT_HELLO round trip per
    /// connection. A server that speaks it then gets the bytes of the
    /// buffers a call reads with the call, saving a round trip per copy;
    /// a stock server answers ERROR MALFORMED_REQUEST and everything after
    /// is byte for byte what the C client sends. False: no probe at all.
    pub extensions: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            name: None,
            server_accepts_copy_errors: false,
            on_signal: None,
            reconnect: Reconnect::Never,
            max_frame: DEFAULT_MAX_FRAME,
            max_anonmmap: 1 << 30,
            connect_timeout: None,
            extensions: true,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("name", &self.name)
            .field(
                "server_accepts_copy_errors",
                &self.server_accepts_copy_errors,
            )
            .field("on_signal", &self.on_signal.as_ref().map(|_| "<callback>"))
            .field("reconnect", &self.reconnect)
            .field("max_frame", &self.max_frame)
            .field("max_anonmmap", &self.max_anonmmap)
            .field("connect_timeout", &self.connect_timeout)
            .field("extensions", &self.extensions)
            .finish()
    }
}

impl Options {
    /// The defaults.
    pub fn new() -> Options {
        Options::default()
    }

    /// Sets the process name sent in handshakes.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets [`Options::server_accepts_copy_errors`].
    pub fn server_accepts_copy_errors(mut self, yes: bool) -> Self {
        self.server_accepts_copy_errors = yes;
        self
    }

    /// Hands raised signals (NetBSD numbers) to `f` instead of raising them.
    pub fn on_signal(mut self, f: impl Fn(u32) + Send + Sync + 'static) -> Self {
        self.on_signal = Some(Arc::new(f));
        self
    }

    /// Sets the reconnect policy.
    pub fn reconnect(mut self, r: Reconnect) -> Self {
        self.reconnect = r;
        self
    }

    /// Sets the largest frame accepted.
    pub fn max_frame(mut self, max: u64) -> Self {
        self.max_frame = max;
        self
    }

    /// Sets the largest ANONMMAP honoured.
    pub fn max_anonmmap(mut self, max: u64) -> Self {
        self.max_anonmmap = max;
        self
    }

    /// Sets [`Options::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Sets [`Options::extensions`].
    pub fn extensions(mut self, on: bool) -> Self {
        self.extensions = on;
        self
    }

    /// The name the handshake will carry.
    pub(crate) fn resolved_name(&self) -> Vec<u8> {
        let name = match &self.name {
            Some(n) => n.clone(),
            None => process_name(),
        };
        let bytes = sp_proto::comm_name(name.as_bytes());
        if bytes.is_empty() {
            b"sp-client".to_vec()
        } else {
            bytes.to_vec()
        }
    }
}

/// This process's name as the kernel knows it (`/proc/self/comm` without its
/// newline), falling back to the executable's file name.
pub fn process_name() -> String {
    if let Ok(s) = std::fs::read_to_string("/proc/self/comm") {
        let s = s.trim_end_matches('\n');
        if !s.is_empty() {
            return s.to_owned();
        }
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "sp-client".to_owned())
}

/// The host's number for NetBSD signal `netbsd` (a [`abi::Signal`] or its
/// number), for the signals the protocol's kernels raise; `None` for any
/// other.
pub fn host_signal(netbsd: impl Into<abi::Signal>) -> Option<i32> {
    use sp_proto::abi::Signal;
    Some(match netbsd.into() {
        Signal::SIGHUP => libc::SIGHUP,
        Signal::SIGINT => libc::SIGINT,
        Signal::SIGQUIT => libc::SIGQUIT,
        Signal::SIGKILL => libc::SIGKILL,
        Signal::SIGPIPE => libc::SIGPIPE,
        Signal::SIGALRM => libc::SIGALRM,
        Signal::SIGTERM => libc::SIGTERM,
        Signal::SIGCHLD => libc::SIGCHLD,
        Signal::SIGUSR1 => libc::SIGUSR1,
        Signal::SIGUSR2 => libc::SIGUSR2,
        _ => return None,
    })
}

/// How many copies the client refused, and signals it saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// COPYIN/COPYINSTR requests outside the exposed memory.
    pub refused_copyin: u64,
    /// COPYOUT/COPYOUTSTR requests outside the exposed memory (dropped).
    pub refused_copyout: u64,
    /// RAISE requests received.
    pub signals: u64,
    /// RAISE requests of signals with no host equivalent (ignored).
    pub ignored_signals: u64,
}

/// A connection to a sysproxy server, standing for one process of its
/// kernel. `Send + Sync`: share it between threads by reference or `Arc`.
pub struct Client {
    url: Option<String>,
    shared: Arc<Shared>,
    conn: RwLock<Arc<Conn>>,
    banner: Option<Banner>,
    reconnecting: Mutex<()>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("banner", &self.banner)
            .field("disconnected", &self.disconnect_reason())
            .finish_non_exhaustive()
    }
}

/// Connects to `url`, within `opts`' connect timeout; a failure names the
/// URL.
fn open_stream(url: &str, opts: &Options) -> Result<transport::Stream, Error> {
    transport::open(url, opts.connect_timeout).map_err(|e| match e {
        transport::OpenError::Url(source) => Error::Url {
            url: url.to_owned(),
            source,
        },
        transport::OpenError::Io(source) => Error::Connect {
            url: url.to_owned(),
            source,
        },
    })
}

impl Client {
    /// Connects to the server at `url` (`unix://PATH`, `tcp://A.B.C.D:PORT`,
    /// `tcp6://[ADDR]:PORT`) with default options.
    pub fn connect(url: &str) -> Result<Client, Error> {
        Client::connect_with(url, Options::default())
    }

    /// Connects to the server named by `RUMP_SERVER`.
    pub fn from_env() -> Result<Client, Error> {
        Client::from_env_with(Options::default())
    }

    /// Connects to the server named by `RUMP_SERVER`, with options.
    pub fn from_env_with(opts: Options) -> Result<Client, Error> {
        let url = std::env::var(SERVER_VAR).map_err(|_| Error::EnvUnset(SERVER_VAR))?;
        Client::connect_with(&url, opts)
    }

    /// Connects to `url`: reads and checks the banner, then makes the guest
    /// handshake (the first request, reqno 1).
    ///
    /// A connect that fails, and a banner or handshake answer that does not
    /// come within [`Options::connect_timeout`], is an [`Error::Connect`]
    /// naming `url`.
    pub fn connect_with(url: &str, opts: Options) -> Result<Client, Error> {
        let stream = open_stream(url, &opts)?;
        Client::start(stream, Some(url.to_owned()), opts, |name| Start::Guest {
            name,
        })
        .map_err(|e| e.connecting_to(url))
    }

    /// Like `rumpclient_init`: adopts the connection of the previous image
    /// after an exec when `RUMPCLIENT__EXECFD` is set, else connects to
    /// `RUMP_SERVER`.
    ///
    /// # Safety
    ///
    /// When `RUMPCLIENT__EXECFD` is set this is [`Client::from_exec_env`]
    /// and the caller makes its promise: the descriptor the variable names
    /// is owned by nothing else in this process.
    pub unsafe fn init(opts: Options) -> Result<Client, Error> {
        if std::env::var_os(EXECFD_VAR).is_some() {
            // SAFETY: this function's contract is from_exec_env's.
            unsafe { Client::from_exec_env(opts) }
        } else {
            Client::from_env_with(opts)
        }
    }

    /// Sets up a client on a connected stream.
    pub(crate) fn start(
        stream: transport::Stream,
        url: Option<String>,
        opts: Options,
        how: impl FnOnce(&[u8]) -> Start<'_>,
    ) -> Result<Client, Error> {
        let name = opts.resolved_name();
        let shared = Arc::new(Shared {
            opts,
            mem: Default::default(),
            counters: Counters::default(),
        });
        let (conn, banner) = Conn::open(stream, shared.clone(), how(&name))?;
        Ok(Client {
            url,
            shared,
            conn: RwLock::new(conn),
            banner,
            reconnecting: Mutex::new(()),
        })
    }

    /// The banner the server sent (none for a client adopted after exec).
    pub fn banner(&self) -> Option<&Banner> {
        self.banner.as_ref()
    }

    /// The server URL, if known.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.shared.opts
    }

    /// Why the connection ended, or `None` while it is up.
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        self.conn.read().dead_reason()
    }

    /// Whether the connection is up.
    pub fn is_connected(&self) -> bool {
        self.disconnect_reason().is_none()
    }

    /// The extension features the server agreed to on the current
    /// connection ([`Features::NONE`] for a stock server, or with
    /// [`Options::extensions`] off).
    pub fn extension_features(&self) -> Features {
        self.conn.read().features()
    }

    /// Number of requests (calls, handshakes, preforks) now waiting for
    /// the server's answer on the current connection.
    pub fn in_flight(&self) -> usize {
        self.conn.read().in_flight()
    }

    /// Ends the connection: calls in flight fail, later ones fail fast (or
    /// reconnect, under [`Reconnect::Retry`]).
    pub fn disconnect(&self) {
        self.conn.read().kill(DisconnectReason::Closed);
    }

    /// Counters of refused copies and signals.
    pub fn refused_copies(&self) -> CopyStats {
        let c = &self.shared.counters;
        CopyStats {
            refused_copyin: c.refused_copyin.load(Ordering::Relaxed),
            refused_copyout: c.refused_copyout.load(Ordering::Relaxed),
            signals: c.signals.load(Ordering::Relaxed),
            ignored_signals: c.ignored_signals.load(Ordering::Relaxed),
        }
    }

    /// Lets the server read and write any address of this process, not only
    /// the exposed buffers and mappings, like the C client (`on`), or goes
    /// back to the safe policy (`!on`).
    ///
    /// # Safety
    ///
    /// While raw mode is on, every address the server names in a copy
    /// request outside the exposed buffers is dereferenced: the caller
    /// promises that the server only names memory of this process that is
    /// valid for the access and that no Rust reference aliases while a call
    /// runs (in practice: the server is trusted and the calls pass raw
    /// pointers to memory the caller owns, such as iovec data buffers built
    /// by hand). A wrong address is undefined behaviour (at best a crash).
    pub unsafe fn set_raw_memory(&self, on: bool) {
        self.shared.mem.set_raw(on);
    }

    /// Whether raw mode is on.
    pub fn raw_memory(&self) -> bool {
        self.shared.mem.is_raw()
    }

    /// The anonymous mapping the server made at `addr` (ANONMMAP, e.g. by
    /// [`Client::mmap_anon`]).
    pub fn mapping(&self, addr: u64) -> Option<Mapping> {
        self.shared.mem.mapping(addr)
    }

    /// Every anonymous mapping, in address order.
    pub fn mappings(&self) -> Vec<Mapping> {
        self.shared.mem.mappings()
    }

    /// Runs `f` on the mapping at `addr`; `None` if there is none. See
    /// [`Mapping::with`] for what `f` must not do.
    pub fn with_mapping<R>(&self, addr: u64, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        self.mapping(addr).map(|m| m.with(f))
    }

    /// Forgets the mapping at `addr` (the server's kernel is not told); the
    /// memory is freed when the last [`Mapping`] handle goes. `false` if
    /// there was none.
    pub fn unmap(&self, addr: u64) -> bool {
        self.shared.mem.unmap(addr)
    }

    /// The live connection, reconnecting first if the policy says so.
    fn conn(&self) -> Result<Arc<Conn>, Error> {
        let c = self.conn.read().clone();
        let Some(reason) = c.dead_reason() else {
            return Ok(c);
        };
        let Reconnect::Retry { timeout } = self.shared.opts.reconnect else {
            return Err(Error::Disconnected(reason));
        };
        let url = self.url.as_deref().ok_or(Error::NoUrl)?;
        let _one = self.reconnecting.lock();
        let c = self.conn.read().clone();
        if c.dead_reason().is_none() {
            return Ok(c);
        }
        let deadline = Instant::now() + timeout;
        let mut delay = Duration::from_millis(10);
        let name = self.shared.opts.resolved_name();
        loop {
            let attempt = open_stream(url, &self.shared.opts).and_then(|s| {
                Conn::open(s, self.shared.clone(), Start::Guest { name: &name })
                    .map_err(|e| e.connecting_to(url))
            });
            match attempt {
                Ok((conn, _banner)) => {
                    tracing::info!("reconnected to {url} as a new guest");
                    *self.conn.write() = conn.clone();
                    return Ok(conn);
                }
                Err(e) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(e);
                    }
                    std::thread::sleep(delay.min(deadline - now));
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Makes system call `sysnum` (an [`abi::Sysnum`] or its number) with
    /// argument slots `args`, exposing `bufs` to the server for its
    /// duration (see [`Buf`]; their addresses belong in `args`, and
    /// [`Call`] keeps the two in step). Returns the two return values or a
    /// NetBSD errno.
    pub fn syscall(
        &self,
        sysnum: impl Into<abi::Sysnum>,
        args: &[u64],
        bufs: &mut [Buf<'_>],
    ) -> Result<[i64; 2], Errno> {
        self.syscall_detailed(sysnum, args, bufs)
            .map_err(|e| e.errno())
    }

    /// [`Client::syscall`] with the full error.
    pub fn syscall_detailed(
        &self,
        sysnum: impl Into<abi::Sysnum>,
        args: &[u64],
        bufs: &mut [Buf<'_>],
    ) -> Result<[i64; 2], Error> {
        let sysnum = sysnum.into().0;
        let conn = self.conn()?;
        let block = sp_proto::args::slot_bytes(args);
        let token = self.shared.mem.register(bufs);
        let plain = || {
            conn.request(|reqno| Message::Syscall {
                reqno,
                sysnum,
                args: block,
            })
        };
        // With the extension, the bytes the call reads go with it; a
        // server that declines them (TRYAGAIN: the call did not run) gets
        // the plain call. The buffers stay registered either way, for a
        // server that asks anyway.
        let res = match conn.segments_for(block.len(), bufs) {
            Some(segs) => match conn.request_seg(sysnum, block, &segs) {
                Ok(Reply::Error(ErrorCode::TRYAGAIN)) => plain(),
                other => other,
            },
            None => plain(),
        };
        let dropped = self.shared.mem.finish(token, bufs);
        match res? {
            Reply::Syscall { error: 0, retval } => match dropped {
                Some(r) => Err(Error::CopyRefused(r)),
                None => Ok(retval),
            },
            Reply::Syscall { error, .. } => Err(Error::Syscall(Errno(error))),
            other => Err(other.unexpected(MsgType::SYSCALL)),
        }
    }

    /// Makes the call built by `call`.
    pub fn call(&self, call: Call<'_>) -> Result<[i64; 2], Errno> {
        self.call_detailed(call).map_err(|e| e.errno())
    }

    /// [`Client::call`] with the full error.
    pub fn call_detailed(&self, mut call: Call<'_>) -> Result<[i64; 2], Error> {
        self.syscall_detailed(call.sysnum, &call.args, &mut call.bufs)
    }
}
