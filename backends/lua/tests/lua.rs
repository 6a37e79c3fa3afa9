//! The Lua test suite: every `tests/lua/*.lua` file is an entry whose `main` asserts what it
//! tests and returns "ok"; this harness runs each as a process and checks the result.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spindle_lua::{LuaBackend, LuaConfig};
use spindle_runtime::{Entry, EntryId, HostConfig, Runtime, Spawn, Value};

const HOST: &str = "test:main";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lua")
}

fn entry(id: &str, file: &str, method: &str) -> Entry {
    let mut e = Entry::new(id.parse::<EntryId>().unwrap(), "process.lua");
    e.fields = Value::map([
        ("source", Value::from(format!("file://{file}"))),
        ("method", Value::from(method)),
        ("modules", Value::Array(vec!["time".into(), "json".into()])),
    ]);
    e.base_dir = Some(dir());
    e
}

/// The entries `process_api.lua` spawns.
const PROCESS_API: &[&str] = &[
    "wait_forever",
    "fail_soon",
    "crash",
    "return_value",
    "polite",
    "topics",
    "linker",
    "crash_with_child",
    "die_on_message",
];

/// The entries `upgrade.lua` spawns.
const UPGRADE: &[&str] = &[
    "v1",
    "v2",
    "broken",
    "idle",
    "partner",
    "many",
    "collector",
    "many_events",
    "event_collector",
    "topic_listener",
    "topic_many",
    "topic_collector",
];

fn runtime() -> Runtime {
    runtime_with(HostConfig::new(HOST).workers(2), LuaConfig::default())
}

fn runtime_with(host: HostConfig, config: LuaConfig) -> Runtime {
    Runtime::builder().host(host).backend(LuaBackend::new(config)).build().unwrap()
}

/// Runs `file`'s `main` (every other function of the file is registered as entry
/// `test:<stem>.<function>`) and expects "ok".
fn run(file: &str, others: &[&str]) {
    run_on(&runtime(), file, others);
}

fn run_on(rt: &Runtime, file: &str, others: &[&str]) {
    let stem = file.trim_end_matches(".lua");
    rt.put_entry(entry(&format!("test:{stem}"), file, "main"));
    for f in others {
        rt.put_entry(entry(&format!("test:{stem}.{f}"), file, f));
    }
    let (_, watch) =
        rt.spawn_watched(Spawn::entry(format!("test:{stem}").parse().unwrap(), HOST)).unwrap();
    let r = watch.wait_timeout(Duration::from_secs(30)).expect("the Lua test did not finish");
    assert_eq!(r, Ok(Value::from("ok")), "{file}");
}

#[test]
fn basics() {
    run("basics.lua", &["echo"]);
}

#[test]
fn backlog() {
    run("backlog.lua", &[]);
}

#[test]
fn channels() {
    run("channels.lua", &["quick"]);
}

#[test]
fn time() {
    run("time.lua", &[]);
}

#[test]
fn multi_wait() {
    run("multi_wait.lua", &["child"]);
}

#[test]
fn process_api() {
    run("process_api.lua", PROCESS_API);
}

#[test]
fn host_limits() {
    let host = HostConfig::new(HOST).workers(2).mailbox_limit(4).max_processes(3);
    let rt = runtime_with(host, LuaConfig::default());
    run_on(&rt, "limits.lua", &["wait_forever"]);
}

/// Attacker and victim in one Lua state: one worker, one island.
#[test]
fn isolation() {
    let config = LuaConfig { islands_per_worker: 1, ..LuaConfig::default() };
    let rt = runtime_with(HostConfig::new(HOST).workers(1), config);
    run_on(&rt, "isolation.lua", &["attempts", "victim", "error_probe"]);
}

#[test]
fn preemption() {
    // One worker: without preemption the spinners would starve the ping-pong.
    let rt = runtime_with(HostConfig::new(HOST).workers(1), LuaConfig::default());
    run_on(&rt, "preemption.lua", &["spin", "spin_nested", "spin_spawned", "echo"]);
}

/// Preemption stops a step anywhere, also in the middle of the prelude's bookkeeping while
/// other processes of the island run in between (see `slices.lua`); with time slices (a short
/// one, so that the signals land often) as with an instruction count.
#[test]
fn preemption_mid_bookkeeping_loses_nothing() {
    let config = LuaConfig { slice: Duration::from_micros(200), ..LuaConfig::default() };
    let backend = LuaBackend::new(config);
    let rt = Runtime::builder()
        .host(HostConfig::new(HOST).workers(1))
        .backend(backend.clone())
        .build()
        .unwrap();
    run_on(&rt, "slices.lua", &["churn", "echo"]);
    assert!(backend.stats().preemptions > 0, "{:?}", backend.stats());

    let config = LuaConfig { slice_instructions: 20_000, ..LuaConfig::default() };
    let rt = runtime_with(HostConfig::new(HOST).workers(1), config);
    run_on(&rt, "slices.lua", &["churn", "echo"]);
}

/// Counting instructions instead of time preempts the same loops, and stops the same
/// unyielding ones.
#[test]
fn preemption_by_instruction_count() {
    let config = LuaConfig { slice_instructions: 20_000, ..LuaConfig::default() };
    let rt = runtime_with(HostConfig::new(HOST).workers(1), config.clone());
    run_on(&rt, "preemption.lua", &["spin", "spin_nested", "spin_spawned", "echo"]);
    let rt = runtime_with(HostConfig::new(HOST).workers(1), config);
    run_on(&rt, "unyielding.lua", &["sorter", "gsubber", "matcher", "catcher", "echo"]);
}

/// A preemption is told apart from a coroutine's own `coroutine.yield()` per resume: with a
/// slice of a few instructions, the hook also fires in the prelude's code that hands a
/// preempted inner coroutine's yield up to the scheduler, and a spinner must still never see
/// its wrapped loop return.
#[test]
fn preemption_is_never_taken_for_a_plain_yield() {
    let config = LuaConfig { slice_instructions: 7, ..LuaConfig::default() };
    let rt = runtime_with(HostConfig::new(HOST).workers(1), config);
    run_on(&rt, "preemption.lua", &["spin", "spin_nested", "spin_spawned", "echo"]);
}

/// Loops where the hook cannot yield (inside a library function's callback) end with an
/// error after a bounded number of slices instead of holding the worker.
#[test]
fn unyielding_loops_are_stopped() {
    let rt = runtime_with(HostConfig::new(HOST).workers(1), LuaConfig::default());
    run_on(&rt, "unyielding.lua", &["sorter", "gsubber", "matcher", "catcher", "echo"]);
}

/// Pattern matching is preempted like Lua code, by time and by instruction count: a match that
/// backtracks for ages holds neither the worker nor `terminate`, and a `gsub` replacement
/// function may wait (see `patterns.lua`).
#[test]
fn pattern_matches_are_preempted() {
    let processes = ["finder", "matcher", "iterator", "substituter", "waiting_gsub", "echo"];
    let rt = runtime_with(HostConfig::new(HOST).workers(1), LuaConfig::default());
    run_on(&rt, "patterns.lua", &processes);
    let config = LuaConfig { slice_instructions: 20_000, ..LuaConfig::default() };
    let rt = runtime_with(HostConfig::new(HOST).workers(1), config);
    run_on(&rt, "patterns.lua", &processes);
}

#[test]
fn payloads() {
    run("payloads.lua", &["mirror"]);
}

#[test]
fn upgrade() {
    run("upgrade.lua", UPGRADE);
}

#[test]
fn memory_budget_in_islands() {
    let config = LuaConfig { process_memory_budget: 8 << 20, ..LuaConfig::default() };
    let rt = runtime_with(HostConfig::new(HOST).workers(2), config);
    run_on(&rt, "memory.lua", &["hog", "sly_hog"]);
}

/// Loading an entry's code into an island is the island's memory, not the process's that
/// happens to be the first of its version there: a process whose own use is small is not
/// ended by its budget however large its module's code is.
#[test]
fn loading_code_is_not_charged_to_the_first_process() {
    // A module whose code is large (one long function it never calls) and whose processes
    // use little.
    let mut source = String::from("local function big()\n    local t = {}\n");
    for i in 0..4000 {
        source.push_str(&format!("    t[{i}] = \"{i}\"\n"));
    }
    source
        .push_str("    return t\nend\nreturn { main = function() return \"ok\" end, big = big }\n");
    let dir = std::env::temp_dir().join(format!("spindle-lua-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big.lua"), source).unwrap();
    let config = LuaConfig { process_memory_budget: 32 << 10, ..LuaConfig::default() };
    let rt = runtime_with(HostConfig::new(HOST).workers(2), config);
    let mut e = Entry::new("test:big".parse::<EntryId>().unwrap(), "process.lua");
    e.fields = Value::map([("source", Value::from("file://big.lua")), ("method", "main".into())]);
    e.base_dir = Some(dir.clone());
    rt.put_entry(e);
    for _ in 0..8 {
        let (_, watch) = rt.spawn_watched(Spawn::entry("test:big".parse().unwrap(), HOST)).unwrap();
        let r = watch.wait_timeout(Duration::from_secs(30)).expect("the process did not end");
        assert_eq!(r, Ok(Value::from("ok")));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn memory_limit_in_state_mode() {
    let config = LuaConfig {
        isolation: spindle_lua::Isolation::State,
        state_memory_limit: 8 << 20,
        ..LuaConfig::default()
    };
    let rt = runtime_with(HostConfig::new(HOST).workers(2), config);
    run_on(&rt, "memory.lua", &["hog", "sly_hog"]);
}

/// The whole API works the same with one Lua state per process.
#[test]
fn state_mode_runs_the_api() {
    let config = LuaConfig { isolation: spindle_lua::Isolation::State, ..LuaConfig::default() };
    let rt = runtime_with(HostConfig::new(HOST).workers(2), config);
    run_on(&rt, "process_api.lua", PROCESS_API);
    run_on(&rt, "channels.lua", &["quick"]);
    run_on(&rt, "upgrade.lua", UPGRADE);
}

/// A source is compiled once per entry version and loaded once per island (by the first
/// step of its first process there); spawning never compiles again.
#[test]
fn compiled_once_loaded_once_per_island() {
    let backend = LuaBackend::default();
    let rt = Runtime::builder()
        .host(HostConfig::new(HOST).workers(2))
        .backend(backend.clone())
        .build()
        .unwrap();
    // Until every process has run its first step and waits for its message.
    let started = |pids: &[spindle_runtime::Pid]| {
        let t0 = std::time::Instant::now();
        while !pids.iter().all(|p| rt.info(*p).is_some_and(|i| i.waiting)) {
            assert!(t0.elapsed() < Duration::from_secs(30), "the processes did not start");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    rt.put_entry(entry("test:payloads.mirror", "payloads.lua", "mirror"));
    let id: EntryId = "test:payloads.mirror".parse().unwrap();
    let mut pids = vec![];
    for _ in 0..200 {
        pids.push(rt.spawn(Spawn::entry(id.clone(), HOST)).unwrap());
    }
    started(&pids);
    let s = backend.stats();
    assert_eq!(s.compiled, 1, "{s:?}");
    assert_eq!(s.states, 4, "two islands per worker: {s:?}");
    assert!((1..=4).contains(&s.loaded), "loaded once per island at most: {s:?}");
    // 200 live processes hold at least a coroutine each (about 1 KB) in the islands' heaps.
    assert!(s.island_heap > 200 * 1024, "{s:?}");
    // A new version is compiled once more, and loaded again per island.
    rt.put_entry(entry("test:payloads.mirror", "payloads.lua", "mirror"));
    for _ in 0..50 {
        pids.push(rt.spawn(Spawn::entry(id.clone(), HOST)).unwrap());
    }
    started(&pids);
    let s2 = backend.stats();
    assert_eq!(s2.compiled, 2, "{s2:?}");
    assert!(s2.loaded > s.loaded && s2.loaded <= s.loaded + 4, "{s2:?}");
    for p in pids {
        rt.terminate(p).unwrap();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spindle-lua-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn entry_in(dir: &Path, id: &str, file: &str) -> Entry {
    let mut e = entry(id, file, "main");
    e.base_dir = Some(dir.to_path_buf());
    e
}

/// A reloaded entry reaches upgradable processes as OUTDATED; `process.upgrade(nil, …)` then
/// continues with the new code, keeping the pid and what the old code passed on.
#[test]
fn outdated_and_upgrade_to_the_reloaded_entry() {
    let dir = temp_dir("reload");
    let v1 = r#"
        return { main = function(count)
            process.set_options({ upgradable = true })
            process.registry.register("reloadable")
            local ev = process.events():receive()
            assert(ev.kind == process.event.OUTDATED, ev.kind)
            process.upgrade(nil, count + 1, process.pid())
        end }
    "#;
    let v2 = r#"
        return { main = function(count, old_pid)
            assert(process.pid() == old_pid)
            return "v2 with " .. count
        end }
    "#;
    std::fs::write(dir.join("svc.lua"), v1).unwrap();
    let rt = runtime();
    rt.put_entry(entry_in(&dir, "test:svc", "svc.lua"));
    let id: EntryId = "test:svc".parse().unwrap();
    let (_, watch) =
        rt.spawn_watched(Spawn::entry(id.clone(), HOST).args(vec![Value::Int(41)])).unwrap();
    let t0 = std::time::Instant::now();
    while rt.lookup("reloadable").is_none() {
        assert!(t0.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::write(dir.join("svc.lua"), v2).unwrap();
    rt.put_entry(entry_in(&dir, "test:svc", "svc.lua"));
    assert_eq!(rt.notify_outdated(&id), 1);
    let r = watch.wait_timeout(Duration::from_secs(30)).expect("finished");
    assert_eq!(r, Ok(Value::from("v2 with 42")));
}

/// Bad sources fail at spawn with an error that names the file and the problem.
#[test]
fn bad_sources_fail_clearly() {
    let dir = temp_dir("bad");
    std::fs::write(dir.join("syntax.lua"), "return { main = function() end\n").unwrap();
    std::fs::write(dir.join("notable.lua"), "return 42\n").unwrap();
    std::fs::write(dir.join("nomethod.lua"), "return { other = function() end }\n").unwrap();
    let rt = runtime();
    rt.put_entry(entry_in(&dir, "test:syntax", "syntax.lua"));
    let err = rt.spawn(Spawn::entry("test:syntax".parse().unwrap(), HOST)).unwrap_err();
    assert_eq!(err.kind(), spindle_runtime::ErrorKind::Invalid);
    assert!(err.message().contains("syntax.lua") && err.message().contains("test:syntax"), "{err}");
    rt.put_entry(entry_in(&dir, "test:missing", "does-not-exist.lua"));
    let err = rt.spawn(Spawn::entry("test:missing".parse().unwrap(), HOST)).unwrap_err();
    assert_eq!(err.kind(), spindle_runtime::ErrorKind::NotFound);
    assert!(err.message().contains("does-not-exist.lua"), "{err}");
    for (id, file, kind, words) in [
        ("test:notable", "notable.lua", spindle_runtime::ErrorKind::Invalid, "table of functions"),
        ("test:nomethod", "nomethod.lua", spindle_runtime::ErrorKind::NotFound, "method 'main'"),
    ] {
        rt.put_entry(entry_in(&dir, id, file));
        let r = rt.exec(Spawn::entry(id.parse().unwrap(), HOST));
        let err = r.unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert!(err.message().contains(words), "{err}");
    }
}

/// Preemption can stop a process anywhere, also in the middle of the prelude's own channel
/// and operation bookkeeping: with a tiny slice, thousands of round trips lose nothing.
#[test]
fn preemption_anywhere_loses_no_message() {
    for isolation in [spindle_lua::Isolation::Islands, spindle_lua::Isolation::State] {
        let config = LuaConfig { slice_instructions: 1000, isolation, ..LuaConfig::default() };
        let rt = runtime_with(HostConfig::new(HOST).workers(2), config);
        run_on(&rt, "ping_pong.lua", &["pong"]);
    }
}

/// The channel rules hold wherever a process is preempted: completions that arrive while a
/// coroutine is preempted are seen by that coroutine's next non-blocking check (a select with
/// `default`), and receivers are still served in the order they began to wait.
#[test]
fn channels_hold_under_preemption_anywhere() {
    for isolation in [spindle_lua::Isolation::Islands, spindle_lua::Isolation::State] {
        for instructions in 2..160 {
            let config =
                LuaConfig { slice_instructions: instructions, isolation, ..LuaConfig::default() };
            let rt = runtime_with(HostConfig::new(HOST).workers(1), config);
            eprintln!("{isolation:?}, a slice of {instructions} instructions");
            run_on(&rt, "channels.lua", &["quick"]);
        }
    }
}

/// The time-slice signal (`SIGRTMAX - 1`) is the runtime's: a handler that other code sets for
/// it (here: "ignore") is replaced before the next preemption, so busy loops are still
/// preempted instead of holding their worker.
#[test]
fn a_replaced_slice_signal_handler_is_put_back() {
    let backend = LuaBackend::new(LuaConfig::default());
    let rt = Runtime::builder()
        .host(HostConfig::new(HOST).workers(1))
        .backend(backend.clone())
        .build()
        .unwrap();
    run_on(&rt, "preemption.lua", &["spin", "spin_nested", "spin_spawned", "echo"]);
    let signal = libc::SIGRTMAX() - 1;
    // SAFETY: setting a signal's disposition; nothing else in this test relies on it.
    unsafe { libc::signal(signal, libc::SIG_IGN) };
    let before = backend.stats().preemptions;
    run_on(&rt, "preemption.lua", &["spin", "spin_nested", "spin_spawned", "echo"]);
    assert!(backend.stats().preemptions > before, "{:?}", backend.stats());
    // SAFETY: `sigaction` with a null new action only reads the current one.
    let handler = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old);
        old.sa_sigaction
    };
    assert_ne!(handler, libc::SIG_IGN, "the runtime's handler is back");
}

/// Spawns from steps of different islands onto each other's islands, each the first process
/// of a new code version on its island, over and over: loading code into an island happens in
/// that island's own step, so a spawner never waits for another island's Lua state while its
/// own is held (two spawners doing that to each other's islands deadlocked both workers).
#[test]
fn spawns_across_islands_never_deadlock() {
    let config = LuaConfig { slice_instructions: 52, ..LuaConfig::default() };
    let rt = runtime_with(HostConfig::new(HOST).workers(2), config);
    let spawner: EntryId = "test:spawn_race.spawner".parse().unwrap();
    rt.put_entry(entry("test:spawn_race.spawner", "spawn_race.lua", "spawner"));
    for round in 0..300 {
        // A new version each round: its code is not loaded into any island yet.
        rt.put_entry(entry("test:spawn_race.child", "spawn_race.lua", "child"));
        let watches: Vec<_> = (0..4)
            .map(|_| {
                let spawn = Spawn::entry(spawner.clone(), HOST).args(vec![Value::Int(4)]);
                rt.spawn_watched(spawn).unwrap().1
            })
            .collect();
        for w in watches {
            let Some(r) = w.wait_timeout(Duration::from_secs(30)) else {
                // Deadlocked workers would hold up the runtime's shutdown as well.
                std::mem::forget(rt);
                panic!("round {round}: the spawners did not finish");
            };
            assert_eq!(r, Ok(Value::from("ok")), "round {round}");
        }
    }
}
/// The API tests pass wherever their processes are preempted: under count-hook slices from
/// 2 to 197 instructions, in both isolation modes, on two workers. (Short slices move every
/// interleaving around: a spawn between two islands deadlocked under them.)
#[test]
fn api_holds_under_preemption_anywhere() {
    for isolation in [spindle_lua::Isolation::Islands, spindle_lua::Isolation::State] {
        for instructions in (2..200).step_by(5) {
            let config =
                LuaConfig { slice_instructions: instructions, isolation, ..LuaConfig::default() };
            let rt = runtime_with(HostConfig::new(HOST).workers(2), config);
            eprintln!("{isolation:?}, a slice of {instructions} instructions");
            run_on(&rt, "basics.lua", &["echo"]);
            run_on(&rt, "multi_wait.lua", &["child"]);
            run_on(&rt, "process_api.lua", PROCESS_API);
            run_on(&rt, "time.lua", &[]);
            run_on(&rt, "upgrade.lua", UPGRADE);
            run_on(&rt, "ping_pong.lua", &["pong"]);
        }
    }
}

/// Values no Lua table can hold reach a Lua process without ending it (see odd_values.lua).
#[test]
fn odd_values_from_rust_do_not_end_a_lua_process() {
    let rt = runtime();
    rt.put_entry(spindle_runtime::rust::rust_entry(
        "test:rust.odd".parse().unwrap(),
        |_cx, _args| async move {
            let map = Value::Map(vec![
                (Value::Float(f64::NAN), Value::Int(1)),
                (Value::from("kept"), Value::Bool(true)),
            ]);
            let mut deep = Value::Int(0);
            for _ in 0..200 {
                deep = Value::Array(vec![deep]);
            }
            Ok(Value::map([("map", map), ("deep", deep)]))
        },
    ));
    run_on(&rt, "odd_values.lua", &[]);
}

/// A select that one case ended takes itself off the other cases' channels: a select in a loop
/// leaves nothing behind on them.
#[test]
fn a_select_loop_leaves_nothing_behind() {
    run("select_loop.lua", &[]);
}

/// A function preempted again and again keeps the stack it had: each resume after a
/// preemption once made room for three values on top of its frame, so a long computation in
/// one function (here preempted every two instructions) overflowed its stack.
#[test]
fn a_function_preempted_over_and_over_keeps_its_stack() {
    for isolation in [spindle_lua::Isolation::Islands, spindle_lua::Isolation::State] {
        let config = LuaConfig { slice_instructions: 2, isolation, ..LuaConfig::default() };
        let rt = runtime_with(HostConfig::new(HOST).workers(1), config);
        run_on(&rt, "long_run.lua", &[]);
    }
}

/// A ticker keeps to the grid of its period: after a tick that came late, the next is due a
/// period after the late one was due, not after it came; ticks a slow reader missed are
/// dropped, and the next is due on the grid again.
#[test]
fn a_ticker_keeps_to_its_grid() {
    let clock = spindle_runtime::ManualClock::new();
    let rt = Runtime::builder()
        .host(HostConfig::new(HOST).workers(1))
        .backend(LuaBackend::new(LuaConfig::default()))
        .clock(clock.clone())
        .build()
        .unwrap();
    rt.put_entry(entry("test:ticker", "ticker.lua", "main"));
    let pid = rt.spawn(Spawn::entry("test:ticker".parse().unwrap(), HOST)).unwrap();
    // When the next tick is due, once the ticker has set it up past `now`.
    let next_after = |now: Duration| {
        let t0 = std::time::Instant::now();
        loop {
            if let Some(due) = clock.next_deadline().filter(|&d| d > now) {
                return due;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "no tick set up after {now:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let ms = Duration::from_millis;
    assert_eq!(next_after(ms(0)), ms(5));
    clock.advance(ms(7)); // the first tick, 2 ms late
    assert_eq!(next_after(ms(7)), ms(10), "the second tick is due on the grid");
    clock.advance(ms(12)); // t = 19: the second tick, 9 ms late; the third (15) is missed
    assert_eq!(next_after(ms(19)), ms(20), "the next tick is due on the grid again");
    rt.terminate(pid).unwrap();
}

/// Each process draws from its own random generator: one that seeds or draws does not change
/// another's draws on the same island.
#[test]
fn random_numbers_are_each_processs_own() {
    let config = LuaConfig { islands_per_worker: 1, ..LuaConfig::default() };
    let rt = runtime_with(HostConfig::new(HOST).workers(1), config);
    run_on(&rt, "random.lua", &["meddle"]);
}
