//! A panic in a Rust or Go plugin ends that process only.

use spindle_runtime::{ErrorKind, Spawn, Ties, Value};

use crate::common::*;

#[test]
fn a_panicking_plugin_ends_only_itself() {
    let rt = runtime();
    for (lang, entry) in [("rust", "native:service.rust"), ("go", "native:service.go")] {
        let out = exec(&rt, move |cx| async move {
            let entry = id(entry);
            let doomed =
                cx.spawn(Spawn::entry(entry.clone(), HOST), Ties { link: false, monitor: true })?;
            let bystander = cx.spawn(Spawn::entry(entry, HOST), Ties::default())?;
            cx.send(doomed, "panic", Value::Nil)?;
            let e = cx.event().await;
            assert_eq!(e.from, doomed);
            let err = e.result.unwrap().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Internal, "{lang}");
            assert!(err.message().contains("asked to panic"), "{lang}: {err}");
            // The other instance of the same plugin, and the runtime, carry on.
            cx.send(bystander, "echo", "still here")?;
            assert_eq!(expect(&cx, "echo").await.payload, Value::from("still here"));
            cx.send(bystander, "stop", Value::Nil)?;
            Ok(Value::Nil)
        });
        assert_eq!(out, Ok(Value::Nil), "{lang}");
    }
}
