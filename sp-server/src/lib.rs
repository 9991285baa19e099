//! The sysproxy server: serves remote system calls from clients over a
//! socket to any [`Kernel`] behind the seam in [`kernel`].
//!
//! Three layers, one folder each:
//! - [`core`]: the protocol, sans-IO. Every connection's state machine
//!   (handshake, prefork, exec, calls in flight, teardown) and the
//!   server-wide tables take bytes, kernel results and the time, and
//!   yield actions. No socket, no thread, no clock: tested on simulated
//!   time, fuzzed directly.
//! - `driver`: [`Server`], one mio event loop that reads clients into the
//!   core and carries out its actions, and a pool of workers that grows
//!   with the calls in flight, so a call that blocks in the kernel never
//!   stops another. A call's own output (its copyouts and answer) is
//!   written by its worker as the client reads, however large, with no
//!   copy; a client that reads nothing for `Config::send_stall_timeout`
//!   is dropped. Sends from the loop never block it: what the socket does
//!   not take waits in a bounded per-connection queue.
//! - [`kernel`]: the seam, [`Kernel`] and [`ClientPort`].
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
pub use driver::handle::{RunningServer, ServerError, ServerHandle, Stats};
pub use driver::pool::PoolStats;
pub use driver::server::Server;
pub use kernel::{Args, Carried, ClientPort, Kernel, Port, ProcId};
/// The errno type and call result the [`Kernel`] trait speaks (NetBSD's
/// numbers), re-exported so a kernel needs no direct `sp-proto` dependency.
pub use sp_proto::abi::{Errno, SysResult};
