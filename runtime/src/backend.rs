//! Backends turn registry entries into prototypes, and prototypes into process instances.
//!
//! Prototypes are cached by entry id and version, so spawning and upgrading never compile again.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::host::Host;
use crate::process::ProcessBox;
use crate::registry::{Entry, EntryId, IdHash};
use crate::scheduler::Strand;
use crate::value::Value;

/// A language backend (Lua, Wasm, native, Rust).
pub trait Backend: Send + Sync + 'static {
    /// The entry kinds this backend runs, e.g. `["process.lua"]`.
    fn kinds(&self) -> &[&str];

    /// Builds the prototype of `entry` (compiles, loads, validates).
    ///
    /// # Errors
    /// When the entry cannot be turned into runnable code; the error names the entry and why.
    fn prepare(&self, entry: &Entry) -> Result<Arc<dyn Prototype>>;
}

/// Compiled code, ready to start processes from.
pub trait Prototype: Send + Sync + 'static {
    /// A new process running this code with `args`, placed on `place.host`.
    ///
    /// # Errors
    /// When the instance cannot be started (bad arguments, resource limits).
    fn instantiate(&self, args: Vec<Value>, place: &Placement<'_>) -> Result<Instance>;
}

/// Where a new instance goes.
#[derive(Debug)]
pub struct Placement<'a> {
    /// The host it will run on.
    pub host: &'a Host,
    /// The strand of the process being upgraded, if any: an upgrade can only keep it or leave it.
    pub strand: Option<&'a Arc<Strand>>,
}

/// A process instance and the strand it must run in, if any.
pub struct Instance {
    /// The state machine (`ProcessBox::new(process)`).
    pub process: ProcessBox,
    /// The serial group it belongs to (`None`: scheduled on its own).
    pub strand: Option<Arc<Strand>>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance").field("strand", &self.strand).finish_non_exhaustive()
    }
}

/// A prototype and the entry version it was built from.
type Versioned = (u64, Arc<dyn Prototype>);

/// The prototype cache: one prototype per entry id, at its current version.
#[derive(Default)]
pub(crate) struct Prototypes {
    map: RwLock<HashMap<EntryId, Versioned, IdHash>>,
}

impl Prototypes {
    pub(crate) fn get_or_prepare(
        &self,
        entry: &Entry,
        backend: &dyn Backend,
    ) -> Result<Arc<dyn Prototype>> {
        if let Some((v, p)) = self.map.read().unwrap_or_else(|e| e.into_inner()).get(&entry.id)
            && *v == entry.version
        {
            return Ok(p.clone());
        }
        let proto =
            backend.prepare(entry).map_err(|e: Error| e.context(format!("entry {}", entry.id)))?;
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.id.clone(), (entry.version, proto.clone()));
        Ok(proto)
    }

    /// How many prototypes have been built and are cached (for tests of the cache).
    pub(crate) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}
