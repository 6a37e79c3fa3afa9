//! A panic in a Rust plugin ends that process only.

use spindle_runtime::{ErrorKind, Spawn, Ties, Value};

use crate::common::*;

#[test]
fn a_panicking_rust_plugin_ends_only_itself() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let entry = id("native:service.rust");
        let doomed =
            cx.spawn(Spawn::entry(entry.clone(), HOST), Ties { link: false, monitor: true })?;
        let bystander = cx.spawn(Spawn::entry(entry, HOST), Ties::default())?;
        cx.send(doomed, "panic", Value::Nil)?;
        let e = cx.event().await;
        assert_eq!(e.from, doomed);
        let err = e.result.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert!(err.message().contains("asked to panic"), "{err}");
        // The other instance of the same plugin, and the runtime, carry on.
        cx.send(bystander, "echo", "still here")?;
        assert_eq!(expect(&cx, "echo").await.payload, Value::from("still here"));
        cx.send(bystander, "stop", Value::Nil)?;
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}
