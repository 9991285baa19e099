//! The client tools in `sp-client/examples/` run against a real server.
//! `cargo test --workspace` (what CI runs) builds every example before any
//! test runs; a test run that did not build them says so and skips.

use sp_testkit::harness::{TestServer, Transport};
use std::path::PathBuf;
use std::process::Command;

/// An example binary of this build, if it was built.
fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} not built (cargo test --workspace builds it)",
            path.display()
        );
        None
    }
}

#[test]
fn rcat_and_rls_show_what_the_kernel_holds() {
    let (Some(rcat), Some(rls)) = (example("rcat"), example("rls")) else {
        return;
    };
    let (s, _kernel) = TestServer::model(Transport::Unix);
    let c = sp_client::Client::connect(&s.url()).unwrap();
    let text: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    c.write_file("/tmp/letters", &text).unwrap();

    let out = Command::new(&rcat)
        .args(["--server", &s.url(), "/tmp/letters"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == text, "rcat printed the file");

    let out = Command::new(&rcat)
        .args(["--server", &s.url(), "/tmp/none"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ENOENT"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(&rls)
        .args(["--server", &s.url(), "/tmp"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("letters"));
}
