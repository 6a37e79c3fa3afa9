//! Reading one entry by its kind: every field checked, unknown fields rejected.

use std::path::Path;

use spindle_lua::Isolation;
use spindle_runtime::EntryId;

use super::fields::{Ctx, Fields};
use super::node::Node;
use super::spec::{
    Body, Effect, EntrySpec, HostSpec, Lifecycle, PolicySpec, ProcessSpec, ServiceSpec, code_field,
};

/// Resolves a reference: `ns:name`, or a bare `name` in the entry's own namespace.
fn reference(namespace: &str, text: &str) -> Option<EntryId> {
    if text.contains(':') { text.parse().ok() } else { EntryId::new(namespace, text).ok() }
}

pub(crate) fn read_entry(
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
    let code_field = code_field(kind)?;
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
            let names = f.strings(cx, "modules");
            modules(cx, names);
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

/// The reference `text` in field `field`; an error if it is not an entry id.
fn one_ref(cx: &mut Ctx<'_>, field: &str, namespace: &str, text: &str) -> Option<EntryId> {
    let id = reference(namespace, text);
    if id.is_none() {
        cx.error(Some(field), format!("`{text}` is not an entry id (expected namespace:name)"));
    }
    id
}

fn refs(cx: &mut Ctx<'_>, field: &str, namespace: &str, list: Vec<String>) -> Vec<EntryId> {
    list.iter().filter_map(|r| one_ref(cx, field, namespace, r)).collect()
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
    let names = f.strings(cx, "modules");
    spec.modules = modules(cx, names);
    let policies = f.strings(cx, "policies").unwrap_or_default();
    spec.policies = refs(cx, "policies", namespace, policies);
    spec
}

fn read_service(cx: &mut Ctx<'_>, f: &mut Fields<'_>, namespace: &str) -> Option<ServiceSpec> {
    let process = f.required_string(cx, "process", "\"app.workers:handler\"");
    let process = process.and_then(|p| one_ref(cx, "process", namespace, &p));
    let host = f.string(cx, "host").and_then(|h| one_ref(cx, "host", namespace, &h));
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
            if d.is_zero() {
                // Every run would count as stable: the attempts would never add up to
                // max_attempts, and a crashing service would restart forever.
                let at = l.path("stable_threshold");
                cx.error(Some(at.as_str()), "expected a duration above zero, found 0");
            }
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

/// A `modules` list, each a module a Lua process can be granted (an unknown name was only
/// found when a process's `require` of it failed).
fn modules(cx: &mut Ctx<'_>, names: Option<Vec<String>>) -> Option<Vec<String>> {
    for name in names.iter().flatten() {
        if !spindle_lua::MODULES.contains(&name.as_str()) {
            let known = spindle_lua::MODULES.join(", ");
            cx.error(Some("modules"), format!("expected modules among {known}, found {name:?}"));
        }
    }
    names
}
