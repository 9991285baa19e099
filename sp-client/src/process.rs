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

use crate::conn::{Conn, Reply, Start};
use crate::error::Error;
use crate::transport::Stream;
use crate::{open_stream, Client, Cookie, Options, SERVER_VAR};
use rustix::io::{fcntl_getfd, fcntl_setfd, FdFlags};
use sp_proto::{Message, MsgType};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

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
fn set_cloexec(fd: impl AsFd, on: bool) -> io::Result<()> {
    let flags = fcntl_getfd(&fd)?;
    fcntl_setfd(&fd, flags.difference(FdFlags::CLOEXEC) | cloexec_flag(on))?;
    Ok(())
}

fn cloexec_flag(on: bool) -> FdFlags {
    if on {
        FdFlags::CLOEXEC
    } else {
        FdFlags::empty()
    }
}

/// Whether `FD_CLOEXEC` is set on `fd`.
#[cfg(test)]
pub(crate) fn cloexec(fd: impl AsFd) -> io::Result<bool> {
    Ok(fcntl_getfd(fd)?.contains(FdFlags::CLOEXEC))
}

/// Parses the value of `RUMPCLIENT__EXECFD`: the first number is ours.
fn parse_execfd(v: &str) -> Option<RawFd> {
    let first = v.split(',').next()?;
    first.trim().parse::<RawFd>().ok().filter(|&fd| fd >= 0)
}

/// The program `Command` runs for `path`: as `execve(2)` would, never
/// searched for in `PATH` (a bare name is a file in the current
/// directory).
fn program(path: &OsStr) -> PathBuf {
    let bytes = path.as_bytes();
    if bytes.is_empty() || bytes.contains(&b'/') {
        PathBuf::from(path)
    } else {
        Path::new(".").join(path)
    }
}

/// `KEY=VALUE` split at its first `=`; `None` without one.
fn env_pair(entry: &OsStr) -> Option<(&OsStr, &OsStr)> {
    let b = entry.as_bytes();
    let eq = b.iter().position(|&c| c == b'=')?;
    Some((OsStr::from_bytes(&b[..eq]), OsStr::from_bytes(&b[eq + 1..])))
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

    /// Clears close-on-exec on the socket of `conn` and returns the value
    /// for `RUMPCLIENT__EXECFD`.
    fn exec_handoff(conn: &Conn) -> Result<String, Error> {
        let stream = conn.stream();
        set_cloexec(stream, false)?;
        Ok(format!("{},-1", stream.as_raw_fd()))
    }

    /// Gets the connection ready to survive an `execve` done by the caller:
    /// clears close-on-exec on the socket and sets `RUMPCLIENT__EXECFD` in
    /// this process's environment. No call may be in flight (the server
    /// waits for them to finish before it answers the new image).
    ///
    /// Setting an environment variable is not thread-safe with respect to
    /// C code reading the environment concurrently.
    pub fn prepare_exec(&self) -> Result<(), Error> {
        let v = Client::exec_handoff(&*self.conn()?)?;
        std::env::set_var(EXECFD_VAR, v);
        Ok(())
    }

    /// Executes `path` with `argv` and `envp` (`KEY=VALUE` strings), handing
    /// the connection to the new image through `RUMPCLIENT__EXECFD` (added
    /// to `envp`, replacing any there). Returns only on failure, with
    /// close-on-exec restored on the socket. The new image picks the
    /// connection up with [`Client::from_exec_env`] or [`Client::init`].
    ///
    /// Like `execve(2)`, `path` is not looked up in `PATH`. It runs through
    /// [`std::os::unix::process::CommandExt::exec`], so the new image
    /// starts as std starts a program: `argv[0]` is `argv`'s first element
    /// (`path` if `argv` is empty), the environment is exactly `envp` (an
    /// entry without `=` is an [`std::io::ErrorKind::InvalidInput`] error;
    /// for a name given twice the last wins), SIGPIPE is back at its default
    /// action and no signal is blocked.
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
        let mut cmd = Command::new(program(path));
        match argv.split_first() {
            Some((arg0, rest)) => cmd.arg0(arg0).args(rest),
            None => cmd.arg0(path),
        };
        cmd.env_clear();
        for e in envp {
            let (k, v) = env_pair(e.as_ref()).ok_or_else(|| {
                Error::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an environment entry without '='",
                ))
            })?;
            cmd.env(k, v);
        }
        let conn = self.conn()?;
        cmd.env(EXECFD_VAR, Client::exec_handoff(&conn)?);
        let e = cmd.exec();
        let _ = set_cloexec(conn.stream(), true);
        Err(Error::Io(e))
    }

    /// In the image after an exec: adopts the connection named by
    /// `RUMPCLIENT__EXECFD` (removing the variable and setting close-on-exec
    /// back on), and sends HANDSHAKE EXEC with this image's name on it, reqno
    /// 0. The server URL is taken from `RUMP_SERVER` if set (needed for
    /// fork and reconnect).
    ///
    /// A variable that does not name an open descriptor is an error before
    /// anything is adopted; one that names an open descriptor that is not a
    /// stream socket is an error after it is adopted (it is closed).
    ///
    /// # Safety
    ///
    /// The client takes the descriptor the variable names as its own and
    /// closes it when it is done. The caller promises that, if that
    /// descriptor is open, nothing else in this process owns it or will use
    /// it (no `File`, socket or `OwnedFd` of anyone else's, not one of the
    /// standard streams, not adopted by an earlier call), and that no other
    /// thread reads or writes the environment meanwhile (the variable is
    /// removed). A variable set by [`Client::exec`] or
    /// [`Client::prepare_exec`] in the previous image, read once early in
    /// this one, meets this; a variable inherited from elsewhere may name
    /// any descriptor.
    pub unsafe fn from_exec_env(opts: Options) -> Result<Client, Error> {
        let v = std::env::var(EXECFD_VAR).map_err(|_| Error::EnvUnset(EXECFD_VAR))?;
        std::env::remove_var(EXECFD_VAR);
        let fd = parse_execfd(&v).ok_or_else(|| Error::ExecEnv(v.clone()))?;
        // SAFETY: `fd` is not -1 (parse_execfd keeps nonnegative numbers),
        // and by this function's contract nobody else owns it, so borrowing
        // it for the check below cannot interfere with an owner; a number
        // that is not open only makes fcntl fail with EBADF.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        // Refuse a descriptor that is not open before taking ownership.
        set_cloexec(borrowed, true)?;
        // SAFETY: the descriptor is open (checked just above) and, by this
        // function's contract, owned by nothing else in this process, so
        // the OwnedFd becomes its only owner.
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
    fn programs_are_not_searched_for_in_path() {
        assert_eq!(program(OsStr::new("true")), Path::new("./true"));
        assert_eq!(program(OsStr::new("bin/x")), Path::new("bin/x"));
        assert_eq!(program(OsStr::new("/bin/true")), Path::new("/bin/true"));
        assert_eq!(program(OsStr::new("")), Path::new(""));
    }

    #[test]
    fn environment_entries_split_at_the_first_equals() {
        let pair = |e: &str| env_pair(OsStr::new(e)).map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(pair("A=b=c"), Some(("A".into(), "b=c".into())));
        assert_eq!(pair("A="), Some(("A".into(), "".into())));
        assert_eq!(pair("A"), None);
    }

    #[test]
    fn cloexec_round_trip() {
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(cloexec(&f).unwrap(), "std opens with O_CLOEXEC");
        set_cloexec(&f, false).unwrap();
        assert!(!cloexec(&f).unwrap());
        set_cloexec(&f, false).unwrap();
        assert!(!cloexec(&f).unwrap());
        set_cloexec(&f, true).unwrap();
        assert!(cloexec(&f).unwrap());
    }
}
