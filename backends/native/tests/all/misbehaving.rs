//! A plugin that breaks the contract (`tests/plugins/misbehaving.c`) ends only its own
//! process, with an error that says what it did; what it sends wrongly is refused, not
//! delivered, and its other processes and everyone else go on.

use spindle_runtime::{ErrorKind, Spawn, Ties, Value};

use crate::common::*;

const ENTRY: &str = "bad:misbehaving";

/// Runs role `role` monitored; returns its result and every message it sent.
async fn run_role(
    cx: &spindle_runtime::Cx,
    role: &str,
) -> spindle_runtime::Result<(spindle_runtime::Result<Value>, Vec<(String, Value)>)> {
    let args = vec![Value::from(role), Value::Int(cx.pid().serial() as i64)];
    let p =
        cx.spawn(Spawn::entry(id(ENTRY), HOST).args(args), Ties { link: false, monitor: true })?;
    let e = cx.event().await;
    assert_eq!(e.from, p, "{role}");
    let mut sent = vec![];
    while let Some(m) = cx.try_receive(None) {
        sent.push((m.topic.to_string(), m.payload));
    }
    Ok((e.result.expect("an EXIT carries a result"), sent))
}

#[test]
fn a_plugin_that_breaks_the_contract_ends_only_itself() {
    let lib = compile("misbehaving");
    let rt = runtime();
    rt.put_entry(native_entry(
        ENTRY,
        lib.parent().unwrap(),
        lib.file_name().unwrap().to_str().unwrap(),
    ));
    let out = exec(&rt, |cx| async move {
        // A bystander, started first, answers throughout.
        let svc = cx.spawn(Spawn::entry(id("native:service.c"), HOST), Ties::default())?;

        let (r, _) = run_role(&cx, "bad_status").await?;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
        assert!(e.message().contains("returned 42, which is not a SPINDLE_STEP_* code"), "{e}");
        assert!(e.message().contains("libmisbehaving.so"), "names the plugin: {e}");

        let (r, _) = run_role(&cx, "no_upgrade").await?;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert!(e.message().contains("SPINDLE_STEP_UPGRADE without calling upgrade"), "{e}");

        let (r, _) = run_role(&cx, "silent_error").await?;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unknown, "{e}");
        assert!(e.message().contains("exited with an error without set_error"), "{e}");

        let (r, _) = run_role(&cx, "init_fails").await?;
        let e = r.unwrap_err();
        assert_eq!((e.kind(), e.message()), (ErrorKind::Invalid, "refused to start"), "{e}");

        // Each bad send fails with INVALID, nothing of it arrives, and the process goes on.
        let (r, sent) = run_role(&cx, "bad_sends").await?;
        assert_eq!(r, Ok(Value::Nil));
        let invalid = Value::Int(-3);
        assert_eq!(sent, vec![("codes".to_owned(), Value::Array(vec![invalid; 5]))]);

        cx.send(svc, "echo", "still here")?;
        assert_eq!(expect(&cx, "echo").await.payload, Value::from("still here"));
        cx.send(svc, "stop", Value::Nil)?;
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}
