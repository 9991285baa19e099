//! `sp serve URL`: the model kernel behind a server, in the foreground.
//!
//! Signals: SIGINT and SIGTERM stop it (the unix socket is removed);
//! SIGHUP is logged and ignored (there is no configuration to reload);
//! SIGUSR1 logs the server's counters, which are also logged at exit.

use super::UsageError;
use sp_proto::{Banner, HEADER_LEN};
use sp_server::{Config, IpNet, Kernel, Server, Stats};
use sp_transport::{Endpoint, Role};
use std::sync::Arc;
use std::time::Duration;

fn parse_octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8).map_err(|e| format!("bad mode {s:?}: {e}"))
}

/// The smallest `--max-frame`: a 24-byte header and a 4 KiB body.
///
/// Every frame a well-behaved client must send fits well below it: a
/// handshake (a process name of at most 16 bytes, or the 20-byte fork
/// body), a system call's argument block (at most 8 slots of 8 bytes), a
/// path the kernel copies in (at most NetBSD's MAXPATHLEN, 1024 bytes). A
/// copy-in answer is as long as the buffer a call names, so the limit also
/// bounds single writes; one page keeps ordinary small ones working.
pub const MIN_MAX_FRAME: u64 = HEADER_LEN as u64 + 4096;

/// The smallest `--send-queue-bytes`: 64 KiB. What the socket does not take
/// at once is queued; below this, a client reading a few pages at a time
/// would be dropped as "not reading".
pub const MIN_SEND_QUEUE: usize = 64 << 10;

/// The banner of the reference's captures (`--banner stock`).
pub fn stock_banner() -> Banner {
    Banner::new("NetBSD", "7.99.34", "amd64")
}

/// Parses `--banner`: `stock`, or a whole banner line without its newline
/// such as `RUMPSP-0.4-NetBSD-7.99.34/amd64`, of protocol 0.4 or a later
/// 0.x.
pub fn parse_banner(s: &str) -> Result<Banner, String> {
    if s == "stock" {
        return Ok(stock_banner());
    }
    let line = format!("{}\n", s.strip_suffix('\n').unwrap_or(s));
    let b = Banner::parse(line.as_bytes())
        .map_err(|e| format!("{e} (want e.g. RUMPSP-0.4-NetBSD-7.99.34/amd64, or stock)"))?;
    b.check_supported().map_err(|e| e.to_string())?;
    b.format().map_err(|e| e.to_string())?;
    Ok(b)
}

/// Options of `sp serve`; every limit of the server is one.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Where to listen: unix://PATH, tcp://A.B.C.D:PORT (or * / 0), tcp6://[ADDR]:PORT.
    // The doc comment is the help text, where `[ADDR]` is not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    pub url: String,
    /// Largest frame a client may send, in bytes (at least 4120: a header
    /// and 4 KiB); a longer one ends that connection.
    #[arg(long, default_value_t = Config::default().max_frame)]
    pub max_frame: u64,
    /// Most clients connected at once (at least 1).
    #[arg(long, default_value_t = Config::default().max_clients)]
    pub max_clients: usize,
    /// Bytes queued for a client that does not read before it is dropped
    /// (at least 65536). A call's own output is not queued: it is written
    /// as the client reads.
    #[arg(long, default_value_t = Config::default().send_queue_bytes)]
    pub send_queue_bytes: usize,
    /// Answer the extension's probe as a stock server does (ERROR), so no
    /// client sends its data with its calls (docs/extension.md).
    #[arg(long)]
    pub no_extensions: bool,
    /// Segment bytes one client's calls in flight may carry (extension);
    /// a call past it is answered TRYAGAIN and resent plainly.
    #[arg(long, default_value_t = Config::default().segment_bytes_per_client)]
    pub segment_bytes_per_client: usize,
    /// Seconds a call's output waits for a client that reads nothing
    /// before the client is dropped (at least 1); a client that reads,
    /// however slowly, gets every byte.
    #[arg(long, default_value_t = Config::default().send_stall_timeout.as_secs())]
    pub send_stall_timeout: u64,
    /// Unclaimed preforks one client may hold (0: no client may fork).
    #[arg(long, default_value_t = Config::default().prefork_cap)]
    pub prefork_cap: usize,
    /// Unclaimed preforks on the whole server (0: no client may fork).
    #[arg(long, default_value_t = Config::default().prefork_total_cap)]
    pub prefork_total_cap: usize,
    /// Seconds an unclaimed prefork lives (at least 1).
    #[arg(long, default_value_t = Config::default().prefork_ttl.as_secs())]
    pub prefork_ttl: u64,
    /// Seconds a new connection may take to complete its handshake (0: no limit).
    #[arg(long, default_value_t = Config::default().handshake_timeout.map_or(0, |d| d.as_secs()))]
    pub handshake_timeout: u64,
    /// System calls one client may have in flight (each holds a thread
    /// while it waits; at least 1).
    #[arg(long, default_value_t = Config::default().max_inflight_per_client)]
    pub max_inflight_per_client: usize,
    /// Idle worker threads kept (blocked calls always get a thread of their own).
    #[arg(long, default_value_t = Config::default().max_idle_workers)]
    pub max_idle_workers: usize,
    /// Seconds an idle worker waits before exiting.
    #[arg(long, default_value_t = Config::default().idle_linger.as_secs())]
    pub idle_linger: u64,
    /// Permission bits of a unix socket, in octal (default 600; unix only).
    #[arg(long, value_parser = parse_octal)]
    pub unix_mode: Option<u32>,
    /// Allow only this peer uid on a unix socket (repeatable; unix only).
    #[arg(long = "allow-uid")]
    pub allow_uid: Vec<u32>,
    /// Allow only peers in this network, as ADDR/PREFIX (repeatable; tcp only).
    #[arg(long = "allow-net")]
    pub allow_net: Vec<IpNet>,
    /// The banner sent to each client: a whole line such as
    /// RUMPSP-0.4-NetBSD-7.99.34/amd64, or "stock" for that one (the
    /// reference server's, for clients that check it).
    #[arg(long, value_parser = parse_banner)]
    pub banner: Option<Banner>,
    /// Serve the capture stub kernel instead of the model kernel.
    #[arg(long)]
    pub stub: bool,
}

fn usage(msg: String) -> Result<(), UsageError> {
    Err(UsageError(msg))
}

impl ServeArgs {
    /// Checks the options before anything starts: a URL that parses, every
    /// limit at a value that lets a client in, and no option for the other
    /// transport (it would be ignored).
    pub fn check(&self) -> Result<(), UsageError> {
        let ep = sp_transport::parse(&self.url, Role::Server)
            .map_err(|e| UsageError(format!("bad URL {}: {e}", super::short_name(&self.url))))?;
        if self.max_frame < MIN_MAX_FRAME {
            return usage(format!(
                "--max-frame {} is below the minimum of {MIN_MAX_FRAME} bytes \
                 (a {HEADER_LEN}-byte header and 4 KiB)",
                self.max_frame
            ));
        }
        if self.max_clients == 0 {
            return usage("--max-clients 0 would refuse every client".into());
        }
        if self.send_queue_bytes < MIN_SEND_QUEUE {
            return usage(format!(
                "--send-queue-bytes {} is below the minimum of {MIN_SEND_QUEUE}",
                self.send_queue_bytes
            ));
        }
        if self.send_stall_timeout == 0 {
            return usage(
                "--send-stall-timeout 0 would drop every client whose socket fills".into(),
            );
        }
        if self.prefork_ttl == 0 {
            return usage(
                "--prefork-ttl 0 would expire every prefork before its child \
                 could claim it (use --prefork-cap 0 to refuse forks)"
                    .into(),
            );
        }
        if self.max_inflight_per_client == 0 {
            return usage("--max-inflight-per-client 0 would refuse every call".into());
        }
        let unix = matches!(ep, Endpoint::Unix(_));
        if let Some(mode) = self.unix_mode {
            if !unix {
                return usage("--unix-mode applies to unix:// sockets only".into());
            }
            if mode > 0o777 {
                return usage(format!(
                    "--unix-mode {mode:o}: only permission bits (at most 777)"
                ));
            }
            if mode & 0o200 == 0 {
                return usage(format!(
                    "--unix-mode {mode:03o}: the owner could not connect \
                     (connecting needs write permission)"
                ));
            }
        }
        if !self.allow_uid.is_empty() && !unix {
            return usage(format!(
                "--allow-uid applies to unix:// sockets only, not {}",
                super::short_name(&self.url)
            ));
        }
        if !self.allow_net.is_empty() && unix {
            return usage(format!(
                "--allow-net applies to tcp:// and tcp6:// only, not {}",
                super::short_name(&self.url)
            ));
        }
        Ok(())
    }

    /// The server configuration these options describe.
    pub fn config(&self) -> Config {
        let default = Config::default();
        Config {
            banner: self.banner.clone().unwrap_or(default.banner.clone()),
            max_frame: self.max_frame,
            max_clients: self.max_clients,
            send_queue_bytes: self.send_queue_bytes,
            send_stall_timeout: Duration::from_secs(self.send_stall_timeout),
            extensions: !self.no_extensions,
            segment_bytes_per_client: self.segment_bytes_per_client,
            prefork_cap: self.prefork_cap,
            prefork_total_cap: self.prefork_total_cap,
            prefork_ttl: Duration::from_secs(self.prefork_ttl),
            handshake_timeout: (self.handshake_timeout > 0)
                .then(|| Duration::from_secs(self.handshake_timeout)),
            max_inflight_per_client: self.max_inflight_per_client,
            max_idle_workers: self.max_idle_workers,
            idle_linger: Duration::from_secs(self.idle_linger),
            unix_mode: self.unix_mode.unwrap_or(default.unix_mode),
            allowed_uids: (!self.allow_uid.is_empty()).then(|| self.allow_uid.clone()),
            allowed_nets: (!self.allow_net.is_empty()).then(|| self.allow_net.clone()),
            ..default
        }
    }
}

/// The server's counters as one log line.
pub fn stats_line(s: &Stats) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{} open, {} unclaimed, {} in flight, {} accepted and {} dropped since start, \
         {} ({} idle, {} jobs queued)",
        plural(s.connections, "connection", "connections"),
        plural(s.preforks, "prefork", "preforks"),
        plural(s.syscalls, "system call", "system calls"),
        s.accepted,
        s.dropped,
        plural(s.workers.threads, "worker thread", "worker threads"),
        s.workers.idle,
        s.workers.queued,
    )
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    args.check()?;
    let kernel: Arc<dyn Kernel> = if args.stub {
        Arc::new(sp_model::stub::StubKernel::new())
    } else {
        Arc::new(sp_model::ModelKernel::new())
    };
    // Handlers first: from the "listening on" line on, no signal of these
    // takes the default action (which would leave the socket file behind).
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1])?;
    let server = Server::bind(&args.url, kernel, args.config())?;
    let handle = server.handle();
    let watcher = handle.clone();
    std::thread::Builder::new()
        .name("sp-signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                match sig {
                    SIGHUP => tracing::info!("SIGHUP ignored (sp serve has nothing to reload)"),
                    SIGUSR1 => tracing::info!("stats: {}", stats_line(&watcher.stats())),
                    _ if stopping => tracing::info!("signal {sig}: already shutting down"),
                    _ => {
                        let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                        tracing::info!("{name}: shutting down");
                        stopping = true;
                        watcher.shutdown();
                    }
                }
            }
        })?;
    eprintln!("listening on {}", server.endpoint());
    let res = server.run();
    tracing::info!("stats at exit: {}", stats_line(&handle.stats()));
    res?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn check(line: &[&str]) -> Result<(), String> {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(line.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.args.check().map_err(|e| e.0)
    }

    #[test]
    fn no_option_means_the_servers_own_defaults() {
        let cli = Cli::try_parse_from(["serve", "unix:///tmp/x.sock"]).unwrap();
        let (c, d) = (cli.args.config(), Config::default());
        assert_eq!(
            (
                c.max_frame,
                c.max_clients,
                c.send_queue_bytes,
                c.send_stall_timeout
            ),
            (
                d.max_frame,
                d.max_clients,
                d.send_queue_bytes,
                d.send_stall_timeout
            )
        );
        assert_eq!(
            (
                c.prefork_cap,
                c.prefork_total_cap,
                c.prefork_ttl,
                c.handshake_timeout
            ),
            (
                d.prefork_cap,
                d.prefork_total_cap,
                d.prefork_ttl,
                d.handshake_timeout
            )
        );
        assert_eq!(
            (
                c.max_inflight_per_client,
                c.max_idle_workers,
                c.idle_linger,
                c.unix_mode
            ),
            (
                d.max_inflight_per_client,
                d.max_idle_workers,
                d.idle_linger,
                d.unix_mode
            )
        );
    }

    #[test]
    fn options_are_checked_against_the_url() {
        assert_eq!(check(&["unix:///tmp/x.sock"]), Ok(()));
        assert_eq!(
            check(&["tcp://127.0.0.1:0", "--allow-net", "10.0.0.0/8"]),
            Ok(())
        );
        assert_eq!(check(&["unix:///tmp/x", "--allow-uid", "0"]), Ok(()));
        assert_eq!(check(&["unix:///tmp/x", "--max-frame", "4120"]), Ok(()));
        let bad = [
            (
                &["unix:///tmp/x", "--max-frame", "10"][..],
                "--max-frame 10",
            ),
            (&["unix:///tmp/x", "--max-frame", "4119"], "minimum of 4120"),
            (&["unix:///tmp/x", "--max-clients", "0"], "--max-clients 0"),
            (
                &["unix:///tmp/x", "--send-queue-bytes", "100"],
                "--send-queue-bytes",
            ),
            (&["unix:///tmp/x", "--prefork-ttl", "0"], "--prefork-ttl 0"),
            (&["unix:///tmp/x", "--max-inflight-per-client", "0"], "in"),
            (&["unix:///tmp/x", "--unix-mode", "400"], "owner could not"),
            (&["unix:///tmp/x", "--unix-mode", "1777"], "at most 777"),
            (
                &["tcp://127.0.0.1:0", "--unix-mode", "600"],
                "unix:// sockets only",
            ),
            (
                &["tcp://127.0.0.1:0", "--allow-uid", "0"],
                "--allow-uid applies",
            ),
            (
                &["unix:///tmp/x", "--allow-net", "10.0.0.0/8"],
                "--allow-net applies",
            ),
            (&["bogus://x"], "bad URL"),
        ];
        for (line, want) in bad {
            let err = check(line).expect_err(&format!("{line:?} accepted"));
            assert!(err.contains(want), "{line:?}: {err}");
            assert!(!err.contains('\n'), "{line:?}: not one line: {err}");
        }
    }

    #[test]
    fn banners() {
        let stock = parse_banner("stock").unwrap();
        assert_eq!(
            stock.format().unwrap(),
            b"RUMPSP-0.4-NetBSD-7.99.34/amd64\n"
        );
        assert_eq!(
            parse_banner("RUMPSP-0.4-NetBSD-7.99.21/amd64").unwrap(),
            Banner::new("NetBSD", "7.99.21", "amd64")
        );
        assert!(parse_banner("RUMPSP-1.0-NetBSD-7.99.21/amd64").is_err());
        assert!(parse_banner("NetBSD").is_err());
        assert!(parse_banner("").is_err());
        let args = Cli::try_parse_from(["serve", "unix:///tmp/x", "--banner", "stock"])
            .unwrap()
            .args;
        assert_eq!(args.config().banner, stock);
        let args = Cli::try_parse_from(["serve", "unix:///tmp/x"])
            .unwrap()
            .args;
        assert_eq!(args.config().banner, Config::default().banner);
        assert_eq!(args.config().unix_mode, 0o600);
    }
}
