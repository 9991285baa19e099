//! `sp`: the sysproxy command. `sp serve URL` runs the model kernel behind
//! a server; `sp call` makes system calls in a remote kernel; `sp demo`
//! walks a client through every cycle; `sp bench` measures a server.

use clap::{Parser, Subcommand};

/// mimalloc keeps freed pages for reuse: a server moving 1 MiB frames
/// otherwise pays a fresh page fault per 4 KiB of every buffer (measured:
/// 2.7x the 1 MiB write bandwidth with glibc's allocator tuned to keep
/// memory, against its defaults).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sp",
    version,
    about = "rump kernel sysproxy: remote system calls over a socket"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the model kernel on URL (unix://PATH, tcp://A.B.C.D:PORT, tcp6://[ADDR]:PORT).
    // The doc comment is the help text, where `[ADDR]` is not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[command(
        after_help = "Signals: SIGINT and SIGTERM stop the server (a unix socket file is \
        removed); SIGHUP is logged and ignored; SIGUSR1 logs the counters (connections, \
        preforks, system calls in flight, accepted, dropped, workers), which are also logged \
        at exit. Options that cannot work stop it at start with status 2."
    )]
    Serve(sp_cli::cmd::serve::ServeArgs),
    /// Make a system call in a remote kernel (URL from --server or RUMP_SERVER).
    Call(sp_cli::cmd::call::CallArgs),
    /// Start a server in-process and walk a client through every cycle.
    Demo(sp_cli::cmd::demo::DemoArgs),
    /// The exec half of the demo (internal).
    #[command(hide = true)]
    DemoExec(sp_cli::cmd::demo::DemoExecArgs),
    /// Measure a server beside raw socket anchors (starts its own without URL).
    Bench(sp_cli::cmd::bench::BenchArgs),
    /// One client process of `sp bench` (started by it).
    #[command(hide = true)]
    BenchClient(sp_cli::bench::client::ClientSpec),
}

fn main() -> ExitCode {
    // mimalloc's arenas may be backed by 2 MiB transparent huge pages, so
    // a few hundred bytes of new state can cost a whole huge page of RSS;
    // small pages keep a server's memory proportional to its clients.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    sp_cli::cmd::init_logging(if matches!(cli.cmd, Cmd::Serve(_)) {
        "info"
    } else {
        "warn"
    });
    let res = match cli.cmd {
        Cmd::Serve(a) => sp_cli::cmd::serve::run(a),
        Cmd::Call(a) => sp_cli::cmd::call::run(a).map_err(Into::into),
        Cmd::Demo(a) => sp_cli::cmd::demo::run(a),
        Cmd::DemoExec(a) => sp_cli::cmd::demo::run_exec(a),
        Cmd::Bench(a) => sp_cli::cmd::bench::run(a),
        Cmd::BenchClient(a) => sp_cli::cmd::bench::run_bench_client(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sp: {e}");
            if e.is::<sp_cli::cmd::UsageError>() {
                ExitCode::from(sp_cli::cmd::USAGE_EXIT)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
