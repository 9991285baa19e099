//! The subcommands of the `sp` binary, as library code so tests can run them.

pub mod bench;
pub mod call;
pub mod demo;
pub mod serve;

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default:
/// `default`, e.g. "info" for a server, "warn" for a client command).
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
