//! Upgrade from one native entry to another (across languages): pid, mailbox, names, links and
//! monitors are kept.

use spindle_runtime::{EventKind, Spawn, Ties, Value};

use crate::common::*;

#[test]
fn upgrade_between_languages_keeps_pid_and_mailbox() {
    let rt = runtime();
    // c → rust → go → c: each hop is a different plugin library.
    let out = exec(&rt, |cx| async move {
        let svc = cx.spawn(
            Spawn::entry(id("native:service.c"), HOST),
            Ties { link: false, monitor: true },
        )?;
        let mut handled = 0;
        for (lang, next) in [
            ("rust", "native:service.rust"),
            ("go", "native:service.go"),
            ("c", "native:service.c"),
        ] {
            // The upgrade request and two echoes sent at once: the echoes wait in the mailbox
            // while the code is swapped, and the new code answers them.
            cx.send(svc, "upgrade", next)?;
            cx.send(svc, "echo", 1)?;
            cx.send(svc, "echo", "two")?;
            handled += 1;
            let up = expect(&cx, "upgraded").await;
            assert_eq!(up.from, svc, "same pid");
            assert_eq!(up.payload.get("pid"), Some(&serial(svc)));
            assert_eq!(up.payload.get("lang"), Some(&Value::from(lang)));
            assert_eq!(up.payload.get("handled"), Some(&Value::Int(handled)), "state passed on");
            assert_eq!(expect(&cx, "echo").await.payload, Value::Int(1));
            assert_eq!(expect(&cx, "echo").await.payload, Value::from("two"));
            handled += 2;
        }
        cx.send(svc, "stop", Value::Nil)?;
        let e = cx.event().await;
        assert_eq!(e.from, svc, "the monitor followed the upgrades");
        assert_eq!(e.result, Some(Ok(Value::Int(handled + 1))));
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

#[test]
fn upgrade_to_a_missing_entry_ends_the_process_with_the_error() {
    let rt = runtime();
    for (lang, entry) in LANGS {
        let out = exec(&rt, move |cx| async move {
            let svc =
                cx.spawn(Spawn::entry(id(entry), HOST), Ties { link: false, monitor: true })?;
            cx.send(svc, "upgrade", "native:nowhere")?;
            let err = cx.event().await.result.unwrap().unwrap_err();
            assert!(err.message().contains("native:nowhere"), "{lang}: {err}");
            Ok(Value::Nil)
        });
        assert_eq!(out, Ok(Value::Nil), "{lang}");
    }
}

#[test]
fn upgrade_without_an_entry_reloads_the_current_one() {
    let rt = runtime();
    for (lang, entry) in LANGS {
        let out = exec(&rt, move |cx| async move {
            let svc =
                cx.spawn(Spawn::entry(id(entry), HOST), Ties { link: false, monitor: true })?;
            cx.send(svc, "echo", 1)?;
            expect(&cx, "echo").await;
            cx.send(svc, "upgrade", Value::Nil)?;
            let up = expect(&cx, "upgraded").await;
            assert_eq!(up.from, svc, "{lang}: same pid");
            assert_eq!(up.payload.get("lang"), Some(&Value::from(lang)), "the same code");
            assert_eq!(up.payload.get("handled"), Some(&Value::Int(2)), "{lang}: state passed on");
            cx.send(svc, "stop", Value::Nil)?;
            let e = cx.event().await;
            assert_eq!((e.from, e.result), (svc, Some(Ok(Value::Int(3)))), "{lang}");
            Ok(Value::Nil)
        });
        assert_eq!(out, Ok(Value::Nil), "{lang}");
    }
}

#[test]
fn upgrade_to_a_malformed_entry_id_ends_the_process_with_invalid() {
    let rt = runtime();
    for (lang, entry) in LANGS {
        let out = exec(&rt, move |cx| async move {
            let svc =
                cx.spawn(Spawn::entry(id(entry), HOST), Ties { link: false, monitor: true })?;
            cx.send(svc, "upgrade", "no colon here")?;
            let err = cx.event().await.result.unwrap().unwrap_err();
            assert_eq!(err.kind(), spindle_runtime::ErrorKind::Invalid, "{lang}: {err}");
            Ok(Value::Nil)
        });
        assert_eq!(out, Ok(Value::Nil), "{lang}");
    }
}

#[test]
fn upgrade_between_languages_keeps_names_and_links() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        cx.set_trap_links(true);
        let svc = cx.spawn(
            Spawn::entry(id("native:service.c"), HOST),
            Ties { link: true, monitor: false },
        )?;
        cx.register("upgraded-service", Some(svc))?;
        for next in ["native:service.rust", "native:service.go"] {
            cx.send(svc, "upgrade", next)?;
            expect(&cx, "upgraded").await;
        }
        // The name still reaches it, now Go code.
        assert_eq!(cx.lookup("upgraded-service"), Some(svc));
        cx.send("upgraded-service", "echo", 3.5)?;
        let echo = expect(&cx, "echo").await;
        assert_eq!((echo.from, echo.payload), (svc, Value::Float(3.5)));
        // The link made with the C code brings the Go code's failure back.
        cx.send(svc, "fail", Value::Nil)?;
        let e = cx.event().await;
        assert_eq!((e.kind, e.from), (EventKind::LinkDown, svc));
        let err = e.result.unwrap().unwrap_err();
        assert!(err.message().contains("asked to fail"), "{err}");
        assert_eq!(cx.lookup("upgraded-service"), None, "the name went with the process");
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}
