//! Where plugins' `log` calls go.

use std::fmt;
use std::sync::Arc;

use spindle_runtime::Pid;

/// The level of a plugin's log line (`SPINDLE_LOG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// For the operator.
    Info,
    /// For the developer.
    Debug,
}

impl Level {
    pub(crate) fn from_code(code: i32) -> Option<Level> {
        Some(match code {
            spindle_abi::LOG_ERROR => Level::Error,
            spindle_abi::LOG_WARN => Level::Warn,
            spindle_abi::LOG_INFO => Level::Info,
            spindle_abi::LOG_DEBUG => Level::Debug,
            _ => return None,
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        })
    }
}

/// Receives plugins' log lines: the process, the level, the message.
pub type Logger = Arc<dyn Fn(Pid, Level, &str) + Send + Sync>;

/// The default logger: lines up to `Info` go to stderr as `LEVEL {pid} message`.
pub fn stderr_logger() -> Logger {
    Arc::new(|pid, level, msg| {
        if level <= Level::Info {
            eprintln!("{level} {pid} {msg}");
        }
    })
}
