//! Arbitrary server bytes (banner included) fed to our client. The body is
//! `sp_testkit::fuzz::fuzz_client_bytes` (`sp_client::fuzz_server_bytes`),
//! which `cargo test` also runs over `fuzz/corpus/client_bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sp_testkit::fuzz::fuzz_client_bytes(data));
