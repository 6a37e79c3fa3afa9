//! Links and monitors across backends: Rust processes and native ones watch each other.

use spindle_runtime::{Error, ErrorKind, EventKind, Spawn, Ties, Value};

use crate::common::*;

#[test]
fn a_native_process_monitors_a_rust_process() {
    let rt = runtime();
    for (lang, entry) in LANGS {
        let out = exec(&rt, move |cx| async move {
            let svc = cx.spawn(Spawn::entry(id(entry), HOST), Ties::default())?;
            let victim = cx.spawn(
                proc(|cx| async move {
                    cx.recv().await;
                    Err(Error::new(ErrorKind::Unknown, "the rust side gave up"))
                }),
                Ties::default(),
            )?;
            cx.send(svc, "monitor", serial(victim))?;
            // The monitor is in place before the victim dies.
            expect(&cx, "monitoring").await;
            cx.send(victim, "die", Value::Nil)?;
            let down = expect(&cx, "down").await.payload;
            assert_eq!(
                down,
                Value::Array(vec![
                    serial(victim),
                    Value::Array(vec!["error".into(), "the rust side gave up".into()])
                ]),
                "{lang}"
            );
            cx.send(svc, "stop", Value::Nil)?;
            Ok(Value::Nil)
        });
        assert_eq!(out, Ok(Value::Nil), "{lang}");
    }
}

#[test]
fn a_rust_process_monitors_and_links_native_processes() {
    let rt = runtime();
    for (lang, entry) in LANGS {
        let out = exec(&rt, move |cx| async move {
            cx.set_trap_links(true);
            // Monitor: a clean stop arrives as EXIT with the result.
            let a = cx.spawn(Spawn::entry(id(entry), HOST), Ties { link: false, monitor: true })?;
            cx.send(a, "stop", Value::Nil)?;
            let e = cx.event().await;
            assert_eq!((e.kind, e.from), (EventKind::Exit, a));
            assert_eq!(e.result, Some(Ok(Value::Int(1))), "{lang}");
            // Link: a failure arrives as LINK_DOWN (trapped) with the plugin's error.
            let b = cx.spawn(Spawn::entry(id(entry), HOST), Ties { link: true, monitor: false })?;
            cx.send(b, "fail", Value::Nil)?;
            let e = cx.event().await;
            assert_eq!((e.kind, e.from), (EventKind::LinkDown, b));
            let err = e.result.unwrap().unwrap_err();
            assert!(err.message().contains("asked to fail"), "{lang}: {err}");
            Ok(Value::Nil)
        });
        assert_eq!(out, Ok(Value::Nil), "{lang}");
    }
}

#[test]
fn a_native_process_linked_to_a_failing_rust_process_fails_too() {
    let rt = runtime();
    for (lang, entry) in LANGS {
        let out = exec(&rt, move |cx| async move {
            let svc =
                cx.spawn(Spawn::entry(id(entry), HOST), Ties { link: false, monitor: true })?;
            let victim = cx.spawn(
                proc(|cx| async move {
                    cx.recv().await;
                    Err(Error::new(ErrorKind::Unknown, "rust failure"))
                }),
                Ties::default(),
            )?;
            cx.send(svc, "link", serial(victim))?;
            expect(&cx, "linked").await;
            cx.send(victim, "die", Value::Nil)?;
            let e = cx.event().await;
            assert_eq!((e.kind, e.from), (EventKind::Exit, svc));
            let err = e.result.unwrap().unwrap_err();
            assert!(err.message().contains("rust failure"), "{lang}: {err}");
            Ok(Value::Nil)
        });
        assert_eq!(out, Ok(Value::Nil), "{lang}");
    }
}
