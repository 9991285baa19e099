//! Codec benchmarks: encode and decode per frame type, and the deframer's
//! throughput on a stream of mixed frames.
//!
//! `cargo bench -p sp-proto` (or `cargo xtask bench [--quick]`).

use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use sp_proto::{Deframer, Frame, Handshake, Message, DEFAULT_MAX_FRAME};
use std::time::Duration;

static PAGE: [u8; 4096] = [0x5a; 4096];

/// The frames measured one by one, named.
fn cases() -> Vec<(&'static str, Message<'static>)> {
    vec![
        (
            "getpid_req",
            Message::Syscall {
                reqno: 2,
                sysnum: 20,
                args: &[],
            },
        ),
        (
            "syscall_resp",
            Message::SyscallResp {
                reqno: 2,
                error: 0,
                retval: [2, 0],
            },
        ),
        (
            "copyin_req_4k",
            Message::CopyinReq {
                reqno: 0,
                string: false,
                len: 4096,
                addr: 0x5555_5555_b49d,
            },
        ),
        (
            "copyin_resp_4k",
            Message::CopyinResp {
                reqno: 0,
                data: &PAGE,
            },
        ),
        (
            "copyout_4k",
            Message::Copyout {
                reqno: 0,
                string: false,
                addr: 0x7fff_ffff_e3e0,
                data: &PAGE,
            },
        ),
        (
            "handshake_guest",
            Message::Handshake {
                reqno: 1,
                hs: Handshake::Guest {
                    comm: b"cref_client\0",
                },
            },
        ),
        (
            "handshake_resp",
            Message::HandshakeResp { reqno: 1, error: 0 },
        ),
    ]
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    let mut out = Vec::with_capacity(8192);
    for (name, msg) in cases() {
        g.throughput(Throughput::Bytes(msg.encoded_len() as u64));
        // Into a reused buffer, payload copied: what a buffered writer does.
        g.bench_with_input(BenchmarkId::new("into_vec", name), &msg, |b, m| {
            b.iter(|| {
                out.clear();
                black_box(m).encode_into(&mut out);
                black_box(out.len())
            })
        });
        // Head only, payload borrowed: what vectored I/O does.
        g.bench_with_input(BenchmarkId::new("head", name), &msg, |b, m| {
            b.iter(|| {
                let e = black_box(m).encode();
                black_box((e.head().len(), e.payload.len()))
            })
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for (name, msg) in cases() {
        let bytes = msg.to_vec();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter(|| {
                let (frame, _) = Frame::parse(black_box(bytes), DEFAULT_MAX_FRAME)
                    .unwrap()
                    .unwrap();
                black_box(frame.message().unwrap());
            })
        });
    }
    g.finish();
}

/// About 1 MiB of a typical mix: syscalls, their answers, copies.
fn mixed_stream() -> (Vec<u8>, usize) {
    let mut one_round = Vec::new();
    for (_, m) in cases() {
        m.encode_into(&mut one_round);
    }
    for _ in 0..8 {
        Message::Syscall {
            reqno: 2,
            sysnum: 20,
            args: &[],
        }
        .encode_into(&mut one_round);
        Message::SyscallResp {
            reqno: 2,
            error: 0,
            retval: [2, 0],
        }
        .encode_into(&mut one_round);
    }
    let per_round = cases().len() + 16;
    let rounds = (1 << 20) / one_round.len() + 1;
    (one_round.repeat(rounds), per_round * rounds)
}

fn deframer(c: &mut Criterion) {
    let (stream, frames) = mixed_stream();
    let mut g = c.benchmark_group("deframer");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    for chunk in [1500usize, 16 * 1024, 64 * 1024] {
        g.bench_with_input(
            BenchmarkId::new("push_decode", chunk),
            &chunk,
            |b, &chunk| {
                b.iter(|| {
                    let mut d = Deframer::new(DEFAULT_MAX_FRAME);
                    let mut n = 0;
                    for piece in stream.chunks(chunk) {
                        d.push(piece);
                        while let Some(f) = d.next_frame().unwrap() {
                            black_box(f.message().unwrap());
                            n += 1;
                        }
                    }
                    assert_eq!(n, frames);
                })
            },
        );
    }
    // Reading straight into the decoder's window, as a socket read would.
    g.bench_function("read_buf_decode", |b| {
        b.iter(|| {
            let mut d = Deframer::new(DEFAULT_MAX_FRAME);
            let mut rest = &stream[..];
            let mut n = 0;
            while !rest.is_empty() {
                let win = d.read_buf();
                let k = win.len().min(rest.len());
                win[..k].copy_from_slice(&rest[..k]);
                d.commit(k);
                rest = &rest[k..];
                while let Some(f) = d.next_frame().unwrap() {
                    black_box(f.message().unwrap());
                    n += 1;
                }
            }
            assert_eq!(n, frames);
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    encode(&mut c);
    decode(&mut c);
    deframer(&mut c);
    c.final_summary();
}
