//! A stock NetBSD rump kernel for the opt-in tests: its install is named
//! by `SP_RUMP_PREFIX` (`bin/rump_server`, `lib/`); without it the tests
//! say they were skipped. Nothing of NetBSD's is in this repository.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The stock install named by `SP_RUMP_PREFIX`, or `None` after printing
/// that the calling test is skipped.
pub fn prefix() -> Option<PathBuf> {
    match std::env::var_os("SP_RUMP_PREFIX") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!("skipped: SP_RUMP_PREFIX not set (a stock rump kernel's install)");
            None
        }
    }
}

/// A `rump_server -s -lrumpvfs -lrumpfs_tmpfs` on a unix socket of its
/// own, killed (and its directory removed) when dropped, also when the
/// test fails.
pub struct RumpServer {
    child: Child,
    /// The URL it serves.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl RumpServer {
    /// Starts the stock server of `prefix`, with `preload` (our
    /// `libsp_rumpuser.so`) in `LD_PRELOAD` if given; waits up to 30 s for
    /// its socket.
    pub fn start(prefix: &Path, preload: Option<&Path>) -> RumpServer {
        let dir = tempfile::Builder::new()
            .prefix("sp-rump")
            .tempdir()
            .expect("temporary directory");
        let sock = dir.path().join("rump.sock");
        let url = format!("unix://{}", sock.display());
        let mut cmd = Command::new(prefix.join("bin/rump_server"));
        cmd.args(["-s", "-lrumpvfs", "-lrumpfs_tmpfs", &url])
            .env("LD_LIBRARY_PATH", prefix.join("lib"))
            .env("SP_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(lib) = preload {
            cmd.env("LD_PRELOAD", lib);
        }
        let server = RumpServer {
            child: cmd.spawn().expect("rump_server starts"),
            url,
            _dir: dir,
        };
        assert!(
            crate::peers::wait_for(Duration::from_secs(30), || sock.exists()),
            "rump_server did not create {}",
            sock.display()
        );
        server
    }
}

impl Drop for RumpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
