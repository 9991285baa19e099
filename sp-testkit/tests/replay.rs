//! Every reference capture replayed against our server with the capture
//! stub kernel: the server's bytes must equal the reference's, except what
//! vectors/README.md calls nondeterministic, and where the reference
//! crashed we must answer and close instead.

use sp_model::stub::StubKernel;
use sp_proto::capture::Dir;
use sp_proto::Banner;
use sp_server::Config;
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::rawpeer::RawPeer;
use sp_testkit::vectors;
use std::sync::Arc;

fn reference_config(banner: &[u8]) -> Config {
    Config {
        banner: Banner::parse(banner).expect("capture banner parses"),
        ..Config::default()
    }
}

fn replay_all(transport: Transport) {
    let caps = vectors::load_all();
    let mut units = 0;
    for cap in &caps {
        // A fresh server per capture: pids start at 2 as in the recording.
        let server = TestServer::start_with(
            Arc::new(StubKernel::new()),
            transport,
            reference_config(cap.banner()),
        )
        .expect("server starts");
        units += vectors::replay(cap, &server.url()).unwrap_or_else(|e| panic!("{e}"));
        // Whatever the capture did, the server still serves a new client.
        let mut probe = RawPeer::guest(&server.url(), "probe").expect("server still serves");
        let (err, _) = probe.syscall(2, 20, &[]).unwrap();
        assert_eq!(err, 0, "{}: getpid after the scenario", cap.name);
    }
    let s2c: usize = caps
        .iter()
        .map(|c| c.units.iter().filter(|u| u.dir == Dir::S2c).count())
        .sum();
    let crashed = caps.iter().filter(|c| c.reference_crashed()).count();
    eprintln!("{} captures, {units} server units compared", caps.len());
    assert_eq!(
        units,
        s2c + crashed,
        "every server unit of every capture was compared"
    );
}

#[test]
fn captures_replay_byte_exact_over_unix() {
    replay_all(Transport::Unix);
}

#[test]
fn captures_replay_byte_exact_over_tcp() {
    replay_all(Transport::Tcp);
}
