//! `sp serve` as a user runs it: a real process, a raw client's handshake
//! and getpid, and a clean exit on SIGTERM with the socket removed.

use sp_testkit::rawpeer::RawPeer;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn serve_and_stop(extra: &[&str], expect_pid: i64) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("x.sock");
    let url = format!("unix://{}", sock.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sp"))
        .arg("serve")
        .args(extra)
        .arg(&url)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("sp starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), format!("listening on {url}"));

    let mut p = RawPeer::guest(&url, "raw").unwrap();
    let (err, rv) = p.syscall(2, 20, &[]).unwrap();
    assert_eq!((err, rv[0]), (0, expect_pid));

    let st = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "sp serve exits 0 on SIGTERM: {status:?}");
    assert!(!sock.exists(), "the socket file is removed");
}

#[test]
fn sp_serve_answers_a_raw_client_and_exits_cleanly() {
    serve_and_stop(&[], 2);
}

#[test]
fn sp_serve_stub_kernel() {
    serve_and_stop(&["--stub"], 2);
}
