//! The extension (docs/extension.md) against the reference captures, in
//! both directions:
//!
//! - our server with a stock-behaving client: every capture replays byte
//!   for byte with the extension on and off, and a server with it off
//!   refuses the probe and SYSCALL_SEG exactly as the C server refuses a
//!   request type it does not know (`err_type9_after_handshake`);
//! - our client with a stock-behaving server: see sp-client's capture
//!   replays (`tests::vectors`), where the peer answers the probe as the C
//!   server does and every later frame must be the C client's; here, our
//!   client against our server with the extension off, and the extension
//!   agreed and used with it on.

use sp_client::{Client, Features, Options};
use sp_model::stub::StubKernel;
use sp_proto::args;
use sp_proto::ext::{Hello, SegFrame, EXT_VERSION, PROBE_REQNO};
use sp_proto::{Banner, Class, ErrorCode, Header, Message, MsgType};
use sp_server::Config;
use sp_testkit::harness::{TestServer, Transport};
use sp_testkit::rawpeer::RawPeer;
use sp_testkit::vectors;
use std::sync::Arc;

fn config(banner: &[u8], extensions: bool) -> Config {
    Config {
        banner: Banner::parse(banner).expect("capture banner parses"),
        extensions,
        ..Config::default()
    }
}

fn stub_server(extensions: bool) -> TestServer {
    let banner = b"RUMPSP-0.4-NetBSD-7.99.34/amd64\n";
    TestServer::start_with(
        Arc::new(StubKernel::new()),
        Transport::Unix,
        config(banner, extensions),
    )
    .expect("server starts")
}

fn probe(reqno: u64) -> Message<'static> {
    Message::ExtHello {
        reqno,
        hello: Hello {
            version: EXT_VERSION,
            features: Features::ALL,
            max_frame: 1 << 20,
            max_segment_bytes: 0,
        },
    }
}

#[test]
fn captures_replay_byte_exact_with_the_extension_on_and_off() {
    let caps = vectors::load_all();
    assert!(caps.len() >= 20, "the captures are missing");
    for extensions in [true, false] {
        for cap in &caps {
            let server = TestServer::start_with(
                Arc::new(StubKernel::new()),
                Transport::Unix,
                config(cap.banner(), extensions),
            )
            .expect("server starts");
            vectors::replay(cap, &server.url())
                .unwrap_or_else(|e| panic!("extensions {extensions}: {e}"));
        }
    }
}

/// The reference's answer to a request type it does not know, after a
/// handshake: `err_type9_after_handshake`, its last server frame.
fn reference_refusal() -> Vec<u8> {
    let cap = vectors::load_all()
        .into_iter()
        .find(|c| c.name.starts_with("err_type9_after_handshake"))
        .expect("the capture is there");
    let last = cap.units.last().expect("units").bytes.clone();
    let h = Header::read(&last).unwrap();
    assert_eq!(
        (h.class(), h.error()),
        (Class::ERROR, ErrorCode::MALFORMED_REQUEST)
    );
    last
}

#[test]
fn a_server_with_the_extension_off_refuses_it_as_the_reference_does() {
    let want = reference_refusal();
    let reqno_in_capture = Header::read(&want).unwrap().reqno();
    let server = stub_server(false);
    let mut p = RawPeer::guest(&server.url(), "errprobe").unwrap();
    // The probe with the capture's reqno, then with ours: the same frame
    // as the reference's answer, reqno echoed.
    for reqno in [reqno_in_capture, PROBE_REQNO] {
        p.send_msg(&probe(reqno)).unwrap();
        let got = p.recv_frame().unwrap();
        let mut expect = want.clone();
        expect[8..16].copy_from_slice(&reqno.to_le_bytes());
        assert_eq!(got, expect, "reqno {reqno}");
    }
    // SYSCALL_SEG: refused the same way, and the call did not run.
    let data = b"hello";
    let a = args::encode(&[1, 0x1000, 5]);
    let f = SegFrame::new(2, 4, &a, &[(0x1000, &data[..])]).unwrap();
    p.send(&f.to_vec(&[&data[..]])).unwrap();
    let mut expect = want.clone();
    expect[8..16].copy_from_slice(&2u64.to_le_bytes());
    assert_eq!(p.recv_frame().unwrap(), expect);
    // The connection goes on, as the reference's does.
    assert_eq!(p.syscall(3, 20, &[]).unwrap(), (0, [2, 0]));
}

#[test]
fn a_server_with_the_extension_on_refuses_segments_until_asked() {
    let want = reference_refusal();
    let server = stub_server(true);
    let mut p = RawPeer::guest(&server.url(), "errprobe").unwrap();
    let data = b"hello";
    let a = args::encode(&[1, 0x1000, 5]);
    let f = SegFrame::new(2, 4, &a, &[(0x1000, &data[..])]).unwrap();
    p.send(&f.to_vec(&[&data[..]])).unwrap();
    let mut expect = want.clone();
    expect[8..16].copy_from_slice(&2u64.to_le_bytes());
    assert_eq!(p.recv_frame().unwrap(), expect, "no probe, no segments");
    // Asked: answered with what both speak.
    p.send_msg(&probe(PROBE_REQNO)).unwrap();
    let got = p.recv_msg().unwrap();
    match got.message() {
        Some(Message::ExtHelloResp { reqno, hello }) => {
            assert_eq!(reqno, PROBE_REQNO);
            assert_eq!(hello.version, EXT_VERSION);
            assert_eq!(hello.features, Features::ALL);
            assert_eq!(hello.max_frame, Config::default().max_frame);
            assert!(hello.max_segment_bytes > 0);
        }
        other => panic!("expected EXT_HELLO back, got {other:?}"),
    }
    // Now the same frame runs the call, with no COPYIN.
    p.send(&f.to_vec(&[&data[..]])).unwrap();
    let got = p.recv_msg().unwrap();
    assert_eq!(
        got.message(),
        Some(Message::SyscallResp {
            reqno: 2,
            error: 0,
            retval: [5, 0]
        })
    );
}

#[test]
fn an_exec_ends_the_agreement_for_the_new_image() {
    let server = stub_server(true);
    let mut p = RawPeer::guest(&server.url(), "old").unwrap();
    p.send_msg(&probe(PROBE_REQNO)).unwrap();
    assert_eq!(
        p.recv_msg().unwrap().header().typ(),
        MsgType::EXT_HELLO,
        "agreed"
    );
    p.send_msg(&Message::Handshake {
        reqno: 0,
        hs: sp_proto::Handshake::Exec { comm: b"new\0" },
    })
    .unwrap();
    assert_eq!(
        p.recv_msg().unwrap().message(),
        Some(Message::HandshakeResp { reqno: 0, error: 0 })
    );
    // The new image may be a stock client: segments need a new probe.
    let data = b"x";
    let a = args::encode(&[1, 0x1000, 1]);
    let f = SegFrame::new(1, 4, &a, &[(0x1000, &data[..])]).unwrap();
    p.send(&f.to_vec(&[&data[..]])).unwrap();
    let h = p.recv_msg().unwrap().header();
    assert_eq!(
        (h.class(), h.error()),
        (Class::ERROR, ErrorCode::MALFORMED_REQUEST)
    );
}

#[test]
fn our_client_with_a_server_that_refuses_the_probe_sends_plain_calls() {
    let server = stub_server(false);
    let c = Client::connect_with(&server.url(), Options::new().name("plain")).unwrap();
    assert_eq!(c.extension_features(), Features::NONE);
    assert_eq!(c.write(1, b"hello"), Ok(5));
    assert_eq!(c.open("/ok", 0, 0), Ok(3));
    assert_eq!(c.getpid(), Ok((2, 0)));
}

#[test]
fn our_client_with_our_server_agrees_and_calls_carry_their_bytes() {
    let server = stub_server(true);
    let c = Client::connect_with(&server.url(), Options::new().name("ext")).unwrap();
    assert_eq!(c.extension_features(), Features::ALL);
    assert_eq!(c.write(1, b"hello"), Ok(5));
    assert_eq!(c.open("/ok", 0, 0), Ok(3));
    assert_eq!(c.open("/missing", 0, 0), Err(sp_client::Errno::ENOENT));
    // A read exposes only a writable buffer: a plain call with a COPYOUT.
    let mut buf = [0u8; 8];
    assert_eq!(c.read(0, &mut buf), Ok(8));
    assert_eq!(buf, [0, 1, 2, 3, 4, 5, 6, 7]);
    // Off by option: no probe at all.
    let plain = Client::connect_with(&server.url(), Options::new().extensions(false)).unwrap();
    assert_eq!(plain.extension_features(), Features::NONE);
    assert_eq!(plain.write(1, b"x"), Ok(1));
}
