//! Limits and access control from environment variables.
//!
//! `rump_server` passes us only a URL, so every `sp-server` limit that
//! `sp serve` takes as an option is read from the environment of the
//! kernel's process. Unset variables keep [`Config::default`]'s value.
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `SP_MAX_FRAME` | largest frame a client may send, bytes (at least 4120) | 64 MiB + 24 |
//! | `SP_MAX_CLIENTS` | clients connected at once (at least 1) | 10000 |
//! | `SP_SEND_QUEUE_BYTES` | bytes queued for a client that does not read before it is dropped (at least 64 KiB) | 64 MiB |
//! | `SP_SEND_STALL_TIMEOUT` | seconds a call's output waits for a client that reads nothing before it is dropped (at least 1) | 30 |
//! | `SP_HANDSHAKE_TIMEOUT` | seconds a new connection has for its handshake; 0 = forever | 30 |
//! | `SP_MAX_INFLIGHT_PER_CLIENT` | system calls one client may have in flight (at least 1) | 4096 |
//! | `SP_PREFORK_CAP` | unclaimed preforks per client | 16 |
//! | `SP_PREFORK_TOTAL_CAP` | unclaimed preforks in all | 4096 |
//! | `SP_PREFORK_TTL` | seconds an unclaimed prefork lives (at least 1) | 120 |
//! | `SP_MAX_IDLE_WORKERS` | idle worker threads kept | 16 |
//! | `SP_UNIX_MODE` | permission bits of the unix socket, octal | 600 |
//! | `SP_ALLOW_UID` | comma-separated peer uids allowed on a unix socket | anyone |
//! | `SP_ALLOW_NET` | comma-separated `ADDR/PREFIX` networks allowed on tcp | anyone |
//! | `SP_EXTENSIONS` | `0` to answer the extension's probe as the stock server does (`docs/extension.md`) | `1` |
//! | `SP_SEGMENT_BYTES_PER_CLIENT` | segment bytes one client's calls in flight may carry (extension) | 64 MiB |
//! | `SP_MAX_PROCS` | kernel processes our clients may have at once (guests, preforks, fork children; at least 1): a stock rump kernel panics when it runs out of files for a new process's console, about 1,770 processes with none of them holding files | 1000 |
//! | `SP_LOG` | log filter (`error`, `warn`, `info`, `debug`, ...) | `info` |
//!
//! `SP_ALLOW_UID` on a tcp URL and `SP_ALLOW_NET` on a unix one are
//! refused rather than silently ignored.

use sp_server::{Config, IpNet};
use sp_transport::Endpoint;
use std::time::Duration;

/// The smallest `SP_MAX_FRAME`: a header and a 4 KiB body, room for every
/// handshake, argument block and path a well-behaved client sends.
pub const MIN_MAX_FRAME: u64 = sp_proto::HEADER_LEN as u64 + 4096;

/// The smallest `SP_SEND_QUEUE_BYTES`.
pub const MIN_SEND_QUEUE: usize = 64 << 10;

/// A variable with a value we refuse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}={value:?}: {why}")]
pub struct EnvError {
    /// The variable's name.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub why: String,
}

/// Reads the server configuration for `endpoint` through `lookup` (the
/// process environment in production, a table in tests).
pub fn config(
    endpoint: &Endpoint,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Config, EnvError> {
    let mut c = Config::default();
    let get = |var: &'static str| lookup(var).map(|v| (var, v));
    if let Some((var, v)) = get("SP_MAX_FRAME") {
        c.max_frame = number(var, &v, MIN_MAX_FRAME)?;
    }
    if let Some((var, v)) = get("SP_MAX_CLIENTS") {
        c.max_clients = number(var, &v, 1)?;
    }
    if let Some((var, v)) = get("SP_SEND_QUEUE_BYTES") {
        c.send_queue_bytes = number(var, &v, MIN_SEND_QUEUE)?;
    }
    if let Some((var, v)) = get("SP_SEND_STALL_TIMEOUT") {
        c.send_stall_timeout = Duration::from_secs(number(var, &v, 1)?);
    }
    if let Some((var, v)) = get("SP_HANDSHAKE_TIMEOUT") {
        let secs: u64 = number(var, &v, 0)?;
        c.handshake_timeout = (secs > 0).then(|| Duration::from_secs(secs));
    }
    if let Some((var, v)) = get("SP_MAX_INFLIGHT_PER_CLIENT") {
        c.max_inflight_per_client = number(var, &v, 1)?;
    }
    if let Some((var, v)) = get("SP_PREFORK_CAP") {
        c.prefork_cap = number(var, &v, 0)?;
    }
    if let Some((var, v)) = get("SP_PREFORK_TOTAL_CAP") {
        c.prefork_total_cap = number(var, &v, 0)?;
    }
    if let Some((var, v)) = get("SP_PREFORK_TTL") {
        c.prefork_ttl = Duration::from_secs(number(var, &v, 1)?);
    }
    if let Some((var, v)) = get("SP_MAX_IDLE_WORKERS") {
        c.max_idle_workers = number(var, &v, 0)?;
    }
    if let Some((var, v)) = get("SP_EXTENSIONS") {
        c.extensions = match v.trim() {
            "1" | "on" | "yes" | "true" => true,
            "0" | "off" | "no" | "false" => false,
            _ => return Err(bad(var, &v, "not 0 or 1")),
        };
    }
    if let Some((var, v)) = get("SP_SEGMENT_BYTES_PER_CLIENT") {
        c.segment_bytes_per_client = number(var, &v, 0)?;
    }
    if let Some((var, v)) = get("SP_UNIX_MODE") {
        c.unix_mode = u32::from_str_radix(v.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| bad(var, &v, "not an octal mode of at most 777"))?;
    }
    if let Some((var, v)) = get("SP_ALLOW_UID") {
        if !matches!(endpoint, Endpoint::Unix(_)) {
            return Err(bad(var, &v, "uids are checked on unix sockets only"));
        }
        let uids = list(&v)
            .map(|u| u.parse::<u32>().map_err(|_| bad(var, &v, "not a uid")))
            .collect::<Result<Vec<_>, _>>()?;
        c.allowed_uids = Some(uids);
    }
    if let Some((var, v)) = get("SP_ALLOW_NET") {
        if matches!(endpoint, Endpoint::Unix(_)) {
            return Err(bad(var, &v, "networks are checked on tcp only"));
        }
        let nets = list(&v)
            .map(|n| n.parse::<IpNet>().map_err(|e| bad(var, &v, &e)))
            .collect::<Result<Vec<_>, _>>()?;
        c.allowed_nets = Some(nets);
    }
    Ok(c)
}

/// The default of `SP_MAX_PROCS`. A stock rump kernel (MAXUSERS 32) has
/// `kern.maxfiles` 1772 and panics when a new guest finds no file for its
/// console: this leaves room for the files the processes open.
pub const DEFAULT_MAX_PROCS: usize = 1000;

/// Reads `SP_MAX_PROCS` through `lookup`.
pub fn max_procs(lookup: impl Fn(&str) -> Option<String>) -> Result<usize, EnvError> {
    match lookup("SP_MAX_PROCS") {
        Some(v) => number("SP_MAX_PROCS", &v, 1),
        None => Ok(DEFAULT_MAX_PROCS),
    }
}

/// One line naming every limit, for the start-up log.
pub fn summary(c: &Config) -> String {
    let timeout = c
        .handshake_timeout
        .map_or("none".into(), |d| format!("{} s", d.as_secs()));
    format!(
        "max frame {} B, max clients {}, send queue {} B, send stall {} s, \
         handshake timeout {timeout}, \
         {} calls in flight per client, preforks {} per client and {} in all for {} s, \
         extensions {}, unix mode {:o}, uids {}, networks {}",
        c.max_frame,
        c.max_clients,
        c.send_queue_bytes,
        c.send_stall_timeout.as_secs(),
        c.max_inflight_per_client,
        c.prefork_cap,
        c.prefork_total_cap,
        c.prefork_ttl.as_secs(),
        if c.extensions { "on" } else { "off" },
        c.unix_mode,
        c.allowed_uids
            .as_ref()
            .map_or("any".into(), |u| format!("{u:?}")),
        c.allowed_nets.as_ref().map_or("any".into(), |n| n
            .iter()
            .map(|n| format!("{}/{}", n.addr, n.prefix))
            .collect::<Vec<_>>()
            .join(",")),
    )
}

fn bad(var: &'static str, value: &str, why: &str) -> EnvError {
    EnvError {
        var,
        value: value.to_string(),
        why: why.to_string(),
    }
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn number<T>(var: &'static str, v: &str, min: T) -> Result<T, EnvError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = v
        .trim()
        .parse()
        .map_err(|_| bad(var, v, "not a whole number"))?;
    if n < min {
        return Err(bad(var, v, &format!("must be at least {min}")));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sp_transport::Role;

    fn cfg(url: &str, vars: &[(&str, &str)]) -> Result<Config, EnvError> {
        let ep = sp_transport::parse(url, Role::Server).unwrap();
        config(&ep, |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn unset_variables_keep_the_defaults() {
        let c = cfg("unix:///tmp/x.sock", &[]).unwrap();
        let d = Config::default();
        assert_eq!(c.max_frame, d.max_frame);
        assert_eq!(c.max_clients, d.max_clients);
        assert_eq!(c.handshake_timeout, d.handshake_timeout);
        assert_eq!(c.allowed_uids, None);
    }

    #[test]
    fn every_variable_is_read() {
        let c = cfg(
            "tcp://127.0.0.1:0",
            &[
                ("SP_MAX_FRAME", "100000"),
                ("SP_MAX_CLIENTS", "7"),
                ("SP_SEND_QUEUE_BYTES", "1048576"),
                ("SP_HANDSHAKE_TIMEOUT", "0"),
                ("SP_SEND_STALL_TIMEOUT", "4"),
                ("SP_MAX_INFLIGHT_PER_CLIENT", "3"),
                ("SP_PREFORK_CAP", "2"),
                ("SP_PREFORK_TOTAL_CAP", "9"),
                ("SP_PREFORK_TTL", "5"),
                ("SP_MAX_IDLE_WORKERS", "1"),
                ("SP_UNIX_MODE", "660"),
                ("SP_EXTENSIONS", "0"),
                ("SP_SEGMENT_BYTES_PER_CLIENT", "4096"),
                ("SP_ALLOW_NET", "127.0.0.0/8, ::1"),
            ],
        )
        .unwrap();
        assert_eq!(c.max_frame, 100_000);
        assert_eq!(c.max_clients, 7);
        assert_eq!(c.send_queue_bytes, 1 << 20);
        assert_eq!(c.handshake_timeout, None);
        assert_eq!(c.send_stall_timeout, Duration::from_secs(4));
        assert_eq!(c.max_inflight_per_client, 3);
        assert_eq!((c.prefork_cap, c.prefork_total_cap), (2, 9));
        assert_eq!(c.prefork_ttl, Duration::from_secs(5));
        assert_eq!(c.max_idle_workers, 1);
        assert_eq!(c.unix_mode, 0o660);
        assert!(!c.extensions);
        assert_eq!(c.segment_bytes_per_client, 4096);
        assert_eq!(c.allowed_nets.unwrap().len(), 2);
        assert!(summary(&Config::default()).contains("max clients 10000"));
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let e = cfg("unix:///x", &[("SP_MAX_FRAME", "10")]).unwrap_err();
        assert_eq!(e.var, "SP_MAX_FRAME");
        assert!(e.to_string().contains("at least 4120"), "{e}");
        assert_eq!(
            cfg("unix:///x", &[("SP_MAX_CLIENTS", "0")])
                .unwrap_err()
                .var,
            "SP_MAX_CLIENTS"
        );
        assert_eq!(
            cfg("unix:///x", &[("SP_MAX_CLIENTS", "many")])
                .unwrap_err()
                .why,
            "not a whole number"
        );
        assert_eq!(
            cfg("unix:///x", &[("SP_UNIX_MODE", "999")])
                .unwrap_err()
                .var,
            "SP_UNIX_MODE"
        );
        assert_eq!(
            cfg("unix:///x", &[("SP_ALLOW_UID", "root")])
                .unwrap_err()
                .why,
            "not a uid"
        );
        assert!(cfg("tcp://127.0.0.1:0", &[("SP_ALLOW_NET", "10.0.0.0/33")]).is_err());
    }

    #[test]
    fn the_process_cap_has_a_default_and_a_floor() {
        assert_eq!(max_procs(|_| None), Ok(DEFAULT_MAX_PROCS));
        assert_eq!(max_procs(|_| Some("20".into())), Ok(20));
        assert_eq!(
            max_procs(|_| Some("0".into())).unwrap_err().var,
            "SP_MAX_PROCS"
        );
    }

    #[test]
    fn access_control_must_fit_the_transport() {
        assert!(cfg("tcp://127.0.0.1:0", &[("SP_ALLOW_UID", "0")]).is_err());
        assert!(cfg("unix:///x", &[("SP_ALLOW_NET", "127.0.0.1")]).is_err());
        let c = cfg("unix:///x", &[("SP_ALLOW_UID", "0,1000")]).unwrap();
        assert_eq!(c.allowed_uids, Some(vec![0, 1000]));
    }
}
