//! Loading a plugin library: open it once, find the one symbol, check the ABI version.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use spindle_abi::{ABI_VERSION, PLUGIN_SYMBOL, PluginFn, SpindlePlugin};
use spindle_runtime::{Error, ErrorKind};

/// Why a plugin library cannot be used. Every variant names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be opened as a shared library (missing, not a library, unresolved
    /// dependencies).
    Open {
        /// The library file.
        path: PathBuf,
        /// What the dynamic loader said.
        reason: String,
    },
    /// The library does not export [`PLUGIN_SYMBOL`].
    MissingSymbol {
        /// The library file.
        path: PathBuf,
    },
    /// The symbol returned a null table.
    NullTable {
        /// The library file.
        path: PathBuf,
    },
    /// The plugin was built for another ABI version.
    Version {
        /// The library file.
        path: PathBuf,
        /// The version the plugin declares.
        found: u32,
        /// The version this runtime speaks ([`ABI_VERSION`]).
        expected: u32,
    },
    /// The plugin's table is smaller than version 1's: it cannot hold init, step and drop.
    TableTooSmall {
        /// The library file.
        path: PathBuf,
        /// The size the plugin declares.
        size: u32,
        /// The smallest size this runtime accepts.
        expected: u32,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Open { path, reason } => {
                write!(f, "cannot load plugin library {}: {reason}", path.display())
            }
            LoadError::MissingSymbol { path } => write!(
                f,
                "{} is not a Spindle plugin: it does not export the symbol `{PLUGIN_SYMBOL}` \
                 (see abi/include/spindle.h)",
                path.display()
            ),
            LoadError::NullTable { path } => {
                write!(f, "plugin {}: `{PLUGIN_SYMBOL}()` returned NULL", path.display())
            }
            LoadError::Version { path, found, expected } => write!(
                f,
                "plugin {} was built for Spindle ABI version {found}, but this runtime speaks \
                 ABI version {expected}; rebuild it against this runtime's spindle.h",
                path.display()
            ),
            LoadError::TableTooSmall { path, size, expected } => write!(
                f,
                "plugin {}: its spindle_plugin table is {size} bytes, ABI version {ABI_VERSION} \
                 needs at least {expected}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Error {
        let kind = match &e {
            LoadError::Open { path, .. } if !path.exists() => ErrorKind::NotFound,
            _ => ErrorKind::Invalid,
        };
        Error::new(kind, e.to_string())
    }
}

/// A loaded plugin library and its function table. The library stays loaded while any
/// prototype or process holds it.
pub(crate) struct Library {
    pub(crate) path: PathBuf,
    pub(crate) table: SpindlePlugin,
    _lib: libloading::Library,
}

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Library").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Library {
    fn load(path: &Path) -> Result<Library, LoadError> {
        let open = |reason: String| LoadError::Open { path: path.to_owned(), reason };
        let name = path.to_str().ok_or_else(|| open("the path is not UTF-8".to_owned()))?;
        // SAFETY: loading a library runs its initializers. Native plugins are trusted code by
        // design (DESIGN.md, backends/native): the entry that names the file vouches for it.
        let lib = unsafe { libloading::Library::new(name) }.map_err(|e| open(e.to_string()))?;
        // SAFETY: `PluginFn` is the symbol's type by the ABI contract (spindle.h); a library
        // that exports the name with another type breaks the contract it claims.
        let symbol = unsafe { lib.get::<PluginFn>(PLUGIN_SYMBOL) }
            .map_err(|_| LoadError::MissingSymbol { path: path.to_owned() })?;
        // SAFETY: the contract's entry point takes nothing and returns a static table.
        let table = unsafe { symbol() };
        if table.is_null() {
            return Err(LoadError::NullTable { path: path.to_owned() });
        }
        // Every version starts with `abi_version` and `size`: read those before anything else.
        // SAFETY: `table` is non-null and points at a static table of at least those 8 bytes.
        let (found, size) = unsafe { ((*table).abi_version, (*table).size) };
        if found != ABI_VERSION {
            return Err(LoadError::Version { path: path.to_owned(), found, expected: ABI_VERSION });
        }
        let expected = size_of::<SpindlePlugin>() as u32;
        if size < expected {
            return Err(LoadError::TableTooSmall { path: path.to_owned(), size, expected });
        }
        // SAFETY: the plugin declares version 1 and at least version 1's size, so every field
        // read here exists; the table is static, and the copy outlives nothing it points to
        // because `_lib` keeps the code loaded as long as `self`.
        let table = unsafe { *table };
        Ok(Library { path: path.to_owned(), table, _lib: lib })
    }
}

/// Loaded libraries by canonical path: each file is opened once while anything uses it.
#[derive(Debug, Default)]
pub(crate) struct Libraries {
    loaded: Mutex<HashMap<PathBuf, Weak<Library>>>,
}

impl Libraries {
    pub(crate) fn get(&self, path: &Path) -> Result<Arc<Library>, LoadError> {
        let path = path
            .canonicalize()
            .map_err(|e| LoadError::Open { path: path.to_owned(), reason: e.to_string() })?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lib) = loaded.get(&path).and_then(Weak::upgrade) {
            return Ok(lib);
        }
        let lib = Arc::new(Library::load(&path)?);
        loaded.retain(|_, w| w.strong_count() > 0);
        loaded.insert(path, Arc::downgrade(&lib));
        Ok(lib)
    }
}
