//! Hosts: named schedulers with their own limits.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use crossbeam_utils::CachePadded;

use crate::lease::{LeaseCount, Leased};
use crate::pid::HostId;
use crate::runtime::Shared;
use crate::scheduler::{Scheduler, Strand};

/// How a host is set up.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The host's name, e.g. `app:processes`.
    pub name: String,
    /// Worker threads (default: the number of cores).
    pub workers: usize,
    /// At most this many live processes (`None`: no limit).
    pub max_processes: Option<usize>,
    /// At most this many messages waiting in one mailbox (`None`: unbounded).
    pub mailbox_limit: Option<usize>,
    /// The modules its processes may use (`None`: whatever their backend grants by default).
    /// A module outside this list is denied with `PERMISSION_DENIED`.
    pub modules: Option<Vec<String>>,
    /// `Some(argv)` makes this a terminal host: its process may use the terminal (stdin,
    /// stdout, stderr) and sees `argv`; other hosts deny terminal access.
    pub terminal: Option<Vec<String>>,
}

impl HostConfig {
    /// A host named `name` with one worker per core and no limits.
    pub fn new(name: impl Into<String>) -> HostConfig {
        HostConfig {
            name: name.into(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_processes: None,
            mailbox_limit: None,
            modules: None,
            terminal: None,
        }
    }

    /// Sets the number of worker threads.
    #[must_use]
    pub fn workers(mut self, n: usize) -> HostConfig {
        self.workers = n.max(1);
        self
    }

    /// Sets the process limit.
    #[must_use]
    pub fn max_processes(mut self, n: usize) -> HostConfig {
        self.max_processes = Some(n);
        self
    }

    /// Sets the mailbox limit.
    #[must_use]
    pub fn mailbox_limit(mut self, n: usize) -> HostConfig {
        self.mailbox_limit = Some(n);
        self
    }

    /// Grants only `modules` to the host's processes.
    #[must_use]
    pub fn modules<S: Into<String>>(mut self, modules: impl IntoIterator<Item = S>) -> HostConfig {
        self.modules = Some(modules.into_iter().map(Into::into).collect());
        self
    }

    /// Makes this a terminal host whose process sees `argv`.
    #[must_use]
    pub fn terminal(mut self, argv: Vec<String>) -> HostConfig {
        self.terminal = Some(argv);
        self
    }

    /// Whether the host grants module `name` (subject to what the process's entry asks for).
    pub fn grants(&self, name: &str) -> bool {
        self.modules.as_ref().is_none_or(|m| m.iter().any(|x| x == name))
    }
}

/// A running host: its scheduler and limits. Backends see it when they place a new process.
///
/// Aligned to a cache line so that its reference counts (which every process's spawn and end
/// change) have a line of their own, apart from the fields every spawn reads.
#[repr(align(64))]
pub struct Host {
    pub(crate) id: HostId,
    pub(crate) config: HostConfig,
    pub(crate) sched: Arc<Scheduler>,
    pub(crate) live: LiveCount,
    /// The runtime, for the host's processes. The runtime's host map refers back to the host;
    /// `Runtime::shutdown` clears that map, which ends the cycle.
    pub(crate) rt: Arc<Shared>,
    /// Its processes' references (see `Lease`).
    leases: LeaseCount,
}

// SAFETY: its own count, used only by leases.
unsafe impl Leased for Host {
    fn lease_count(&self) -> &LeaseCount {
        &self.leases
    }
}

impl Host {
    pub(crate) fn start(config: HostConfig, rt: Arc<Shared>) -> Arc<Host> {
        let sched = Scheduler::start(&config.name, config.workers);
        Arc::new(Host {
            id: HostId::intern(&config.name),
            live: LiveCount::new(sched.workers(), config.max_processes),
            sched,
            config,
            rt,
            leases: LeaseCount::default(),
        })
    }

    /// The host's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The host's configuration.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.sched.workers()
    }

    /// Live processes on this host.
    pub fn live_processes(&self) -> usize {
        self.live.get()
    }

    /// A new strand on this host: processes placed in it are never stepped at the same time.
    pub fn new_strand(&self) -> Arc<Strand> {
        Strand::new(self.sched.clone())
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host").field("name", &self.config.name).field("sched", &self.sched).finish()
    }
}

/// How many processes a host holds.
///
/// A host without a process limit counts in one slot per worker (each on its own cache line)
/// plus one for threads that are not its workers: a process is usually born on one worker and
/// ends on another, and one shared counter would move between their caches twice per process.
/// A worker's slot has one writer, so it is updated with a plain load and store; the total is
/// the sum of the slots (a slot alone may go negative). A host with a limit keeps one exact
/// counter instead: a spawn reserves its place before it starts, so the limit is never
/// exceeded, even by spawns racing on several threads.
pub(crate) struct LiveCount {
    slots: Box<[CachePadded<AtomicIsize>]>,
    limit: Option<usize>,
}

impl LiveCount {
    fn new(workers: usize, limit: Option<usize>) -> LiveCount {
        let n = if limit.is_some() { 1 } else { workers + 1 };
        LiveCount { slots: (0..n).map(|_| CachePadded::new(AtomicIsize::new(0))).collect(), limit }
    }

    /// Counts one more process; `false` (and nothing counted) if the host is full.
    #[must_use]
    pub(crate) fn try_add(&self, sched: &Scheduler) -> bool {
        match self.limit {
            Some(max) => {
                let limit = isize::try_from(max).unwrap_or(isize::MAX);
                self.slots[0]
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < limit).then_some(n + 1)
                    })
                    .is_ok()
            }
            None => {
                self.bump(sched, 1);
                true
            }
        }
    }

    /// Counts one process less (it ended on a worker of `sched`).
    pub(crate) fn remove(&self, sched: &Scheduler) {
        match self.limit {
            Some(_) => {
                self.slots[0].fetch_sub(1, Ordering::Relaxed);
            }
            None => self.bump(sched, -1),
        }
    }

    fn bump(&self, sched: &Scheduler, by: isize) {
        match sched.current_worker() {
            Some(w) => {
                // Only worker `w` writes its slot: no read-modify-write needed.
                let slot = &self.slots[w];
                slot.store(slot.load(Ordering::Relaxed) + by, Ordering::Relaxed);
            }
            None => {
                self.slots[self.slots.len() - 1].fetch_add(by, Ordering::Relaxed);
            }
        }
    }

    /// The count (a sum of slots read one after another: exact when nothing spawns or ends
    /// meanwhile).
    pub(crate) fn get(&self) -> usize {
        let n: isize = self.slots.iter().map(|s| s.load(Ordering::Relaxed)).sum();
        n.max(0) as usize
    }
}
