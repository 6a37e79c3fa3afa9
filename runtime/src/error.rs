//! Errors: one kind per failure class a user can tell apart, plus a message that names the thing.

use std::fmt;

/// What kind of failure an [`Error`] is. The Lua API exposes these names as `err:kind()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A process, name, entry or host does not exist.
    NotFound,
    /// A name or entry is already taken.
    AlreadyExists,
    /// An argument or payload is malformed (bad topic, unsendable value, bad entry id).
    Invalid,
    /// The actor's policy or the host's capabilities forbid the operation.
    PermissionDenied,
    /// The resource is there but cannot serve now (a host at its process limit, shut down).
    Unavailable,
    /// A bug or an unexpected state inside the runtime or a backend (a panic, a broken invariant).
    Internal,
    /// The operation or process was canceled or terminated.
    Canceled,
    /// A deadline passed.
    Timeout,
    /// A limit was hit (a full mailbox); nothing was dropped silently.
    RateLimited,
    /// Anything else, typically an error raised by process code.
    Unknown,
}

impl ErrorKind {
    /// The kind's name as the Lua API spells it (`"NOT_FOUND"` …).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::AlreadyExists => "ALREADY_EXISTS",
            ErrorKind::Invalid => "INVALID",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::Unavailable => "UNAVAILABLE",
            ErrorKind::Internal => "INTERNAL",
            ErrorKind::Canceled => "CANCELED",
            ErrorKind::Timeout => "TIMEOUT",
            ErrorKind::RateLimited => "RATE_LIMITED",
            ErrorKind::Unknown => "UNKNOWN",
        }
    }

    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::Invalid,
        ErrorKind::PermissionDenied,
        ErrorKind::Unavailable,
        ErrorKind::Internal,
        ErrorKind::Canceled,
        ErrorKind::Timeout,
        ErrorKind::RateLimited,
        ErrorKind::Unknown,
    ];

    /// The kind named `name` (as returned by [`ErrorKind::name`]).
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failure of a runtime operation or of a process: a kind and a message naming the thing.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into() }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, naming the thing that failed.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `context: ` put before its message.
    #[must_use]
    pub fn context(self, context: impl fmt::Display) -> Error {
        Error { kind: self.kind, message: format!("{context}: {}", self.message) }
    }

    pub(crate) fn not_found(what: impl fmt::Display) -> Error {
        Error::new(ErrorKind::NotFound, what.to_string())
    }

    pub(crate) fn invalid(what: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Invalid, what.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

/// The result of runtime operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
