//! The host functions the example services do not call, made by `tests/plugins/calls.c` (one
//! role per behaviour): names and sends by name, options and events, link/monitor undone,
//! topics, wait-all and `next_completion`, dropped receives, exec's failures, bad completion
//! pointers, cancel/terminate from a plugin, log, yield, and when `drop` runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use spindle_native::{Level, NativeBackend};
use spindle_runtime::{Cx, ErrorKind, HostConfig, Pid, Result, Runtime, Spawn, Ties, Value};

use crate::common::*;

const ENTRY: &str = "test:calls";

const OK: i64 = 0;
const NONE: i64 = 1;
const NOT_FOUND: i64 = -1;
const ALREADY_EXISTS: i64 = -2;
const INVALID: i64 = -3;
const TIMEOUT: i64 = -8;

/// What a role did: its pid, its "report", the other messages it had sent by the time it
/// ended (topic, payload), and its result.
struct Ran {
    pid: Pid,
    report: Vec<i64>,
    texts: Vec<(String, Value)>,
    result: Result<Value>,
}

impl Ran {
    fn text(&self, topic: &str) -> String {
        let (_, v) = self.texts.iter().find(|(t, _)| t == topic).unwrap_or_else(|| {
            panic!("no `{topic}` among {:?}", self.texts);
        });
        v.as_str().expect("a text").to_owned()
    }
}

fn spawn_role(cx: &Cx, role: &str, x: Value) -> Result<Pid> {
    let args = vec![Value::from(role), serial(cx.pid()), x];
    cx.spawn(Spawn::entry(id(ENTRY), HOST).args(args), Ties { link: false, monitor: true })
}

/// Runs role `role` with `x` as its third argument until it ends. What it sent is in the
/// inbox by then (a send is delivered before it returns).
async fn run_role(cx: &Cx, role: &str, x: Value) -> Result<Ran> {
    let pid = spawn_role(cx, role, x)?;
    let e = cx.event().await;
    assert_eq!(e.from, pid, "{role}: the EXIT of another process");
    let mut report = None;
    let mut texts = vec![];
    while let Some(m) = cx.try_receive(None) {
        if m.topic == "report" {
            let Value::Array(items) = m.payload else { panic!("{role}: {:?}", m.payload) };
            report = Some(items.iter().map(|v| v.as_int().expect("integers")).collect());
        } else {
            texts.push((m.topic.to_string(), m.payload));
        }
    }
    let result = e.result.expect("an EXIT carries a result");
    let report = report.unwrap_or_else(|| panic!("{role} sent no report; it ended {result:?}"));
    Ok(Ran { pid, report, texts, result })
}

/// A runtime whose native backend logs into `log`, with the calls plugin as `test:calls`,
/// built as `lib<library>.so` (each test its own copy: the plugin counts its instances).
fn calls_runtime(library: &str, log: Arc<Mutex<Vec<(Pid, Level, String)>>>) -> Runtime {
    let lib = compile_as("calls", library);
    let logger = Arc::new(move |pid, level, msg: &str| {
        log.lock().unwrap().push((pid, level, msg.to_owned()));
    });
    let rt = Runtime::builder()
        .host(HostConfig::new(HOST).workers(2))
        .backend(NativeBackend::new().with_logger(logger))
        .build()
        .expect("runtime starts");
    let file = lib.file_name().unwrap().to_str().unwrap();
    rt.put_entry(native_entry(ENTRY, lib.parent().unwrap(), file));
    rt
}

#[test]
fn host_calls_do_what_the_header_says() {
    let log = Arc::new(Mutex::new(vec![]));
    let rt = calls_runtime("calls", log.clone());
    let entry = Value::from(ENTRY);
    let out = exec(&rt, move |cx| async move {
        // Names: register, clash, lookup, send by name and by pid text, unregister; pid_text;
        // last_error before any failure and after one.
        let ran = run_role(&cx, "names", Value::Nil).await?;
        assert_eq!(ran.result, Ok(Value::Nil));
        let expected = [
            NONE,           // last_error, nothing failed yet
            OK,             // register "calls-a" (me)
            ALREADY_EXISTS, // register it again
            OK,             // lookup "calls-a"
            1,              // … is my pid
            NOT_FOUND,      // lookup "calls-none"
            OK,             // last_error (its text is checked below)
            OK,             // send_to "calls-a"
            OK,             // pid_text(me)
            OK,             // send_to my pid's text
            NOT_FOUND,      // send_to "calls-none"
            OK,             // unregister "calls-a"
            NOT_FOUND,      // lookup "calls-a" again
            INVALID,        // pid_text(0)
            2,              // the two messages sent to myself arrived
        ];
        assert_eq!(ran.report, expected);
        assert!(ran.text("last_error").contains("calls-none"), "{:?}", ran.texts);
        assert_eq!(ran.text("pid_text"), ran.pid.to_string());

        // trap_links: a linked child's failure is a LINK_DOWN event (2) with its error, and
        // the trapping process goes on; an unknown option is INVALID.
        let ran = run_role(&cx, "trap", entry.clone()).await?;
        assert_eq!(ran.report, [OK, INVALID, OK, 2, 1, TIMEOUT]);
        assert_eq!(ran.result, Ok(Value::Nil));

        // unlink and unmonitor: the child's failure reaches nobody; a monitor of the dead
        // child then reports its EXIT (1) at once, with NOT_FOUND.
        let ran = run_role(&cx, "unlinks", entry.clone()).await?;
        assert_eq!(ran.report, [OK, OK, OK, OK, OK, OK, OK, 1, 1, NOT_FOUND]);
        assert_eq!(ran.result, Ok(Value::Nil));

        // listen/unlisten, and receive of a topic.
        let ran = run_role(&cx, "topics", Value::Nil).await?;
        assert_eq!(ran.report, [OK, OK, 2, OK, 1, 1, OK, OK, 3, 1]);

        // Wait-all wakes once both timers are done (two outstanding, then none);
        // next_completion: oldest first, then NONE.
        let ran = run_role(&cx, "next", Value::Nil).await?;
        assert_eq!(ran.report, [2, 0, OK, 1, OK, 1, NONE]);

        // A dropped receive that had taken a message puts it back.
        let ran = run_role(&cx, "drop_requeue", Value::Nil).await?;
        assert_eq!(ran.report, [OK, OK, OK, 7]);

        // exec: a failing process completes as EXIT (4) with its error; an entry that does
        // not exist completes as FAILED (5) with NOT_FOUND; a malformed id fails at once.
        let ran = run_role(&cx, "exec_fail", entry.clone()).await?;
        assert_eq!(ran.report, [OK, OK, INVALID, OK, 4, TIMEOUT, OK, 5, NOT_FOUND]);
        assert_eq!(ran.text("exec_error"), "told to fail");

        // A NULL or too small completion, or a NULL tag pointer, is refused before anything
        // is taken: the completion is still there for a good call.
        let ran = run_role(&cx, "bad_out", Value::Nil).await?;
        assert_eq!(ran.report, [OK, INVALID, INVALID, OK, 5, OK, INVALID, OK, 6, INVALID]);

        // A plugin's cancel reaches its target as a CANCEL event (3), from the canceller,
        // with the reason.
        let me = serial(cx.pid());
        let target = spawn_role(&cx, "cancel_me", Value::Nil)?;
        assert_eq!(cx.recv().await.topic, "waiting");
        let ran = run_role(&cx, "stop", serial(target)).await?;
        assert_eq!(ran.report, [OK]);
        let mut texts = ran.texts;
        while texts.len() < 2 {
            let m = cx.recv().await;
            texts.push((m.topic.to_string(), m.payload));
        }
        texts.sort_by(|a, b| a.0.cmp(&b.0));
        let stopper = serial(ran.pid).as_int().unwrap();
        assert_eq!(texts[0], ("cancelled".into(), Value::Array(vec![3.into(), stopper.into()])));
        assert_eq!(texts[1], ("reason".into(), Value::from("bye")));
        let e = cx.event().await;
        assert_eq!((e.from, e.result), (target, Some(Ok(Value::Nil))));

        // terminate from a plugin: monitors see CANCELED.
        let waiter = spawn_role(&cx, "wait", Value::Nil)?;
        let ran = run_role(&cx, "kill", serial(waiter)).await?;
        assert_eq!(ran.report, [OK]);
        let e = cx.event().await;
        assert_eq!(e.from, waiter);
        assert_eq!(e.result.unwrap().unwrap_err().kind(), ErrorKind::Canceled);

        // A spawn without a pid pointer is INVALID and starts nothing (its linked child would
        // have failed at once and ended the spawner).
        let ran = run_role(&cx, "spawn_null", entry.clone()).await?;
        assert_eq!((ran.report, ran.result), (vec![INVALID], Ok(Value::Nil)));

        // send: pid 0 is INVALID; a dead pid is not an error (the message is dropped).
        let dead = run_role(&cx, "drop_requeue", Value::Nil).await?.pid;
        let ran = run_role(&cx, "sends", serial(dead)).await?;
        assert_eq!(ran.report, [INVALID, OK]);

        // log: the logger gets the text at its level; an unknown level is INVALID.
        let ran = run_role(&cx, "log", Value::Nil).await?;
        assert_eq!(ran.report, [OK, INVALID]);

        // yield: stepped again after each yield, with nothing outstanding (4 steps).
        let p = spawn_role(&cx, "yield", Value::Nil)?;
        let e = cx.event().await;
        assert_eq!((e.from, e.result), (p, Some(Ok(Value::Int(4)))));

        // A failed init makes no instance: drop is never called for it.
        let p = spawn_role(&cx, "init_fails", Value::Nil)?;
        let e = cx.event().await;
        assert_eq!(e.from, p);
        assert_eq!(e.result.unwrap().unwrap_err().message(), "refused to start");

        // drop runs once for every instance init made: all but the counting one have ended
        // (the children some roles left behind end on their own, so their drops may still
        // be on their way).
        for _ in 0..500 {
            let ran = run_role(&cx, "counts", Value::Nil).await?;
            let [inits, drops] = ran.report[..] else { panic!("{:?}", ran.report) };
            assert!(drops < inits, "more drops than instances: {:?}", ran.report);
            if drops == inits - 1 {
                let _ = me;
                return Ok(Value::Nil);
            }
            cx.sleep(Duration::from_millis(10)).await;
        }
        panic!("some instances were never dropped");
    });
    assert_eq!(out, Ok(Value::Nil));
    let log = log.lock().unwrap();
    assert!(
        log.iter().any(|(_, level, msg)| *level == Level::Info && msg == "hello from calls"),
        "{log:?}"
    );
}

/// An upgradable plugin process gets OUTDATED (event 4) when its entry changes; one that did
/// not ask to be upgradable is not told.
#[test]
fn an_upgradable_plugin_is_told_its_entry_changed() {
    let rt = calls_runtime("calls_outdated", Arc::new(Mutex::new(vec![])));
    let spawn = |upgradable: i64| {
        let args = vec!["outdated".into(), Value::Int(0), Value::Int(upgradable)];
        rt.spawn_watched(Spawn::entry(id(ENTRY), HOST).args(args)).unwrap()
    };
    let (_, told) = spawn(1);
    let (plain, _) = spawn(2);
    for name in ["outdated-1", "outdated-2"] {
        let deadline = std::time::Instant::now() + PATIENCE;
        while rt.lookup(name).is_none() {
            assert!(std::time::Instant::now() < deadline, "{name} never got ready");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    assert_eq!(rt.notify_outdated(&id(ENTRY)), 1, "only the upgradable one is told");
    assert_eq!(told.wait_timeout(PATIENCE).unwrap(), Ok(Value::Int(4)));
    rt.terminate(plain).unwrap();
}

/// The Rust guest SDK's and the Go package's calls, made by the example services (the `calls`
/// request): each answers with what went wrong, nothing.
#[test]
fn the_rust_and_go_sdks_make_their_calls() {
    let rt = runtime();
    for (lang, entry) in LANGS.into_iter().filter(|(lang, _)| *lang != "c") {
        let out = exec(&rt, move |cx| async move {
            let svc = cx.spawn(Spawn::entry(id(entry), HOST), Ties::default())?;
            cx.send(svc, "calls", entry)?;
            let reply = expect(&cx, "calls").await;
            cx.send(svc, "stop", Value::Nil)?;
            Ok(reply.payload)
        });
        assert_eq!(out, Ok(Value::Array(vec![])), "{lang}: these calls went wrong");
    }
}
