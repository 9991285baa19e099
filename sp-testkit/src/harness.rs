//! Starting a server in-process for tests.

use sp_server::{Config, Kernel, RunningServer, Server, ServerError};
use std::sync::Arc;
use tempfile::TempDir;

/// Which transport a test server listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A unix socket in a fresh temporary directory.
    Unix,
    /// tcp on 127.0.0.1 with a port chosen by the system.
    Tcp,
}

impl Transport {
    /// Both transports, for tests that run on each.
    pub const ALL: [Transport; 2] = [Transport::Unix, Transport::Tcp];
}

/// A server running on its own thread, stopped (and its socket removed)
/// when dropped.
pub struct TestServer {
    /// The running server (dropped before the directory).
    pub server: RunningServer,
    /// The kernel behind it.
    pub kernel: Arc<dyn Kernel>,
    _dir: Option<TempDir>,
}

impl TestServer {
    /// Starts `kernel` behind a server on `transport` with `config`.
    pub fn start_with(
        kernel: Arc<dyn Kernel>,
        transport: Transport,
        config: Config,
    ) -> Result<TestServer, ServerError> {
        let (url, dir) = match transport {
            Transport::Unix => {
                let dir = tempfile::Builder::new()
                    .prefix("sp-test")
                    .tempdir()
                    .map_err(ServerError::Io)?;
                (
                    format!("unix://{}", dir.path().join("sp.sock").display()),
                    Some(dir),
                )
            }
            Transport::Tcp => ("tcp://127.0.0.1:0".to_string(), None),
        };
        let server = Server::bind(&url, kernel.clone(), config)?.spawn()?;
        Ok(TestServer {
            server,
            kernel,
            _dir: dir,
        })
    }

    /// Starts `kernel` with the default configuration.
    pub fn start(kernel: Arc<dyn Kernel>, transport: Transport) -> TestServer {
        TestServer::start_with(kernel, transport, Config::default()).expect("test server starts")
    }

    /// Starts a fresh [`ModelKernel`](sp_model::ModelKernel) behind a
    /// default server on `transport`; returns the kernel too, for checks.
    pub fn model(transport: Transport) -> (TestServer, Arc<sp_model::ModelKernel>) {
        let kernel = Arc::new(sp_model::ModelKernel::new());
        (TestServer::start(kernel.clone(), transport), kernel)
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        self.server.url()
    }
}
