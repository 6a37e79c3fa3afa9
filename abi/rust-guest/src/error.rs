//! Errors as the ABI carries them: a kind code and a message.

use std::fmt;

use spindle_abi as abi;

/// The kind of an [`Error`]: the ABI's `SPINDLE_E_*` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A process, name, entry or host does not exist.
    NotFound,
    /// A name is already taken.
    AlreadyExists,
    /// An argument or payload is malformed.
    Invalid,
    /// A policy forbids the operation.
    PermissionDenied,
    /// The resource cannot serve now.
    Unavailable,
    /// A bug or broken invariant (a panic).
    Internal,
    /// Canceled or terminated.
    Canceled,
    /// A deadline passed.
    Timeout,
    /// A limit was hit.
    RateLimited,
    /// Anything else; what process code raises by default.
    Unknown,
}

const KINDS: [(ErrorKind, i32); 10] = [
    (ErrorKind::NotFound, abi::E_NOT_FOUND),
    (ErrorKind::AlreadyExists, abi::E_ALREADY_EXISTS),
    (ErrorKind::Invalid, abi::E_INVALID),
    (ErrorKind::PermissionDenied, abi::E_PERMISSION_DENIED),
    (ErrorKind::Unavailable, abi::E_UNAVAILABLE),
    (ErrorKind::Internal, abi::E_INTERNAL),
    (ErrorKind::Canceled, abi::E_CANCELED),
    (ErrorKind::Timeout, abi::E_TIMEOUT),
    (ErrorKind::RateLimited, abi::E_RATE_LIMITED),
    (ErrorKind::Unknown, abi::E_UNKNOWN),
];

impl ErrorKind {
    /// The kind of ABI code `code` (`Unknown` for codes it does not know).
    pub fn from_code(code: i32) -> ErrorKind {
        KINDS.iter().find(|(_, c)| *c == code).map_or(ErrorKind::Unknown, |(k, _)| *k)
    }

    /// The ABI code (`SPINDLE_E_*`).
    pub fn code(self) -> i32 {
        KINDS.iter().find(|(k, _)| *k == self).map_or(abi::E_UNKNOWN, |(_, c)| *c)
    }

    /// The name, as the Lua API spells it (`"NOT_FOUND"` …).
    pub fn name(self) -> &'static str {
        abi::error_name(self.code()).unwrap_or("UNKNOWN")
    }
}

/// A failure: of a host call, of an operation, or of the process itself.
///
/// One pointer wide, so that the `Result`s every operation returns stay a word or two and
/// move in registers: failures are the rare path.
#[derive(Clone, Debug, PartialEq)]
pub struct Error(Box<Inner>);

#[derive(Clone, Debug, PartialEq)]
struct Inner {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error(Box::new(Inner { kind, message: message.into() }))
    }

    /// An `UNKNOWN` error: what a process raises.
    pub fn msg(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unknown, message)
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.kind.name(), self.0.message)
    }
}

impl std::error::Error for Error {}

/// The result of guest operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
