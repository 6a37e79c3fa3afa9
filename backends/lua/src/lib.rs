//! # spindle-lua
//!
//! Processes written in Lua 5.4. An entry of kind `process.lua` names a source file that
//! returns a table of functions; `method` names the one that runs as the process body:
//!
//! ```lua
//! -- handler.lua
//! local function main(greeting)
//!     local msg = process.inbox():receive()
//!     process.send(msg:from(), "reply", greeting .. ", " .. msg:payload():data())
//!     return "done"
//! end
//! return { main = main }
//! ```
//!
//! ```no_run
//! use spindle_runtime::{Entry, HostConfig, Runtime, Spawn, Value};
//! use spindle_lua::LuaBackend;
//!
//! let rt = Runtime::builder()
//!     .host(HostConfig::new("app:processes"))
//!     .backend(LuaBackend::default())
//!     .build()?;
//! let mut entry = Entry::new("app:handler".parse()?, "process.lua");
//! entry.fields = Value::map([
//!     ("source", Value::from("file://handler.lua")),
//!     ("method", Value::from("main")),
//! ]);
//! rt.put_entry(entry);
//! let pid = rt.spawn(Spawn::entry("app:handler".parse()?, "app:processes").args(vec!["hello".into()]))?;
//! # Ok::<(), spindle_runtime::Error>(())
//! ```
//!
//! Isolation: in islands mode (the default) processes are coroutines with their own `_ENV`
//! inside a few Lua states per host ([`Isolation::Islands`]); in state mode each process has a
//! Lua state of its own with a hard memory limit ([`Isolation::State`]).

mod api;
mod convert;
mod doze;
mod island;
mod json;
mod messaging;
mod opaque;
mod parking;
mod pattern;
mod preempt;
mod process;
mod slice;
mod stack;
mod terminal;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spindle_runtime::{
    Backend, Entry, Error, ErrorKind, Instance, Placement, ProcessBox, Prototype, Result, Value,
};

pub use convert::{to_lua, to_value};

/// The kind of the entries this backend runs.
pub const KIND: &str = "process.lua";

/// The modules a Lua process may be granted (`require(name)`; `modules` of an entry or a
/// host): the prelude's `time`, `json` and `io` (the terminal's, granted on terminal hosts).
pub const MODULES: &[&str] = &["time", "json", "io"];

use island::{Compiled, Island, Islands};
use process::{LuaProcess, Start};

/// How processes share Lua states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Processes are coroutines with their own `_ENV` in a few shared Lua states per host.
    Islands,
    /// Every process has a Lua state of its own (a separate heap with a hard limit).
    State,
}

/// Settings of the Lua backend.
#[derive(Clone, Debug)]
pub struct LuaConfig {
    /// The default isolation mode.
    pub isolation: Isolation,
    /// Hosts that use another mode than the default.
    pub host_isolation: HashMap<String, Isolation>,
    /// Islands per worker of a host (islands mode).
    pub islands_per_worker: usize,
    /// How long a process may run before it is preempted: a step that runs this long is
    /// yielded back to the scheduler at its next VM instruction (`Duration::ZERO` with
    /// `slice_instructions` 0: never preempted, for hosts that trust their code). A watchdog
    /// thread tells the worker with the real-time signal `SIGRTMAX - 1`, which a program that
    /// embeds the runtime (or a native plugin) must leave to it: a handler set for it elsewhere
    /// is replaced, with a warning, before the next preemption.
    pub slice: Duration,
    /// Preempt after this many VM instructions instead of by time (0: by time). Deterministic,
    /// for tests; the count hook costs about a quarter of the interpreter's speed.
    pub slice_instructions: u32,
    /// Hard memory limit of a process's Lua state in state mode, in bytes (0: none).
    pub state_memory_limit: usize,
    /// Memory budget of a process in islands mode, in bytes (0: none): what its steps may grow
    /// the island's heap by. Past it the process ends with `RATE_LIMITED`.
    pub process_memory_budget: usize,
    /// Hard memory limit of an island, in bytes (0: none).
    pub island_memory_limit: usize,
    /// Modules granted when an entry does not list its `modules`.
    pub default_modules: Vec<String>,
}

impl LuaConfig {
    fn slicing(&self) -> island::Slicing {
        island::Slicing { instructions: self.slice_instructions, time: self.slice }
    }
}

impl Default for LuaConfig {
    fn default() -> LuaConfig {
        LuaConfig {
            isolation: Isolation::Islands,
            host_isolation: HashMap::new(),
            islands_per_worker: 2,
            slice: Duration::from_micros(500),
            slice_instructions: 0,
            state_memory_limit: 16 << 20,
            process_memory_budget: 64 << 20,
            island_memory_limit: 1 << 30,
            default_modules: vec!["time".into(), "json".into()],
        }
    }
}

/// The backend for `process.lua` entries.
#[derive(Clone, Default)]
pub struct LuaBackend {
    inner: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    config: LuaConfig,
    islands: Mutex<HashMap<String, Islands>>,
    compiled: AtomicUsize,
    loads: Arc<AtomicUsize>,
    states: AtomicUsize,
}

/// What the backend has done so far (see [`LuaBackend::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LuaStats {
    /// Sources compiled (once per entry version).
    pub compiled: usize,
    /// Compiled chunks loaded into a Lua state (once per entry version and state).
    pub loaded: usize,
    /// Lua states created (islands, and one per process in state mode).
    pub states: usize,
    /// Bytes the islands' Lua heaps hold now, garbage not yet collected included (islands
    /// mode; the states of state mode are not counted).
    pub island_heap: usize,
    /// Steps of processes in islands that were preempted (their slice was spent).
    pub preemptions: usize,
}

impl std::fmt::Debug for LuaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LuaBackend").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl LuaBackend {
    /// A backend with `config`.
    pub fn new(config: LuaConfig) -> LuaBackend {
        LuaBackend { inner: Arc::new(Shared { config, ..Shared::default() }) }
    }

    /// Counts of compilations, chunk loads and Lua states so far, and the islands' heap size.
    /// An island that is running a step is read when the step ends.
    pub fn stats(&self) -> LuaStats {
        // Not under the lock: a step that spawns takes it while its island is busy.
        let islands: Vec<Arc<Island>> = {
            let all = self.inner.islands.lock().unwrap_or_else(|e| e.into_inner());
            all.values().flat_map(Islands::all).collect()
        };
        LuaStats {
            compiled: self.inner.compiled.load(Ordering::Relaxed),
            loaded: self.inner.loads.load(Ordering::Relaxed),
            states: self.inner.states.load(Ordering::Relaxed),
            island_heap: islands.iter().map(|i| i.lua.used_memory()).sum(),
            preemptions: islands.iter().map(|i| i.preemptions.load(Ordering::Relaxed)).sum(),
        }
    }
}

/// A compiled entry.
struct LuaPrototype {
    backend: Arc<Shared>,
    compiled: Arc<Compiled>,
    granted: Vec<String>,
    /// The entry lists its modules (else it got the defaults).
    explicit_modules: bool,
}

fn field_error(entry: &Entry, field: &str, expected: &str) -> Error {
    Error::new(
        ErrorKind::Invalid,
        format!("entry {}: field `{field}`: expected {expected}", entry.id),
    )
}

/// The path a `file://` reference names, relative to the entry's folder.
fn source_path(entry: &Entry, field: &str) -> Result<PathBuf> {
    let v =
        entry.fields.get(field).ok_or_else(|| field_error(entry, field, "a `file://…` path"))?;
    let s = v.as_str().ok_or_else(|| field_error(entry, field, "a string `file://…`"))?;
    let rel =
        s.strip_prefix("file://").ok_or_else(|| field_error(entry, field, "a `file://…` path"))?;
    let path = PathBuf::from(rel);
    Ok(match &entry.base_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path,
    })
}

/// Compiles `source` as a function of its environment: `local _ENV = ...` is put before the
/// first line (on the same line, so line numbers stay right), so every process runs the same
/// compiled chunk with its own globals.
pub(crate) fn compile(name: &str, source: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let body = if source.starts_with(b"#") {
        // A shebang line: keep the line count.
        let end = source.iter().position(|&b| b == b'\n').unwrap_or(source.len());
        &source[end..]
    } else {
        source
    };
    let mut text = b"local _ENV = ...; ".to_vec();
    text.extend_from_slice(body);
    let lua = mlua::Lua::new();
    let f = lua
        .load(&text[..])
        .set_name(name)
        .set_mode(mlua::chunk::ChunkMode::Text)
        .into_function()
        .map_err(|e| e.to_string())?;
    Ok(f.dump(false))
}

impl Backend for LuaBackend {
    fn kinds(&self) -> &[&str] {
        &[KIND]
    }

    fn prepare(&self, entry: &Entry) -> Result<Arc<dyn Prototype>> {
        let path = source_path(entry, "source")?;
        let source = std::fs::read(&path).map_err(|e| {
            Error::new(
                ErrorKind::NotFound,
                format!("entry {}: field `source`: cannot read {}: {e}", entry.id, path.display()),
            )
        })?;
        let name = format!("@{}", path.display());
        self.inner.compiled.fetch_add(1, Ordering::Relaxed);
        let bytecode = compile(&name, &source).map_err(|e| {
            Error::new(ErrorKind::Invalid, format!("entry {}: {}: {e}", entry.id, path.display()))
        })?;
        let method = match entry.fields.get("method") {
            None => "main".to_owned(),
            Some(v) => {
                v.as_str().ok_or_else(|| field_error(entry, "method", "a string"))?.to_owned()
            }
        };
        let explicit_modules = entry.fields.get("modules").is_some();
        let granted = match entry.fields.get("modules") {
            None => self.inner.config.default_modules.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|m| m.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| field_error(entry, "modules", "a list of module names"))?,
            Some(_) => return Err(field_error(entry, "modules", "a list of module names")),
        };
        Ok(Arc::new(LuaPrototype {
            backend: self.inner.clone(),
            compiled: Arc::new(Compiled {
                id: entry.id.clone(),
                version: entry.version,
                name,
                bytecode,
                method,
            }),
            granted,
            explicit_modules,
        }))
    }
}

impl LuaPrototype {
    /// The modules a process of this entry gets on `host`: what the entry asks for (or the
    /// defaults), within what the host grants; `io` only on a terminal host, where an entry
    /// that lists no modules gets it too.
    fn grants(&self, host: &spindle_runtime::Host) -> Vec<String> {
        let hc = host.config();
        let terminal = hc.terminal.is_some();
        let mut granted: Vec<String> = self
            .granted
            .iter()
            .filter(|m| hc.grants(m) && (terminal || m.as_str() != "io"))
            .cloned()
            .collect();
        if terminal && !self.explicit_modules && !granted.iter().any(|m| m == "io") {
            granted.push("io".to_owned());
        }
        granted
    }
}

impl Prototype for LuaPrototype {
    fn instantiate(&self, args: Vec<Value>, place: &Placement<'_>) -> Result<Instance> {
        let cfg = &self.backend.config;
        let host = place.host;
        let mode = cfg.host_isolation.get(host.name()).copied().unwrap_or(cfg.isolation);
        let budget = match mode {
            // Below the hard limit, so that a process that catches the allocation failure and
            // goes on is still stopped (the hook yields it once it is past the budget).
            Isolation::State => cfg.state_memory_limit - cfg.state_memory_limit / 8,
            Isolation::Islands => cfg.process_memory_budget,
        };
        let island = match mode {
            Isolation::State => {
                self.backend.states.fetch_add(1, Ordering::Relaxed);
                Arc::new(Island::new(None, cfg.slicing(), cfg.state_memory_limit)?)
            }
            Isolation::Islands => {
                let mut all = self.backend.islands.lock().unwrap_or_else(|e| e.into_inner());
                if !all.contains_key(host.name()) {
                    all.insert(host.name().to_owned(), Islands::default());
                }
                let islands = all.get_mut(host.name()).expect("inserted above");
                match place.strand.and_then(|s| islands.by_strand(s)) {
                    Some(same) => same,
                    None => islands.place(
                        &self.backend.states,
                        host,
                        host.workers() * cfg.islands_per_worker.max(1),
                        cfg.slicing(),
                        cfg.island_memory_limit,
                    )?,
                }
            }
        };
        let code = island.code(&self.compiled, || self.grants(host), &self.backend.loads);
        let start = Start { code, args };
        let strand = island.strand.clone();
        Ok(Instance {
            process: ProcessBox::new(LuaProcess::new(
                island,
                self.compiled.id.clone(),
                start,
                budget,
            )),
            strand,
        })
    }
}
