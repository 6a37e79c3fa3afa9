//! The process table: pid → live process, sharded by runs of serials (see `SerialHasher`).
//!
//! A shard's lock is held only for the map operation itself. The message path
//! ([`Table::lock_serial`]) goes hand over hand: it takes the receiver's own lock under the
//! shard's, then lets the shard go, so a delivery that has work to do (a growing inbox) never
//! keeps spawns and exits of other processes in that shard waiting. The receiver is then
//! reached without a reference count of its own; what keeps it alive is the table's reference,
//! and that one is given up only after the remover has taken and released the receiver's lock
//! once ([`Table::take_out`], [`Table::drain`]) — which waits for any delivery still holding it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Deref;

use crossbeam_utils::CachePadded;

use crate::cell::{Inner, ProcessCell};
use crate::pid::Pid;
use crate::process_ref::ProcessRef;
use crate::sync::{SpinLock, lock};

const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;
const RUN_BITS: u32 = crate::pid::SERIAL_RUN_BITS;

/// Serials come in runs of 64 per thread (see `pid`), and a shard holds whole runs, the next
/// run the next shard. A worker spawning in a loop inserts 64 processes in a row into one
/// shard, whose lock and buckets stay in its cache, and the worker where they end removes them
/// mostly from a shard the spawner has left (with one shard per serial, every spawn and every
/// exit took a lock and buckets the other worker had just written). Within a shard the hash
/// keeps the serials' order in its low bits, which pick the bucket: processes spawned one after
/// another sit in neighbouring buckets, and since they mostly end in the order they were born,
/// the removes find the buckets (and the control bytes) of the last few on a line they already
/// hold. The top seven bits, which the map compares first within a group, come from a
/// multiplicative mix so that neighbours do not all match each other's tag.
#[derive(Default)]
struct SerialHasher(u64);

const TAG_BITS: u64 = 0x7F << 57;

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
        let mix = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let index = ((n >> (RUN_BITS + SHARD_BITS)) << RUN_BITS) | (n & ((1 << RUN_BITS) - 1));
        self.0 = (index & !TAG_BITS) | (mix & TAG_BITS);
    }
}

type Shard = HashMap<u64, ProcessRef, BuildHasherDefault<SerialHasher>>;

pub(crate) struct Table {
    /// Each on lines of its own: a shard is 40 bytes, and packed, a worker spawning into one
    /// shard took the line of the neighbouring shard from the worker removing from (or
    /// looking up a receiver in) that one.
    shards: Box<[CachePadded<SpinLock<Shard>>]>,
}

impl Table {
    pub(crate) fn new() -> Table {
        Table {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(SpinLock::new(Shard::default())))
                .collect(),
        }
    }

    fn shard(&self, pid: Pid) -> &SpinLock<Shard> {
        self.shard_of(pid.serial())
    }

    fn shard_of(&self, serial: u64) -> &SpinLock<Shard> {
        &self.shards[((serial >> RUN_BITS) as usize) % SHARDS]
    }

    pub(crate) fn insert(&self, cell: ProcessRef) {
        lock(self.shard(cell.pid)).insert(cell.pid.serial(), cell);
    }

    pub(crate) fn get(&self, pid: Pid) -> Option<ProcessRef> {
        lock(self.shard(pid)).get(&pid.serial()).cloned()
    }

    /// Runs `f` on the live process with serial `serial` under that process's lock (the message
    /// path: most deliveries need no reference of their own; [`Reached::to_ref`] takes one for a
    /// receiver that must be queued). `f` must not touch the table. Lock order: a shard, then a
    /// process — never the other way.
    pub(crate) fn lock_serial<R>(
        &self,
        serial: u64,
        f: impl FnOnce(&Reached<'_>, &mut Inner) -> R,
    ) -> Option<R> {
        let shard = lock(self.shard_of(serial));
        let cell: *const ProcessCell = ProcessRef::as_ptr(shard.get(&serial)?);
        // SAFETY: the table holds a reference to the process now, and whoever takes it out
        // takes and releases the process's lock before giving that reference up (`remove`,
        // `drain`). The lock is taken below before the shard is let go, so the process
        // outlives the guard, and `Reached` (which borrows the guard's lifetime) with it.
        let cell = unsafe { &*cell };
        let mut inner = lock(&cell.inner);
        drop(shard);
        Some(f(&Reached(cell), &mut inner))
    }

    /// The pid of the live process with serial `serial`.
    pub(crate) fn pid_of(&self, serial: u64) -> Option<Pid> {
        lock(self.shard_of(serial)).get(&serial).map(|c| c.pid)
    }

    /// Takes process `pid` out of the table. The caller must then take and release the
    /// process's lock before it lets the returned reference go (see the module docs): an
    /// exiting process does, to mark itself ended.
    pub(crate) fn take_out(&self, pid: Pid) -> Option<ProcessRef> {
        lock(self.shard(pid)).remove(&pid.serial())
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(&**s).len()).sum()
    }

    /// Takes every process out of the table (shutdown), and waits for deliveries as
    /// [`Table::take_out`] asks its caller to.
    pub(crate) fn drain(&self) -> Vec<ProcessRef> {
        let cells: Vec<_> = self
            .shards
            .iter()
            .flat_map(|s| lock(&**s).drain().map(|(_, c)| c).collect::<Vec<_>>())
            .collect();
        for cell in &cells {
            drop(lock(&cell.inner));
        }
        cells
    }
}

impl Table {
    /// Every live process at one moment (for broadcasts such as OUTDATED).
    pub(crate) fn snapshot(&self) -> Vec<ProcessRef> {
        self.shards.iter().flat_map(|s| lock(&**s).values().cloned().collect::<Vec<_>>()).collect()
    }
}

/// A live process reached through the table, under its lock (see [`Table::lock_serial`]).
pub(crate) struct Reached<'a>(&'a ProcessCell);

impl Reached<'_> {
    /// A reference of its own, to queue the process after its lock is released.
    pub(crate) fn to_ref(&self) -> ProcessRef {
        let ptr: *const ProcessCell = self.0;
        // SAFETY: `ptr` came from `ProcessRef::as_ptr` of the table's reference, which is alive
        // for as long as `self` (see `Table::lock_serial`), so the count is at least one.
        unsafe {
            ProcessRef::increment_strong_count(ptr);
            ProcessRef::from_raw(ptr)
        }
    }
}

impl Deref for Reached<'_> {
    type Target = ProcessCell;
    fn deref(&self) -> &ProcessCell {
        self.0
    }
}

/// Model check of the hand-over-hand delivery against a concurrent remove: the remover drops
/// its reference (here: marks the process freed) only after the delivery let the process's
/// lock go, in every interleaving.
#[cfg(all(test, spindle_loom))]
mod loom_models {
    use crate::sync::{Mutex, lock};
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, Ordering};
    use loom::thread;

    struct Process {
        inner: Mutex<u32>,
        freed: AtomicBool,
    }

    #[test]
    fn loom_delivery_never_outlives_the_tables_reference() {
        loom::model(|| {
            let p = Arc::new(Process { inner: Mutex::new(0), freed: AtomicBool::new(false) });
            let shard = Arc::new(Mutex::new(Some(p.clone())));
            let deliverer = {
                let shard = shard.clone();
                thread::spawn(move || {
                    // `Table::lock_serial`: the process's lock under the shard's, then the
                    // shard let go; `p` stands in for the bare pointer.
                    let s = lock(&*shard);
                    let Some(p) = s.as_ref().map(|p| Arc::as_ptr(p)) else { return };
                    // SAFETY: the model's `p` (below) keeps the allocation itself alive; the
                    // `freed` flag is what stands for the table's reference.
                    let p = unsafe { &*p };
                    let mut inner = lock(&p.inner);
                    drop(s);
                    assert!(!p.freed.load(Ordering::SeqCst), "delivered to a freed process");
                    *inner += 1;
                })
            };
            // `Table::take_out` and the exit: out of the shard, then the process's lock once,
            // then the reference goes.
            let taken = lock(&*shard).take();
            if let Some(t) = taken {
                drop(lock(&t.inner));
                t.freed.store(true, Ordering::SeqCst);
            }
            deliverer.join().unwrap();
            drop(p);
        });
    }
}
