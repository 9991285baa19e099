//! `sp serve URL`: the model kernel behind a server, in the foreground.

use sp_server::{Config, IpNet, Kernel, Server};
use std::sync::Arc;
use std::time::Duration;

fn parse_octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8).map_err(|e| format!("bad mode {s:?}: {e}"))
}

/// Options of `sp serve`; every limit of the server is one.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Where to listen: unix://PATH, tcp://A.B.C.D:PORT (or * / 0), tcp6://[ADDR]:PORT.
    pub url: String,
    /// Largest frame a client may send, in bytes; a longer one ends that connection.
    #[arg(long, default_value_t = sp_proto::DEFAULT_MAX_FRAME)]
    pub max_frame: u64,
    /// Most clients connected at once.
    #[arg(long, default_value_t = 10_000)]
    pub max_clients: usize,
    /// Bytes queued for a client that does not read before it is dropped.
    #[arg(long, default_value_t = 64 << 20)]
    pub send_queue_bytes: usize,
    /// Unclaimed preforks one client may hold.
    #[arg(long, default_value_t = 16)]
    pub prefork_cap: usize,
    /// Unclaimed preforks on the whole server.
    #[arg(long, default_value_t = 4096)]
    pub prefork_total_cap: usize,
    /// Seconds an unclaimed prefork lives.
    #[arg(long, default_value_t = 120)]
    pub prefork_ttl: u64,
    /// Seconds a new connection may take to complete its handshake (0: no limit).
    #[arg(long, default_value_t = 30)]
    pub handshake_timeout: u64,
    /// System calls one client may have in flight (each holds a thread while it waits).
    #[arg(long, default_value_t = 4096)]
    pub max_inflight_per_client: usize,
    /// Idle worker threads kept (blocked calls always get a thread of their own).
    #[arg(long, default_value_t = 16)]
    pub max_idle_workers: usize,
    /// Seconds an idle worker waits before exiting.
    #[arg(long, default_value_t = 30)]
    pub idle_linger: u64,
    /// Permission bits of a unix socket, in octal.
    #[arg(long, default_value = "600", value_parser = parse_octal)]
    pub unix_mode: u32,
    /// Allow only this peer uid on a unix socket (repeatable).
    #[arg(long = "allow-uid")]
    pub allow_uid: Vec<u32>,
    /// Allow only peers in this network on tcp, as ADDR/PREFIX (repeatable).
    #[arg(long = "allow-net")]
    pub allow_net: Vec<IpNet>,
    /// Serve the capture stub kernel instead of the model kernel.
    #[arg(long)]
    pub stub: bool,
}

impl ServeArgs {
    /// The server configuration these options describe.
    pub fn config(&self) -> Config {
        Config {
            max_frame: self.max_frame,
            max_clients: self.max_clients,
            send_queue_bytes: self.send_queue_bytes,
            prefork_cap: self.prefork_cap,
            prefork_total_cap: self.prefork_total_cap,
            prefork_ttl: Duration::from_secs(self.prefork_ttl),
            handshake_timeout: (self.handshake_timeout > 0)
                .then(|| Duration::from_secs(self.handshake_timeout)),
            max_inflight_per_client: self.max_inflight_per_client,
            max_idle_workers: self.max_idle_workers,
            idle_linger: Duration::from_secs(self.idle_linger),
            unix_mode: self.unix_mode,
            allowed_uids: (!self.allow_uid.is_empty()).then(|| self.allow_uid.clone()),
            allowed_nets: (!self.allow_net.is_empty()).then(|| self.allow_net.clone()),
            ..Config::default()
        }
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let kernel: Arc<dyn Kernel> = if args.stub {
        Arc::new(crate::stub::StubKernel::new())
    } else {
        Arc::new(crate::model::ModelKernel::new())
    };
    let server = Server::bind(&args.url, kernel, args.config())?;
    let handle = server.handle();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            tracing::info!("signal {sig}: shutting down");
            handle.shutdown();
        }
    });
    eprintln!("listening on {}", server.endpoint());
    server.run()?;
    Ok(())
}
