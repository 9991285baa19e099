//! Arbitrary bytes in arbitrary chunks through the frame decoder and the
//! message codec. The body is `sp_proto::fuzz_deframer`, which `cargo test`
//! also runs over `fuzz/corpus/deframer`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sp_proto::fuzz_deframer(data));
