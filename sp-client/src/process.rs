//! Host fork and exec with the kernel process following along.
//!
//! Fork: the parent asks the server to fork its kernel process (PREFORK,
//! answered with a cookie), forks on the host, and the child opens a new
//! connection that claims the prefork with the cookie (HANDSHAKE FORK).
//!
//! Exec: the connection survives the host `execve`. The old image clears
//! close-on-exec on the socket and passes its descriptor in
//! `RUMPCLIENT__EXECFD`; the new image adopts it and sends HANDSHAKE EXEC
//! with its new name (no banner; request numbers start again at 0).

use crate::conn::{Reply, Start};
use crate::error::Error;
use crate::transport::Stream;
use crate::{open_stream, Client, Cookie, Options, SERVER_VAR};
use sp_proto::{Message, MsgType};
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// The environment variable that carries the connection across an exec:
/// `"<fd>,<fd2>"` (we write -1 for the second descriptor, which the C
/// client uses for its own kqueue).
pub const EXECFD_VAR: &str = "RUMPCLIENT__EXECFD";

/// The outcome of [`Client::fork`] in each process.
#[derive(Debug)]
pub enum ForkResult {
    /// In the parent: the child's host pid.
    Parent {
        /// Host pid of the child.
        pid: i32,
    },
    /// In the child: its own client, bound to the forked kernel process.
    Child(Client),
}

/// Sets or clears `FD_CLOEXEC` on `fd`.
fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD takes no pointer argument; an invalid `fd` only makes
    // fcntl fail with EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: F_SETFD takes an integer argument; no memory is involved.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `FD_CLOEXEC` is set on `fd`.
#[cfg(test)]
pub(crate) fn cloexec(fd: RawFd) -> io::Result<bool> {
    // SAFETY: as in `set_cloexec`.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & libc::FD_CLOEXEC != 0)
}

/// Parses the value of `RUMPCLIENT__EXECFD`: the first number is ours.
fn parse_execfd(v: &str) -> Option<RawFd> {
    let first = v.split(',').next()?;
    first.trim().parse::<RawFd>().ok().filter(|&fd| fd >= 0)
}

fn cstring(s: &OsStr) -> Result<CString, Error> {
    CString::new(s.as_bytes())
        .map_err(|_| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, "interior NUL")))
}

impl Client {
    /// Asks the server to fork this client's kernel process ahead of a host
    /// fork; returns the cookie the child presents to claim it.
    pub fn prefork(&self) -> Result<Cookie, Error> {
        let conn = self.conn()?;
        match conn.request(|reqno| Message::Prefork { reqno })? {
            Reply::Prefork(cookie) => Ok(cookie),
            other => Err(other.unexpected(MsgType::PREFORK)),
        }
    }

    /// In a fork child: connects to `url` and claims the prefork `cookie`
    /// (banner, then HANDSHAKE FORK with cancel 0, reqno 1).
    pub fn fork_child(url: &str, cookie: Cookie, opts: Options) -> Result<Client, Error> {
        let stream = open_stream(url, &opts)?;
        Client::start(stream, Some(url.to_owned()), opts, |_| Start::Fork {
            cookie,
            cancel: false,
        })
        .map_err(|e| e.connecting_to(url))
    }

    /// Discards the prefork `cookie` (when the host fork failed): a new
    /// connection sends HANDSHAKE FORK with cancel 1; the server answers
    /// nothing and drops it.
    pub fn cancel_prefork(url: &str, cookie: Cookie) -> Result<(), Error> {
        let opts = Options::default();
        let stream = open_stream(url, &opts)?;
        Client::start(stream, Some(url.to_owned()), opts, |_| Start::Fork {
            cookie,
            cancel: true,
        })
        .map(drop)
        .map_err(|e| e.connecting_to(url))
    }

    /// Forks the host process with the kernel process following: prefork,
    /// `fork(2)`, and in the child a new connection claiming the prefork.
    /// Anonymous mappings move to the child's client (the host fork copied
    /// their memory to the same addresses).
    ///
    /// In the child, `self` still refers to the parent's connection: do not
    /// make calls on it (dropping it is fine; it only closes the child's copy
    /// of the descriptor).
    ///
    /// # Safety
    ///
    /// `fork(2)` in a multi-threaded process leaves the child with only the
    /// calling thread: any lock another thread held stays locked forever in
    /// the child. The caller must make sure that no other thread holds a lock
    /// the child needs (the allocator's are handled by the C library; this
    /// client's own are not, so no other thread may be using this client).
    /// The simplest way is to fork while the process has one thread.
    pub unsafe fn fork(&self) -> Result<ForkResult, Error> {
        let url = self.url.clone().ok_or(Error::NoUrl)?;
        let cookie = self.prefork()?;
        // SAFETY: fork(2) itself has no memory-safety preconditions; the
        // consequences for the child's locks are the caller's contract,
        // stated above. The child runs ordinary Rust code afterwards.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let e = io::Error::last_os_error();
            if let Err(c) = Client::cancel_prefork(&url, cookie) {
                tracing::warn!("could not cancel the prefork: {c}");
            }
            return Err(Error::Io(e));
        }
        if pid > 0 {
            return Ok(ForkResult::Parent { pid });
        }
        let maps = self.shared.mem.take_mappings();
        let child = Client::fork_child(&url, cookie, self.shared.opts.clone())?;
        child.shared.mem.adopt_mappings(maps);
        Ok(ForkResult::Child(child))
    }

    /// Clears close-on-exec on the socket and returns the value for
    /// `RUMPCLIENT__EXECFD`.
    fn exec_handoff(&self) -> Result<String, Error> {
        let conn = self.conn()?;
        let fd = conn.stream().as_raw_fd();
        set_cloexec(fd, false)?;
        Ok(format!("{fd},-1"))
    }

    /// Gets the connection ready to survive an `execve` done by the caller:
    /// clears close-on-exec on the socket and sets `RUMPCLIENT__EXECFD` in
    /// this process's environment. No call may be in flight (the server
    /// waits for them to finish before it answers the new image).
    ///
    /// Setting an environment variable is not thread-safe with respect to
    /// C code reading the environment concurrently.
    pub fn prepare_exec(&self) -> Result<(), Error> {
        let v = self.exec_handoff()?;
        std::env::set_var(EXECFD_VAR, v);
        Ok(())
    }

    /// Executes `path` with `argv` and `envp` (`KEY=VALUE` strings), handing
    /// the connection to the new image through `RUMPCLIENT__EXECFD` (added
    /// to `envp`, replacing any there). Returns only on failure, with
    /// close-on-exec restored on the socket. The new image picks the
    /// connection up with [`Client::from_exec_env`] or [`Client::init`].
    pub fn exec<P, A, E>(&self, path: P, argv: &[A], envp: &[E]) -> Error
    where
        P: AsRef<OsStr>,
        A: AsRef<OsStr>,
        E: AsRef<OsStr>,
    {
        match self.exec_inner(path.as_ref(), argv, envp) {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    fn exec_inner<A: AsRef<OsStr>, E: AsRef<OsStr>>(
        &self,
        path: &OsStr,
        argv: &[A],
        envp: &[E],
    ) -> Result<std::convert::Infallible, Error> {
        let path = cstring(path)?;
        let argv: Vec<CString> = argv
            .iter()
            .map(|a| cstring(a.as_ref()))
            .collect::<Result<_, _>>()?;
        let prefix = format!("{EXECFD_VAR}=");
        let mut env: Vec<CString> = envp
            .iter()
            .filter(|e| !e.as_ref().as_bytes().starts_with(prefix.as_bytes()))
            .map(|e| cstring(e.as_ref()))
            .collect::<Result<_, _>>()?;
        let fd = self.conn()?.stream().as_raw_fd();
        let handoff = self.exec_handoff()?;
        env.push(
            CString::new(format!("{prefix}{handoff}")).expect("a formatted number has no NUL"),
        );
        let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_p.push(std::ptr::null());
        let mut env_p: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
        env_p.push(std::ptr::null());
        // SAFETY: `path`, every `argv`/`env` string and both NULL-terminated
        // pointer arrays are alive until execve returns (it only returns on
        // failure; on success this image is gone).
        unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
        let e = io::Error::last_os_error();
        let _ = set_cloexec(fd, true);
        Err(Error::Io(e))
    }

    /// In the image after an exec: adopts the connection named by
    /// `RUMPCLIENT__EXECFD` (removing the variable and setting close-on-exec
    /// back on), and sends HANDSHAKE EXEC with this image's name on it, reqno
    /// 0. The server URL is taken from `RUMP_SERVER` if set (needed for
    /// fork and reconnect).
    pub fn from_exec_env(opts: Options) -> Result<Client, Error> {
        let v = std::env::var(EXECFD_VAR).map_err(|_| Error::EnvUnset(EXECFD_VAR))?;
        std::env::remove_var(EXECFD_VAR);
        let fd = parse_execfd(&v).ok_or_else(|| Error::ExecEnv(v.clone()))?;
        // Refuse a descriptor that is not open before taking ownership.
        set_cloexec(fd, true)?;
        // SAFETY: the variable names a descriptor our previous image left
        // open for us (checked open just above); nothing else in this image
        // knows about it, so the OwnedFd becomes its only owner.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let stream = Stream::from_owned_fd(owned)?;
        let url = std::env::var(SERVER_VAR).ok();
        Client::start(stream, url, opts, |name| Start::Exec { name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execfd_values() {
        assert_eq!(parse_execfd("7,-1"), Some(7));
        assert_eq!(parse_execfd("12,13"), Some(12));
        assert_eq!(parse_execfd("5"), Some(5));
        assert_eq!(parse_execfd("-1,-1"), None);
        assert_eq!(parse_execfd("x"), None);
    }

    #[test]
    fn cloexec_round_trip() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = f.as_raw_fd();
        assert!(cloexec(fd).unwrap(), "std opens with O_CLOEXEC");
        set_cloexec(fd, false).unwrap();
        assert!(!cloexec(fd).unwrap());
        set_cloexec(fd, true).unwrap();
        assert!(cloexec(fd).unwrap());
        assert!(set_cloexec(-1, true).is_err());
        assert!(cloexec(-1).is_err());
    }
}
