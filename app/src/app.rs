//! An app running on a runtime: its hosts, its backends, its entries and its services.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use spindle_lua::{LuaBackend, LuaConfig};
use spindle_native::NativeBackend;
use spindle_runtime::{
    Clock, Entry, EntryId, Error, ErrorKind, HostConfig, Pid, Result, Runtime, Spawn, Value,
};

use crate::config::{self, AppConfig, Body, ConfigError, ConfigErrors, EntrySpec, HostSpec};
use crate::services::{SYSTEM_HOST, ServicePlan, Services};

/// The host of services that name none.
pub const DEFAULT_HOST: &str = "spindle:processes";
/// The terminal host of an app that declares none.
pub const TERMINAL_HOST: &str = "spindle:terminal";

/// How to run an app.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The runtime's clock (a [`ManualClock`](spindle_runtime::ManualClock) in tests).
    pub clock: Clock,
    /// Settings of the Lua backend (host isolation modes are added from the app's hosts).
    pub lua: Option<LuaConfig>,
    /// The argv of the terminal host's process (`run -x ID -- ARGS`).
    pub terminal_args: Vec<String>,
    /// The terminal host to use when the app declares several.
    pub terminal_host: Option<EntryId>,
}

/// A loaded app on a running runtime.
pub struct App {
    rt: Runtime,
    lua: LuaBackend,
    config: Mutex<AppConfig>,
    /// Content fingerprints of process entries: their fields and code file.
    prints: Mutex<HashMap<EntryId, u64>>,
    services: Mutex<Option<Services>>,
    /// The terminal host of `exec_terminal`, or why there is no one.
    terminal: std::result::Result<String, String>,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App").field("rt", &self.rt).finish_non_exhaustive()
    }
}

/// What a reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reload {
    /// Process entries whose fields or code changed (compiled anew on next use).
    pub changed: Vec<EntryId>,
    /// New process entries.
    pub added: Vec<EntryId>,
    /// Process entries that are gone.
    pub removed: Vec<EntryId>,
    /// Upgradable processes that were sent `OUTDATED`.
    pub notified: usize,
    /// Hosts, services and policies that changed: they take effect on the next start.
    pub need_restart: Vec<EntryId>,
}

impl App {
    /// Starts a runtime for `config`: its hosts (plus the system, default and terminal hosts),
    /// the Lua and native backends, and its process entries. Services are not started yet
    /// (see [`App::start_services`]).
    ///
    /// # Errors
    /// When a host cannot start, or several terminal hosts leave the choice open.
    pub fn new(config: AppConfig, options: Options) -> Result<App> {
        let mut lua = options.lua.clone().unwrap_or_default();
        let mut builder = Runtime::builder()
            .clock(options.clock.clone())
            .host(HostConfig::new(SYSTEM_HOST).workers(1));
        let mut has_default = false;
        let mut terminals = Vec::new();
        for (id, e) in &config.entries {
            match &e.body {
                Body::Host(h) => {
                    has_default |= id.to_string() == DEFAULT_HOST;
                    if let Some(iso) = h.isolation {
                        lua.host_isolation.insert(id.to_string(), iso);
                    }
                    builder = builder.host(host_config(id, h));
                }
                Body::Terminal(h) => terminals.push((id.clone(), h.clone())),
                _ => {}
            }
        }
        if !has_default {
            builder = builder.host(HostConfig::new(DEFAULT_HOST));
        }
        // The terminal host `run -x` runs its process on: the one named, the app's only one, or
        // one of the runtime's own. An app with several that names none still runs (its
        // services may use them); only `exec_terminal` needs the choice then.
        let terminal = match (&options.terminal_host, terminals.as_slice()) {
            (Some(id), _) => {
                Ok(terminals.iter().find(|(t, _)| t == id).cloned().ok_or_else(|| {
                    Error::new(ErrorKind::NotFound, format!("no terminal.host `{id}` in this app"))
                })?)
            }
            (None, []) => Ok((TERMINAL_HOST.parse()?, HostSpec::default())),
            (None, [one]) => Ok(one.clone()),
            (None, many) => {
                let ids: Vec<String> = many.iter().map(|(id, _)| id.to_string()).collect();
                Err(format!("several terminal hosts ({}): name one with --host", ids.join(", ")))
            }
        };
        // One process with the terminal each: what it spawns goes to other hosts.
        let started = match &terminal {
            Ok(one) => std::slice::from_ref(one),
            Err(_) => terminals.as_slice(),
        };
        for (id, spec) in started {
            let mut term = host_config(id, spec).workers(1).max_processes(1);
            term.terminal = Some(options.terminal_args.clone());
            builder = builder.host(term);
        }
        let native = NativeBackend::new().with_logger(Arc::new(|pid, level, msg| {
            use spindle_native::Level;
            match level {
                Level::Error => tracing::error!(%pid, "{msg}"),
                Level::Warn => tracing::warn!(%pid, "{msg}"),
                Level::Info => tracing::info!(%pid, "{msg}"),
                Level::Debug => tracing::debug!(%pid, "{msg}"),
            }
        }));
        let lua = LuaBackend::new(lua);
        let rt = builder.backend(lua.clone()).backend(native).build()?;
        let policies =
            config.entries.values().filter(|e| matches!(e.body, Body::Policy(_))).count();
        if policies > 0 {
            tracing::warn!(
                policies,
                "security.policy entries are checked but not enforced yet: hosts grant modules \
                 by their `modules` list only"
            );
        }
        let mut prints = HashMap::new();
        for (id, e) in &config.entries {
            if let Some(entry) = runtime_entry(e) {
                prints.insert(id.clone(), fingerprint(e));
                rt.put_entry(entry);
            }
        }
        Ok(App {
            rt,
            lua,
            config: Mutex::new(config),
            prints: Mutex::new(prints),
            services: Mutex::new(None),
            terminal: terminal.map(|(id, _)| id.to_string()),
        })
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// The Lua backend (for its statistics).
    pub fn lua(&self) -> &LuaBackend {
        &self.lua
    }

    /// The app as last loaded.
    pub fn config(&self) -> AppConfig {
        self.config.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The terminal host's name (`None` when the app declares several and none was named).
    pub fn terminal_host(&self) -> Option<&str> {
        self.terminal.as_deref().ok()
    }

    /// Starts the supervisor with every service, and starts the `auto_start` ones (and what
    /// they require) in dependency order.
    ///
    /// # Errors
    /// When the supervisor cannot be spawned.
    pub fn start_services(&self) -> Result<Services> {
        let config = self.config();
        let mut plans = Vec::new();
        let mut auto = Vec::new();
        for id in config::start_order(&config) {
            let Some(EntrySpec { body: Body::Service(s), .. }) = config.get(&id) else { continue };
            if s.lifecycle.auto_start {
                auto.push(id.clone());
            }
            plans.push(ServicePlan {
                id: id.clone(),
                process: s.process.clone(),
                host: s.host.as_ref().map_or_else(|| DEFAULT_HOST.to_owned(), EntryId::to_string),
                args: s.input.iter().map(config::Node::to_value).collect(),
                lifecycle: s.lifecycle.clone(),
            });
        }
        let services = Services::start(&self.rt, plans, auto)?;
        *self.services.lock().unwrap_or_else(|e| e.into_inner()) = Some(services.clone());
        Ok(services)
    }

    /// The running supervisor, if services were started.
    pub fn services(&self) -> Option<Services> {
        self.services.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs process entry `id` on the terminal host with `args` (strings) and waits for its
    /// result.
    ///
    /// # Errors
    /// The spawn's error or the process's.
    pub fn exec_terminal(&self, id: &EntryId, args: &[String]) -> Result<Value> {
        let args = args.iter().map(|a| Value::from(a.as_str())).collect();
        let host = self.terminal.clone().map_err(|e| Error::new(ErrorKind::Invalid, e))?;
        let (_, watch) = self.rt.spawn_watched(Spawn::entry(id.clone(), host).args(args))?;
        watch.wait()
    }

    /// Stops the services gracefully (reverse dependency order; each gets CANCEL, then its
    /// `stop_timeout`, then terminate), then the runtime.
    pub fn shutdown(&self) {
        if let Some(services) = self.services.lock().unwrap_or_else(|e| e.into_inner()).take() {
            // The budget of the services as they run: computed from the config after a reload,
            // a shorter stop_timeout there cut the stop short and the runtime's shutdown
            // dropped the services still to stop, without their CANCEL.
            if let Err(e) = services.stop(&self.rt, services.stop_budget()) {
                tracing::error!("stopping services: {e}");
            }
        }
        self.rt.shutdown();
    }

    /// Applies a newly loaded version of the app: changed and new process entries are put
    /// into the registry (compiled anew, cached by version), and upgradable processes of
    /// changed entries receive `OUTDATED`. Running processes that do nothing keep their code.
    pub fn reload(&self, new: AppConfig) -> Reload {
        let mut report = Reload::default();
        let mut prints = self.prints.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.config();
        for (id, e) in &new.entries {
            match runtime_entry(e) {
                Some(entry) => {
                    let print = fingerprint(e);
                    match prints.get(id) {
                        Some(p) if *p == print => continue,
                        Some(_) => report.changed.push(id.clone()),
                        None => report.added.push(id.clone()),
                    }
                    prints.insert(id.clone(), print);
                    self.rt.put_entry(entry);
                }
                None => {
                    if old.get(id).is_none_or(|o| o.body != e.body || o.meta != e.meta) {
                        report.need_restart.push(id.clone());
                    }
                }
            }
        }
        for id in old.entries.keys() {
            if !new.entries.contains_key(id) {
                if prints.remove(id).is_some() {
                    self.rt.remove_entry(id);
                    report.removed.push(id.clone());
                } else {
                    report.need_restart.push(id.clone());
                }
            }
        }
        for id in &report.changed {
            report.notified += self.rt.notify_outdated(id);
        }
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = new;
        report
    }
}

fn host_config(id: &EntryId, h: &HostSpec) -> HostConfig {
    let mut c = HostConfig::new(id.to_string());
    if let Some(n) = h.workers {
        c = c.workers(n);
    }
    c.max_processes = h.max_processes;
    c.mailbox_limit = h.mailbox_limit;
    c.modules.clone_from(&h.modules);
    c
}

/// The registry entry of a process entry spec (`None` for other kinds).
fn runtime_entry(e: &EntrySpec) -> Option<Entry> {
    let Body::Process(p) = &e.body else { return None };
    let mut entry = Entry::new(e.id.clone(), e.kind.clone());
    entry.fields = p.fields.to_value();
    entry.base_dir = Some(p.base_dir.clone());
    Some(entry)
}

/// A hash of what makes a process entry: its kind, fields and code file's bytes.
fn fingerprint(e: &EntrySpec) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    e.kind.hash(&mut h);
    if let Body::Process(p) = &e.body {
        format!("{:?}", p.fields).hash(&mut h);
        std::fs::read(&p.code).unwrap_or_default().hash(&mut h);
    }
    h.finish()
}

/// The process kinds the app's backends run.
const KINDS_RUN: &[&str] = &[spindle_lua::KIND, spindle_native::KIND];

/// Loads and checks the app in `root` without running anything: the entry files, and every
/// process entry's code (Lua sources compiled, native libraries loaded and their ABI checked).
///
/// # Errors
/// Every problem found, each naming its file, entry and field.
pub fn check(root: &Path) -> std::result::Result<AppConfig, ConfigErrors> {
    let config = config::load(root)?;
    compile_kinds(&config, true)?;
    Ok(config)
}

/// Compiles (or loads) the code of every process entry of `config`, in a runtime of its own
/// that starts nothing: each entry whose code does not compile or load is an error naming its
/// file, entry and code field. What `run` and `--watch` do before they start or apply a
/// version of the app. Entries of a kind no backend runs yet (`process.wasm`) are left to fail
/// when spawned, as the running app would; `check` reports them.
pub fn compile(config: &AppConfig) -> std::result::Result<(), ConfigErrors> {
    compile_kinds(config, false)
}

fn compile_kinds(config: &AppConfig, unrun_kinds: bool) -> std::result::Result<(), ConfigErrors> {
    let root = &config.root;
    let rt = Runtime::builder()
        .backend(LuaBackend::default())
        .backend(NativeBackend::new())
        .build()
        .map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: root.to_path_buf(),
                entry: None,
                field: None,
                message: e.to_string(),
            }])
        })?;
    let mut errors = Vec::new();
    for (id, e) in &config.entries {
        let Some(entry) = runtime_entry(e) else { continue };
        if !unrun_kinds && !KINDS_RUN.contains(&e.kind.as_str()) {
            continue;
        }
        rt.put_entry(entry);
        if let Err(err) = rt.prepare(id) {
            errors.push(ConfigError {
                file: e.file.clone(),
                entry: Some(id.to_string()),
                field: config::code_field(&e.kind).map(str::to_owned),
                message: err.message().to_owned(),
            });
        }
    }
    rt.shutdown();
    if errors.is_empty() { Ok(()) } else { Err(ConfigErrors(errors)) }
}

/// The pid of a running service's process, if any (for tools and tests).
pub fn service_pid(app: &App, id: &EntryId) -> Option<Pid> {
    app.services().and_then(|s| s.status(id)).and_then(|s| s.pid)
}
