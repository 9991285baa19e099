//! Our sysproxy server inside a stock NetBSD rump kernel.
//!
//! A rump kernel (NetBSD's `librump` and its components, as built for
//! Linux) serves remote clients through the `rumpuser_sp_*` functions it
//! imports from `librumpuser`. This crate defines those functions with the
//! same C signatures and puts `sp-server` behind them, so preloading the
//! library replaces the C server with no rebuild of anything:
//!
//! ```sh
//! env LD_PRELOAD=target/release/libsp_rumpuser.so \
//!     rump_server -s -lrumpvfs -lrumpfs_tmpfs unix:///tmp/rs.sock
//! ```
//!
//! Every client the stock server serves, ours serves on the same wire
//! bytes (the banner comes from `rumpuser_sp_init`'s arguments), with
//! `sp-server`'s protections: bounded frames and queues, no client table,
//! blocked calls that never starve others, a handshake timeout, prefork
//! caps. The kernel is reached only through its hypercall table
//! (`rumpuser__hyp`, found at `rumpuser_sp_init`); see [`kernel`] for the
//! rules kept and the checks the stock kernel lacks.
//!
//! `rump_server` takes no options of ours, so limits and access control
//! come from environment variables ([`env`](mod@env)), logged once at start; a bad
//! value is refused with a message on stderr and `rumpuser_sp_init` fails
//! with EINVAL.
//!
//! From Rust, the limits can be read and checked without starting anything:
//!
//! ```
//! let vars = [("SP_MAX_CLIENTS", "100"), ("SP_ALLOW_UID", "0,1000")];
//! let lookup = |name: &str| vars.iter().find(|v| v.0 == name).map(|v| v.1.to_string());
//! let ep = sp_transport::parse("unix:///tmp/rs.sock", sp_transport::Role::Server).unwrap();
//! let config = sp_rumpuser::env::config(&ep, lookup).unwrap();
//! assert_eq!(config.max_clients, 100);
//! assert_eq!(config.allowed_uids, Some(vec![0, 1000]));
//! ```
//!
//! All `unsafe` code is in one module, the C edge; a panic never crosses
//! it.
#![deny(unsafe_code)]

pub mod env;
#[allow(unsafe_code)]
mod ffi;
pub mod kernel;

pub use ffi::{
    rumpuser_sp_anonmmap, rumpuser_sp_copyin, rumpuser_sp_copyinstr, rumpuser_sp_copyout,
    rumpuser_sp_copyoutstr, rumpuser_sp_fini, rumpuser_sp_init, rumpuser_sp_raise, RumpuserHyperup,
};
pub use kernel::RumpKernel;

use parking_lot::Mutex;
use sp_proto::{Banner, Errno};
use sp_server::{Server, ServerHandle};
use sp_transport::{Endpoint, Role};
use std::path::PathBuf;
use std::sync::Arc;

/// One server started by `rumpuser_sp_init`.
struct Instance {
    kernel: Arc<RumpKernel>,
    handle: ServerHandle,
    /// The unix socket to remove when the kernel halts.
    socket: Option<PathBuf>,
}

static SERVERS: Mutex<Vec<Instance>> = Mutex::new(Vec::new());

/// Starts logging to stderr once (unless the host program has a
/// subscriber of its own): `SP_LOG` as a filter, `info` by default.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = std::env::var("SP_LOG").unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// `rumpuser_sp_init` behind the C edge.
fn init(
    hyp: &'static ffi::Hyp,
    url: &str,
    ostype: &str,
    osrelease: &str,
    machine: &str,
) -> Result<(), Errno> {
    init_logging();
    let ep = sp_transport::parse(url, Role::Server).map_err(|e| {
        eprintln!("sp-rumpuser: {url}: {e}");
        e.errno()
    })?;
    let mut config = env::config(&ep, |k| std::env::var(k).ok()).map_err(|e| {
        eprintln!("sp-rumpuser: {e}");
        Errno::EINVAL
    })?;
    config.banner = Banner::new(ostype, osrelease, machine);
    let max_procs = env::max_procs(|k| std::env::var(k).ok()).map_err(|e| {
        eprintln!("sp-rumpuser: {e}");
        Errno::EINVAL
    })?;
    let kernel = Arc::new(RumpKernel::new(hyp, max_procs).map_err(|e| {
        eprintln!("sp-rumpuser: cannot start the kernel thread: {e}");
        Errno::EAGAIN
    })?);
    let summary = format!("{}, {max_procs} kernel processes", env::summary(&config));
    let server = Server::bind_endpoint(&ep, kernel.clone(), config).map_err(|e| {
        eprintln!("sp-rumpuser: cannot serve {url}: {e}");
        server_errno(&e)
    })?;
    let endpoint = server.endpoint().clone();
    let handle = server.handle();
    std::thread::Builder::new()
        .name("sp-server".into())
        .spawn(move || {
            if let Err(e) = server.run() {
                tracing::error!("sp-rumpuser: server stopped: {e}");
            }
        })
        .map_err(|e| {
            eprintln!("sp-rumpuser: cannot start the server thread: {e}");
            Errno::EAGAIN
        })?;
    tracing::info!("sp-rumpuser: serving {endpoint} ({summary})");
    let socket = match &endpoint {
        Endpoint::Unix(p) => Some(p.clone()),
        _ => None,
    };
    SERVERS.lock().push(Instance {
        kernel,
        handle,
        socket,
    });
    Ok(())
}

/// `rumpuser_sp_fini` behind the C edge, first half: no hypercall from
/// now on, and the unix sockets removed at once (the process is about to
/// exit, so no destructor will). Returns the servers for [`fini_end`].
fn fini_begin() -> Vec<Instance> {
    let servers: Vec<Instance> = SERVERS.lock().drain(..).collect();
    for inst in &servers {
        inst.kernel.halt();
        if let Some(path) = &inst.socket {
            let _ = std::fs::remove_file(path);
        }
    }
    servers
}

/// Second half: the servers are told to stop.
fn fini_end(servers: Vec<Instance>) {
    for inst in servers {
        inst.handle.shutdown();
    }
}

/// The NetBSD errno for a server that could not start.
fn server_errno(e: &sp_server::ServerError) -> Errno {
    use sp_server::ServerError as E;
    use sp_transport::ListenError as L;
    match e {
        E::Url(u) => u.errno(),
        E::Banner(_) => Errno::EINVAL,
        E::Listen(L::InUse { .. }) => Errno(48), // EADDRINUSE
        E::Listen(L::NotASocket { .. }) => Errno::EEXIST,
        E::Listen(L::Io { source, .. }) => host_errno(source),
        E::Io(io) => host_errno(io),
    }
}

/// A host (Linux) errno as NetBSD's: 1 to 34 agree but for 11 (EAGAIN on
/// Linux, EDEADLK on NetBSD); the socket errors a bind can give are mapped;
/// anything else is EIO.
fn host_errno(e: &std::io::Error) -> Errno {
    Errno(match e.raw_os_error() {
        Some(11) => 35,
        Some(n @ 1..=34) => n,
        Some(36) => 63,  // ENAMETOOLONG
        Some(95) => 45,  // EOPNOTSUPP
        Some(97) => 47,  // EAFNOSUPPORT
        Some(98) => 48,  // EADDRINUSE
        Some(99) => 49,  // EADDRNOTAVAIL
        Some(111) => 61, // ECONNREFUSED
        _ => 5,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errnos_become_netbsd_ones() {
        let e = |n| host_errno(&std::io::Error::from_raw_os_error(n));
        assert_eq!(e(libc::EACCES), Errno::EACCES);
        assert_eq!(e(libc::EAGAIN), Errno::EAGAIN);
        assert_eq!(e(libc::EADDRINUSE), Errno(48));
        assert_eq!(e(libc::ENAMETOOLONG), Errno::ENAMETOOLONG);
        assert_eq!(e(libc::ENOENT), Errno::ENOENT);
        assert_eq!(e(libc::ELOOP), Errno::EIO);
    }
}
