//! Hot reload, end to end: the watcher sees a changed source, the entry is compiled anew, an
//! upgradable process gets OUTDATED and upgrades keeping its pid and state, a process that did
//! not ask to be upgradable keeps its old code, and new processes run the new code.

use std::sync::mpsc::channel;
use std::time::Duration;

use spindle_app::watch::Watcher;
use spindle_app::{App, Options, Reload, config};
use spindle_runtime::rust::AsyncProcess;
use spindle_runtime::{Spawn, Value};

use crate::fixtures::{PATIENCE, TempApp, eventually};

fn counter_source(version: i64) -> String {
    format!(
        r#"
local VERSION = {version}

local function main(name, upgradable, count)
    count = count or 0
    process.set_options {{ upgradable = upgradable }}
    if not process.registry.lookup(name) then process.registry.register(name) end
    local inbox, events = process.inbox(), process.events()
    while true do
        local r = channel.select {{ inbox:case_receive(), events:case_receive() }}
        if r.channel == events then
            if r.value.kind == process.event.OUTDATED then
                return process.upgrade(nil, name, upgradable, count)
            elseif r.value.kind == process.event.CANCEL then
                return count
            end
        else
            count = count + 1
            process.send(r.value:from(), "count", {{ version = VERSION, count = count }})
        end
    end
end

return {{ main = main }}
"#
    )
}

const INDEX: &str = r#"
namespace = "t"

[[entries]]
name = "counter"
kind = "process.lua"
source = "file://counter.lua"

[[entries]]
name = "upgradable.service"
kind = "process.service"
process = "counter"
input = ["up", true]
lifecycle = { auto_start = true }

[[entries]]
name = "plain.service"
kind = "process.service"
process = "counter"
input = ["plain", false]
lifecycle = { auto_start = true }
"#;

/// Asks the process registered as `name` to count; returns (version, count).
fn ask(app: &App, name: &'static str) -> (i64, i64) {
    let reply = app
        .runtime()
        .exec(Spawn::process(
            AsyncProcess::new(move |cx| async move {
                cx.send(name, "inc", Value::Nil)?;
                Ok(cx.recv().await.payload)
            }),
            spindle_app::DEFAULT_HOST,
        ))
        .unwrap();
    let get = |k| reply.get(k).and_then(Value::as_int).unwrap();
    (get("version"), get("count"))
}

#[test]
fn watch_reloads_changed_sources_into_upgradable_processes() {
    let dir = TempApp::new("reload");
    dir.file("counter.lua", &counter_source(1)).file("_index.toml", INDEX);
    let app = std::sync::Arc::new(
        App::new(config::load(dir.root()).unwrap(), Options::default()).unwrap(),
    );
    app.start_services().unwrap();
    let up = eventually("up", || app.runtime().lookup("up"));
    eventually("plain", || app.runtime().lookup("plain"));
    assert_eq!(ask(&app, "up"), (1, 1));
    assert_eq!(ask(&app, "up"), (1, 2));
    assert_eq!(ask(&app, "plain"), (1, 1));

    let (tx, rx) = channel::<Reload>();
    let tx = std::sync::Mutex::new(tx);
    let _watcher = Watcher::start(app.clone(), Duration::from_millis(20), move |r| {
        let _ = tx.lock().unwrap().send(r.clone());
    });
    // A broken edit is reported and changes nothing: an index file that does not load, and
    // code that does not compile (the entry keeps its last good version: new processes of it
    // still start, and upgradable ones are not told).
    dir.file("_index.toml", &INDEX.replace("kind = \"process.lua\"", "kind = \"process.lu\""));
    std::thread::sleep(Duration::from_millis(100));
    dir.file("_index.toml", INDEX);
    dir.file("counter.lua", "return { main = function(");
    std::thread::sleep(Duration::from_millis(100));
    assert!(rx.try_recv().is_err(), "a broken edit was applied");
    app.runtime()
        .spawn(
            Spawn::entry("t:counter".parse().unwrap(), spindle_app::DEFAULT_HOST)
                .args(vec!["still".into(), false.into()]),
        )
        .unwrap();
    eventually("still", || app.runtime().lookup("still"));
    assert_eq!(ask(&app, "still"), (1, 1), "the last good version runs");
    assert_eq!(ask(&app, "up"), (1, 3), "the upgradable process was not told");
    dir.file("counter.lua", &counter_source(2));
    let report = rx.recv_timeout(PATIENCE).expect("a reload");
    assert_eq!(report.changed, vec!["t:counter".parse().unwrap()]);
    assert_eq!(report.notified, 1, "only the upgradable process is told");

    // The upgradable process continues as version 2 with its count and its pid.
    let mut last = 3;
    let (version, count) = eventually("the upgrade", || {
        let (v, c) = ask(&app, "up");
        assert_eq!(c, last + 1, "the count survives the upgrade");
        last = c;
        (v == 2).then_some((v, c))
    });
    assert_eq!(version, 2);
    assert!(count >= 4);
    assert_eq!(app.runtime().lookup("up"), Some(up), "same pid");
    // The other one keeps its old code; a new process runs the new code.
    assert_eq!(ask(&app, "plain"), (1, 2));
    app.runtime()
        .spawn(
            Spawn::entry("t:counter".parse().unwrap(), spindle_app::DEFAULT_HOST)
                .args(vec!["fresh".into(), false.into()]),
        )
        .unwrap();
    eventually("fresh", || app.runtime().lookup("fresh"));
    assert_eq!(ask(&app, "fresh"), (2, 1));
    app.shutdown();
}

const TWO: &str = "return { one = function() return 1 end, two = function() return 2 end }\n";

const BEFORE: &str = r#"
namespace = "t"

[[entries]]
name = "p"
kind = "process.lua"
source = "file://two.lua"
method = "one"

[[entries]]
name = "gone"
kind = "process.lua"
source = "file://two.lua"
method = "one"

[[entries]]
name = "s.service"
kind = "process.service"
process = "p"
"#;

const AFTER: &str = r#"
namespace = "t"

[[entries]]
name = "p"
kind = "process.lua"
source = "file://two.lua"
method = "two"

[[entries]]
name = "new"
kind = "process.lua"
source = "file://two.lua"
method = "two"

[[entries]]
name = "s.service"
kind = "process.service"
process = "p"
input = ["changed"]
"#;

/// Index files reloaded: an entry added becomes spawnable, one removed is gone, a changed
/// method runs from then on, and a changed service is reported as needing a restart.
#[test]
fn reloaded_index_files_add_change_and_remove_entries() {
    let dir = TempApp::new("reindex");
    dir.file("two.lua", TWO).file("_index.toml", BEFORE);
    let app = App::new(config::load(dir.root()).unwrap(), Options::default()).unwrap();
    let run =
        |id: &str| app.runtime().exec(Spawn::entry(id.parse().unwrap(), spindle_app::DEFAULT_HOST));
    assert_eq!(run("t:p"), Ok(Value::Int(1)));
    assert_eq!(run("t:gone"), Ok(Value::Int(1)));
    assert!(run("t:new").is_err(), "not there yet");

    dir.file("_index.toml", AFTER);
    let report = app.reload(config::load(dir.root()).unwrap());
    let ids =
        |v: &[spindle_runtime::EntryId]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(ids(&report.changed), ["t:p"]);
    assert_eq!(ids(&report.added), ["t:new"]);
    assert_eq!(ids(&report.removed), ["t:gone"]);
    assert_eq!(ids(&report.need_restart), ["t:s.service"]);

    assert_eq!(run("t:p"), Ok(Value::Int(2)), "the changed method runs");
    assert_eq!(run("t:new"), Ok(Value::Int(2)));
    let err = run("t:gone").unwrap_err();
    assert_eq!(err.kind(), spindle_runtime::ErrorKind::NotFound, "{err}");
    app.shutdown();
}
