//! Checks across entries: references that lead nowhere or to the wrong kind, dependency
//! cycles among services, and the start order they imply.

use std::collections::{BTreeMap, HashMap};

use spindle_runtime::EntryId;

use super::error::ConfigError;
use super::fields::Ctx;
use super::spec::{AppConfig, Body, EntrySpec, PROCESS_KINDS};

/// Dangling references: a service naming a missing process or host, a host naming a missing
/// policy, a requirement that is not a service.
pub(crate) fn check_references(
    entries: &BTreeMap<EntryId, EntrySpec>,
    errors: &mut Vec<ConfigError>,
) {
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
pub(crate) fn check_cycles(entries: &BTreeMap<EntryId, EntrySpec>, errors: &mut Vec<ConfigError>) {
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
            let first = &entries[cycle[0]];
            let chain: Vec<String> = cycle.iter().map(|id| id.to_string()).collect();
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
