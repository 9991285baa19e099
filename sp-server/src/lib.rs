//! The sysproxy server: serves remote system calls from clients over a
//! socket to any [`Kernel`] behind the seam in [`kernel`].
//!
//! One event-loop thread accepts clients, frames their bytes and answers
//! handshakes; every system call runs on a worker thread of its own, so a
//! call that blocks in the kernel never stops another. Sends never block the
//! loop: what the loop sends waits in a bounded per-connection queue. A
//! call's own output (its copyouts and answer) is written by its worker as
//! the client reads, however large, with no copy; a client that reads
//! nothing for `Config::send_stall_timeout` is dropped.
//!
//! ```no_run
//! use sp_server::{Config, Kernel, Server};
//! use std::sync::Arc;
//!
//! fn serve(kernel: Arc<dyn Kernel>) -> Result<(), sp_server::ServerError> {
//!     let server = Server::bind("unix:///tmp/sp.sock", kernel, Config::default())?;
//!     let handle = server.handle(); // handle.shutdown() stops it from anywhere
//!     # drop(handle);
//!     server.run()
//! }
//! ```
#![forbid(unsafe_code)]

mod config;
pub mod core;
mod driver;
pub mod kernel;

pub use config::{Config, IpNet};
pub use driver::pool::PoolStats;
pub use driver::server::{RunningServer, Server, ServerError, ServerHandle, Stats};
pub use kernel::{Args, Carried, ClientPort, Kernel, Port, ProcId};
/// The errno type and call result the [`Kernel`] trait speaks (NetBSD's
/// numbers), re-exported so a kernel needs no direct `sp-proto` dependency.
pub use sp_proto::abi::{Errno, SysResult};
