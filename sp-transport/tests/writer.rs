//! The frame writers on a real socket: a non-blocking write that fills the
//! socket stops and resumes, and a blocking write of a frame larger than
//! the socket buffer arrives whole.

use sp_transport::{write_frame, write_parts, write_some, Progress, Stream};
use std::io::Read;
use std::os::unix::net::UnixStream;

fn frame(len: usize) -> (Vec<u8>, Vec<u8>) {
    let head: Vec<u8> = (0..24u8).collect();
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    (head, payload)
}

#[test]
fn a_full_socket_blocks_write_some_and_it_resumes_where_it_stopped() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let a = Stream::Unix(a);
    a.set_nonblocking(true).unwrap();
    // Far more than a unix socket buffers.
    let (head, payload) = frame(8 << 20);
    let total = head.len() + payload.len();
    let mut written = 0;
    assert_eq!(
        write_some(&a, &head, &payload, &mut written).unwrap(),
        Progress::Blocked
    );
    assert!(written > 0 && written < total, "{written}");
    let mut got = Vec::with_capacity(total);
    let mut buf = vec![0u8; 1 << 16];
    'drain: loop {
        let n = b.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
        // Drained: the socket has room again.
        while got.len() == written {
            if write_some(&a, &head, &payload, &mut written).unwrap() == Progress::Done {
                break 'drain;
            }
        }
    }
    while got.len() < total {
        let n = b.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(written, total);
    assert_eq!(&got[..24], &head[..]);
    assert!(got[24..] == payload[..], "the payload arrived intact");
}

#[test]
fn a_blocking_frame_larger_than_the_socket_buffer_arrives_whole() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let (head, payload) = frame(4 << 20);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        got
    });
    write_frame(&a, &head, &payload).unwrap();
    write_parts(&a, &[b"one", b"", b"two"]).unwrap();
    drop(a);
    let got = reader.join().unwrap();
    assert_eq!(got.len(), head.len() + payload.len() + 6);
    assert!(got[..24] == head[..] && got[24..got.len() - 6] == payload[..]);
    assert_eq!(&got[got.len() - 6..], b"onetwo");
}

#[test]
fn a_peer_that_has_gone_is_an_error_not_a_signal() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let a = Stream::Unix(a);
    let e = write_frame(&a, b"head", b"payload").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    let mut written = 0;
    let e = write_some(&a, b"head", b"", &mut written).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
}
