//! `sp`: the sysproxy command. `sp serve URL` runs the model kernel behind
//! a server; `sp call` makes system calls in a remote kernel; `sp demo`
//! walks a client through every cycle; `sp bench` measures a server.

use clap::{Parser, Subcommand};
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
    Serve(sp_testkit::cmd::serve::ServeArgs),
}

fn main() -> ExitCode {
    sp_testkit::cmd::init_logging();
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Serve(a) => sp_testkit::cmd::serve::run(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sp: {e}");
            ExitCode::FAILURE
        }
    }
}
