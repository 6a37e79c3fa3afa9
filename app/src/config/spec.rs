//! What an app's entries say, typed: the result of loading its index files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use spindle_lua::Isolation;
use spindle_runtime::EntryId;

use super::node::Node;

/// The kinds of process entries, and the field naming each one's code file.
pub(crate) const PROCESS_KINDS: [(&str, &str); 3] =
    [("process.lua", "source"), ("process.wasm", "module"), ("process.native", "library")];

/// The field naming the code file of process kind `kind` (`source` for `process.lua` …);
/// `None` for other kinds.
pub fn code_field(kind: &str) -> Option<&'static str> {
    PROCESS_KINDS.iter().find(|(k, _)| *k == kind).map(|(_, f)| *f)
}

/// A loaded app: its entries, checked.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// The app folder.
    pub root: PathBuf,
    /// Every entry, ordered by id.
    pub entries: BTreeMap<EntryId, EntrySpec>,
    /// The index files read.
    pub index_files: Vec<PathBuf>,
}

/// One entry of an index file.
#[derive(Clone, Debug)]
pub struct EntrySpec {
    /// `namespace:name`.
    pub id: EntryId,
    /// The kind, e.g. `process.lua`.
    pub kind: String,
    /// The index file it comes from.
    pub file: PathBuf,
    /// What its kind says.
    pub body: Body,
    /// Free-form `meta` table, if any.
    pub meta: Option<Node>,
}

/// What an entry describes, by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// `process.lua`, `process.wasm`, `process.native`: code the backend of the kind runs.
    Process(ProcessSpec),
    /// `process.host`.
    Host(HostSpec),
    /// `terminal.host`.
    Terminal(HostSpec),
    /// `process.service`.
    Service(ServiceSpec),
    /// `security.policy`.
    Policy(PolicySpec),
}

/// A process entry: its fields as the backend reads them, and its code file.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessSpec {
    /// The fields other than `name`, `kind` and `meta`, with paths kept as written.
    pub fields: Node,
    /// The folder relative paths are resolved against (the index file's folder).
    pub base_dir: PathBuf,
    /// The code file (Lua source, Wasm module, shared library), resolved.
    pub code: PathBuf,
}

/// A host's settings (`process.host`, `terminal.host`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostSpec {
    /// Worker threads (default: one per core; a terminal host has one).
    pub workers: Option<usize>,
    /// Live process limit.
    pub max_processes: Option<usize>,
    /// Queued messages per mailbox limit.
    pub mailbox_limit: Option<usize>,
    /// Modules its processes may use (`None`: the backends' defaults).
    pub modules: Option<Vec<String>>,
    /// Policies its processes run under.
    pub policies: Vec<EntryId>,
    /// How Lua processes share Lua states on this host.
    pub isolation: Option<Isolation>,
}

/// A service: a process the runtime starts, watches and restarts.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSpec {
    /// The process entry it runs.
    pub process: EntryId,
    /// The host it runs on (`None`: the default host).
    pub host: Option<EntryId>,
    /// The arguments of the process's method.
    pub input: Vec<Node>,
    /// When and how it starts, stops and restarts.
    pub lifecycle: Lifecycle,
}

/// `lifecycle` of a service.
#[derive(Clone, Debug, PartialEq)]
pub struct Lifecycle {
    /// Started when the app starts (default false; a required service starts with the one
    /// that requires it).
    pub auto_start: bool,
    /// Services that must start before this one and stop after it.
    pub requires: Vec<EntryId>,
    /// A run at least this long resets the restart attempt counter (default 10s).
    pub stable_threshold: Duration,
    /// How long a stop waits after CANCEL before terminating (default 10s).
    pub stop_timeout: Duration,
    /// Restarts after a failure.
    pub restart: RestartPolicy,
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle {
            auto_start: false,
            requires: Vec::new(),
            stable_threshold: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(10),
            restart: RestartPolicy::default(),
        }
    }
}

/// `lifecycle.restart`: exponential backoff with jitter.
#[derive(Clone, Debug, PartialEq)]
pub struct RestartPolicy {
    /// The delay before the first restart (`delay` is another name for it; default 1s).
    pub initial_delay: Duration,
    /// The longest delay (default 90s).
    pub max_delay: Duration,
    /// Each further attempt waits this many times longer (default 2.0).
    pub backoff_factor: f64,
    /// Delays vary randomly by up to this fraction either way (default 0.1).
    pub jitter: f64,
    /// Restarts before giving up; 0 restarts forever (default 0).
    pub max_attempts: u32,
}

impl Default for RestartPolicy {
    fn default() -> RestartPolicy {
        RestartPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(90),
            backoff_factor: 2.0,
            jitter: 0.1,
            max_attempts: 0,
        }
    }
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The rule allows what it matches.
    Allow,
    /// The rule denies what it matches; any deny wins.
    Deny,
}

/// A `security.policy` rule.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicySpec {
    /// Actions it matches (e.g. `process.spawn`, `module.io`; `*` for all).
    pub actions: Vec<String>,
    /// Resources it matches (entry ids, host ids, patterns with `*`).
    pub resources: Vec<String>,
    /// Allow or deny.
    pub effect: Effect,
    /// Extra conditions, as written.
    pub conditions: Option<Node>,
}

impl AppConfig {
    /// The entry `id`.
    pub fn get(&self, id: &EntryId) -> Option<&EntrySpec> {
        self.entries.get(id)
    }

    /// The services, ordered by id.
    pub fn services(&self) -> impl Iterator<Item = (&EntryId, &ServiceSpec)> {
        self.entries.iter().filter_map(|(id, e)| match &e.body {
            Body::Service(s) => Some((id, s)),
            _ => None,
        })
    }

    /// The files whose change means the app changed: index files and code files.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = self.index_files.clone();
        for e in self.entries.values() {
            if let Body::Process(p) = &e.body {
                files.push(p.code.clone());
            }
        }
        files.sort();
        files.dedup();
        files
    }
}
