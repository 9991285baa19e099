//! A call's output waits for a client that reads, however slowly, rather
//! than dropping it at the send-queue bound: only a client that reads
//! nothing for the stall timeout is dropped (see `server_cycles` and
//! `hardening_memory` for those).

use sp_client::abi::oflag;
use sp_client::Client;
use sp_model::ModelKernel;
use sp_proto::args;
use sp_server::Config;
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::peers::pattern;
use sp_testkit::rawpeer::RawPeer;
use std::sync::Arc;
use std::time::Duration;

const MIB: usize = 1 << 20;

fn server(t: Transport) -> TestServer {
    let cfg = Config {
        send_queue_bytes: MIB,
        send_stall_timeout: Duration::from_secs(20),
        ..Config::default()
    };
    TestServer::start_with(Arc::new(ModelKernel::new()), t, cfg).unwrap()
}

#[test]
fn outputs_larger_than_the_send_queue_reach_a_reading_client() {
    for t in [Transport::Unix, Transport::Tcp] {
        let s = server(t);
        let c = Arc::new(Client::connect(&s.url()).unwrap());
        let data = pattern(7, 8 * MIB);
        let fd = c
            .open("/tmp/big", oflag::O_RDWR | oflag::O_CREAT, 0o644)
            .unwrap();
        assert_eq!(c.write(fd, &data).unwrap(), data.len());
        // One read of eight times the queue bound.
        let mut back = vec![0u8; data.len()];
        assert_eq!(c.pread(fd, &mut back, 0).unwrap(), data.len());
        assert!(back == data, "{t:?}: the bytes arrive intact");
        // Two large reads at once, from two threads of the client.
        let readers: Vec<_> = (0..2)
            .map(|i| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 3 * MIB];
                    let off = (i * 3 * MIB) as i64;
                    (c.pread(fd, &mut buf, off).unwrap(), buf)
                })
            })
            .collect();
        for (i, r) in readers.into_iter().enumerate() {
            let (n, buf) = r.join().unwrap();
            assert_eq!(n, 3 * MIB);
            assert!(buf == data[i * 3 * MIB..(i + 1) * 3 * MIB]);
        }
        assert_eq!(s.server.stats().dropped, 0, "{t:?}: nobody dropped");
    }
}

#[test]
fn a_slow_raw_reader_gets_every_byte_of_a_frame_past_the_bound() {
    let s = server(Transport::Unix);
    let mut p = RawPeer::guest(&s.url(), "slow").unwrap();
    let c = Client::connect(&s.url()).unwrap();
    let data = pattern(9, 4 * MIB);
    let fd = c
        .open("/tmp/slow", oflag::O_RDWR | oflag::O_CREAT, 0o644)
        .unwrap();
    c.write(fd, &data).unwrap();
    c.close(fd).unwrap();
    let path = b"/tmp/slow\0";
    let r =
        sp_testkit::peers::call(&mut p, 1, 5, &args::encode(&[0x1000, 0, 0]), &[path], 0).unwrap();
    let rfd = r.retval[0] as u64;
    // The raw peer takes its frames one at a time as it gets to them.
    let r = sp_testkit::peers::call(
        &mut p,
        2,
        3,
        &args::encode(&[rfd, 0x10_0000, data.len() as u64]),
        &[],
        0,
    )
    .unwrap();
    assert_eq!((r.error, r.retval[0]), (0, data.len() as i64));
    let got: Vec<u8> = r.copyouts.concat();
    assert!(got == data);
    assert_eq!(s.server.stats().dropped, 0);
}
