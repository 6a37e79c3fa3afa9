//! Local process names: a name maps to one live process and is released when it ends.
//!
//! The owning process keeps the list of its names (under its own lock); this map answers
//! lookups. Lock order: a process's lock, then this map's — never the other way.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::error::{Error, ErrorKind, Result};
use crate::pid::Pid;

#[derive(Default)]
pub(crate) struct Names {
    map: RwLock<HashMap<String, Pid>>,
}

impl Names {
    pub(crate) fn insert(&self, name: &str, pid: Pid) -> Result<()> {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(owner) = map.get(name) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("name `{name}` is already registered to {owner}"),
            ));
        }
        map.insert(name.to_owned(), pid);
        Ok(())
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<Pid> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).get(name).copied()
    }

    /// Removes `name` if it still belongs to `pid`.
    pub(crate) fn remove(&self, name: &str, pid: Pid) -> bool {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.get(name) == Some(&pid) {
            map.remove(name);
            true
        } else {
            false
        }
    }
}
