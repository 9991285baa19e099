//! `sp call [--server URL] OP ...`: one system call operation in a remote
//! kernel, the way a shell user wants it.

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
    /// The server's URL; defaults to $RUMP_SERVER.
    #[arg(long)]
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
    /// Connecting or the handshake failed.
    #[error("cannot reach {url}: {err}")]
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
    /// Local standard input or output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn at(what: impl Into<String>) -> impl FnOnce(Errno) -> CallError {
    let what = what.into();
    move |errno| CallError::Errno { what, errno }
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
    let client = Client::connect_with(&url, Options::new().name("sp-call")).map_err(|err| {
        CallError::Connect {
            url: url.clone(),
            err,
        }
    })?;
    match args.op {
        Op::Getpid => {
            let (pid, ppid) = client.getpid().map_err(at("getpid"))?;
            writeln!(out, "pid {pid} ppid {ppid}")?;
        }
        Op::Ls { path } => {
            let mut entries = client.read_dir(&path).map_err(at(format!("ls {path}")))?;
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            for e in entries {
                let suffix = match e.kind {
                    dt::DT_DIR => "/",
                    dt::DT_FIFO => "|",
                    _ => "",
                };
                writeln!(out, "{}{suffix}", String::from_utf8_lossy(&e.name))?;
            }
        }
        Op::Cat { path } => {
            let fd = client
                .open(&path, oflag::O_RDONLY, 0)
                .map_err(at(format!("cat {path}")))?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = client
                    .read(fd, &mut buf)
                    .map_err(at(format!("cat {path}")))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])?;
            }
            let _ = client.close(fd);
        }
        Op::Put { path } => {
            let flags = oflag::O_WRONLY | oflag::O_CREAT | oflag::O_TRUNC;
            let fd = client
                .open(&path, flags, 0o644)
                .map_err(at(format!("put {path}")))?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                let mut done = 0;
                while done < n {
                    done += client
                        .write(fd, &buf[done..n])
                        .map_err(at(format!("put {path}")))?;
                }
            }
            client.close(fd).map_err(at(format!("put {path}")))?;
        }
        Op::Mkdir { path } => client
            .mkdir(&path, 0o755)
            .map_err(at(format!("mkdir {path}")))?,
        Op::Rm { path } => {
            let st = client.lstat(&path).map_err(at(format!("rm {path}")))?;
            if st.st_mode.get() & mode::S_IFMT == mode::S_IFDIR {
                client.rmdir(&path).map_err(at(format!("rm {path}")))?;
            } else {
                client.unlink(&path).map_err(at(format!("rm {path}")))?;
            }
        }
        Op::Stat { path } => {
            let st = client.stat(&path).map_err(at(format!("stat {path}")))?;
            let m = st.st_mode.get();
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
                st.st_size.get(),
                st.st_ino.get(),
                st.st_nlink.get()
            )?;
        }
        Op::Mv { from, to } => client
            .rename(&from, &to)
            .map_err(at(format!("mv {from} {to}")))?,
    }
    Ok(())
}

/// Runs one operation on the process's stdin and stdout.
pub fn run(args: CallArgs) -> Result<(), CallError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_with(args, &mut std::io::stdin().lock(), &mut out)?;
    out.flush()?;
    Ok(())
}
