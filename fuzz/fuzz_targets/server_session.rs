//! Arbitrary client bytes against the server's sans-IO core, driven by a
//! simulated kernel with no socket, thread or clock, one fresh core per
//! input. The body is `sp_testkit::core_session::fuzz_core_session`,
//! which `cargo test` also runs over `fuzz/corpus/server_session`
//! (sp-testkit/tests/core_session.rs); the same corpus also goes through a
//! live server over socket pairs there (sp-testkit/tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sp_testkit::core_session::fuzz_core_session(data));
