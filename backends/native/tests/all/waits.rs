//! Several operations outstanding at once: wait-any (two timers and a receive) and wait-all
//! (two timers).

use std::time::Instant;

use spindle_runtime::{Spawn, Ties, Value};

use crate::common::*;

fn timers(a: i64, b: i64) -> Value {
    Value::map([("a", Value::Int(a)), ("b", Value::Int(b))])
}

#[test]
fn wait_any_wakes_on_the_first_timer() {
    let rt = runtime();
    for (lang, entry) in LANGS {
        let out = exec(&rt, move |cx| async move {
            let svc = cx.spawn(Spawn::entry(id(entry), HOST), Ties::default())?;
            cx.send(svc, "race", timers(5_000, 20))?;
            assert_eq!(expect(&cx, "race").await.payload, Value::from("timer_b"), "{lang}");
            cx.send(svc, "race", timers(20, 5_000))?;
            assert_eq!(expect(&cx, "race").await.payload, Value::from("timer_a"), "{lang}");
            // The losing timers were dropped: the service answers at once.
            cx.send(svc, "echo", 7)?;
            assert_eq!(expect(&cx, "echo").await.payload, Value::Int(7));
            cx.send(svc, "stop", Value::Nil)?;
            Ok(Value::Nil)
        });
        assert_eq!(out, Ok(Value::Nil), "{lang}");
    }
}

#[test]
fn wait_any_wakes_on_a_message_before_the_timers() {
    let rt = runtime();
    for (lang, entry) in LANGS {
        let out = exec(&rt, move |cx| async move {
            let svc = cx.spawn(Spawn::entry(id(entry), HOST), Ties::default())?;
            let t0 = Instant::now();
            cx.send(svc, "race", timers(10_000, 10_000))?;
            cx.send(svc, "poke", Value::Array(vec![1.into(), "two".into()]))?;
            let m = expect(&cx, "race").await;
            assert_eq!(
                m.payload,
                Value::Array(vec!["message".into(), Value::Array(vec![1.into(), "two".into()])]),
                "{lang}"
            );
            assert!(t0.elapsed() < std::time::Duration::from_secs(5), "{lang} waited for a timer");
            cx.send(svc, "stop", Value::Nil)?;
            Ok(Value::Nil)
        });
        assert_eq!(out, Ok(Value::Nil), "{lang}");
    }
}

#[test]
fn wait_all_wakes_only_after_both_timers() {
    let rt = runtime();
    for (lang, entry) in LANGS {
        let out = exec(&rt, move |cx| async move {
            let svc = cx.spawn(Spawn::entry(id(entry), HOST), Ties::default())?;
            // The longer timer second, then first: waiting for the last started (or the
            // first) of them is not waiting for all.
            for (a, b) in [(30, 120), (120, 30)] {
                let t0 = Instant::now();
                cx.send(svc, "all", timers(a, b))?;
                let waited = expect(&cx, "all").await.payload.as_int().unwrap();
                assert!(waited >= 120, "{lang} woke after {waited} ms, before the longer timer");
                assert!(t0.elapsed().as_millis() >= 120);
            }
            cx.send(svc, "stop", Value::Nil)?;
            Ok(Value::Nil)
        });
        assert_eq!(out, Ok(Value::Nil), "{lang}");
    }
}
