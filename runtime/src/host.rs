//! Hosts: named schedulers with their own limits.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::pid::HostId;
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
pub struct Host {
    pub(crate) id: HostId,
    pub(crate) config: HostConfig,
    pub(crate) sched: Arc<Scheduler>,
    pub(crate) live: AtomicUsize,
}

impl Host {
    pub(crate) fn start(config: HostConfig) -> Arc<Host> {
        Arc::new(Host {
            id: HostId::intern(&config.name),
            sched: Scheduler::start(&config.name, config.workers),
            config,
            live: AtomicUsize::new(0),
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
        self.live.load(Ordering::Relaxed)
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
