//! # spindle-native
//!
//! Native plugin processes: shared libraries written in C, Go, Rust — anything that can export
//! a C function — run as Spindle processes, next to Lua, Wasm and Rust processes on the same
//! scheduler. The library speaks the stable C ABI of `spindle-abi` (`abi/include/spindle.h`):
//! it exports `spindle_plugin_entry`, which returns a table of `init`, `step` and `drop`, and it
//! reaches the runtime through the host functions it is handed.
//!
//! An entry of kind `process.native` names the library, relative to the entry file's folder:
//!
//! ```toml
//! [[entries]]
//! name = "echo"
//! kind = "process.native"
//! library = "file://libecho.so"
//! ```
//!
//! In code, install the backend and put such an entry:
//!
//! ```no_run
//! use spindle_native::NativeBackend;
//! use spindle_runtime::{Entry, HostConfig, Runtime, Spawn, Value};
//!
//! let rt = Runtime::builder()
//!     .host(HostConfig::new("app:main").workers(2))
//!     .backend(NativeBackend::new())
//!     .build()?;
//! let mut entry = Entry::new("app:echo".parse()?, spindle_native::KIND);
//! entry.fields = Value::map([("library", Value::from("file://libecho.so"))]);
//! entry.base_dir = Some("examples/native-c".into());
//! rt.put_entry(entry);
//! let pid = rt.spawn(Spawn::entry("app:echo".parse()?, "app:main"))?;
//! # let _ = pid;
//! # Ok::<(), spindle_runtime::Error>(())
//! ```
//!
//! Each library is loaded once (while any prototype or process uses it), and its table is
//! checked when it is loaded: a file without the `spindle_plugin_entry` symbol, or built for another
//! ABI version, fails with a [`LoadError`] naming the file and both versions. Native code is
//! trusted: it runs in the runtime's own address space. A plugin must not unwind out of its
//! functions; the Rust guest SDK (`spindle-guest`) catches a panic at the boundary and ends
//! only that process with the panic as its error. The host functions catch their own panics
//! and return `SPINDLE_E_INTERNAL`.

mod host;
mod library;
mod log;
mod process;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use spindle_runtime::{Backend, Entry, Error, ErrorKind, LeaseCount, Prototype, Result, Value};

pub use library::LoadError;
pub use log::{Level, Logger, stderr_logger};

use library::Libraries;
use process::{NativePrototype, Plugin};

/// The entry kind this backend runs.
pub const KIND: &str = "process.native";

/// The fields a `process.native` entry may have.
const FIELDS: &[&str] = &["library"];

/// The backend of `process.native` entries.
pub struct NativeBackend {
    libraries: Libraries,
    log: Logger,
}

impl std::fmt::Debug for NativeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeBackend").field("libraries", &self.libraries).finish_non_exhaustive()
    }
}

impl Default for NativeBackend {
    fn default() -> Self {
        NativeBackend::new()
    }
}

impl NativeBackend {
    /// A backend whose plugins log to stderr ([`stderr_logger`]).
    pub fn new() -> NativeBackend {
        NativeBackend { libraries: Libraries::default(), log: stderr_logger() }
    }

    /// The same backend, with plugins' `log` calls going to `log`.
    #[must_use]
    pub fn with_logger(mut self, log: Logger) -> NativeBackend {
        self.log = log;
        self
    }

    /// The library file `entry` names: its `library` field (`file://PATH`), relative to the
    /// entry's folder.
    ///
    /// # Errors
    /// `INVALID` when the field is missing or malformed, or the entry has fields this kind
    /// does not know.
    pub fn library_path(entry: &Entry) -> Result<PathBuf> {
        let bad =
            |msg: String| Error::new(ErrorKind::Invalid, format!("entry {}: {msg}", entry.id));
        let Value::Map(fields) = &entry.fields else {
            return Err(bad(format!("fields must be a map, got {:?}", entry.fields)));
        };
        for (k, _) in fields {
            if !k.as_str().is_some_and(|k| FIELDS.contains(&k)) {
                return Err(bad(format!(
                    "unknown field `{k}` for kind {KIND} (expected one of: {})",
                    FIELDS.join(", ")
                )));
            }
        }
        let library = entry.fields.get("library").ok_or_else(|| {
            bad("field `library` is missing (expected library = \"file://libname.so\")".to_owned())
        })?;
        let path = library.as_str().and_then(|s| s.strip_prefix("file://")).ok_or_else(|| {
            bad(format!(
                "field `library` is {library:?} (expected a string \"file://PATH\", relative to \
                 the entry file's folder)"
            ))
        })?;
        let path = Path::new(path);
        Ok(match &entry.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        })
    }
}

impl Backend for NativeBackend {
    fn kinds(&self) -> &[&str] {
        &[KIND]
    }

    fn prepare(&self, entry: &Entry) -> Result<Arc<dyn Prototype>> {
        let path = NativeBackend::library_path(entry)?;
        let lib = self.libraries.get(&path)?;
        Ok(Arc::new(NativePrototype(Arc::new(Plugin {
            lib,
            log: self.log.clone(),
            leases: LeaseCount::default(),
        }))))
    }
}
