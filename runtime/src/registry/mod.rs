//! The registry of entries (`namespace:name` → what to run) and of local process names.

mod names;

pub(crate) use names::Names;

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::backend::Prototype;
use crate::error::{Error, Result};
use crate::lease::{Lease, LeaseCount, Leased};
use crate::value::Value;

/// An entry id: `namespace:name`, e.g. `app.workers:handler`.
///
/// Cloning is cheap (a reference count, batched on workers: see [`Lease`]): spawning from an
/// entry clones its id, so the text is shared, and its hash is computed once.
#[derive(Clone)]
pub struct EntryId(Lease<IdText>);

struct IdText {
    /// `namespace:name`.
    text: Box<str>,
    /// Where the `:` is.
    colon: usize,
    hash: u64,
    leases: LeaseCount,
}

// SAFETY: its own count, used only by leases.
unsafe impl Leased for IdText {
    fn lease_count(&self) -> &LeaseCount {
        &self.leases
    }
}

impl EntryId {
    /// `registered`, an equal id, if `self` is a copy of its own (parsed for this use and not
    /// shared): a process keeps its entry's id for as long as it lives, and one parsed for each
    /// spawn (as a Lua spawn does) cost every process an allocation of its own; the registry's
    /// copy is shared by all of them. A copy that is shared already costs no more per process,
    /// and is kept (no count changes).
    pub(crate) fn shared(&self, registered: &EntryId) -> Option<EntryId> {
        (!Lease::ptr_eq(&self.0, &registered.0) && self.0.is_only()).then(|| registered.clone())
    }

    /// The id `namespace:name`.
    ///
    /// # Errors
    /// `INVALID` if either part is empty or contains `:`.
    pub fn new(namespace: &str, name: &str) -> Result<EntryId> {
        let ok = |s: &str| !s.is_empty() && !s.contains(':') && !s.contains(char::is_whitespace);
        if !ok(namespace) || !ok(name) {
            return Err(Error::invalid(format!(
                "`{namespace}:{name}` is not an entry id (expected namespace:name)"
            )));
        }
        let text: Box<str> = format!("{namespace}:{name}").into();
        let hash = {
            use std::hash::{BuildHasher, BuildHasherDefault};
            BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .hash_one(&*text)
        };
        Ok(EntryId(Lease::from_arc(Arc::new(IdText {
            text,
            colon: namespace.len(),
            hash,
            leases: LeaseCount::default(),
        }))))
    }

    /// The namespace part.
    pub fn namespace(&self) -> &str {
        &self.0.text[..self.0.colon]
    }

    /// The name part.
    pub fn name(&self) -> &str {
        &self.0.text[self.0.colon + 1..]
    }

    /// The whole id, `namespace:name`.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }
}

impl PartialEq for EntryId {
    fn eq(&self, other: &EntryId) -> bool {
        Lease::ptr_eq(&self.0, &other.0)
            || (self.0.hash == other.0.hash && self.0.text == other.0.text)
    }
}

impl Eq for EntryId {}

impl std::hash::Hash for EntryId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

/// For maps keyed by [`EntryId`]: its hash was computed when the id was made, and is used as
/// it is.
pub(crate) type IdHash = std::hash::BuildHasherDefault<IdHasher>;

#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `EntryId` is hashed with this, through `write_u64`; anything else still spreads.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

impl PartialOrd for EntryId {
    fn partial_cmp(&self, other: &EntryId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EntryId {
    /// By namespace, then by name.
    fn cmp(&self, other: &EntryId) -> std::cmp::Ordering {
        (self.namespace(), self.name()).cmp(&(other.namespace(), other.name()))
    }
}

impl FromStr for EntryId {
    type Err = Error;

    fn from_str(s: &str) -> Result<EntryId> {
        let (ns, name) = s.split_once(':').ok_or_else(|| {
            Error::invalid(format!("`{s}` is not an entry id (expected namespace:name)"))
        })?;
        EntryId::new(ns, name)
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl fmt::Debug for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryId({self})")
    }
}

/// A registry entry: what a backend needs to build a prototype, at one version.
#[derive(Clone)]
pub struct Entry {
    /// The entry's id.
    pub id: EntryId,
    /// Its kind, e.g. `process.lua`; picks the backend.
    pub kind: String,
    /// Its fields as written in the entry file (a map), for the backend to read.
    pub fields: Value,
    /// The folder relative paths in `fields` are resolved against.
    pub base_dir: Option<PathBuf>,
    /// Code that cannot be written in a file (a Rust function), for the backend to downcast.
    pub attachment: Option<Arc<dyn Any + Send + Sync>>,
    /// The version, assigned by the registry when the entry is put; a reload bumps it.
    pub version: u64,
    /// The prototype of this version, once built: spawning finds it here without another
    /// lookup. Emptied when the entry is put.
    pub(crate) prototype: OnceLock<Arc<dyn Prototype>>,
}

impl Entry {
    /// An entry of `kind` with no fields.
    pub fn new(id: EntryId, kind: impl Into<String>) -> Entry {
        Entry {
            id,
            kind: kind.into(),
            fields: Value::Map(Vec::new()),
            base_dir: None,
            attachment: None,
            version: 0,
            prototype: OnceLock::new(),
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

/// The in-memory registry of entries, filled in code or from entry files.
#[derive(Default)]
pub(crate) struct Entries {
    map: RwLock<HashMap<EntryId, Arc<Entry>, IdHash>>,
    next_version: AtomicU64,
}

impl Entries {
    /// Puts `entry` (replacing an older version of the same id) and returns it with its version.
    pub(crate) fn put(&self, mut entry: Entry) -> Arc<Entry> {
        entry.version = self.next_version.fetch_add(1, Ordering::Relaxed) + 1;
        entry.prototype = OnceLock::new();
        let entry = Arc::new(entry);
        self.map.write().unwrap_or_else(|e| e.into_inner()).insert(entry.id.clone(), entry.clone());
        entry
    }

    /// The current version of entry `id`.
    pub(crate) fn get(&self, id: &EntryId) -> Option<Arc<Entry>> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// The prototype already built for the current version of entry `id` (the spawn path: one
    /// reference taken, none to the entry), and the registry's own copy of the id if `id` is
    /// another (see [`EntryId::shared`]).
    pub(crate) fn built(&self, id: &EntryId) -> Option<(Arc<dyn Prototype>, Option<EntryId>)> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let (key, entry) = map.get_key_value(id)?;
        Some((entry.prototype.get()?.clone(), id.shared(key)))
    }

    pub(crate) fn remove(&self, id: &EntryId) -> Option<Arc<Entry>> {
        self.map.write().unwrap_or_else(|e| e.into_inner()).remove(id)
    }

    pub(crate) fn ids(&self) -> Vec<EntryId> {
        let mut ids: Vec<_> =
            self.map.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        ids.sort();
        ids
    }
}
