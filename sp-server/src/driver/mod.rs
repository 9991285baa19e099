//! The driver: sockets, threads and the clock around the sans-IO
//! [`core`](crate::core). One mio event loop ([`server`]) reads clients
//! into the core and carries out its actions; a pool of workers ([`pool`])
//! runs the system calls that may block; [`conn`] is a connection's send
//! side and its waiting copies, [`port`] the ports a kernel reaches its
//! client through; [`handle`] is
//! what a running server shows the outside.

pub(crate) mod conn;
pub(crate) mod handle;
pub(crate) mod pool;
pub(crate) mod port;
pub(crate) mod server;
