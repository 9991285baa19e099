//! Why a connection ended, typed by who caused it.

use sp_proto::{BodyError, DecodeError, Errno, HandshakeKind, MsgType};
use std::fmt;
use std::time::Duration;

/// Who ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The client: it closed, or it broke the protocol.
    Peer,
    /// The host: a socket call failed.
    Io,
    /// The kernel: it refused the client a process, or ended it.
    Kernel,
    /// The operator: the server is shutting down.
    Operator,
}

/// How a client broke the protocol. Each ends that connection only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// A frame the deframer refuses (a length out of bounds): the stream
    /// is out of step.
    Frame(DecodeError),
    /// A request other than HANDSHAKE first.
    BeforeHandshake(MsgType),
    /// A handshake whose body does not decode.
    BadHandshake(BodyError),
    /// A handshake request that is not a handshake at all (decoded as
    /// another message).
    NotAHandshake,
    /// A handshake of a kind this phase does not take (an exec first, a
    /// guest or fork on a running connection).
    WrongHandshake(HandshakeKind),
    /// A fork handshake whose cookie names no prefork.
    UnknownCookie,
    /// An exec while an exec is in progress.
    ExecDuringExec,
    /// A prefork while an exec is in progress.
    PreforkDuringExec,
}

impl fmt::Display for Misbehaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misbehaviour::Frame(e) => write!(f, "{e}"),
            Misbehaviour::BeforeHandshake(t) => write!(f, "{t} before the handshake"),
            Misbehaviour::BadHandshake(e) => write!(f, "malformed handshake: {e}"),
            Misbehaviour::NotAHandshake => f.write_str("a handshake request that is not one"),
            Misbehaviour::WrongHandshake(k) => write!(f, "{k} handshake out of place"),
            Misbehaviour::UnknownCookie => f.write_str("unknown prefork cookie"),
            Misbehaviour::ExecDuringExec => f.write_str("exec while an exec is in progress"),
            Misbehaviour::PreforkDuringExec => f.write_str("prefork during exec"),
        }
    }
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The client closed its end.
    PeerClosed,
    /// The client cancelled the prefork its fork handshake claimed (its
    /// host fork failed): the connection ends as asked.
    PreforkCancelled,
    /// The client broke the protocol; it was answered ERROR first where
    /// the protocol has an answer.
    Misbehaved(Misbehaviour),
    /// The client did not complete its handshake in time.
    HandshakeTimeout(Duration),
    /// The client read nothing for this long while the server had bytes
    /// for it.
    SendStalled(Duration),
    /// More than this many bytes waited for a client that did not read.
    SendQueueFull(usize),
    /// A read or write on the socket failed (the host's error kind).
    Io(std::io::ErrorKind),
    /// The kernel refused the client a process (fork or attach failed).
    KernelRefused(Errno),
    /// The kernel ended the client from inside a call.
    KernelEnded,
    /// The server is shutting down.
    Shutdown,
}

impl DropReason {
    /// Who caused it.
    pub fn cause(&self) -> Cause {
        match self {
            DropReason::PeerClosed
            | DropReason::PreforkCancelled
            | DropReason::Misbehaved(_)
            | DropReason::HandshakeTimeout(_)
            | DropReason::SendStalled(_)
            | DropReason::SendQueueFull(_) => Cause::Peer,
            DropReason::Io(_) => Cause::Io,
            DropReason::KernelRefused(_) | DropReason::KernelEnded => Cause::Kernel,
            DropReason::Shutdown => Cause::Operator,
        }
    }

    /// Whether the server dropped the client for what it did or failed to
    /// do (counted in `Stats::dropped`, logged as a warning), rather than
    /// the connection ending in the normal way.
    pub fn is_drop(&self) -> bool {
        match self {
            DropReason::PeerClosed
            | DropReason::PreforkCancelled
            | DropReason::Io(_)
            | DropReason::KernelEnded
            | DropReason::Shutdown => false,
            DropReason::Misbehaved(_)
            | DropReason::HandshakeTimeout(_)
            | DropReason::SendStalled(_)
            | DropReason::SendQueueFull(_)
            | DropReason::KernelRefused(_) => true,
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::PeerClosed => f.write_str("closed by the client"),
            DropReason::PreforkCancelled => f.write_str("prefork cancelled by the client"),
            DropReason::Misbehaved(m) => write!(f, "{m}"),
            DropReason::HandshakeTimeout(t) => write!(f, "no handshake within {t:?}"),
            DropReason::SendStalled(t) => write!(f, "client read nothing for {t:?}"),
            DropReason::SendQueueFull(n) => {
                write!(f, "send queue over {n} bytes (client not reading)")
            }
            DropReason::Io(k) => write!(f, "socket error: {k}"),
            DropReason::KernelRefused(e) => write!(f, "kernel refused a process: {e}"),
            DropReason::KernelEnded => f.write_str("ended by the kernel"),
            DropReason::Shutdown => f.write_str("server shutting down"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_names_who_caused_it() {
        let peer = DropReason::Misbehaved(Misbehaviour::UnknownCookie);
        assert_eq!(peer.cause(), Cause::Peer);
        assert!(peer.is_drop());
        assert_eq!(DropReason::PeerClosed.cause(), Cause::Peer);
        assert!(!DropReason::PeerClosed.is_drop());
        assert_eq!(DropReason::Shutdown.cause(), Cause::Operator);
        assert_eq!(
            DropReason::Io(std::io::ErrorKind::BrokenPipe).cause(),
            Cause::Io
        );
        assert_eq!(
            DropReason::KernelRefused(Errno::EAGAIN).cause(),
            Cause::Kernel
        );
        assert_eq!(peer.to_string(), "unknown prefork cookie");
    }
}
