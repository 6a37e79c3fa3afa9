//! The app loader: every `_index.toml` / `_index.yaml` under an app folder, read into typed
//! entries and checked as a whole before anything starts.
//!
//! An index file has a `namespace` and a list of `entries`; each entry has a `name` and a
//! `kind` and the fields of its kind. Sources are relative to their index file. Problems are
//! collected, not stopped at: one load reports every bad field, unknown field, duplicate id,
//! dangling reference and dependency cycle it finds, each naming the file, the entry and the
//! field.

mod duration;
mod error;
mod fields;
mod node;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use spindle_lua::Isolation;
use spindle_runtime::EntryId;

pub use duration::parse_duration;
pub use error::{ConfigError, ConfigErrors};
pub use node::Node;

use fields::{Ctx, Fields};

/// The names an index file may have.
pub const INDEX_FILES: [&str; 3] = ["_index.toml", "_index.yaml", "_index.yml"];

/// The kinds of process entries, and the field naming each one's code file.
const PROCESS_KINDS: [(&str, &str); 3] =
    [("process.lua", "source"), ("process.wasm", "module"), ("process.native", "library")];

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
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    /// The fields other than `name`, `kind` and `meta`, with paths kept as written.
    pub fields: Node,
    /// The folder relative paths are resolved against (the index file's folder).
    pub base_dir: PathBuf,
    /// The code file (Lua source, Wasm module, shared library), resolved.
    pub code: PathBuf,
}

/// A host's settings (`process.host`, `terminal.host`).
#[derive(Clone, Debug, Default)]
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
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
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

/// Loads the app in folder `root`: every index file under it, recursively.
///
/// # Errors
/// Every problem found, each naming its file, entry and field.
pub fn load(root: &Path) -> Result<AppConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let mut index_files = Vec::new();
    if !root.is_dir() {
        return Err(ConfigErrors(vec![ConfigError {
            file: root.to_path_buf(),
            entry: None,
            field: None,
            message: "not a folder (expected an app folder with _index.toml or _index.yaml files)"
                .into(),
        }]));
    }
    find_index_files(root, &mut index_files, &mut errors);
    if index_files.is_empty() && errors.is_empty() {
        errors.push(ConfigError {
            file: root.to_path_buf(),
            entry: None,
            field: None,
            message: "no _index.toml or _index.yaml file in this folder or below".into(),
        });
    }
    let mut entries: BTreeMap<EntryId, EntrySpec> = BTreeMap::new();
    for file in &index_files {
        for e in read_index(file, &mut errors) {
            if let Some(old) = entries.get(&e.id) {
                errors.push(ConfigError {
                    file: e.file.clone(),
                    entry: Some(e.id.to_string()),
                    field: Some("name".into()),
                    message: format!(
                        "duplicate id: `{}` is already defined in {}",
                        e.id,
                        old.file.display()
                    ),
                });
                continue;
            }
            entries.insert(e.id.clone(), e);
        }
    }
    check_references(&entries, &mut errors);
    if errors.is_empty() {
        check_cycles(&entries, &mut errors);
    }
    if errors.is_empty() {
        Ok(AppConfig { root: root.to_path_buf(), entries, index_files })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The index files under `root`, in load order.
pub fn index_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    find_index_files(root, &mut out, &mut Vec::new());
    out
}

fn find_index_files(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<ConfigError>) {
    let listing = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) => {
            errors.push(ConfigError {
                file: dir.to_path_buf(),
                entry: None,
                field: None,
                message: format!("cannot read the folder: {e}"),
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = listing.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in &paths {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_file() && INDEX_FILES.contains(&name) {
            out.push(p.clone());
        }
    }
    for p in paths {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() && !name.starts_with('.') && name != "target" {
            find_index_files(&p, out, errors);
        }
    }
}

/// Parses one index file into its entries; problems go to `errors`.
fn read_index(file: &Path, errors: &mut Vec<ConfigError>) -> Vec<EntrySpec> {
    let mut cx = Ctx { file, entry: None, errors };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            cx.error(None, format!("cannot read the file: {e}"));
            return Vec::new();
        }
    };
    let yaml = file.extension().is_some_and(|x| x != "toml");
    let doc = if yaml { parse_yaml(&text) } else { parse_toml(&text) };
    let doc = match doc {
        Ok(d) => d,
        Err(msg) => {
            cx.error(None, msg);
            return Vec::new();
        }
    };
    let Node::Map(top) = &doc else {
        cx.error(None, format!("expected a table with `namespace` and `entries`, found {doc}"));
        return Vec::new();
    };
    let mut fields = Fields::new(top);
    let namespace = fields.required_string(&mut cx, "namespace", "\"app.workers\"");
    let list = fields.node("entries");
    fields.finish(&mut cx, "an index file");
    let Some(namespace) = namespace else { return Vec::new() };
    if EntryId::new(&namespace, "x").is_err() {
        cx.error(
            Some("namespace"),
            format!("`{namespace}` is not a namespace (expected letters, digits, `.`, `_` or `-`, no `:`)"),
        );
        return Vec::new();
    }
    let items = match list {
        None => return Vec::new(),
        Some(Node::List(items)) => items,
        Some(other) => {
            cx.error(Some("entries"), format!("expected a list of entries, found {other}"));
            return Vec::new();
        }
    };
    let base_dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        cx.entry = Some(format!("#{} of namespace {namespace}", i + 1));
        let Node::Map(kv) = item else {
            cx.error(None, format!("expected a table with `name` and `kind`, found {item}"));
            continue;
        };
        if let Some(e) = read_entry(&mut cx, &namespace, &base_dir, kv) {
            out.push(e);
        }
    }
    out
}

fn parse_toml(text: &str) -> Result<Node, String> {
    text.parse::<toml::Table>()
        .map(|t| Node::from_toml_table(&t))
        .map_err(|e| format!("not valid TOML: {}", e.to_string().trim_end()))
}

fn parse_yaml(text: &str) -> Result<Node, String> {
    let docs =
        yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    match docs.as_slice() {
        [] => Ok(Node::Map(Vec::new())),
        [one] => Node::from_yaml(one).map_err(|e| format!("not usable YAML: {e}")),
        _ => Err("expected one YAML document, found several".into()),
    }
}

/// Resolves a reference: `ns:name`, or a bare `name` in the entry's own namespace.
fn reference(namespace: &str, text: &str) -> Option<EntryId> {
    if text.contains(':') { text.parse().ok() } else { EntryId::new(namespace, text).ok() }
}

fn read_entry(
    cx: &mut Ctx<'_>,
    namespace: &str,
    base_dir: &Path,
    kv: &[(String, Node)],
) -> Option<EntrySpec> {
    let mut f = Fields::new(kv);
    let name = f.required_string(cx, "name", "\"handler\"")?;
    let id = match EntryId::new(namespace, &name) {
        Ok(id) => id,
        Err(_) => {
            cx.error(
                Some("name"),
                format!("`{name}` is not a name (expected a non-empty name without `:` or spaces)"),
            );
            return None;
        }
    };
    cx.entry = Some(id.to_string());
    let kind = f.required_string(cx, "kind", "\"process.lua\"")?;
    let meta = f.node("meta").cloned();
    let errors_before = cx.errors.len();
    let body = match kind.as_str() {
        "process.lua" | "process.wasm" | "process.native" => {
            read_process(cx, &mut f, &kind, base_dir).map(Body::Process)
        }
        "process.host" => Some(Body::Host(read_host(cx, &mut f, namespace, false))),
        "terminal.host" => Some(Body::Terminal(read_host(cx, &mut f, namespace, true))),
        "process.service" => read_service(cx, &mut f, namespace).map(Body::Service),
        "security.policy" => read_policy(cx, &mut f).map(Body::Policy),
        other => {
            cx.error(
                Some("kind"),
                format!(
                    "unknown kind `{other}` (expected one of: process.lua, process.wasm, \
                     process.native, process.host, terminal.host, process.service, security.policy)"
                ),
            );
            return None;
        }
    };
    f.finish(cx, &format!("kind {kind}"));
    let body = body?;
    (cx.errors.len() == errors_before).then(|| EntrySpec {
        id,
        kind,
        file: cx.file.to_path_buf(),
        body,
        meta,
    })
}

fn read_process(
    cx: &mut Ctx<'_>,
    f: &mut Fields<'_>,
    kind: &str,
    base_dir: &Path,
) -> Option<ProcessSpec> {
    let code_field = PROCESS_KINDS.iter().find(|(k, _)| *k == kind).map(|(_, f)| *f)?;
    let example = match code_field {
        "source" => "\"file://handler.lua\"",
        "module" => "\"file://handler.wasm\"",
        _ => "\"file://libhandler.so\"",
    };
    let code = f.required_string(cx, code_field, example);
    let mut backend_fields = Vec::new();
    if let Some(c) = &code {
        backend_fields.push((code_field.to_owned(), Node::Str(c.clone())));
    }
    let mut copy = |f: &mut Fields<'_>, key: &'static str| {
        if let Some(n) = f.node(key) {
            backend_fields.push((key.to_owned(), n.clone()));
        }
    };
    match kind {
        "process.lua" => {
            f.string(cx, "method");
            f.strings(cx, "modules");
            copy(f, "method");
            copy(f, "modules");
        }
        "process.wasm" => {
            f.string(cx, "method");
            copy(f, "method");
            if let Some(mut limits) = f.table(cx, "limits") {
                limits.count(cx, "memory", 1);
                limits.count(cx, "fuel", 1);
                limits.duration(cx, "timeout");
                limits.finish(cx, "limits");
            }
            copy(f, "limits");
        }
        _ => {}
    }
    let code = code?;
    let Some(rel) = code.strip_prefix("file://") else {
        cx.error(
            Some(code_field),
            format!("expected a path like {example} (relative to this file), found {code:?}"),
        );
        return None;
    };
    let path = base_dir.join(rel);
    if !path.is_file() {
        let hint = if kind == "process.native" {
            " (native libraries are built by scripts/build-native-examples.sh or your own build)"
        } else {
            ""
        };
        cx.error(Some(code_field), format!("file {} does not exist{hint}", path.display()));
        return None;
    }
    Some(ProcessSpec {
        fields: Node::Map(backend_fields),
        base_dir: base_dir.to_path_buf(),
        code: path,
    })
}

fn refs(cx: &mut Ctx<'_>, field: &str, namespace: &str, list: Vec<String>) -> Vec<EntryId> {
    let mut out = Vec::new();
    for r in list {
        match reference(namespace, &r) {
            Some(id) => out.push(id),
            None => {
                cx.error(Some(field), format!("`{r}` is not an entry id (expected namespace:name)"))
            }
        }
    }
    out
}

fn read_host(cx: &mut Ctx<'_>, f: &mut Fields<'_>, namespace: &str, terminal: bool) -> HostSpec {
    let mut spec = HostSpec::default();
    if !terminal {
        spec.workers = f.count(cx, "workers", 1).map(|n| n as usize);
        spec.max_processes = f.count(cx, "max_processes", 1).map(|n| n as usize);
        spec.mailbox_limit = f.count(cx, "mailbox_limit", 1).map(|n| n as usize);
        spec.isolation = match f.string(cx, "isolation").as_deref() {
            None => None,
            Some("islands") => Some(Isolation::Islands),
            Some("state") => Some(Isolation::State),
            Some(other) => {
                cx.error(
                    Some("isolation"),
                    format!("expected \"islands\" or \"state\", found {other:?}"),
                );
                None
            }
        };
    }
    spec.modules = f.strings(cx, "modules");
    let policies = f.strings(cx, "policies").unwrap_or_default();
    spec.policies = refs(cx, "policies", namespace, policies);
    spec
}

fn read_service(cx: &mut Ctx<'_>, f: &mut Fields<'_>, namespace: &str) -> Option<ServiceSpec> {
    let process = f.required_string(cx, "process", "\"app.workers:handler\"");
    let process = process.and_then(|p| {
        let id = reference(namespace, &p);
        if id.is_none() {
            cx.error(
                Some("process"),
                format!("`{p}` is not an entry id (expected namespace:name)"),
            );
        }
        id
    });
    let host = f.string(cx, "host").and_then(|h| {
        let id = reference(namespace, &h);
        if id.is_none() {
            cx.error(Some("host"), format!("`{h}` is not an entry id (expected namespace:name)"));
        }
        id
    });
    let input = match f.node("input") {
        None => Vec::new(),
        Some(Node::List(items)) => items.clone(),
        Some(one) => vec![one.clone()],
    };
    let mut lifecycle = Lifecycle::default();
    if let Some(mut l) = f.table(cx, "lifecycle") {
        if let Some(b) = l.bool(cx, "auto_start") {
            lifecycle.auto_start = b;
        }
        let requires = l.strings(cx, "requires").unwrap_or_default();
        lifecycle.requires = refs(cx, &l.path("requires"), namespace, requires);
        if let Some(d) = l.duration(cx, "stable_threshold") {
            lifecycle.stable_threshold = d;
        }
        if let Some(d) = l.duration(cx, "stop_timeout") {
            lifecycle.stop_timeout = d;
        }
        if let Some(mut r) = l.table(cx, "restart") {
            let p = &mut lifecycle.restart;
            let initial = r.duration(cx, "initial_delay");
            let delay = r.duration(cx, "delay");
            if initial.is_some() && delay.is_some() {
                cx.error(
                    Some(&r.path("delay")),
                    "`delay` is another name for `initial_delay`: give one of them",
                );
            }
            if let Some(d) = initial.or(delay) {
                p.initial_delay = d;
            }
            if let Some(d) = r.duration(cx, "max_delay") {
                p.max_delay = d;
            }
            if let Some(x) = r.number(cx, "backoff_factor", 1.0..=100.0) {
                p.backoff_factor = x;
            }
            if let Some(x) = r.number(cx, "jitter", 0.0..=1.0) {
                p.jitter = x;
            }
            if let Some(n) = r.count(cx, "max_attempts", 0) {
                p.max_attempts = u32::try_from(n).unwrap_or(u32::MAX);
            }
            if p.max_delay < p.initial_delay {
                cx.error(
                    Some(&r.path("max_delay")),
                    format!(
                        "expected at least the initial delay ({:?}), found {:?}",
                        p.initial_delay, p.max_delay
                    ),
                );
            }
            r.finish(cx, "lifecycle.restart");
        }
        l.finish(cx, "lifecycle");
    }
    Some(ServiceSpec { process: process?, host, input, lifecycle })
}

fn read_policy(cx: &mut Ctx<'_>, f: &mut Fields<'_>) -> Option<PolicySpec> {
    let actions = f.strings(cx, "actions");
    let resources = f.strings(cx, "resources");
    let conditions = f.node("conditions").cloned();
    if let Some(c) = &conditions
        && !matches!(c, Node::Map(_))
    {
        cx.error(Some("conditions"), format!("expected a table, found {c}"));
    }
    for (key, v) in [("actions", &actions), ("resources", &resources)] {
        if v.as_ref().is_none_or(Vec::is_empty) {
            cx.error(Some(key), format!("missing or empty (expected e.g. {key} = [\"*\"])"));
        }
    }
    let effect = match f.required_string(cx, "effect", "\"allow\"")?.as_str() {
        "allow" => Effect::Allow,
        "deny" => Effect::Deny,
        other => {
            cx.error(Some("effect"), format!("expected \"allow\" or \"deny\", found {other:?}"));
            return None;
        }
    };
    Some(PolicySpec { actions: actions?, resources: resources?, effect, conditions })
}

/// Dangling references: a service naming a missing process or host, a host naming a missing
/// policy, a requirement that is not a service.
fn check_references(entries: &BTreeMap<EntryId, EntrySpec>, errors: &mut Vec<ConfigError>) {
    let kind_of = |id: &EntryId| entries.get(id).map(|e| e.kind.as_str());
    for e in entries.values() {
        let mut cx = Ctx { file: &e.file, entry: Some(e.id.to_string()), errors };
        let expect = |cx: &mut Ctx<'_>, field: &str, id: &EntryId, kinds: &[&str]| match kind_of(id)
        {
            Some(k) if kinds.contains(&k) => {}
            Some(k) => cx.error(
                Some(field),
                format!("`{id}` is a {k} entry (expected {})", kinds.join(" or ")),
            ),
            None => cx.error(
                Some(field),
                format!("no entry `{id}` in this app (expected a {} entry)", kinds.join(" or ")),
            ),
        };
        match &e.body {
            Body::Service(s) => {
                let kinds: Vec<&str> = PROCESS_KINDS.iter().map(|(k, _)| *k).collect();
                expect(&mut cx, "process", &s.process, &kinds);
                if let Some(h) = &s.host {
                    expect(&mut cx, "host", h, &["process.host"]);
                }
                for r in &s.lifecycle.requires {
                    if *r == e.id {
                        cx.error(Some("lifecycle.requires"), "a service cannot require itself");
                    } else {
                        expect(&mut cx, "lifecycle.requires", r, &["process.service"]);
                    }
                }
            }
            Body::Host(h) | Body::Terminal(h) => {
                for p in &h.policies {
                    expect(&mut cx, "policies", p, &["security.policy"]);
                }
            }
            _ => {}
        }
    }
}

/// Dependency cycles among services (`requires`).
fn check_cycles(entries: &BTreeMap<EntryId, EntrySpec>, errors: &mut Vec<ConfigError>) {
    let requires: HashMap<&EntryId, &[EntryId]> = entries
        .iter()
        .filter_map(|(id, e)| match &e.body {
            Body::Service(s) => Some((id, s.lifecycle.requires.as_slice())),
            _ => None,
        })
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state: HashMap<&EntryId, u8> = HashMap::new();
    let mut reported = false;
    for start in requires.keys().copied().collect::<std::collections::BTreeSet<_>>() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(start, &requires, &mut state, &mut path)
            && !reported
        {
            reported = true;
            let e = &entries[start];
            let first = &entries[cycle[0]];
            let chain: Vec<String> = cycle.iter().map(|id| id.to_string()).collect();
            let _ = e;
            errors.push(ConfigError {
                file: first.file.clone(),
                entry: Some(first.id.to_string()),
                field: Some("lifecycle.requires".into()),
                message: format!("dependency cycle: {} -> {}", chain.join(" -> "), chain[0]),
            });
        }
    }
}

fn visit<'a>(
    id: &'a EntryId,
    requires: &HashMap<&'a EntryId, &'a [EntryId]>,
    state: &mut HashMap<&'a EntryId, u8>,
    path: &mut Vec<&'a EntryId>,
) -> Option<Vec<&'a EntryId>> {
    match state.get(id) {
        Some(2) => return None,
        Some(1) => {
            let at = path.iter().position(|p| *p == id).unwrap_or(0);
            return Some(path[at..].to_vec());
        }
        _ => {}
    }
    state.insert(id, 1);
    path.push(id);
    for next in requires.get(id).copied().unwrap_or_default() {
        if let Some(c) = visit(next, requires, state, path) {
            return Some(c);
        }
    }
    path.pop();
    state.insert(id, 2);
    None
}

/// The services in start order: every service after the ones it requires (ties by id).
pub fn start_order(config: &AppConfig) -> Vec<EntryId> {
    let mut done: Vec<EntryId> = Vec::new();
    fn place(config: &AppConfig, id: &EntryId, done: &mut Vec<EntryId>) {
        if done.contains(id) {
            return;
        }
        if let Some(EntrySpec { body: Body::Service(s), .. }) = config.get(id) {
            for r in &s.lifecycle.requires {
                place(config, r, done);
            }
            done.push(id.clone());
        }
    }
    for (id, _) in config.services() {
        place(config, id, &mut done);
    }
    done
}
