//! The sans-IO server-session fuzz body over the checked-in corpus of the
//! `server_session` target, and over random inputs: CI runs it without a
//! fuzzer.

use proptest::prelude::*;
use sp_testkit::core_session::fuzz_core_session;
use std::path::Path;

#[test]
fn the_session_corpus_runs_clean_on_the_core() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/server_session");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("the corpus folder") {
        let path = e.expect("a corpus entry").path();
        fuzz_core_session(&std::fs::read(&path).expect("a corpus file"));
        n += 1;
    }
    assert!(n > 0, "corpus folder {} is empty", dir.display());
}

proptest! {
    #[test]
    fn random_bytes_never_break_the_core(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzz_core_session(&data);
    }
}
