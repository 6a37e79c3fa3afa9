//! The process table: pid → live process, sharded to keep spawns on different workers apart.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::cell::ProcessCell;
use crate::pid::Pid;
use crate::sync::{SpinLock, lock};

const SHARDS: usize = 64;

/// Serials are handed out in sequence: a multiplicative mix spreads them over buckets.
#[derive(Default)]
struct SerialHasher(u64);

impl Hasher for SerialHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Shard = HashMap<u64, Arc<ProcessCell>, BuildHasherDefault<SerialHasher>>;

pub(crate) struct Table {
    shards: Vec<SpinLock<Shard>>,
}

impl Table {
    pub(crate) fn new() -> Table {
        Table { shards: (0..SHARDS).map(|_| SpinLock::new(Shard::default())).collect() }
    }

    fn shard(&self, pid: Pid) -> &SpinLock<Shard> {
        &self.shards[(pid.serial() as usize) % SHARDS]
    }

    pub(crate) fn insert(&self, cell: Arc<ProcessCell>) {
        lock(self.shard(cell.pid)).insert(cell.pid.serial(), cell);
    }

    pub(crate) fn get(&self, pid: Pid) -> Option<Arc<ProcessCell>> {
        lock(self.shard(pid)).get(&pid.serial()).cloned()
    }

    /// Runs `f` on process `pid` under its shard's lock, without taking a reference to it (the
    /// message path: most deliveries need no reference of their own). `f` must not touch the
    /// table. Lock order: a shard, then a process — never the other way.
    /// Runs `f` on the live process with serial `serial`, under its shard's lock.
    pub(crate) fn with_serial<R>(
        &self,
        serial: u64,
        f: impl FnOnce(&Arc<ProcessCell>) -> R,
    ) -> Option<R> {
        lock(&self.shards[(serial as usize) % SHARDS]).get(&serial).map(f)
    }

    /// The pid of the live process with serial `serial`.
    pub(crate) fn pid_of(&self, serial: u64) -> Option<Pid> {
        lock(&self.shards[(serial as usize) % SHARDS]).get(&serial).map(|c| c.pid)
    }

    pub(crate) fn remove(&self, pid: Pid) -> Option<Arc<ProcessCell>> {
        lock(self.shard(pid)).remove(&pid.serial())
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Takes every process out of the table (shutdown).
    pub(crate) fn drain(&self) -> Vec<Arc<ProcessCell>> {
        self.shards
            .iter()
            .flat_map(|s| lock(s).drain().map(|(_, c)| c).collect::<Vec<_>>())
            .collect()
    }
}

impl Table {
    /// Every live process at one moment (for broadcasts such as OUTDATED).
    pub(crate) fn snapshot(&self) -> Vec<Arc<ProcessCell>> {
        self.shards.iter().flat_map(|s| lock(s).values().cloned().collect::<Vec<_>>()).collect()
    }
}
