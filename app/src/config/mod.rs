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
mod kinds;
mod node;
mod references;
mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use spindle_runtime::EntryId;

pub use duration::parse_duration;
pub use error::{ConfigError, ConfigErrors};
pub use node::Node;
pub use references::start_order;
pub use spec::{
    AppConfig, Body, Effect, EntrySpec, HostSpec, Lifecycle, PolicySpec, ProcessSpec,
    RestartPolicy, ServiceSpec, code_field,
};

use fields::{Ctx, Fields};

/// The names an index file may have.
pub const INDEX_FILES: [&str; 3] = ["_index.toml", "_index.yaml", "_index.yml"];

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
    references::check_references(&entries, &mut errors);
    if errors.is_empty() {
        references::check_cycles(&entries, &mut errors);
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
        if let Some(e) = kinds::read_entry(&mut cx, &namespace, &base_dir, kv) {
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
