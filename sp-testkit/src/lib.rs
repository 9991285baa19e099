//! Test kit for the sysproxy workspace, used only by tests (not
//! published): in-process test servers ([`harness`]), a scripted raw peer
//! that speaks frame by frame ([`rawpeer`]) and the checks built on it
//! ([`peers`]), an in-memory client port for driving a kernel without a
//! socket ([`memport`]), the reference captures and their replay
//! ([`vectors`]), the fuzz bodies that `cargo test` also runs ([`fuzz`]),
//! and a stock `rump_server` starter for the opt-in tests ([`rump`]). The
//! kernels it serves are `sp-model`'s; the `sp` program is `sp-cli`.
//!
//! ```no_run
//! use sp_model::stub::StubKernel;
//! use sp_testkit::harness::{TestServer, Transport};
//! use sp_testkit::rawpeer::RawPeer;
//! use std::sync::Arc;
//!
//! let server = TestServer::start(Arc::new(StubKernel::new()), Transport::Unix);
//! let mut peer = RawPeer::guest(&server.url(), "example").unwrap();
//! let (error, retval) = peer.syscall(2, 20, &[]).unwrap(); // getpid
//! assert_eq!((error, retval[0]), (0, 2));
//! ```

pub mod core_session;
pub mod fuzz;
pub mod harness;
pub mod memport;
pub mod peers;
pub mod rawpeer;
pub mod rump;
pub mod vectors;
