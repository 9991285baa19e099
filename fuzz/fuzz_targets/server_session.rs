//! Arbitrary client bytes against a server with the model kernel behind
//! it, one connection per input. The body is
//! `sp_testkit::fuzz::fuzz_server_session`, which `cargo test` also runs
//! over `fuzz/corpus/server_session` (tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sp_testkit::fuzz::fuzz_server_session(data));
