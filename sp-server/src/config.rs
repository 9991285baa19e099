//! Server configuration: identity and every limit, with sane defaults.

use sp_proto::Banner;
use std::net::IpAddr;
use std::time::Duration;

/// An IP network (address and prefix length) for the tcp allowlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies in this network. IPv4-mapped IPv6 addresses match
    /// IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let p = u32::from(self.prefix.min(32));
                let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let p = u32::from(self.prefix.min(128));
                let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;

    /// Parses `ADDR/PREFIX` or a bare address (a host network).
    fn from_str(s: &str) -> Result<IpNet, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("bad network address {a:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or(format!("bad prefix {p:?}"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

/// Everything a server can be told.
#[derive(Clone, Debug)]
pub struct Config {
    /// The banner written on accept.
    pub banner: Banner,
    /// Largest frame accepted from a client; a longer one ends that
    /// connection only.
    pub max_frame: u64,
    /// Most clients connected at once; more are closed on accept.
    pub max_clients: usize,
    /// Bytes queued for a client that does not read before it is dropped.
    /// A system call's output is not queued: its worker writes it as the
    /// client reads (see `send_stall_timeout`), so this bounds only what
    /// the event loop and concurrent calls have waiting.
    pub send_queue_bytes: usize,
    /// How long a worker writing a call's output waits for a client that
    /// takes nothing before the client is dropped. A client that reads
    /// steadily, however slowly, gets every byte.
    pub send_stall_timeout: Duration,
    /// Unclaimed preforks one client may hold.
    pub prefork_cap: usize,
    /// Unclaimed preforks on the whole server (a client that reconnects
    /// gets a fresh per-client allowance; this bounds them all).
    pub prefork_total_cap: usize,
    /// How long an unclaimed prefork lives.
    pub prefork_ttl: Duration,
    /// How long a new connection may take to complete its handshake before
    /// it is closed (`None`: forever). Bounds what slow or silent peers
    /// hold of the client limit.
    pub handshake_timeout: Option<Duration>,
    /// System calls one connection may have in flight on workers (each
    /// holds a thread while it blocks or waits for the client); one more
    /// is answered ERROR TRYAGAIN (EAGAIN).
    pub max_inflight_per_client: usize,
    /// Idle worker threads kept; more exit.
    pub max_idle_workers: usize,
    /// How long an idle worker waits for work before exiting.
    pub idle_linger: Duration,
    /// Permission bits of a unix socket file.
    pub unix_mode: u32,
    /// If set, only these peer uids may connect over a unix socket.
    pub allowed_uids: Option<Vec<u32>>,
    /// If set, only peers in these networks may connect over tcp.
    pub allowed_nets: Option<Vec<IpNet>>,
    /// Raise the soft RLIMIT_NOFILE to the hard limit at start.
    pub raise_nofile: bool,
    /// Speak the extension (`docs/extension.md`) with clients that ask for
    /// it by EXT_HELLO. When false the probe is answered ERROR
    /// MALFORMED_REQUEST, as a stock server does, and nothing else changes.
    /// A client that never probes (a stock C client) sees no difference
    /// either way.
    pub extensions: bool,
    /// Segment bytes (SYSCALL_SEG) one client's calls in flight may hold
    /// at once; a call that would pass it is answered ERROR TRYAGAIN, and
    /// the client sends it again as a plain SYSCALL. Also the most one call
    /// may carry (announced in the EXT_HELLO answer).
    pub segment_bytes_per_client: usize,
}

/// The default banner machine name: NetBSD's name for this architecture.
fn machine() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "evbarm",
        other => other,
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            banner: Banner::new("RustSP", env!("CARGO_PKG_VERSION"), machine()),
            max_frame: sp_proto::DEFAULT_MAX_FRAME,
            max_clients: 10_000,
            send_queue_bytes: 64 << 20,
            send_stall_timeout: Duration::from_secs(30),
            prefork_cap: 16,
            prefork_total_cap: 4096,
            prefork_ttl: Duration::from_secs(120),
            handshake_timeout: Some(Duration::from_secs(30)),
            max_inflight_per_client: 4096,
            max_idle_workers: 16,
            idle_linger: Duration::from_secs(30),
            unix_mode: 0o600,
            allowed_uids: None,
            allowed_nets: None,
            raise_nofile: true,
            extensions: true,
            segment_bytes_per_client: 64 << 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix() {
        let n: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        let host: IpNet = "127.0.0.1".parse().unwrap();
        assert_eq!(host.prefix, 32);
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("127.0.0.1".parse().unwrap()));
        assert!("1.2.3.4/33".parse::<IpNet>().is_err());
        assert!(Config::default().banner.format().is_ok());
    }
}
