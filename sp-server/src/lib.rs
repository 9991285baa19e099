//! The sysproxy server (in progress).
#![forbid(unsafe_code)]

pub mod kernel;
pub use kernel::{Args, ClientPort, Kernel, Port, ProcId};
