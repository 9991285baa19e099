//! Test kit for the sysproxy workspace: the model kernel, a kernel that
//! behaves like the stub behind the reference captures, an in-memory client
//! port, in-process test servers, a scripted raw peer, and capture replay.
//!
//! ```no_run
//! use sp_testkit::harness::{TestServer, Transport};
//! use sp_testkit::rawpeer::RawPeer;
//! use std::sync::Arc;
//!
//! let server = TestServer::start(Arc::new(sp_model::stub::StubKernel::new()), Transport::Unix);
//! let mut peer = RawPeer::guest(&server.url(), "example").unwrap();
//! let (error, retval) = peer.syscall(2, 20, &[]).unwrap(); // getpid
//! assert_eq!((error, retval[0]), (0, 2));
//! ```

pub mod bench;
pub mod cmd;
pub mod fuzz;
pub mod harness;
pub mod memport;
pub mod peers;
pub mod rawpeer;
pub mod rump;
pub mod vectors;
