//! The fuzz body for the client side: a client fed arbitrary server bytes.

use crate::abi::Sysnum;
use crate::transport::Stream;
use crate::{Call, Client, Options};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

/// Most bytes of input used (they must fit the socket's buffer, so the
/// "server" side writes them all up front and never writes again).
const MAX_INPUT: usize = 64 * 1024;

/// Runs a client against a peer that sends `data` (banner included) and
/// then closes its sending side: the client reads the banner, handshakes,
/// and makes a read, a write and a getpid. Whatever the bytes, this must
/// neither panic nor hang. Signals go to a no-op callback, ANONMMAP is
/// limited to 1 MiB and frames to 1 MiB.
///
/// Called by a fuzz target and by the unit tests.
pub fn fuzz_server_bytes(data: &[u8]) {
    let data = &data[..data.len().min(MAX_INPUT)];
    let Ok((ours, theirs)) = UnixStream::pair() else {
        return;
    };
    // Everything is written before the client starts, so the peer never
    // writes to a socket the client may have closed.
    if theirs.set_nonblocking(true).is_err() {
        return;
    }
    let mut off = 0;
    while off < data.len() {
        match (&theirs).write(&data[off..]) {
            Ok(n) if n > 0 => off += n,
            _ => break,
        }
    }
    let _ = theirs.shutdown(Shutdown::Write);
    let _ = theirs.set_nonblocking(false);
    // Drain what the client sends until it closes.
    let drainer = std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        while let Ok(n) = (&theirs).read(&mut sink) {
            if n == 0 {
                break;
            }
        }
    });
    let opts = Options::default()
        .name("fuzz")
        .on_signal(|_| {})
        .max_anonmmap(1 << 20)
        .max_frame(1 << 20);
    if let Ok(client) = Client::start(Stream::Unix(ours), None, opts, |name| {
        crate::conn::Start::Guest { name }
    }) {
        let mut out = [0u8; 64];
        let input = *b"input\0";
        let _ = client.call(Call::new(Sysnum::READ).int(0).output(&mut out).arg(64));
        let _ = client.call(Call::new(Sysnum::WRITE).int(1).input(&input).arg(6));
        let _ = client.getpid();
        client.disconnect();
    }
    let _ = drainer.join();
}
