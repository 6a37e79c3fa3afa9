//! The loader: both formats, every kind, and every class of config error with its message.

use std::time::Duration;

use spindle_app::config::{self, Body, ConfigErrors, Effect};
use spindle_lua::Isolation;

use crate::fixtures::TempApp;

const LUA: &str = "return { main = function() return 1 end }\n";

fn errors(app: &TempApp) -> ConfigErrors {
    config::load(app.root()).expect_err("the app should not load")
}

/// Asserts one error names `file`, `entry` and `field` and says `says`.
fn assert_error(errs: &ConfigErrors, file: &str, entry: &str, field: &str, says: &str) {
    let found = errs.0.iter().any(|e| {
        e.file.ends_with(file)
            && e.entry.as_deref() == Some(entry)
            && e.field.as_deref() == Some(field)
            && e.message.contains(says)
    });
    assert!(found, "no error for {file} / {entry} / {field} saying {says:?} in:\n{errs}");
}

#[test]
fn loads_every_kind_from_toml() {
    let app = TempApp::new("kinds");
    app.file("h.lua", LUA).file("lib/libx.so", "").file("m.wasm", "").file(
        "_index.toml",
        r#"
namespace = "app"

[[entries]]
name = "handler"
kind = "process.lua"
source = "file://h.lua"
method = "main"
modules = ["time"]
meta = { owner = "me" }

[[entries]]
name = "plugin"
kind = "process.native"
library = "file://lib/libx.so"

[[entries]]
name = "guest"
kind = "process.wasm"
module = "file://m.wasm"
limits = { memory = 1048576, fuel = 1000, timeout = "2s" }

[[entries]]
name = "processes"
kind = "process.host"
workers = 3
max_processes = 100
mailbox_limit = 50
modules = ["time", "json"]
policies = ["app:open"]
isolation = "state"

[[entries]]
name = "term"
kind = "terminal.host"

[[entries]]
name = "open"
kind = "security.policy"
actions = ["*"]
resources = ["app:*"]
effect = "allow"
conditions = { host = "app:processes" }

[[entries]]
name = "db.service"
kind = "process.service"
process = "handler"

[[entries]]
name = "worker.service"
kind = "process.service"
process = "app:handler"
host = "app:processes"
input = ["hello", 2]
[entries.lifecycle]
auto_start = true
requires = ["app:db.service"]
stable_threshold = "5s"
stop_timeout = "10s"
[entries.lifecycle.restart]
initial_delay = "1s"
max_delay = "90s"
backoff_factor = 2.0
jitter = 0.1
max_attempts = 5
"#,
    );
    let c = config::load(app.root()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.entries.len(), 8);
    let get = |id: &str| &c.entries[&id.parse().unwrap()];
    let Body::Host(h) = &get("app:processes").body else { panic!() };
    assert_eq!((h.workers, h.max_processes, h.mailbox_limit), (Some(3), Some(100), Some(50)));
    assert_eq!(h.isolation, Some(Isolation::State));
    assert_eq!(h.policies, vec!["app:open".parse().unwrap()]);
    let Body::Policy(p) = &get("app:open").body else { panic!() };
    assert_eq!(p.effect, Effect::Allow);
    let Body::Service(s) = &get("app:worker.service").body else { panic!() };
    assert_eq!(s.process, "app:handler".parse().unwrap());
    assert_eq!(s.input.len(), 2);
    let l = &s.lifecycle;
    assert!(l.auto_start);
    assert_eq!(l.requires, vec!["app:db.service".parse().unwrap()]);
    assert_eq!(l.stable_threshold, Duration::from_secs(5));
    assert_eq!(l.restart.max_attempts, 5);
    assert_eq!(l.restart.jitter, 0.1);
    // A bare name refers to the entry's own namespace; defaults fill the rest.
    let Body::Service(db) = &get("app:db.service").body else { panic!() };
    assert_eq!(db.process, "app:handler".parse().unwrap());
    assert!(!db.lifecycle.auto_start);
    assert_eq!(db.lifecycle.restart.initial_delay, Duration::from_secs(1));
    let Body::Process(lua) = &get("app:handler").body else { panic!() };
    assert_eq!(lua.code, app.path("h.lua"));
    assert!(get("app:handler").meta.is_some());
    assert_eq!(
        config::start_order(&c),
        vec!["app:db.service".parse().unwrap(), "app:worker.service".parse().unwrap()]
    );
}

/// The seed's own YAML (`delay`, unquoted durations) loads as written, in a nested folder with
/// sources relative to its index file.
#[test]
fn loads_the_seed_yaml_as_written() {
    let app = TempApp::new("seed");
    app.file("workers/handler.lua", LUA).file(
        "workers/_index.yaml",
        "namespace: app.workers
entries:
  - name: handler
    kind: process.lua
    source: file://handler.lua
    method: main
  - name: processes
    kind: process.host
  - name: worker.service
    kind: process.service
    process: app.workers:handler
    host: app.workers:processes
    lifecycle:
      auto_start: true
      restart:
        max_attempts: 5
        delay: 1s
",
    );
    let c = config::load(app.root()).unwrap_or_else(|e| panic!("{e}"));
    let Body::Service(s) = &c.entries[&"app.workers:worker.service".parse().unwrap()].body else {
        panic!()
    };
    assert_eq!(s.lifecycle.restart.initial_delay, Duration::from_secs(1));
    assert_eq!(s.lifecycle.restart.max_attempts, 5);
    let Body::Process(p) = &c.entries[&"app.workers:handler".parse().unwrap()].body else {
        panic!()
    };
    assert_eq!(p.code, app.path("workers/handler.lua"));
}

#[test]
fn syntax_errors_name_the_file_and_the_line() {
    let app = TempApp::new("syntax");
    app.file("a/_index.toml", "namespace = \"a\"\n[[entries]\nname = 1\n");
    app.file("b/_index.yaml", "namespace: b\nentries:\n  - name: [x\n");
    let errs = errors(&app);
    let text = errs.to_string();
    assert!(text.contains("a/_index.toml: not valid TOML"), "{text}");
    assert!(text.contains("line 2"), "{text}");
    assert!(text.contains("b/_index.yaml: not valid YAML"), "{text}");
}

#[test]
fn missing_and_mistyped_fields() {
    let app = TempApp::new("fields");
    app.file("h.lua", LUA).file(
        "_index.toml",
        r#"
namespace = "app"

[[entries]]
kind = "process.lua"

[[entries]]
name = "nokind"

[[entries]]
name = "what"
kind = "process.python"

[[entries]]
name = "h"
kind = "process.lua"
source = "h.lua"

[[entries]]
name = "h2"
kind = "process.lua"
source = "file://missing.lua"
method = 3
modules = "time"

[[entries]]
name = "h3"
kind = "process.lua"
source = "file://h.lua"
modules = ["time", "tiem"]

[[entries]]
name = "host"
kind = "process.host"
workers = "two"
max_processes = 0
isolation = "bubbles"
modules = ["fs"]

[[entries]]
name = "s"
kind = "process.service"
host = "host"
[entries.lifecycle]
auto_start = "yes"
stop_timeout = "soon"
stable_threshold = "0s"
[entries.lifecycle.restart]
jitter = 2.0
backoff_factor = "x"
max_attempts = -1
initial_delay = "1s"
delay = "2s"

[[entries]]
name = "p"
kind = "security.policy"
actions = []
effect = "maybe"
"#,
    );
    let e = errors(&app);
    let f = "_index.toml";
    assert_error(&e, f, "#1 of namespace app", "name", "missing (expected e.g. name =");
    assert_error(&e, f, "app:nokind", "kind", "missing");
    assert_error(&e, f, "app:what", "kind", "unknown kind `process.python`");
    assert_error(&e, f, "app:h", "source", "expected a path like \"file://handler.lua\"");
    assert_error(&e, f, "app:h2", "source", "missing.lua does not exist");
    assert_error(&e, f, "app:h2", "method", "expected a string, found the integer 3");
    assert_error(&e, f, "app:h2", "modules", "expected a list of strings");
    assert_error(
        &e,
        f,
        "app:h3",
        "modules",
        "expected modules among time, json, io, found \"tiem\"",
    );
    assert_error(
        &e,
        f,
        "app:host",
        "modules",
        "expected modules among time, json, io, found \"fs\"",
    );
    assert_error(&e, f, "app:host", "workers", "expected an integer ≥ 1, found the string \"two\"");
    assert_error(&e, f, "app:host", "max_processes", "expected an integer ≥ 1");
    assert_error(&e, f, "app:host", "isolation", "expected \"islands\" or \"state\"");
    assert_error(&e, f, "app:s", "process", "missing");
    assert_error(&e, f, "app:s", "lifecycle.auto_start", "expected true or false");
    assert_error(&e, f, "app:s", "lifecycle.stop_timeout", "expected a duration like");
    assert_error(&e, f, "app:s", "lifecycle.stable_threshold", "expected a duration above zero");
    assert_error(&e, f, "app:s", "lifecycle.restart.jitter", "expected a number from 0 to 1");
    assert_error(&e, f, "app:s", "lifecycle.restart.backoff_factor", "expected a number");
    assert_error(&e, f, "app:s", "lifecycle.restart.max_attempts", "expected an integer ≥ 0");
    assert_error(&e, f, "app:s", "lifecycle.restart.delay", "another name for `initial_delay`");
    assert_error(&e, f, "app:p", "actions", "missing or empty");
    assert_error(&e, f, "app:p", "resources", "missing or empty");
    assert_error(&e, f, "app:p", "effect", "expected \"allow\" or \"deny\"");
}

#[test]
fn index_level_errors_name_the_file_and_field() {
    // A namespace that is not one: nothing else of the file is read.
    let app = TempApp::new("badns");
    app.file("_index.toml", "namespace = \"a:b\"\nentries = []\n");
    let e = errors(&app);
    assert!(
        e.0.iter().any(|x| x.file.ends_with("_index.toml")
            && x.entry.is_none()
            && x.field.as_deref() == Some("namespace")
            && x.message.contains("`a:b` is not a namespace")),
        "{e}"
    );
    // `entries` that is not a list; an entry that is not a table; a name that is not one.
    let app = TempApp::new("badlist");
    app.file("_index.toml", "namespace = \"app\"\nentries = \"h\"\n");
    let e = errors(&app);
    assert!(
        e.0.iter().any(|x| x.field.as_deref() == Some("entries")
            && x.message.contains("expected a list of entries")),
        "{e}"
    );
    let app = TempApp::new("baditems");
    app.file("h.lua", LUA).file(
        "_index.yaml",
        "namespace: app
entries:
  - just a string
  - name: has space
    kind: process.lua
    source: file://h.lua
",
    );
    let e = errors(&app);
    assert!(
        e.0.iter().any(|x| x.entry.as_deref() == Some("#1 of namespace app")
            && x.field.is_none()
            && x.message.contains("expected a table with `name` and `kind`")),
        "{e}"
    );
    assert_error(&e, "_index.yaml", "#2 of namespace app", "name", "has space");
}

#[test]
fn more_mistyped_fields_name_entry_and_field() {
    let app = TempApp::new("more");
    app.file("h.lua", LUA).file(
        "_index.toml",
        r#"
namespace = "app"

[[entries]]
name = "h"
kind = "process.lua"
source = "file://h.lua"

[[entries]]
name = "w"
kind = "process.wasm"
limits = "x"

[[entries]]
name = "w2"
kind = "process.wasm"
module = "file://h.lua"
[entries.limits]
memory = 0
fuel = "a"
timeout = "soon"
stack = 1

[[entries]]
name = "host"
kind = "process.host"
mailbox_limit = 0
modules = "time"
policies = "p"

[[entries]]
name = "s"
kind = "process.service"
process = "a b"
lifecycle = "x"

[[entries]]
name = "s3"
kind = "process.service"
process = "h"
[entries.lifecycle]
requires = ["x:y:z"]

[[entries]]
name = "s2"
kind = "process.service"
process = "h"
[entries.lifecycle.restart]
initial_delay = "2s"
max_delay = "1s"

[[entries]]
name = "p"
kind = "security.policy"
actions = ["*"]
resources = ["*"]
conditions = "x"
"#,
    );
    let e = errors(&app);
    let f = "_index.toml";
    assert_error(&e, f, "app:w", "module", "missing");
    assert_error(&e, f, "app:w", "limits", "expected a table");
    assert_error(&e, f, "app:w2", "limits.memory", "expected an integer ≥ 1");
    assert_error(&e, f, "app:w2", "limits.fuel", "expected an integer");
    assert_error(&e, f, "app:w2", "limits.timeout", "expected a duration like");
    assert_error(&e, f, "app:w2", "limits.stack", "unknown field");
    assert_error(&e, f, "app:host", "mailbox_limit", "expected an integer ≥ 1");
    assert_error(&e, f, "app:host", "modules", "expected a list of strings");
    assert_error(&e, f, "app:host", "policies", "expected a list of strings");
    assert_error(&e, f, "app:s", "process", "`a b` is not an entry id");
    assert_error(&e, f, "app:s3", "lifecycle.requires", "`x:y:z` is not an entry id");
    assert_error(&e, f, "app:s", "lifecycle", "expected a table");
    assert_error(&e, f, "app:s2", "lifecycle.restart.max_delay", "at least the initial delay (2s)");
    assert_error(&e, f, "app:p", "conditions", "expected a table");
    assert_error(&e, f, "app:p", "effect", "missing");
}

#[test]
fn a_yaml_syntax_error_names_its_line() {
    let app = TempApp::new("yamlsyntax");
    app.file("_index.yaml", "namespace: app\nentries:\n  - name: [unclosed\n");
    let e = errors(&app);
    assert!(
        e.0.iter().any(|x| x.file.ends_with("_index.yaml") && x.message.contains("line 4")),
        "{e}"
    );
}

#[test]
fn unknown_fields_are_errors_at_every_level() {
    let app = TempApp::new("unknown");
    app.file("h.lua", LUA).file(
        "_index.yaml",
        "namespace: app
color: blue
entries:
  - name: h
    kind: process.lua
    source: file://h.lua
    sorce: file://h.lua
  - name: s
    kind: process.service
    process: h
    lifecycle:
      autostart: true
      restart:
        max_attempt: 3
",
    );
    let e = errors(&app);
    assert!(e.0.iter().any(|x| x.field.as_deref() == Some("color") && x.entry.is_none()), "{e}");
    assert_error(&e, "_index.yaml", "app:h", "sorce", "unknown field for kind process.lua");
    assert_error(&e, "_index.yaml", "app:h", "sorce", "source");
    assert_error(&e, "_index.yaml", "app:s", "lifecycle.autostart", "unknown field for lifecycle");
    assert_error(
        &e,
        "_index.yaml",
        "app:s",
        "lifecycle.restart.max_attempt",
        "expected one of: backoff_factor, delay, initial_delay, jitter, max_attempts, max_delay",
    );
}

#[test]
fn duplicate_ids_name_both_files() {
    let app = TempApp::new("dup");
    let index = "namespace = \"app\"\n[[entries]]\nname = \"h\"\nkind = \"process.lua\"\nsource = \"file://h.lua\"\n";
    app.file("one/h.lua", LUA).file("one/_index.toml", index);
    app.file("two/h.lua", LUA).file("two/_index.toml", index);
    let e = errors(&app);
    assert_error(
        &e,
        "two/_index.toml",
        "app:h",
        "name",
        "duplicate id: `app:h` is already defined in",
    );
    assert!(e.to_string().contains("one/_index.toml"), "{e}");
}

#[test]
fn dangling_references_are_errors() {
    let app = TempApp::new("dangling");
    app.file("h.lua", LUA).file(
        "_index.toml",
        r#"
namespace = "app"

[[entries]]
name = "h"
kind = "process.lua"
source = "file://h.lua"

[[entries]]
name = "host"
kind = "process.host"
policies = ["app:nobody"]

[[entries]]
name = "s1"
kind = "process.service"
process = "app:ghost"
host = "app:nohost"

[[entries]]
name = "s2"
kind = "process.service"
process = "app:host"
host = "app:h"
lifecycle = { requires = ["app:h", "app:s9", "app:s2"] }
"#,
    );
    let e = errors(&app);
    let f = "_index.toml";
    assert_error(&e, f, "app:s1", "process", "no entry `app:ghost` in this app");
    assert_error(
        &e,
        f,
        "app:s1",
        "host",
        "no entry `app:nohost` in this app (expected a process.host entry)",
    );
    assert_error(
        &e,
        f,
        "app:s2",
        "process",
        "`app:host` is a process.host entry (expected process.lua",
    );
    assert_error(&e, f, "app:s2", "host", "`app:h` is a process.lua entry (expected process.host)");
    assert_error(&e, f, "app:s2", "lifecycle.requires", "`app:h` is a process.lua entry");
    assert_error(&e, f, "app:s2", "lifecycle.requires", "no entry `app:s9`");
    assert_error(&e, f, "app:s2", "lifecycle.requires", "cannot require itself");
    assert_error(&e, f, "app:host", "policies", "no entry `app:nobody`");
}

#[test]
fn dependency_cycles_are_errors() {
    let app = TempApp::new("cycle");
    let svc = |name: &str, req: &str| {
        format!(
            "[[entries]]\nname = \"{name}\"\nkind = \"process.service\"\nprocess = \"h\"\nlifecycle = {{ requires = [\"{req}\"] }}\n"
        )
    };
    app.file("h.lua", LUA).file(
        "_index.toml",
        &format!(
            "namespace = \"app\"\n[[entries]]\nname = \"h\"\nkind = \"process.lua\"\nsource = \"file://h.lua\"\n{}{}{}",
            svc("a", "b"),
            svc("b", "c"),
            svc("c", "a")
        ),
    );
    let e = errors(&app);
    assert_error(
        &e,
        "_index.toml",
        "app:a",
        "lifecycle.requires",
        "dependency cycle: app:a -> app:b -> app:c -> app:a",
    );
}

#[test]
fn an_empty_folder_is_an_error() {
    let app = TempApp::new("empty");
    let e = errors(&app);
    assert!(e.to_string().contains("no _index.toml or _index.yaml file"), "{e}");
    let e = config::load(&app.path("nope")).unwrap_err();
    assert!(e.to_string().contains("not a folder"), "{e}");
}

/// `check` compiles sources and loads libraries: a Lua syntax error and a library that is not
/// a library are reported with their entry and field.
#[test]
fn check_compiles_every_source() {
    let app = TempApp::new("check");
    app.file("good.lua", LUA)
        .file("bad.lua", "return { main = function( end }\n")
        .file("libfake.so", "not a library")
        .file(
            "_index.toml",
            r#"
namespace = "app"
[[entries]]
name = "good"
kind = "process.lua"
source = "file://good.lua"
[[entries]]
name = "bad"
kind = "process.lua"
source = "file://bad.lua"
[[entries]]
name = "fake"
kind = "process.native"
library = "file://libfake.so"
"#,
        );
    let e = spindle_app::check(app.root()).expect_err("check should fail");
    assert_error(&e, "_index.toml", "app:bad", "source", "bad.lua");
    assert_error(&e, "_index.toml", "app:fake", "library", "libfake.so");
    assert_eq!(e.0.len(), 2, "{e}");
    app.file("bad.lua", LUA).file("_index.toml", "namespace = \"app\"\n[[entries]]\nname = \"good\"\nkind = \"process.lua\"\nsource = \"file://good.lua\"\n");
    assert!(spindle_app::check(app.root()).is_ok());
}

/// A host's settings reach the runtime: its process limit, its module grants and its Lua
/// isolation mode.
#[test]
fn hosts_get_their_settings() {
    use spindle_app::{App, Options};
    use spindle_runtime::{Spawn, Value};
    let app = TempApp::new("hosts");
    app.file(
        "p.lua",
        r#"return { main = function()
            local ok = pcall(require, "json")
            process.inbox():receive()
            return ok
        end }"#,
    )
    .file(
        "_index.toml",
        r#"
namespace = "h"
[[entries]]
name = "p"
kind = "process.lua"
source = "file://p.lua"
[[entries]]
name = "small"
kind = "process.host"
workers = 1
max_processes = 2
mailbox_limit = 7
modules = ["time"]
isolation = "state"
"#,
    );
    let app = App::new(config::load(app.root()).unwrap(), Options::default()).unwrap();
    let rt = app.runtime();
    let host = rt.host("h:small").expect("the host exists");
    assert_eq!((host.workers(), host.config().max_processes), (1, Some(2)));
    assert_eq!(host.config().mailbox_limit, Some(7));
    let states = app.lua().stats().states;
    let spawn = || rt.spawn_watched(Spawn::entry("h:p".parse().unwrap(), "h:small"));
    let (a, wa) = spawn().unwrap();
    let (b, wb) = spawn().unwrap();
    let third = spawn().map(|_| ()).unwrap_err();
    assert_eq!(third.kind().name(), "UNAVAILABLE", "{third}");
    assert!(third.message().contains("is full"), "{third}");
    // State mode: a Lua state per process.
    assert_eq!(app.lua().stats().states, states + 2);
    for pid in [a, b] {
        rt.send(pid, "go", Value::Nil).unwrap();
    }
    // `json` is not among the host's modules.
    assert_eq!(wa.wait(), Ok(Value::Bool(false)));
    assert_eq!(wb.wait(), Ok(Value::Bool(false)));
    app.shutdown();
}

/// An app with two terminal hosts starts (its services may use either); only running a
/// process on "the" terminal host needs one of them named.
#[test]
fn two_terminal_hosts_start_and_run_x_asks_which() {
    let dir = TempApp::new("twoterms");
    dir.file("p.lua", "return { main = function() return 'ran' end }\n").file(
        "_index.toml",
        r#"
namespace = "t"

[[entries]]
name = "p"
kind = "process.lua"
source = "file://p.lua"

[[entries]]
name = "tty1"
kind = "terminal.host"

[[entries]]
name = "tty2"
kind = "terminal.host"
"#,
    );
    use spindle_app::{App, Options};
    use spindle_runtime::Value;
    let load = || config::load(dir.root()).unwrap_or_else(|e| panic!("{e}"));
    let app = App::new(load(), Options::default()).expect("the app starts");
    assert_eq!(app.terminal_host(), None);
    let e = app.exec_terminal(&"t:p".parse().unwrap(), &[]).unwrap_err();
    assert!(
        e.message().contains("several terminal hosts (t:tty1, t:tty2): name one with --host"),
        "{e}"
    );
    app.shutdown();
    let named = Options { terminal_host: Some("t:tty2".parse().unwrap()), ..Options::default() };
    let app = App::new(load(), named).expect("the app starts");
    assert_eq!(app.terminal_host(), Some("t:tty2"));
    assert_eq!(app.exec_terminal(&"t:p".parse().unwrap(), &[]), Ok(Value::from("ran")));
    app.shutdown();
}

/// A `process.wasm` entry, valid but of a kind no backend runs yet, does not keep the app from
/// running (`compile`, before `run`, leaves it to fail when spawned); `check` reports it.
#[test]
fn a_wasm_entry_does_not_keep_the_app_from_running() {
    let dir = TempApp::new("wasmentry");
    dir.file("m.wasm", "").file(
        "_index.toml",
        "namespace = \"t\"\n[[entries]]\nname = \"w\"\nkind = \"process.wasm\"\nmodule = \"file://m.wasm\"\n",
    );
    let config = config::load(dir.root()).unwrap_or_else(|e| panic!("{e}"));
    assert!(spindle_app::compile(&config).is_ok());
    let errs = spindle_app::check(dir.root()).expect_err("check reports the kind");
    assert_error(&errs, "_index.toml", "t:w", "module", "no backend runs kind `process.wasm`");
}
