//! A kernel of your own behind the sysproxy server, called with sp-client.
//!
//! ```sh
//! cargo run -p sp-server --example notes_kernel            # serve, call, check, exit
//! cargo run -p sp-server --example notes_kernel -- serve unix:///tmp/notes.sock
//! ```
//!
//! The kernel keeps one note per process: `write(2)` on any descriptor
//! appends to it (a COPYIN of the caller's buffer), `read(2)` returns it
//! (a COPYOUT), `getpid(2)` answers the process's number. Everything else
//! is ENOSYS; fork and exec take the trait's defaults. `cargo test` runs
//! this example's test, so it stays working.

use sp_server::{ClientPort, Config, Errno, Kernel, Port, ProcId, Server, SysResult};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const SYS_READ: u32 = 3;
const SYS_WRITE: u32 = 4;
const SYS_GETPID: u32 = 20;

/// Notes by process; pids from 2, as on NetBSD.
#[derive(Default)]
struct NotesKernel {
    next: AtomicU64,
    notes: Mutex<HashMap<ProcId, Vec<u8>>>,
}

impl Kernel for NotesKernel {
    fn spawn_guest(&self, _comm: &[u8], _port: Port) -> Result<ProcId, Errno> {
        let id = ProcId(self.next.fetch_add(1, Ordering::Relaxed) + 2);
        self.notes.lock().unwrap().insert(id, Vec::new());
        Ok(id)
    }

    fn syscall(&self, proc: ProcId, sysnum: u32, args: &[u8], port: &dyn ClientPort) -> SysResult {
        let a = sp_server::Args(args);
        match sysnum {
            SYS_GETPID => Ok([proc.0 as i64, 1]),
            SYS_WRITE => {
                let (buf, len) = (a.u64(1)?, a.usize(2)?);
                let bytes = port.copyin_vec(buf, len)?;
                let mut notes = self.notes.lock().unwrap();
                notes
                    .get_mut(&proc)
                    .ok_or(Errno::ESRCH)?
                    .extend_from_slice(&bytes);
                Ok([len as i64, 0])
            }
            SYS_READ => {
                let (buf, len) = (a.u64(1)?, a.usize(2)?);
                let note = self.notes.lock().unwrap().get(&proc).cloned();
                let note = note.ok_or(Errno::ESRCH)?;
                let n = note.len().min(len);
                port.copyout(buf, &note[..n])?;
                Ok([n as i64, 0])
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    fn release(&self, proc: ProcId) {
        self.notes.lock().unwrap().remove(&proc);
    }

    fn pid(&self, proc: ProcId) -> i32 {
        proc.0 as i32
    }

    fn runs_inline(&self, sysnum: u32) -> bool {
        // getpid neither blocks nor waits for the client: no hand-off.
        sysnum == SYS_GETPID
    }
}

/// Serves a fresh kernel on a temporary socket, calls it, checks it.
fn demo() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = format!("unix://{}/notes.sock", dir.path().display());
    let kernel = Arc::new(NotesKernel::default());
    let server = Server::bind(&url, kernel, Config::default())
        .map_err(|e| e.to_string())?
        .spawn()
        .map_err(|e| e.to_string())?;
    let client = sp_client::Client::connect(&server.url()).map_err(|e| e.to_string())?;
    let (pid, _) = client.getpid().map_err(|e| e.to_string())?;
    client.write(1, b"remember ").map_err(|e| e.to_string())?;
    client.write(1, b"the milk").map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let n = client.read(0, &mut buf).map_err(|e| e.to_string())?;
    let note = String::from_utf8_lossy(&buf[..n]).into_owned();
    println!("pid {pid}: note {note:?}");
    if note != "remember the milk" {
        return Err(format!("the kernel kept {note:?}"));
    }
    match client.mkdir("/x", 0o755) {
        Err(Errno::ENOSYS) => {}
        other => return Err(format!("mkdir: {other:?}, want ENOSYS")),
    }
    drop(client);
    server.stop().map_err(|e| e.to_string())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => demo(),
        [cmd, url] if cmd == "serve" => {
            Server::bind(url, Arc::new(NotesKernel::default()), Config::default())
                .and_then(|s| {
                    eprintln!("serving notes on {}", s.endpoint());
                    s.run()
                })
                .map_err(|e| e.to_string())
        }
        _ => Err("usage: notes_kernel [serve URL]".into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("notes_kernel: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[test]
fn the_example_serves_and_calls_its_kernel() {
    demo().unwrap();
}
