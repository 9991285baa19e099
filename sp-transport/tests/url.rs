//! The URL rules, one table row per rule, for both roles.

use std::net::{SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;

use proptest::prelude::*;
use sp_proto::Errno;
use sp_transport::{parse, Endpoint, Role, UrlError};

use Role::{Client, Server};

fn tcp(s: &str) -> Endpoint {
    Endpoint::Tcp(s.parse::<SocketAddrV4>().unwrap())
}

fn tcp6(s: &str) -> Endpoint {
    Endpoint::Tcp6(s.parse::<SocketAddrV6>().unwrap())
}

fn unix(s: &str) -> Endpoint {
    Endpoint::Unix(PathBuf::from(s))
}

fn s(x: &str) -> String {
    x.to_owned()
}

/// Expected outcome per role.
enum Want {
    Both(Result<Endpoint, UrlError>),
    /// Server gets the endpoint, client gets `WildcardForClient`.
    ServerOnly(Endpoint),
}

#[test]
fn url_table() {
    use UrlError::*;
    use Want::*;
    let long106 = "a".repeat(106);
    let table: Vec<(String, Want)> = vec![
        // Scheme.
        (s(""), Both(Err(MissingScheme))),
        (s("tcp:/1.2.3.4:80"), Both(Err(MissingScheme))),
        (s("://x"), Both(Err(BadScheme { scheme: s("") }))),
        (s("http://x"), Both(Err(BadScheme { scheme: s("http") }))),
        (
            s("TCP://1.2.3.4:80"),
            Both(Err(BadScheme { scheme: s("TCP") })),
        ),
        (
            s("abcdefghijklmno://x"),
            Both(Err(BadScheme {
                scheme: s("abcdefghijklmno"),
            })),
        ),
        (
            s("abcdefghijklmnop://x"),
            Both(Err(SchemeTooLong { len: 16 })),
        ),
        // unix.
        (s("unix:///tmp/sock"), Both(Ok(unix("/tmp/sock")))),
        (s("unix://"), Both(Err(EmptyPath))),
        (s("unix:///a\0b"), Both(Err(NulInPath))),
        (
            format!("unix:///{long106}"),
            Both(Ok(unix(&format!("/{long106}")))),
        ),
        (
            format!("unix:///{long106}b"),
            Both(Err(PathTooLong { len: 108 })),
        ),
        // tcp: addresses.
        (s("tcp://1.2.3.4:80"), Both(Ok(tcp("1.2.3.4:80")))),
        (s("tcp://127.0.0.1:5000"), Both(Ok(tcp("127.0.0.1:5000")))),
        (s("tcp://*:80"), ServerOnly(tcp("0.0.0.0:80"))),
        (s("tcp://0:80"), ServerOnly(tcp("0.0.0.0:80"))),
        (s("tcp://0.0.0.0:80"), ServerOnly(tcp("0.0.0.0:80"))),
        (s("tcp://:80"), Both(Err(BadAddress { addr: s("") }))),
        (
            s("tcp://localhost:80"),
            Both(Err(BadAddress {
                addr: s("localhost"),
            })),
        ),
        (
            s("tcp://1.2.3:80"),
            Both(Err(BadAddress { addr: s("1.2.3") })),
        ),
        (
            s("tcp://256.1.1.1:80"),
            Both(Err(BadAddress {
                addr: s("256.1.1.1"),
            })),
        ),
        (s("tcp://[::1]:80"), Both(Err(BadAddress { addr: s("[") }))),
        (
            s("tcp://1.2.3.4"),
            Both(Err(MissingPort { addr: s("1.2.3.4") })),
        ),
        // tcp: ports.
        (s("tcp://1.2.3.4:0"), Both(Ok(tcp("1.2.3.4:0")))),
        (s("tcp://1.2.3.4:65535"), Both(Ok(tcp("1.2.3.4:65535")))),
        (s("tcp://1.2.3.4:0080"), Both(Ok(tcp("1.2.3.4:80")))),
        (
            s("tcp://1.2.3.4:65536"),
            Both(Err(PortRange { port: s("65536") })),
        ),
        (
            s("tcp://1.2.3.4:99999999999999999999999"),
            Both(Err(PortRange {
                port: s("99999999999999999999999"),
            })),
        ),
        (s("tcp://1.2.3.4:"), Both(Err(BadPort { port: s("") }))),
        (
            s("tcp://1.2.3.4:x80"),
            Both(Err(BadPort { port: s("x80") })),
        ),
        (s("tcp://1.2.3.4:-1"), Both(Err(BadPort { port: s("-1") }))),
        (
            s("tcp://1.2.3.4:+80"),
            Both(Err(BadPort { port: s("+80") })),
        ),
        (
            s("tcp://1.2.3.4:/80"),
            Both(Err(BadPort { port: s("/80") })),
        ),
        (s("tcp://1.2.3.4:80/"), Both(Ok(tcp("1.2.3.4:80")))),
        (s("tcp://1.2.3.4:80/anything"), Both(Ok(tcp("1.2.3.4:80")))),
        (
            s("tcp://1.2.3.4:80x"),
            Both(Err(TrailingGarbage { rest: s("x") })),
        ),
        (
            s("tcp://1.2.3.4:80 "),
            Both(Err(TrailingGarbage { rest: s(" ") })),
        ),
        (
            s("tcp://1.2.3.4:80:90"),
            Both(Err(TrailingGarbage { rest: s(":90") })),
        ),
        // tcp6.
        (s("tcp6://[::1]:5"), Both(Ok(tcp6("[::1]:5")))),
        (s("tcp6://[::1]:65535/x"), Both(Ok(tcp6("[::1]:65535")))),
        (s("tcp6://[fe80::1:2]:80"), Both(Ok(tcp6("[fe80::1:2]:80")))),
        (s("tcp6://[::]:5"), ServerOnly(tcp6("[::]:5"))),
        (
            s("tcp6://::1:5"),
            Both(Err(MissingBrackets { addr: s("::1:5") })),
        ),
        (
            s("tcp6://[::1:5"),
            Both(Err(MissingBrackets { addr: s("[::1:5") })),
        ),
        (
            s("tcp6://[::1]"),
            Both(Err(MissingPort { addr: s("[::1]") })),
        ),
        (
            s("tcp6://[::1]5"),
            Both(Err(MissingPort { addr: s("[::1]5") })),
        ),
        (
            s("tcp6://[1.2.3.4]:5"),
            Both(Err(BadAddress { addr: s("1.2.3.4") })),
        ),
        (s("tcp6://[*]:5"), Both(Err(BadAddress { addr: s("*") }))),
        (
            s("tcp6://[::1]:65536"),
            Both(Err(PortRange { port: s("65536") })),
        ),
        (
            s("tcp6://[::1]:5x"),
            Both(Err(TrailingGarbage { rest: s("x") })),
        ),
        (s("tcp6://[::1]:"), Both(Err(BadPort { port: s("") }))),
    ];
    for (url, want) in &table {
        for role in [Client, Server] {
            let want = match want {
                Both(w) => w.clone(),
                ServerOnly(ep) if role == Server => Ok(ep.clone()),
                ServerOnly(_) => Err(WildcardForClient),
            };
            assert_eq!(parse(url, role), want, "{url:?} as {role:?}");
        }
    }
}

#[test]
fn errnos() {
    let cases = [
        ("nope://x", Errno::EINVAL),
        ("abcdefghijklmnop://x", Errno::EINVAL),
        ("unix://", Errno::EINVAL),
        ("tcp://1.2.3.4:65536", Errno::ERANGE),
        ("tcp://1.2.3.4:80x", Errno::EINVAL),
        ("tcp://1.2.3.4:x", Errno::EINVAL),
        ("tcp://*:80", Errno::EINVAL),
        ("tcp6://::1:5", Errno::EINVAL),
        ("tcp6://[::1]:70000", Errno::ERANGE),
    ];
    for (url, errno) in cases {
        assert_eq!(parse(url, Client).unwrap_err().errno(), errno, "{url}");
    }
    let long = format!("unix:///{}", "a".repeat(107));
    assert_eq!(
        parse(&long, Server).unwrap_err().errno(),
        Errno::ENAMETOOLONG
    );
}

#[test]
fn relative_unix_path_is_absolute() {
    let cwd = std::env::current_dir().unwrap();
    for role in [Client, Server] {
        assert_eq!(
            parse("unix://sock", role),
            Ok(Endpoint::Unix(cwd.join("sock")))
        );
        assert_eq!(
            parse("unix://d/s", role),
            Ok(Endpoint::Unix(cwd.join("d/s")))
        );
    }
    // The limit applies to the absolute path.
    let room = 107 - cwd.as_os_str().len() - 1;
    if room > 0 {
        let fits = "r".repeat(room);
        let ep = parse(&format!("unix://{fits}"), Client).unwrap();
        assert_eq!(ep, Endpoint::Unix(cwd.join(&fits)));
        assert_eq!(
            parse(&format!("unix://{fits}r"), Client),
            Err(UrlError::PathTooLong { len: 108 })
        );
    }
}

#[test]
fn display() {
    assert_eq!(tcp("1.2.3.4:80").to_string(), "tcp://1.2.3.4:80");
    assert_eq!(tcp6("[::1]:5").to_string(), "tcp6://[::1]:5");
    assert_eq!(unix("/tmp/s").to_string(), "unix:///tmp/s");
}

fn roundtrip(ep: &Endpoint, role: Role) -> Result<(), TestCaseError> {
    let url = ep.to_string();
    prop_assert_eq!(parse(&url, role), Ok(ep.clone()), "{}", url);
    Ok(())
}

proptest! {
    #[test]
    fn parse_never_panics(url in ".*", server in any::<bool>()) {
        let _ = parse(&url, if server { Server } else { Client });
    }

    #[test]
    fn near_misses_roundtrip(
        url in "(unix|tcp|tcp6|x)://[0-9a-f:.\\[\\]*/]{0,40}",
        server in any::<bool>(),
    ) {
        let role = if server { Server } else { Client };
        if let Ok(ep) = parse(&url, role) {
            roundtrip(&ep, role)?;
        }
    }

    #[test]
    fn tcp_roundtrip(ip in any::<std::net::Ipv4Addr>(), port in any::<u16>()) {
        let ep = Endpoint::Tcp(SocketAddrV4::new(ip, port));
        roundtrip(&ep, Server)?;
        if !ip.is_unspecified() {
            roundtrip(&ep, Client)?;
        }
    }

    #[test]
    fn tcp6_roundtrip(ip in any::<std::net::Ipv6Addr>(), port in any::<u16>()) {
        let ep = Endpoint::Tcp6(SocketAddrV6::new(ip, port, 0, 0));
        roundtrip(&ep, Server)?;
        if !ip.is_unspecified() {
            roundtrip(&ep, Client)?;
        }
    }

    #[test]
    fn unix_roundtrip(path in "/[a-zA-Z0-9 ._/-]{0,106}") {
        let ep = Endpoint::Unix(PathBuf::from(&path));
        roundtrip(&ep, Client)?;
    }
}
