//! A native plugin process in Rust: a small service that answers requests, waits on several
//! operations at once (any and all), and can upgrade itself into another entry.
//!
//! Built by `scripts/build-native-examples.sh` into `target/native-examples/`; the protocol is
//! the same for the C and Go examples (see README.md).

use std::time::{Duration, Instant};

use spindle_guest::{Cx, Either, Error, ErrorKind, Pid, Result, Ties, Value, join, select};

fn ms(v: Option<&Value>) -> Duration {
    Duration::from_millis(v.and_then(Value::as_int).unwrap_or(0).max(0) as u64)
}

fn pid_of(v: &Value) -> Result<Pid> {
    v.as_int()
        .map(|p| Pid(p as u64))
        .ok_or_else(|| Error::msg(format!("expected a pid, got {v:?}")))
}

/// The benchmark harness's roles (`bench/src/native.rs`), chosen by the first argument.
async fn bench_role(cx: Cx, role: &str, parent: Pid) -> Result<Value> {
    match role {
        // spawn_exit: tell the parent and end.
        "done" => cx.send(parent, "done", Value::Nil)?,
        // ring: learn the successor, report ready, then pass the token on with one hop less.
        _ => {
            let next = pid_of(&cx.recv().await.payload)?;
            cx.send(parent, "ready", Value::Nil)?;
            loop {
                match cx.recv().await.payload.as_int() {
                    Some(0) => cx.send(parent, "ring_done", Value::Nil)?,
                    Some(left) => cx.send(next, "token", left - 1)?,
                    None => return Err(Error::msg("ring node got a non-integer token")),
                }
            }
        }
    }
    Ok(Value::Nil)
}

/// The SDK's calls one after another (the `calls` request, `entry` being this service's own
/// entry): names, sends by name and by pid text, a listened topic, a yield, and a child that
/// is linked and unlinked, cancelled (which it ignores) and terminated. Returns what went
/// wrong, if anything.
async fn sdk_calls(cx: &Cx, entry: &str) -> Vec<String> {
    let mut bad = vec![];
    let mut check = |ok: bool, what: &str| {
        if !ok {
            bad.push(what.to_owned());
        }
    };
    let me = cx.pid();
    check(cx.register("calls-rust").is_ok(), "register");
    check(cx.lookup("calls-rust") == Some(me), "lookup");
    check(cx.send_to("calls-rust", "by-name", 1).is_ok(), "send_to a name");
    match cx.pid_text(me) {
        Ok(text) => check(cx.send_to(&text, "by-text", 2).is_ok(), "send_to a pid's text"),
        Err(_) => check(false, "pid_text"),
    }
    for (topic, v) in [("by-name", 1), ("by-text", 2)] {
        let m = cx.recv().await;
        check(m.topic == topic && m.payload == Value::Int(v), topic);
    }
    check(cx.unregister("calls-rust").is_ok(), "unregister");
    check(cx.lookup("calls-rust").is_none(), "lookup after unregister");
    check(cx.listen("calls-topic").is_ok(), "listen");
    check(cx.send(me, "calls-topic", 3).is_ok(), "send to a listened topic");
    let got = cx.recv_topic("calls-topic").await;
    check(matches!(got, Ok(m) if m.payload == Value::Int(3)), "recv_topic");
    check(cx.unlisten("calls-topic").is_ok(), "unlisten");
    check(cx.send(me, "calls-topic", 4).is_ok(), "send after unlisten");
    let m = cx.recv().await;
    check(m.topic == "calls-topic" && m.payload == Value::Int(4), "the inbox after unlisten");
    cx.yield_now().await;
    // A receive kept (by `&mut`) from a select it lost stays outstanding; a join of two timers
    // meanwhile ends when they do (the host's wait-all would wait for the receive too), and
    // the receive still gets the next message.
    let mut kept = std::pin::pin!(cx.recv());
    let lost = select(&mut kept, cx.sleep(Duration::from_millis(1))).await;
    check(matches!(lost, Either::Right(())), "a select the timer wins");
    join(cx.sleep(Duration::from_millis(2)), cx.sleep(Duration::from_millis(5))).await;
    check(cx.send(me, "after-join", 5).is_ok(), "send to myself");
    check(kept.await.payload == Value::Int(5), "the kept receive after a join");
    match cx.spawn(entry, vec![], Ties { link: false, monitor: true }) {
        Ok(child) => {
            check(cx.link(child).is_ok() && cx.unlink(child).is_ok(), "link and unlink");
            check(cx.cancel(child, Some("bye".into())).is_ok(), "cancel");
            check(cx.terminate(child).is_ok(), "terminate");
            let ev = cx.event().await;
            let canceled = matches!(&ev.result, Some(Err(e)) if e.kind() == ErrorKind::Canceled);
            check(ev.from == child && canceled, "the EXIT of a terminated child");
        }
        Err(_) => check(false, "spawn"),
    }
    bad
}

async fn service(cx: Cx, args: Vec<Value>) -> Result<Value> {
    if let [Value::Str(role), parent] = args.as_slice() {
        return bench_role(cx, role, pid_of(parent)?).await;
    }
    let mut handled = args.first().and_then(Value::as_int).unwrap_or(0);
    if let Some(to) = args.get(1) {
        // Started by an upgrade: tell the requester who we are now.
        let me = Value::Int(cx.pid().0 as i64);
        cx.send(
            pid_of(to)?,
            "upgraded",
            Value::map([("handled", handled.into()), ("pid", me), ("lang", "rust".into())]),
        )?;
    }
    loop {
        let m = cx.recv().await;
        handled += 1;
        let from = m.from;
        match m.topic.as_str() {
            "echo" => cx.send(from, "echo", m.payload)?,
            // Two timers and a receive at once; the first to complete wins (wait-any).
            "race" => {
                let (a, b) = (ms(m.payload.get("a")), ms(m.payload.get("b")));
                let timers = select(cx.sleep(a), cx.sleep(b));
                let winner = match select(timers, cx.recv()).await {
                    Either::Left(Either::Left(())) => Value::from("timer_a"),
                    Either::Left(Either::Right(())) => Value::from("timer_b"),
                    Either::Right(msg) => Value::Array(vec!["message".into(), msg.payload]),
                };
                cx.send(from, "race", winner)?;
            }
            // Two timers at once, both awaited (wait-all).
            "all" => {
                let (a, b) = (ms(m.payload.get("a")), ms(m.payload.get("b")));
                let t0 = Instant::now();
                join(cx.sleep(a), cx.sleep(b)).await;
                cx.send(from, "all", Value::Int(t0.elapsed().as_millis() as i64))?;
            }
            "monitor" => {
                let target = pid_of(&m.payload)?;
                cx.monitor(target)?;
                cx.send(from, "monitoring", Value::Nil)?;
                let ev = cx.event().await;
                let how = match ev.result {
                    Some(Ok(v)) => Value::Array(vec!["ok".into(), v]),
                    Some(Err(e)) => Value::Array(vec!["error".into(), e.message().into()]),
                    None => Value::Nil,
                };
                cx.send(from, "down", Value::Array(vec![Value::Int(ev.from.0 as i64), how]))?;
            }
            "link" => {
                cx.link(pid_of(&m.payload)?)?;
                cx.send(from, "linked", Value::Nil)?;
            }
            "spawn" => {
                let entry = m.payload.as_str().unwrap_or_default().to_owned();
                let child = cx.spawn(&entry, vec![], Ties { link: true, monitor: false })?;
                cx.send(from, "spawned", Value::Int(child.0 as i64))?;
            }
            "exec" => {
                let entry = m.payload.as_str().unwrap_or_default().to_owned();
                let r = cx.exec(&entry, vec![Value::Int(41)]).await;
                cx.send(from, "exec", r.unwrap_or_else(|e| e.message().into()))?;
            }
            "upgrade" => {
                let entry = m.payload.as_str().map(str::to_owned);
                let args = vec![Value::Int(handled), Value::Int(from.0 as i64)];
                return Err(cx.upgrade(entry.as_deref(), args).await);
            }
            "calls" => {
                let entry = m.payload.as_str().unwrap_or_default().to_owned();
                // Boxed: its state would otherwise grow every idle service's future.
                let bad = Box::pin(sdk_calls(&cx, &entry)).await;
                cx.send(from, "calls", Value::Array(bad.into_iter().map(Value::from).collect()))?;
            }
            "fail" => return Err(Error::msg(format!("asked to fail: {:?}", m.payload))),
            "panic" => panic!("asked to panic"),
            "stop" => return Ok(Value::Int(handled)),
            other => cx.log(spindle_guest::abi::LOG_WARN, &format!("unknown request `{other}`")),
        }
    }
}

spindle_guest::plugin!(service);
