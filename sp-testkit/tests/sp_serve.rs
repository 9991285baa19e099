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

/// Starts `sp serve` on a fresh unix socket; returns the child and URL.
fn spawn_serve(dir: &std::path::Path) -> (std::process::Child, String) {
    let url = format!("unix://{}", dir.join("x.sock").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sp"))
        .args(["serve", &url])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("sp starts");
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on "));
    (child, url)
}

fn sp_call(url: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut c = Command::new(env!("CARGO_BIN_EXE_sp"))
        .arg("call")
        .args(args)
        .env("RUMP_SERVER", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin).unwrap();
    c.wait_with_output().unwrap()
}

#[test]
fn sp_call_round_trips_a_mebibyte_and_names_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = spawn_serve(dir.path());
    let data: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let put = sp_call(&url, &["put", "/a"], &data);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let cat = sp_call(&url, &["cat", "/a"], b"");
    assert!(cat.status.success());
    assert!(cat.stdout == data, "cat returns the 1 MiB that put stored");

    let st = sp_call(&url, &["stat", "/a"], b"");
    assert!(String::from_utf8_lossy(&st.stdout).contains("regular file, mode 0644, size 1048576"));
    assert!(sp_call(&url, &["mkdir", "/d"], b"").status.success());
    assert!(sp_call(&url, &["mv", "/a", "/d/b"], b"").status.success());
    let ls = sp_call(&url, &["ls", "/d"], b"");
    assert_eq!(String::from_utf8_lossy(&ls.stdout), "./\n../\nb\n");
    assert!(sp_call(&url, &["rm", "/d/b"], b"").status.success());
    assert!(sp_call(&url, &["rm", "/d"], b"").status.success());
    let pid = sp_call(&url, &["getpid"], b"");
    assert!(String::from_utf8_lossy(&pid.stdout).starts_with("pid "));

    // Errors: one line with the NetBSD errno name, non-zero exit.
    let missing = sp_call(&url, &["cat", "/missing"], b"");
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "sp: cat /missing: ENOENT\n"
    );
    let notempty = {
        sp_call(&url, &["mkdir", "/e"], b"");
        sp_call(&url, &["put", "/e/f"], b"x");
        sp_call(&url, &["rm", "/e"], b"")
    };
    assert_eq!(
        String::from_utf8_lossy(&notempty.stderr),
        "sp: rm /e: ENOTEMPTY\n"
    );
    let nosrv = Command::new(env!("CARGO_BIN_EXE_sp"))
        .args(["call", "getpid"])
        .env_remove("RUMP_SERVER")
        .output()
        .unwrap();
    assert!(!nosrv.status.success());
    assert!(String::from_utf8_lossy(&nosrv.stderr).contains("RUMP_SERVER"));

    Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
}

#[test]
fn sp_demo_runs_clean() {
    let out = Command::new(env!("CARGO_BIN_EXE_sp"))
        .arg("demo")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("All 7 steps checked out"));
}
