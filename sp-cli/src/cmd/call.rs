//! `sp call [--server URL] OP ...`: one system call operation in a remote
//! kernel, the way a shell user wants it.
//!
//! `--server` may come anywhere after `call`. Errors are one line, with
//! long names shortened ([`super::short_name`]). When standard output is a
//! pipe whose reader has gone (`sp call cat f | head`), `sp call` stops
//! quietly with status 0, as a reader-driven pipeline expects.

use super::short_name;
use sp_client::{Client, Options};
use sp_proto::abi::{dt, mode, oflag};
use sp_proto::Errno;
use std::io::{Read, Write};

/// What `sp call` can do.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Op {
    /// Print the remote process's pid and ppid.
    Getpid,
    /// List a directory.
    Ls {
        /// Directory path in the remote kernel.
        path: String,
    },
    /// Copy a remote file to stdout.
    Cat {
        /// File path in the remote kernel.
        path: String,
    },
    /// Copy stdin to a remote file (created or truncated).
    Put {
        /// File path in the remote kernel.
        path: String,
    },
    /// Make a directory.
    Mkdir {
        /// Directory path in the remote kernel.
        path: String,
    },
    /// Remove a file (or, if it is a directory, the empty directory).
    Rm {
        /// Path in the remote kernel.
        path: String,
    },
    /// Print a file's status.
    Stat {
        /// Path in the remote kernel.
        path: String,
    },
    /// Rename A to B.
    Mv {
        /// Old path.
        from: String,
        /// New path.
        to: String,
    },
}

/// Options of `sp call`.
#[derive(clap::Args, Debug)]
pub struct CallArgs {
    /// The server's URL; defaults to $RUMP_SERVER. May come before or
    /// after the operation.
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// The operation.
    #[command(subcommand)]
    pub op: Op,
}

/// Why `sp call` failed: a one-line message for the user.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No URL given and RUMP_SERVER unset.
    #[error("no server: give --server URL or set RUMP_SERVER")]
    NoServer,
    /// The URL does not parse.
    #[error("bad server URL {}: {}", short_name(url), short_name(&err.to_string()))]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        err: sp_transport::UrlError,
    },
    /// Connecting or the handshake failed.
    #[error("cannot reach {}: {}", short_name(url), connect_reason(err))]
    Connect {
        /// The URL.
        url: String,
        /// What went wrong.
        err: sp_client::Error,
    },
    /// The remote kernel refused the operation.
    #[error("{what}: {errno}")]
    Errno {
        /// The operation and its path.
        what: String,
        /// The NetBSD errno.
        errno: Errno,
    },
    /// Reading local standard input failed.
    #[error("standard input: {0}")]
    Input(std::io::Error),
    /// Writing local standard output failed.
    #[error("standard output: {0}")]
    Output(std::io::Error),
}

impl CallError {
    /// Whether this is standard output's reader having gone away (EPIPE):
    /// not a failure of the call, the end of what anyone wanted.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CallError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// Why a connect failed, without the URL the message already names.
fn connect_reason(err: &sp_client::Error) -> String {
    match err {
        sp_client::Error::Connect { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// `op` and its paths for a message, each shortened if long.
fn what(op: &str, paths: &[&str]) -> String {
    let mut s = op.to_string();
    for p in paths {
        s.push(' ');
        s.push_str(&short_name(p));
    }
    s
}

fn at(op: &str, paths: &[&str]) -> impl FnOnce(Errno) -> CallError {
    let what = what(op, paths);
    move |errno| CallError::Errno { what, errno }
}

fn out_err(e: std::io::Error) -> CallError {
    CallError::Output(e)
}

const CHUNK: usize = 256 * 1024;

/// Runs one operation, writing its output to `out` and reading `input`
/// for `put`.
pub fn run_with(
    args: CallArgs,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<(), CallError> {
    let url = match args.server {
        Some(u) => u,
        None => std::env::var(sp_client::SERVER_VAR).map_err(|_| CallError::NoServer)?,
    };
    if let Err(err) = sp_transport::parse(&url, sp_transport::Role::Client) {
        return Err(CallError::BadUrl { url, err });
    }
    let client = Client::connect_with(&url, Options::new().name("sp-call")).map_err(|err| {
        CallError::Connect {
            url: url.clone(),
            err,
        }
    })?;
    match args.op {
        Op::Getpid => {
            let (pid, ppid) = client.getpid().map_err(at("getpid", &[]))?;
            writeln!(out, "pid {pid} ppid {ppid}").map_err(out_err)?;
        }
        Op::Ls { path } => {
            let mut entries = client.read_dir(&path).map_err(at("ls", &[&path]))?;
            entries.sort_by(|a, b| a.name().cmp(b.name()));
            for e in entries {
                let suffix = match e.raw_type() {
                    dt::DT_DIR => "/",
                    dt::DT_FIFO => "|",
                    _ => "",
                };
                writeln!(out, "{}{suffix}", String::from_utf8_lossy(e.name())).map_err(out_err)?;
            }
        }
        Op::Cat { path } => {
            let fd = client
                .open(&path, oflag::O_RDONLY, 0)
                .map_err(at("cat", &[&path]))?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = client.read(fd, &mut buf).map_err(at("cat", &[&path]))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).map_err(out_err)?;
            }
            let _ = client.close(fd);
        }
        Op::Put { path } => {
            let flags = oflag::O_WRONLY | oflag::O_CREAT | oflag::O_TRUNC;
            let fd = client
                .open(&path, flags, 0o644)
                .map_err(at("put", &[&path]))?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = input.read(&mut buf).map_err(CallError::Input)?;
                if n == 0 {
                    break;
                }
                let mut done = 0;
                while done < n {
                    done += client
                        .write(fd, &buf[done..n])
                        .map_err(at("put", &[&path]))?;
                }
            }
            client.close(fd).map_err(at("put", &[&path]))?;
        }
        Op::Mkdir { path } => client.mkdir(&path, 0o755).map_err(at("mkdir", &[&path]))?,
        Op::Rm { path } => {
            let st = client.lstat(&path).map_err(at("rm", &[&path]))?;
            if st.is_dir() {
                client.rmdir(&path).map_err(at("rm", &[&path]))?;
            } else {
                client.unlink(&path).map_err(at("rm", &[&path]))?;
            }
        }
        Op::Stat { path } => {
            let st = client.stat(&path).map_err(at("stat", &[&path]))?;
            let m = st.mode();
            let kind = match m & mode::S_IFMT {
                mode::S_IFDIR => "directory",
                mode::S_IFREG => "regular file",
                mode::S_IFIFO => "fifo",
                mode::S_IFCHR => "character device",
                _ => "other",
            };
            writeln!(
                out,
                "{path}: {kind}, mode {:04o}, size {}, inode {}, links {}",
                m & 0o7777,
                st.size(),
                st.ino(),
                st.nlink()
            )
            .map_err(out_err)?;
        }
        Op::Mv { from, to } => client.rename(&from, &to).map_err(at("mv", &[&from, &to]))?,
    }
    Ok(())
}

/// Runs one operation on the process's stdin and stdout. A reader of
/// stdout that went away early ends it quietly with success, as `head`
/// at the end of a pipeline expects; the remote descriptor goes with the
/// connection.
pub fn run(args: CallArgs) -> Result<(), CallError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let res = run_with(args, &mut std::io::stdin().lock(), &mut out)
        .and_then(|()| out.flush().map_err(out_err));
    match res {
        Err(e) if e.is_broken_pipe() => Ok(()),
        other => other,
    }
}
