//! Services: start order, reverse stop order, restarts with growing delays, attempt counting,
//! the stable threshold, stop timeouts — all timing driven by a manual clock.

use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use spindle_app::services::{ServiceEvent, ServiceState, Services};
use spindle_app::{App, Options, config};
use spindle_runtime::rust::AsyncProcess;
use spindle_runtime::{EntryId, ManualClock, Message, Spawn, Value};

use crate::fixtures::{PATIENCE, TempApp, eventually};

const SERVICE: &str = r#"
-- A service that reports to `observer` (if there is one), crashes or finishes on request, and
-- stops when cancelled.
local function main(name, ...)
    local args = { ... }
    process.registry.register(name)
    process.send("observer", "started", { name = name, args = args })
    local inbox, events = process.inbox(), process.events()
    while true do
        local r = channel.select { inbox:case_receive(), events:case_receive() }
        if r.channel == events then
            if r.value.kind == process.event.CANCEL then return "stopped" end
        elseif r.value:topic() == "crash" then
            error("asked to crash")
        elseif r.value:topic() == "finish" then
            return "done"
        end
    end
end

-- Ignores CANCEL: only terminate stops it.
local function stubborn(name)
    process.registry.register(name)
    local inbox = process.inbox()
    while true do inbox:receive() end
end

return { main = main, stubborn = stubborn }
"#;

fn id(s: &str) -> EntryId {
    s.parse().unwrap()
}

/// An app with the service source and `services` (TOML entries), on a manual clock.
fn start(name: &str, services: &str) -> (TempApp, App, Services, ManualClock) {
    let dir = TempApp::new(name);
    dir.file("svc.lua", SERVICE).file(
        "_index.toml",
        &format!(
            r#"
namespace = "t"

[[entries]]
name = "svc"
kind = "process.lua"
source = "file://svc.lua"

[[entries]]
name = "stubborn"
kind = "process.lua"
source = "file://svc.lua"
method = "stubborn"

[[entries]]
name = "procs"
kind = "process.host"
workers = 2
{services}"#
        ),
    );
    let config = config::load(dir.root()).unwrap_or_else(|e| panic!("{e}"));
    let clock = ManualClock::new();
    let app = App::new(config, Options { clock: clock.clone().into(), ..Options::default() })
        .expect("app starts");
    let services = app.start_services().expect("services start");
    (dir, app, services, clock)
}

fn service(name: &str, extra: &str) -> String {
    format!(
        "\n[[entries]]\nname = \"{name}\"\nkind = \"process.service\"\nprocess = \"t:svc\"\nhost = \"t:procs\"\ninput = [\"{name}\"]\n{extra}\n"
    )
}

/// A process registered as `observer` whose messages come out of the receiver.
fn observer(app: &App) -> Receiver<Message> {
    let (tx, rx) = channel();
    let (ready_tx, ready_rx) = channel();
    app.runtime()
        .spawn(Spawn::process(
            AsyncProcess::new(move |cx| async move {
                cx.register("observer", None)?;
                ready_tx.send(()).unwrap();
                loop {
                    let m = cx.recv().await;
                    if tx.send(m).is_err() {
                        return Ok(Value::Nil);
                    }
                }
            }),
            spindle_app::services::SYSTEM_HOST,
        ))
        .unwrap();
    ready_rx.recv_timeout(PATIENCE).unwrap();
    rx
}

fn starts_in(h: &[ServiceEvent], of: &str) -> usize {
    let of = id(of);
    h.iter().filter(|e| matches!(e, ServiceEvent::Started { id, .. } if *id == of)).count()
}

/// The services in the order they were started (each start once).
fn start_order(s: &Services) -> Vec<String> {
    s.history()
        .iter()
        .filter_map(|e| match e {
            ServiceEvent::Started { id, .. } => Some(id.to_string()),
            _ => None,
        })
        .collect()
}

fn starts(s: &Services, of: &str) -> usize {
    starts_in(&s.history(), of)
}

fn wait_starts(s: &Services, of: &str, n: usize) {
    assert!(
        s.wait_until(PATIENCE, |h| starts_in(h, of) >= n),
        "{of} was not started {n} times: {:?}",
        s.history()
    );
}

fn crash(app: &App, s: &Services, of: &str) {
    let pid = s.status(&id(of)).unwrap().pid.expect("running");
    app.runtime().send(pid, "crash", Value::Nil).unwrap();
}

/// Waits for the `k`-th restart (1-based) scheduled for `of`; returns its attempt and delay.
fn restart_no(s: &Services, of: &str, k: usize) -> (u32, Duration) {
    let of = id(of);
    let find = |h: &[ServiceEvent]| {
        h.iter()
            .filter_map(|e| match e {
                ServiceEvent::RestartScheduled { id, attempt, delay } if *id == of => {
                    Some((*attempt, *delay))
                }
                _ => None,
            })
            .nth(k - 1)
    };
    assert!(s.wait_until(PATIENCE, |h| find(h).is_some()), "no restart #{k}: {:?}", s.history());
    find(&s.history()).unwrap()
}

#[test]
fn services_start_in_dependency_order_and_stop_in_reverse() {
    let auto = "lifecycle = { auto_start = true, requires = [\"t:api\"] }";
    let (_dir, app, s, _clock) = start(
        "order",
        &[
            service("web", auto),
            service("api", "lifecycle = { requires = [\"db\"] }"),
            service("db", ""),
            service("idle", ""),
        ]
        .concat(),
    );
    // `web` is auto-started; `api` and `db` start first because it requires them.
    wait_starts(&s, "t:web", 1);
    let order = start_order(&s);
    assert_eq!(order, ["t:db", "t:api", "t:web"]);
    assert_eq!(s.status(&id("t:idle")).unwrap().state, ServiceState::Idle);
    for name in ["web", "api", "db"] {
        eventually("the services to register", || app.runtime().lookup(name));
    }
    let before = s.history().len();
    s.stop(app.runtime(), PATIENCE).unwrap();
    let stops: Vec<ServiceEvent> = s.history()[before..].to_vec();
    let expect: Vec<ServiceEvent> = ["t:web", "t:api", "t:db"]
        .iter()
        .flat_map(|n| {
            [
                ServiceEvent::Stopping { id: id(n) },
                ServiceEvent::Stopped { id: id(n), terminated: false },
            ]
        })
        .collect();
    assert_eq!(stops, expect);
    assert_eq!(s.status(&id("t:web")).unwrap().state, ServiceState::Stopped);
    app.shutdown();
}

/// A service that crashes again and again is restarted after 1s, 2s, 4s, then the 5s cap, and
/// given up after `max_attempts`; another service runs on throughout.
#[test]
fn restarts_back_off_and_give_up_after_max_attempts() {
    let restart = "[entries.lifecycle]\nauto_start = true\nstable_threshold = \"1m\"\n[entries.lifecycle.restart]\ninitial_delay = \"1s\"\nbackoff_factor = 2\nmax_delay = \"5s\"\njitter = 0\nmax_attempts = 4";
    let (_dir, app, s, clock) = start(
        "backoff",
        &[service("crashy", restart), service("steady", "lifecycle = { auto_start = true }")]
            .concat(),
    );
    wait_starts(&s, "t:crashy", 1);
    let expected = [1000, 2000, 4000, 5000];
    for (n, want) in expected.iter().enumerate() {
        let attempt = n as u32 + 1;
        crash(&app, &s, "t:crashy");
        let (a, delay) = restart_no(&s, "t:crashy", n + 1);
        assert_eq!(a, attempt);
        assert_eq!(delay, Duration::from_millis(*want), "delay before restart {attempt}");
        let st = s.status(&id("t:crashy")).unwrap();
        assert_eq!((st.state, st.attempts), (ServiceState::Restarting, attempt));
        assert_eq!(st.last_error.as_deref().map(|e| e.contains("asked to crash")), Some(true));
        // Not a moment early: one millisecond short of the delay nothing happens.
        clock.advance(delay - Duration::from_millis(1));
        assert_eq!(starts(&s, "t:crashy"), n + 1);
        assert_eq!(clock.next_deadline(), Some(clock.now() + Duration::from_millis(1)));
        clock.advance(Duration::from_millis(1));
        wait_starts(&s, "t:crashy", n + 2);
    }
    crash(&app, &s, "t:crashy");
    let crashy = id("t:crashy");
    assert!(s.wait_until(PATIENCE, |h| {
        h.contains(&ServiceEvent::GaveUp { id: crashy.clone(), attempts: 4 })
    }));
    let st = s.status(&crashy).unwrap();
    assert_eq!((st.state, st.starts, st.pid), (ServiceState::Failed, 5, None));
    assert_eq!(clock.pending_timers(), 0, "no restart is pending");
    // The runtime goes on: the other service still runs and answers.
    let steady = s.status(&id("t:steady")).unwrap();
    assert_eq!((steady.state, steady.starts), (ServiceState::Running, 1));
    assert!(app.runtime().is_alive(steady.pid.unwrap()));
    // Asked to start again, the service that gave up starts afresh: its attempts count from
    // zero, so its next failure waits the initial delay.
    s.start_service(app.runtime(), &crashy).unwrap();
    wait_starts(&s, "t:crashy", 6);
    let st = s.status(&crashy).unwrap();
    assert_eq!((st.state, st.attempts), (ServiceState::Running, 0));
    crash(&app, &s, "t:crashy");
    assert_eq!(restart_no(&s, "t:crashy", 5), (1, Duration::from_secs(1)));
    app.shutdown();
}

/// Each service is started once however many others require it: with every service requiring
/// all those before it, a walk through every path to each took exponential time (some 2^33
/// steps here) and the last one never started.
#[test]
fn services_that_require_each_other_start_in_linear_time() {
    const N: usize = 34;
    let mut entries = String::new();
    for k in 0..N {
        let requires: Vec<String> = (0..k).map(|j| format!("\"s{j}\"")).collect();
        let auto = if k == N - 1 { "auto_start = true, " } else { "" };
        entries += &service(
            &format!("s{k}"),
            &format!("lifecycle = {{ {auto}requires = [{}] }}", requires.join(", ")),
        );
    }
    let (_dir, app, s, _clock) = start("dense", &entries);
    for k in 0..N {
        wait_starts(&s, &format!("t:s{k}"), 1);
    }
    let order = start_order(&s);
    assert_eq!(order, (0..N).map(|k| format!("t:s{k}")).collect::<Vec<_>>(), "once each, in order");
    app.shutdown();
}

/// A run that lasts `stable_threshold` resets the attempt counter: the next delay is the
/// initial one again.
#[test]
fn a_stable_run_resets_the_attempts() {
    let restart = "[entries.lifecycle]\nauto_start = true\nstable_threshold = \"10s\"\n[entries.lifecycle.restart]\ninitial_delay = \"1s\"\nbackoff_factor = 3\njitter = 0";
    let (_dir, app, s, clock) = start("stable", &service("svc1", restart));
    wait_starts(&s, "t:svc1", 1);
    crash(&app, &s, "t:svc1");
    assert_eq!(restart_no(&s, "t:svc1", 1), (1, Duration::from_secs(1)));
    clock.advance(Duration::from_secs(1));
    wait_starts(&s, "t:svc1", 2);
    crash(&app, &s, "t:svc1");
    assert_eq!(restart_no(&s, "t:svc1", 2), (2, Duration::from_secs(3)));
    clock.advance(Duration::from_secs(3));
    wait_starts(&s, "t:svc1", 3);
    // Runs 9.999s: not stable yet.
    clock.advance(Duration::from_millis(9999));
    crash(&app, &s, "t:svc1");
    assert_eq!(restart_no(&s, "t:svc1", 3), (3, Duration::from_secs(9)));
    clock.advance(Duration::from_secs(9));
    wait_starts(&s, "t:svc1", 4);
    // Runs 10s: stable, the counter starts over.
    clock.advance(Duration::from_secs(10));
    crash(&app, &s, "t:svc1");
    assert_eq!(restart_no(&s, "t:svc1", 4), (1, Duration::from_secs(1)));
    assert_eq!(s.status(&id("t:svc1")).unwrap().attempts, 1);
    app.shutdown();
}

#[test]
fn jitter_spreads_delays_within_its_fraction() {
    let restart = "[entries.lifecycle]\nauto_start = true\n[entries.lifecycle.restart]\ninitial_delay = \"10s\"\nmax_delay = \"60s\"\njitter = 0.5";
    let (_dir, app, s, clock) = start("jitter", &service("j", restart));
    let mut seen = Vec::new();
    for n in 0..6u32 {
        wait_starts(&s, "t:j", n as usize + 1);
        crash(&app, &s, "t:j");
        let (_, d) = restart_no(&s, "t:j", n as usize + 1);
        let base = (10.0 * 2f64.powi(n as i32)).min(60.0);
        let secs = d.as_secs_f64();
        assert!(
            secs >= base * 0.5 - 1e-6 && secs <= (base * 1.5).min(60.0) + 1e-6,
            "{secs} vs {base}"
        );
        seen.push(secs);
        clock.advance(d);
    }
    seen.dedup();
    assert!(seen.len() > 1, "jitter varies the delays: {seen:?}");
    app.shutdown();
}

/// A service that ignores CANCEL is terminated once its `stop_timeout` has passed.
#[test]
fn stop_terminates_after_the_stop_timeout() {
    let entry = "\n[[entries]]\nname = \"stub\"\nkind = \"process.service\"\nprocess = \"t:stubborn\"\nhost = \"t:procs\"\ninput = [\"stub\"]\nlifecycle = { auto_start = true, stop_timeout = \"5s\" }\n";
    let (_dir, app, s, clock) = start("stoptimeout", entry);
    // Its stop_timeout and a second, and a second for the supervisor: what a shutdown waits
    // for at most.
    assert_eq!(s.stop_budget(), Duration::from_secs(7));
    wait_starts(&s, "t:stub", 1);
    let pid = s.status(&id("t:stub")).unwrap().pid.unwrap();
    let stopper = {
        let s = s.clone();
        let rt_pid = s.pid();
        let app = std::sync::Arc::new(app);
        let app2 = app.clone();
        (std::thread::spawn(move || s.stop(app2.runtime(), PATIENCE)), app, rt_pid)
    };
    let (handle, app, _) = stopper;
    let stub = id("t:stub");
    assert!(s.wait_until(PATIENCE, |h| h.contains(&ServiceEvent::Stopping { id: stub.clone() })));
    eventually("the stop timer", || (clock.pending_timers() == 1).then_some(()));
    clock.advance(Duration::from_millis(4999));
    assert!(app.runtime().is_alive(pid), "still given time to stop");
    clock.advance(Duration::from_millis(1));
    handle.join().unwrap().unwrap();
    assert!(!app.runtime().is_alive(pid));
    assert!(s.history().contains(&ServiceEvent::Stopped { id: stub, terminated: true }));
    app.shutdown();
}

/// A service that gives up takes down the services that require it, directly or through
/// others, in reverse dependency order (as systemd's `Requires=`); a restart one of them had
/// pending is called off, and services that do not depend on it run on.
#[test]
fn services_that_require_one_that_gave_up_are_stopped() {
    let once = "[entries.lifecycle]\nstable_threshold = \"1m\"\n[entries.lifecycle.restart]\ninitial_delay = \"1s\"\njitter = 0\nmax_attempts = 1";
    let flaky_api = "[entries.lifecycle]\nrequires = [\"db\"]\nstable_threshold = \"1m\"\n[entries.lifecycle.restart]\ninitial_delay = \"10s\"\njitter = 0";
    let (_dir, app, s, clock) = start(
        "gaveup",
        &[
            service("db", once),
            service("api", flaky_api),
            service("web", "lifecycle = { auto_start = true, requires = [\"api\"] }"),
            service("cache", "lifecycle = { auto_start = true, requires = [\"db\"] }"),
            service("other", "lifecycle = { auto_start = true }"),
        ]
        .concat(),
    );
    for n in ["t:web", "t:cache", "t:other"] {
        wait_starts(&s, n, 1);
    }
    // `api` crashes: its restart waits 10 s. `db` crashes twice and gives up meanwhile.
    crash(&app, &s, "t:api");
    restart_no(&s, "t:api", 1);
    crash(&app, &s, "t:db");
    restart_no(&s, "t:db", 1);
    clock.advance(Duration::from_secs(1));
    wait_starts(&s, "t:db", 2);
    crash(&app, &s, "t:db");
    let db = id("t:db");
    let stopped = |n: &str| ServiceEvent::Stopped { id: id(n), terminated: false };
    assert!(
        s.wait_until(PATIENCE, |h| h.contains(&stopped("t:web"))
            && h.contains(&stopped("t:cache"))),
        "{:?}",
        s.history()
    );
    let h = s.history();
    let at = |e: &ServiceEvent| h.iter().position(|x| x == e).unwrap();
    assert!(at(&ServiceEvent::GaveUp { id: db.clone(), attempts: 1 }) < at(&stopped("t:web")));
    for n in ["t:db", "t:api", "t:web", "t:cache"] {
        let st = s.status(&id(n)).unwrap();
        let want = if n == "t:db" { ServiceState::Failed } else { ServiceState::Stopped };
        assert_eq!((st.state, st.pid), (want, None), "{n}");
    }
    // The restart `api` had pending is off: ten seconds later it has not started again.
    clock.advance(Duration::from_secs(10));
    assert_eq!(starts(&s, "t:api"), 1);
    let other = s.status(&id("t:other")).unwrap();
    assert_eq!(other.state, ServiceState::Running);
    assert!(app.runtime().is_alive(other.pid.unwrap()));
    app.shutdown();
}

/// Services that do not require each other stop at the same time: two that ignore CANCEL are
/// asked together, after the one that requires them has stopped, and are terminated together
/// one stop timeout later (not one after the other).
#[test]
fn independent_services_stop_together() {
    let stub = |name: &str| {
        format!(
            "\n[[entries]]\nname = \"{name}\"\nkind = \"process.service\"\nprocess = \"t:stubborn\"\nhost = \"t:procs\"\ninput = [\"{name}\"]\nlifecycle = {{ stop_timeout = \"5s\" }}\n"
        )
    };
    let top = service("top", "lifecycle = { auto_start = true, requires = [\"s1\", \"s2\"] }");
    let (_dir, app, s, clock) = start("together", &[stub("s1"), stub("s2"), top].concat());
    wait_starts(&s, "t:top", 1);
    let pids: Vec<_> = ["t:s1", "t:s2"].map(|n| s.status(&id(n)).unwrap().pid.unwrap()).into();
    let app = std::sync::Arc::new(app);
    let stopper = {
        let (s, app) = (s.clone(), app.clone());
        std::thread::spawn(move || s.stop(app.runtime(), PATIENCE))
    };
    let both_asked = |h: &[ServiceEvent]| {
        ["t:s1", "t:s2"].iter().all(|n| h.contains(&ServiceEvent::Stopping { id: id(n) }))
    };
    assert!(s.wait_until(PATIENCE, both_asked), "{:?}", s.history());
    let h = s.history();
    let at = |e: &ServiceEvent| h.iter().position(|x| x == e).unwrap();
    let top_stopped = at(&ServiceEvent::Stopped { id: id("t:top"), terminated: false });
    assert!(top_stopped < at(&ServiceEvent::Stopping { id: id("t:s1") }), "{h:?}");
    assert!(top_stopped < at(&ServiceEvent::Stopping { id: id("t:s2") }), "{h:?}");
    eventually("both stop timers", || (clock.pending_timers() == 2).then_some(()));
    clock.advance(Duration::from_secs(5));
    stopper.join().unwrap().unwrap();
    for (n, pid) in ["t:s1", "t:s2"].iter().zip(pids) {
        assert!(!app.runtime().is_alive(pid));
        assert!(s.history().contains(&ServiceEvent::Stopped { id: id(n), terminated: true }));
    }
    app.shutdown();
}

/// `input` reaches the process's method as its arguments; a service that returns normally
/// has finished and is not restarted.
#[test]
fn input_becomes_the_arguments_and_finishing_is_not_failing() {
    let entry = "\n[[entries]]\nname = \"in\"\nkind = \"process.service\"\nprocess = \"t:svc\"\nhost = \"t:procs\"\ninput = [\"in\", 2, 1.5, true, { k = \"v\" }]\n";
    let (_dir, app, s, _clock) = start("input", entry);
    let rx = observer(&app);
    s.start_service(app.runtime(), &id("t:in")).unwrap();
    let m = rx.recv_timeout(PATIENCE).unwrap();
    assert_eq!(m.topic, "started");
    let args = m.payload.get("args").cloned().unwrap();
    assert_eq!(
        args,
        Value::Array(vec![
            Value::Int(2),
            Value::Float(1.5),
            Value::Bool(true),
            Value::map([("k", Value::from("v"))]),
        ])
    );
    let pid = s.status(&id("t:in")).unwrap().pid.unwrap();
    app.runtime().send(pid, "finish", Value::Nil).unwrap();
    let fin = id("t:in");
    assert!(s.wait_until(PATIENCE, |h| h.contains(&ServiceEvent::Finished { id: fin.clone() })));
    assert_eq!(s.status(&fin).unwrap().state, ServiceState::Finished);
    assert_eq!(starts(&s, "t:in"), 1);
    app.shutdown();
}
