//! The fuzz body, `sp_proto::fuzz_deframer`, run by `cargo test`: its edge
//! cases, and every seed of the checked-in `cargo fuzz` corpus.

mod common;

use common::{raw_header, samples};
use sp_proto::{fuzz_deframer, Frame, Message};
use std::path::PathBuf;

/// The fuzz target's limit (frames above it end the stream).
const FUZZ_MAX: u64 = 4096;

#[test]
fn empty_and_one_byte() {
    fuzz_deframer(&[]);
    for b in 0..=255u8 {
        fuzz_deframer(&[b]);
    }
}

#[test]
fn headers_claiming_huge_lengths() {
    for len in [u64::MAX, 1 << 40, FUZZ_MAX + 1, 0, 16, 23] {
        for split in [0u8, 5, 63] {
            let mut input = vec![split];
            input.extend_from_slice(&raw_header(len, 1, 0, 1, 20));
            input.extend_from_slice(&[0xAB; 64]);
            fuzz_deframer(&input);
        }
    }
}

#[test]
fn valid_frames_in_every_chunk_size() {
    let stream: Vec<u8> = samples()
        .iter()
        .map(|(_, m)| m.to_vec())
        .filter(|f| f.len() as u64 <= FUZZ_MAX)
        .collect::<Vec<_>>()
        .concat();
    // The first byte picks the chunk size, 1..=64.
    for split in 0..64u8 {
        let mut input = vec![split];
        input.extend_from_slice(&stream);
        fuzz_deframer(&input);
    }
    // One valid frame, then a frame over the fuzz limit.
    let mut input = vec![3u8];
    input.extend_from_slice(
        &Message::Syscall {
            reqno: 2,
            sysnum: 20,
            args: &[],
        }
        .to_vec(),
    );
    input.extend_from_slice(
        &Message::CopyinResp {
            reqno: 1,
            data: &common::PAGE,
        }
        .to_vec(),
    );
    fuzz_deframer(&input);
}

#[test]
fn malformed_bodies_do_not_stop_the_stream() {
    // Unknown class, unknown type, short FORK, empty GUEST, then a good frame.
    let mut input = vec![7u8];
    for h in [
        raw_header(24, 1, 5, 1, 20),
        raw_header(24, 2, 0, 9, 0),
        raw_header(24, 3, 0, 0, 0),
    ] {
        input.extend_from_slice(&h);
    }
    input.extend_from_slice(&raw_header(40, 4, 0, 0, 2));
    input.extend_from_slice(&[0; 16]);
    input.extend_from_slice(&Message::Prefork { reqno: 5 }.to_vec());
    fuzz_deframer(&input);
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/deframer"
    ))
}

/// Every seed of `fuzz/corpus/deframer` through the fuzz body. The seeds are
/// a split byte followed by frames from the captures.
#[test]
fn seed_corpus() {
    let dir = corpus_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {} is missing: {e}", dir.display()));
    let mut seeds = 0;
    let mut decodable = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        fuzz_deframer(&data);
        seeds += 1;
        if let Some((_, stream)) = data.split_first() {
            if let Ok(Some((frame, _))) = Frame::parse(stream, FUZZ_MAX) {
                if frame.message().is_ok() {
                    decodable += 1;
                }
            }
        }
    }
    assert!(
        seeds >= 12,
        "seed corpus {} holds {seeds} files, expected at least 12",
        dir.display()
    );
    assert!(
        decodable >= 10,
        "only {decodable} of {seeds} seeds start with a decodable frame"
    );
    println!("ran fuzz_deframer over {seeds} seeds ({decodable} start with a valid message)");
}
