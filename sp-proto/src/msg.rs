//! Typed messages: one variant per row of the protocol's body table, both
//! directions, with their decoding from a header and body and their
//! encoding into the caller's buffer.

use crate::ext::{Hello, SegBody, SegError, HELLO_LEN};
use crate::wire::{
    Class, CopyBody, ErrorCode, ForkBody, HandshakeKind, Header, MsgType, SysRespBody, HEADER_LEN,
};
use zerocopy::byteorder::little_endian::{I32, I64, U64};
use zerocopy::{FromBytes, IntoBytes};

/// Length of a prefork cookie.
pub const COOKIE_LEN: usize = 16;

/// A prefork authentication cookie.
pub type Cookie = [u8; COOKIE_LEN];

/// Why a frame's body does not make a message.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum BodyError {
    /// The class is none of REQ, RESP, ERROR.
    #[error("unknown frame class {0}")]
    UnknownClass(Class),
    /// The type is not one this class carries.
    #[error("{class} frame of unknown type {typ}")]
    UnknownType {
        /// The frame's class.
        class: Class,
        /// The frame's type.
        typ: MsgType,
    },
    /// The body's size is wrong for the message.
    #[error("{typ} {class} body of {got} bytes, expected {expected}")]
    BadSize {
        /// The frame's class.
        class: Class,
        /// The frame's type.
        typ: MsgType,
        /// What the message needs (the minimum, for variable bodies).
        expected: usize,
        /// What the frame carried.
        got: usize,
    },
    /// A GUEST or EXEC handshake without a process name.
    #[error("{0} handshake without a process name")]
    EmptyComm(HandshakeKind),
    /// A SYSCALL_SEG body whose layout does not add up.
    #[error(transparent)]
    Segments(#[from] SegError),
    /// A COPYOUT request whose data does not match its length field.
    #[error("COPYOUT announces {announced} bytes but carries {got}")]
    CopyoutLength {
        /// The `len` field.
        announced: u64,
        /// The data bytes present.
        got: usize,
    },
}

/// The body of a HANDSHAKE request, by kind.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Handshake<'a> {
    /// A new guest; `comm` is the body as sent (normally NUL-terminated).
    Guest {
        /// Process name bytes as sent.
        comm: &'a [u8],
    },
    /// A fork child claiming (or cancelling) a prefork.
    Fork {
        /// The prefork cookie.
        cookie: Cookie,
        /// Nonzero: cancel.
        cancel: i32,
    },
    /// The new image after an execve.
    Exec {
        /// Process name bytes as sent.
        comm: &'a [u8],
    },
    /// AUTH or any other kind: carried as is.
    Other {
        /// The kind.
        kind: HandshakeKind,
        /// The body.
        body: &'a [u8],
    },
}

impl<'a> Handshake<'a> {
    /// The kind carried in the header.
    pub fn kind(&self) -> HandshakeKind {
        match self {
            Handshake::Guest { .. } => HandshakeKind::GUEST,
            Handshake::Fork { .. } => HandshakeKind::FORK,
            Handshake::Exec { .. } => HandshakeKind::EXEC,
            Handshake::Other { kind, .. } => *kind,
        }
    }
}

/// Strips everything from the first NUL on: the process name of a comm body.
pub fn comm_name(comm: &[u8]) -> &[u8] {
    match comm.iter().position(|&b| b == 0) {
        Some(i) => &comm[..i],
        None => comm,
    }
}

/// A decoded message; `reqno` is the frame's request number.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Message<'a> {
    /// Client: HANDSHAKE request.
    Handshake {
        /// Request number.
        reqno: u64,
        /// Kind and body.
        hs: Handshake<'a>,
    },
    /// Server: HANDSHAKE response (`error` 0 on success).
    HandshakeResp {
        /// Request number.
        reqno: u64,
        /// 0 or an errno.
        error: i32,
    },
    /// Client: SYSCALL request with its argument block.
    Syscall {
        /// Request number.
        reqno: u64,
        /// NetBSD syscall number.
        sysnum: u32,
        /// The argument block, 8 bytes per argument.
        args: &'a [u8],
    },
    /// Server: SYSCALL response.
    SyscallResp {
        /// Request number.
        reqno: u64,
        /// 0 or a NetBSD errno.
        error: i32,
        /// The two return values.
        retval: [i64; 2],
    },
    /// Client: PREFORK request.
    Prefork {
        /// Request number.
        reqno: u64,
    },
    /// Server: PREFORK response with the cookie.
    PreforkResp {
        /// Request number.
        reqno: u64,
        /// The cookie the child presents.
        cookie: Cookie,
    },
    /// Server: COPYIN (or COPYINSTR, `string` true) request.
    CopyinReq {
        /// Request number (server's space).
        reqno: u64,
        /// COPYINSTR rather than COPYIN.
        string: bool,
        /// Bytes wanted (the maximum, for a string).
        len: u64,
        /// Client address.
        addr: u64,
    },
    /// Client: COPYIN response with the bytes.
    CopyinResp {
        /// Request number (server's space).
        reqno: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// Server: COPYOUT (or COPYOUTSTR, `string` true) request with data.
    Copyout {
        /// Request number (server's space).
        reqno: u64,
        /// COPYOUTSTR rather than COPYOUT.
        string: bool,
        /// Client address.
        addr: u64,
        /// The bytes to store.
        data: &'a [u8],
    },
    /// Server: ANONMMAP request.
    AnonmmapReq {
        /// Request number (server's space).
        reqno: u64,
        /// Bytes to map.
        size: u64,
    },
    /// Client: ANONMMAP response (0 when mmap failed).
    AnonmmapResp {
        /// Request number (server's space).
        reqno: u64,
        /// The address mapped, or 0.
        addr: u64,
    },
    /// Server: RAISE a NetBSD signal in the client.
    Raise {
        /// Request number (the reference leaves it uninitialised; we send 0).
        reqno: u64,
        /// NetBSD signal number.
        signo: u32,
    },
    /// Client (extension): the EXT_HELLO probe.
    ExtHello {
        /// Request number ([`crate::ext::PROBE_REQNO`] from our client).
        reqno: u64,
        /// What the client wants.
        hello: Hello,
    },
    /// Server (extension): the answer to EXT_HELLO.
    ExtHelloResp {
        /// Request number of the probe.
        reqno: u64,
        /// What both sides speak, and the server's limits.
        hello: Hello,
    },
    /// Client (extension): SYSCALL_SEG, a system call carrying the bytes
    /// of the buffers it reads. Answered by [`Message::SyscallResp`].
    SyscallSeg {
        /// Request number.
        reqno: u64,
        /// NetBSD syscall number.
        sysnum: u32,
        /// The checked body: arguments, descriptors, data.
        body: SegBody<'a>,
    },
    /// Either side: ERROR answer to a request (header only, type 0).
    Error {
        /// The reqno of the request it answers.
        reqno: u64,
        /// The error code.
        code: ErrorCode,
    },
}

fn exact<const N: usize>(h: &Header, body: &[u8]) -> Result<(), BodyError> {
    if body.len() == N {
        Ok(())
    } else {
        Err(bad_size(h, N, body.len()))
    }
}

fn bad_size(h: &Header, expected: usize, got: usize) -> BodyError {
    BodyError::BadSize {
        class: h.class(),
        typ: h.typ(),
        expected,
        got,
    }
}

impl<'a> Message<'a> {
    /// Decodes a message from a header and exactly its body (the caller has
    /// already checked `header.len() == 24 + body.len()`).
    ///
    /// An ERROR frame is accepted with any type and a body is ignored only
    /// if empty; everything else is checked against the message's layout.
    pub fn decode(h: &Header, body: &'a [u8]) -> Result<Message<'a>, BodyError> {
        let reqno = h.reqno();
        let (class, typ) = (h.class(), h.typ());
        let unknown = || BodyError::UnknownType { class, typ };
        match class {
            Class::ERROR => {
                exact::<0>(h, body)?;
                Ok(Message::Error {
                    reqno,
                    code: h.error(),
                })
            }
            Class::REQ => match typ {
                MsgType::HANDSHAKE => {
                    let kind = h.handshake();
                    let hs = match kind {
                        HandshakeKind::GUEST | HandshakeKind::EXEC => {
                            // The reference writes a NUL at comm[len]; an
                            // empty body made it write through NULL.
                            if body.is_empty() || comm_name(body).is_empty() {
                                return Err(BodyError::EmptyComm(kind));
                            }
                            if kind == HandshakeKind::GUEST {
                                Handshake::Guest { comm: body }
                            } else {
                                Handshake::Exec { comm: body }
                            }
                        }
                        HandshakeKind::FORK => {
                            let fb = ForkBody::read_from_bytes(body)
                                .map_err(|_| bad_size(h, 20, body.len()))?;
                            Handshake::Fork {
                                cookie: fb.auth,
                                cancel: fb.cancel.get(),
                            }
                        }
                        _ => Handshake::Other { kind, body },
                    };
                    Ok(Message::Handshake { reqno, hs })
                }
                MsgType::SYSCALL => Ok(Message::Syscall {
                    reqno,
                    sysnum: h.sysnum(),
                    args: body,
                }),
                MsgType::PREFORK => {
                    exact::<0>(h, body)?;
                    Ok(Message::Prefork { reqno })
                }
                MsgType::COPYIN | MsgType::COPYINSTR => {
                    let cb =
                        CopyBody::read_from_bytes(body).map_err(|_| bad_size(h, 16, body.len()))?;
                    Ok(Message::CopyinReq {
                        reqno,
                        string: typ == MsgType::COPYINSTR,
                        len: cb.len.get(),
                        addr: cb.addr.get(),
                    })
                }
                MsgType::COPYOUT | MsgType::COPYOUTSTR => {
                    let (cb, data) = CopyBody::read_from_prefix(body)
                        .map_err(|_| bad_size(h, 16, body.len()))?;
                    if cb.len.get() != data.len() as u64 {
                        return Err(BodyError::CopyoutLength {
                            announced: cb.len.get(),
                            got: data.len(),
                        });
                    }
                    Ok(Message::Copyout {
                        reqno,
                        string: typ == MsgType::COPYOUTSTR,
                        addr: cb.addr.get(),
                        data,
                    })
                }
                MsgType::ANONMMAP => {
                    exact::<8>(h, body)?;
                    let size = U64::read_from_bytes(body).map_err(|_| unknown())?.get();
                    Ok(Message::AnonmmapReq { reqno, size })
                }
                MsgType::RAISE => {
                    exact::<0>(h, body)?;
                    Ok(Message::Raise {
                        reqno,
                        signo: h.signo(),
                    })
                }
                MsgType::EXT_HELLO => {
                    let hello =
                        Hello::from_bytes(body).ok_or(bad_size(h, HELLO_LEN, body.len()))?;
                    Ok(Message::ExtHello { reqno, hello })
                }
                MsgType::SYSCALL_SEG => Ok(Message::SyscallSeg {
                    reqno,
                    sysnum: h.sysnum(),
                    body: SegBody::parse(body)?,
                }),
                _ => Err(unknown()),
            },
            Class::RESP => match typ {
                MsgType::HANDSHAKE => {
                    exact::<4>(h, body)?;
                    let error = I32::read_from_bytes(body).map_err(|_| unknown())?.get();
                    Ok(Message::HandshakeResp { reqno, error })
                }
                MsgType::SYSCALL => {
                    let b = SysRespBody::read_from_bytes(body)
                        .map_err(|_| bad_size(h, 24, body.len()))?;
                    Ok(Message::SyscallResp {
                        reqno,
                        error: b.error.get(),
                        retval: [b.retval[0].get(), b.retval[1].get()],
                    })
                }
                MsgType::PREFORK => {
                    let cookie: Cookie = body
                        .try_into()
                        .map_err(|_| bad_size(h, COOKIE_LEN, body.len()))?;
                    Ok(Message::PreforkResp { reqno, cookie })
                }
                MsgType::COPYIN | MsgType::COPYINSTR => {
                    Ok(Message::CopyinResp { reqno, data: body })
                }
                MsgType::ANONMMAP => {
                    exact::<8>(h, body)?;
                    let addr = U64::read_from_bytes(body).map_err(|_| unknown())?.get();
                    Ok(Message::AnonmmapResp { reqno, addr })
                }
                MsgType::EXT_HELLO => {
                    let hello =
                        Hello::from_bytes(body).ok_or(bad_size(h, HELLO_LEN, body.len()))?;
                    Ok(Message::ExtHelloResp { reqno, hello })
                }
                _ => Err(unknown()),
            },
            _ => Err(BodyError::UnknownClass(class)),
        }
    }

    /// The frame's request number.
    pub fn reqno(&self) -> u64 {
        match *self {
            Message::Handshake { reqno, .. }
            | Message::HandshakeResp { reqno, .. }
            | Message::Syscall { reqno, .. }
            | Message::SyscallResp { reqno, .. }
            | Message::Prefork { reqno }
            | Message::PreforkResp { reqno, .. }
            | Message::CopyinReq { reqno, .. }
            | Message::CopyinResp { reqno, .. }
            | Message::Copyout { reqno, .. }
            | Message::AnonmmapReq { reqno, .. }
            | Message::AnonmmapResp { reqno, .. }
            | Message::Raise { reqno, .. }
            | Message::ExtHello { reqno, .. }
            | Message::ExtHelloResp { reqno, .. }
            | Message::SyscallSeg { reqno, .. }
            | Message::Error { reqno, .. } => reqno,
        }
    }

    /// Encodes the message: a fixed head (header plus fixed-size body part)
    /// and the variable payload, borrowed, so a large payload is never copied
    /// to frame it. Write `head()` then `payload` (e.g. with vectored I/O).
    pub fn encode(&self) -> Encoded<'a> {
        let mut e = Encoded {
            head: [0; MAX_HEAD],
            head_len: HEADER_LEN,
            payload: &[],
        };
        let (class, typ, u, reqno) = match *self {
            Message::Handshake { reqno, hs } => {
                match hs {
                    Handshake::Guest { comm } | Handshake::Exec { comm } => e.payload = comm,
                    Handshake::Fork { cookie, cancel } => e.push(
                        ForkBody {
                            auth: cookie,
                            cancel: I32::new(cancel),
                        }
                        .as_bytes(),
                    ),
                    Handshake::Other { body, .. } => e.payload = body,
                }
                (Class::REQ, MsgType::HANDSHAKE, hs.kind().0, reqno)
            }
            Message::HandshakeResp { reqno, error } => {
                e.push(I32::new(error).as_bytes());
                (Class::RESP, MsgType::HANDSHAKE, 0, reqno)
            }
            Message::Syscall {
                reqno,
                sysnum,
                args,
            } => {
                e.payload = args;
                (Class::REQ, MsgType::SYSCALL, sysnum, reqno)
            }
            Message::SyscallResp {
                reqno,
                error,
                retval,
            } => {
                let b = SysRespBody {
                    error: I32::new(error),
                    pad: [0; 4],
                    retval: [I64::new(retval[0]), I64::new(retval[1])],
                };
                e.push(b.as_bytes());
                (Class::RESP, MsgType::SYSCALL, 0, reqno)
            }
            Message::Prefork { reqno } => (Class::REQ, MsgType::PREFORK, 0, reqno),
            Message::PreforkResp { reqno, cookie } => {
                e.push(&cookie);
                (Class::RESP, MsgType::PREFORK, 0, reqno)
            }
            Message::CopyinReq {
                reqno,
                string,
                len,
                addr,
            } => {
                e.push(
                    CopyBody {
                        len: U64::new(len),
                        addr: U64::new(addr),
                    }
                    .as_bytes(),
                );
                let t = if string {
                    MsgType::COPYINSTR
                } else {
                    MsgType::COPYIN
                };
                (Class::REQ, t, 0, reqno)
            }
            Message::CopyinResp { reqno, data } => {
                e.payload = data;
                (Class::RESP, MsgType::COPYIN, 0, reqno)
            }
            Message::Copyout {
                reqno,
                string,
                addr,
                data,
            } => {
                e.push(
                    CopyBody {
                        len: U64::new(data.len() as u64),
                        addr: U64::new(addr),
                    }
                    .as_bytes(),
                );
                e.payload = data;
                let t = if string {
                    MsgType::COPYOUTSTR
                } else {
                    MsgType::COPYOUT
                };
                (Class::REQ, t, 0, reqno)
            }
            Message::AnonmmapReq { reqno, size } => {
                e.push(U64::new(size).as_bytes());
                (Class::REQ, MsgType::ANONMMAP, 0, reqno)
            }
            Message::AnonmmapResp { reqno, addr } => {
                e.push(U64::new(addr).as_bytes());
                (Class::RESP, MsgType::ANONMMAP, 0, reqno)
            }
            Message::Raise { reqno, signo } => (Class::REQ, MsgType::RAISE, signo, reqno),
            Message::ExtHello { reqno, hello } => {
                e.push(hello.to_body().as_bytes());
                (Class::REQ, MsgType::EXT_HELLO, 0, reqno)
            }
            Message::ExtHelloResp { reqno, hello } => {
                e.push(hello.to_body().as_bytes());
                (Class::RESP, MsgType::EXT_HELLO, 0, reqno)
            }
            Message::SyscallSeg {
                reqno,
                sysnum,
                body,
            } => {
                e.payload = body.raw();
                (Class::REQ, MsgType::SYSCALL_SEG, sysnum, reqno)
            }
            Message::Error { reqno, code } => (Class::ERROR, MsgType(0), code.0, reqno),
        };
        let len = (e.head_len + e.payload.len()) as u64;
        let h = Header::new(len, reqno, class, typ, u);
        e.head[..HEADER_LEN].copy_from_slice(h.as_bytes());
        e
    }

    /// Encoded length of the whole frame.
    pub fn encoded_len(&self) -> usize {
        self.encode().len()
    }

    /// Appends the whole frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let e = self.encode();
        out.extend_from_slice(e.head());
        out.extend_from_slice(e.payload);
    }

    /// The whole frame as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut v);
        v
    }
}

/// Largest fixed head: header plus the largest fixed body (SYSCALL response).
pub const MAX_HEAD: usize = HEADER_LEN + 24;

/// An encoded frame: a fixed head in place and a borrowed payload.
#[derive(Clone, Copy, Debug)]
pub struct Encoded<'a> {
    head: [u8; MAX_HEAD],
    head_len: usize,
    /// The variable part of the body, borrowed from the message.
    pub payload: &'a [u8],
}

impl<'a> Encoded<'a> {
    fn push(&mut self, b: &[u8]) {
        self.head[self.head_len..self.head_len + b.len()].copy_from_slice(b);
        self.head_len += b.len();
    }

    /// Header and fixed body part.
    pub fn head(&self) -> &[u8] {
        &self.head[..self.head_len]
    }

    /// Whole frame length.
    pub fn len(&self) -> usize {
        self.head_len + self.payload.len()
    }

    /// Never true: a frame has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the whole frame into `buf`, returning the bytes written, or
    /// `None` if `buf` is too small.
    pub fn write_to(&self, buf: &mut [u8]) -> Option<usize> {
        let n = self.len();
        let out = buf.get_mut(..n)?;
        out[..self.head_len].copy_from_slice(self.head());
        out[self.head_len..].copy_from_slice(self.payload);
        Some(n)
    }
}
