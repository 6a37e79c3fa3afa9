//! Messages both ways between Rust and native processes; values round-trip exactly.

use spindle_runtime::{Spawn, Ties, Value};

use crate::common::*;

fn samples() -> Vec<Value> {
    vec![
        Value::Nil,
        Value::Bool(true),
        Value::Bool(false),
        Value::Int(0),
        Value::Int(-1),
        Value::Int(127),
        Value::Int(-33),
        // Every width of MessagePack integer, both signs.
        Value::Int(200),
        Value::Int(0x1234),
        Value::Int(65_536),
        Value::Int(0x1234_5678),
        Value::Int(0x1234_5678_9abc),
        Value::Int(i64::MAX),
        Value::Int(-100),
        Value::Int(-0x1234),
        Value::Int(-0x1234_5678),
        Value::Int(-0x1234_5678_9abc),
        Value::Int(i64::MIN),
        Value::Float(3.0),
        Value::Float(-0.5),
        Value::Float(1e300),
        Value::Str(String::new()),
        Value::Str("héllo, wörld ✓".into()),
        Value::Str("x".repeat(70_000)),
        Value::Bytes(vec![0, 0xff, 0xfe]),
        Value::Bytes(b"valid utf-8 bytes stay bytes".to_vec()),
        Value::Array(vec![]),
        Value::Array((0..20).map(Value::Int).collect()),
        Value::Map(vec![]),
        Value::map([("int", Value::Int(1)), ("float", Value::Float(1.0)), ("str", "1".into())]),
        Value::Map(vec![
            (Value::Int(1), "int key".into()),
            (Value::Float(2.5), Value::Array(vec![Value::Nil, Value::Bytes(vec![1])])),
            (Value::Bool(true), Value::map([("nested", Value::Array(vec![Value::Map(vec![])]))])),
        ]),
    ]
}

#[test]
fn values_round_trip_exactly_through_every_plugin() {
    let rt = runtime();
    for (lang, entry) in LANGS {
        let out = exec(&rt, move |cx| async move {
            let svc = cx.spawn(Spawn::entry(id(entry), HOST), Ties::default())?;
            for v in samples() {
                cx.send(svc, "echo", v.clone())?;
                let m = expect(&cx, "echo").await;
                assert_eq!(m.from, svc);
                assert_eq!(m.payload, v, "{lang} changed the value");
            }
            cx.send(svc, "stop", Value::Nil)?;
            Ok(Value::Nil)
        });
        assert_eq!(out, Ok(Value::Nil), "{lang}");
    }
}

/// Many request-reply exchanges with plugins of every language at once, in rounds: none is
/// left waiting. (The Go package's wait-any took a completion that came between its look at the
/// awaited operation and its collection of the others, then ended the step waiting for nothing:
/// a Go process hung within a few rounds.)
#[test]
fn concurrent_request_reply_rounds_never_hang() {
    let rt = runtime();
    for round in 0..150 {
        let mut watches = vec![];
        for (lang, entry) in LANGS {
            for _ in 0..4 {
                let (_, watch) = rt
                    .spawn_watched(proc(move |cx| async move {
                        let svc = cx.spawn(Spawn::entry(id(entry), HOST), Ties::default())?;
                        for i in 0..20 {
                            cx.send(svc, "echo", Value::Int(i))?;
                            assert_eq!(expect(&cx, "echo").await.payload, Value::Int(i));
                        }
                        cx.send(svc, "stop", Value::Nil)?;
                        Ok(Value::Nil)
                    }))
                    .unwrap();
                watches.push((lang, watch));
            }
        }
        for (lang, watch) in watches {
            let r = watch.wait_timeout(PATIENCE);
            assert_eq!(r, Some(Ok(Value::Nil)), "round {round}: a {lang} exchange");
        }
    }
}

#[test]
fn a_plugin_result_reaches_its_watcher() {
    let rt = runtime();
    for (lang, entry) in LANGS {
        let (pid, watch) = rt.spawn_watched(Spawn::entry(id(entry), HOST)).unwrap();
        rt.send(pid, "echo", 1).unwrap();
        rt.send(pid, "stop", Value::Nil).unwrap();
        // Two requests handled: the echo and the stop.
        assert_eq!(watch.wait_timeout(PATIENCE).unwrap(), Ok(Value::Int(2)), "{lang}");
    }
}

/// A plugin that ends without giving a result ends with nil (the benchmark's `done` role of
/// the C and Rust examples sends to its parent and returns nothing).
#[test]
fn a_plugin_that_ends_without_a_result_ends_with_nil() {
    let rt = runtime();
    for (lang, entry) in LANGS.into_iter().filter(|(lang, _)| *lang != "go") {
        let out = exec(&rt, move |cx| async move {
            let args = vec![Value::from("done"), serial(cx.pid())];
            let r = cx.exec(Spawn::entry(id(entry), HOST).args(args)).await;
            assert_eq!(expect(&cx, "done").await.topic, "done", "{lang}");
            r
        });
        assert_eq!(out, Ok(Value::Nil), "{lang}");
    }
}

#[test]
fn native_processes_spawn_and_exec_other_entries() {
    let rt = runtime();
    rt.put_entry(spindle_runtime::rust::rust_entry(id("test:plus1"), |_, args| async move {
        Ok(Value::Int(args[0].as_int().unwrap() + 1))
    }));
    let out = exec(&rt, |cx| async move {
        let svc = cx.spawn(Spawn::entry(id("native:service.rust"), HOST), Ties::default())?;
        // exec: the Rust guest waits for a Rust entry's result (41 + 1).
        cx.send(svc, "exec", "test:plus1")?;
        assert_eq!(expect(&cx, "exec").await.payload, Value::Int(42));
        // spawn: the Rust guest starts a C service, linked, and hands over its pid.
        cx.send(svc, "spawn", "native:service.c")?;
        let child = expect(&cx, "spawned").await.payload.as_int().unwrap() as u64;
        let child = cx.pid_from_serial(child).expect("the child is alive");
        cx.send(child, "echo", "hi")?;
        assert_eq!(expect(&cx, "echo").await.payload, Value::from("hi"));
        cx.send(svc, "stop", Value::Nil)?;
        cx.send(child, "stop", Value::Nil)?;
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

/// Messages that wait before the plugin receives are taken at once (the Rust guest uses the
/// host's `receive_now`), in order and exactly; so are those that arrive while it waits.
#[test]
fn queued_and_awaited_messages_arrive_in_order() {
    let rt = runtime();
    for (lang, entry) in LANGS {
        let out = exec(&rt, move |cx| async move {
            let svc = cx.spawn(Spawn::entry(id(entry), HOST), Ties::default())?;
            // A burst sent before the plugin's first step: all queued when it receives, several
            // chunks of its inbox (and of ours when the echoes come back).
            for i in 0..300 {
                cx.send(svc, "echo", Value::Int(i))?;
            }
            for i in 0..300 {
                assert_eq!(expect(&cx, "echo").await.payload, Value::Int(i), "{lang}");
            }
            // One at a time: the plugin is waiting when each arrives.
            for i in 300..310 {
                cx.send(svc, "echo", Value::Int(i))?;
                assert_eq!(expect(&cx, "echo").await.payload, Value::Int(i), "{lang}");
            }
            cx.send(svc, "stop", Value::Nil)?;
            Ok(Value::Nil)
        });
        assert_eq!(out, Ok(Value::Nil), "{lang}");
    }
}
