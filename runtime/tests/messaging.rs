//! Messages: per-sender order, topics vs the inbox, names, limits, bad input.

mod common;

use common::*;
use spindle_runtime::{Completion, ErrorKind, HostConfig, Op, Spawn, Ties, Value};

#[test]
fn request_reply() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let child = cx.spawn(
            proc(|cx| async move {
                let m = cx.recv().await;
                cx.send(m.from, "reply", m.payload.as_int().unwrap() * 2)?;
                Ok(Value::Nil)
            }),
            Ties::default(),
        )?;
        cx.send(child, "req", 21)?;
        let reply = cx.recv().await;
        assert_eq!(reply.from, child);
        assert_eq!(reply.topic, "reply");
        Ok(reply.payload)
    });
    assert_eq!(out, Ok(Value::Int(42)));
}

#[test]
fn per_sender_order_under_many_concurrent_senders() {
    const SENDERS: i64 = 16;
    const EACH: i64 = 5_000;
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        for s in 0..SENDERS {
            cx.spawn(
                proc(move |cx| async move {
                    for i in 0..EACH {
                        cx.send(me, "n", Value::Array(vec![s.into(), i.into()]))?;
                        if i % 100 == 0 {
                            cx.yield_now().await;
                        }
                    }
                    Ok(Value::Nil)
                }),
                Ties::default(),
            )?;
        }
        let mut next = vec![0i64; SENDERS as usize];
        for _ in 0..SENDERS * EACH {
            let m = cx.recv().await;
            let a = m.payload.as_array().unwrap();
            let (s, i) = (a[0].as_int().unwrap() as usize, a[1].as_int().unwrap());
            assert_eq!(i, next[s], "sender {s} out of order");
            next[s] += 1;
        }
        assert!(next.iter().all(|&n| n == EACH));
        Ok(Value::Bool(true))
    });
    assert_eq!(out, Ok(Value::Bool(true)));
}

#[test]
fn listened_topics_have_their_own_queue() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        cx.send(me, "a", 1)?;
        cx.send(me, "b", 2)?;
        cx.send(me, "a", 3)?;
        cx.listen("a")?; // moves the queued `a` messages, in order
        assert_eq!(cx.listen("a").unwrap_err().kind(), ErrorKind::AlreadyExists);
        cx.send(me, "a", 4)?;
        let mut got = vec![];
        for _ in 0..3 {
            got.push(cx.recv_topic("a").await?.payload);
        }
        got.push(cx.recv().await.payload);
        assert!(cx.recv_topic("zzz").await.is_err(), "not listened");
        Ok(Value::Array(got))
    });
    assert_eq!(out, Ok(Value::Array(vec![1.into(), 3.into(), 4.into(), 2.into()])));
}

/// Messages put back go in front of their queues in order, ahead of what came meanwhile and of
/// what a receive had taken out behind them, and reach a receive already waiting.
#[test]
fn put_back_messages_come_first_again() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        cx.listen("t")?;
        for i in 1..=4 {
            cx.send(me, "m", i)?;
        }
        cx.send(me, "t", 10)?;
        let (a, b) = (cx.recv().await, cx.recv().await);
        let t = cx.recv_topic("t").await?;
        cx.send(me, "m", 5)?;
        cx.send(me, "t", 11)?;
        cx.put_back(vec![a, b, t]);
        let mut got = vec![];
        for _ in 0..5 {
            got.push(cx.recv().await.payload);
        }
        for _ in 0..2 {
            got.push(cx.recv_topic("t").await?.payload);
        }
        // A receive already waiting takes a message put back.
        cx.send(me, "m", 6)?;
        let six = cx.recv().await;
        let tag = cx.start(Op::Receive { topic: None });
        cx.put_back(vec![six]);
        let Some(Completion::Message(six)) = cx.take_completion(tag) else {
            panic!("the waiting receive did not take the message put back")
        };
        assert!(cx.try_receive(None).is_none());
        got.push(six.payload);
        // A receive that completed with a later message takes the one put back instead.
        cx.send(me, "m", 7)?;
        let seven = cx.recv().await;
        let tag = cx.start(Op::Receive { topic: None });
        cx.send(me, "m", 8)?;
        cx.put_back(vec![seven]);
        let Some(Completion::Message(m)) = cx.take_completion(tag) else { panic!("no message") };
        got.push(m.payload);
        got.push(cx.recv().await.payload);
        Ok(Value::Array(got))
    });
    let want = [1, 2, 3, 4, 5, 10, 11, 6, 7, 8];
    assert_eq!(out, Ok(Value::Array(want.into_iter().map(Value::from).collect())));
}

/// Events put back come first again, also to an event receive that completed with a later one.
#[test]
fn put_back_events_come_first_again() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let child = |n: i64| {
            proc(move |cx| async move {
                cx.recv().await;
                Ok(Value::Int(n))
            })
        };
        let (a, b) = (cx.spawn(child(1), Ties::default())?, cx.spawn(child(2), Ties::default())?);
        cx.monitor(a);
        cx.monitor(b);
        cx.send(a, "go", Value::Nil)?;
        let first = cx.event().await;
        assert_eq!(first.from, a);
        let tag = cx.start(Op::Event);
        cx.send(b, "go", Value::Nil)?;
        // b's EXIT most likely completes the event receive meanwhile (the swap); if not yet, the
        // receive takes the event put back and b's comes after: the order holds either way.
        while cx.is_alive(b) {
            cx.sleep(std::time::Duration::from_millis(1)).await;
        }
        cx.sleep(std::time::Duration::from_millis(5)).await;
        cx.put_back_events(vec![first]);
        let Some(Completion::Event(e)) = cx.take_completion(tag) else { panic!("no event") };
        let second = cx.event().await;
        // The put-back EXIT (the first child's) comes first, the later one after it.
        Ok(Value::Bool(e.from == a && second.from == b))
    });
    assert_eq!(out, Ok(Value::Bool(true)));
}

#[test]
fn unlisten_returns_messages_to_inbox() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        cx.listen("t")?;
        cx.send(cx.pid(), "t", "x")?;
        cx.unlisten("t")?;
        assert_eq!(cx.unlisten("t").unwrap_err().kind(), ErrorKind::NotFound);
        Ok(cx.recv().await.payload)
    });
    assert_eq!(out, Ok(Value::from("x")));
}

#[test]
fn bad_topics_are_invalid() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        assert_eq!(cx.send(me, "", 1).unwrap_err().kind(), ErrorKind::Invalid);
        assert_eq!(cx.send(me, "@sys", 1).unwrap_err().kind(), ErrorKind::Invalid);
        assert_eq!(cx.listen("@x").unwrap_err().kind(), ErrorKind::Invalid);
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

/// What no process could take is refused from its sender, not raised in its receiver: a map
/// key that is NaN, nesting deeper than 128 levels; the same for spawn arguments.
#[test]
fn payloads_no_process_can_take_are_invalid() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        let nan_key = Value::Map(vec![(Value::Float(f64::NAN), Value::Int(1))]);
        let nested = |levels: usize| (0..levels).fold(Value::Int(0), |v, _| Value::Array(vec![v]));
        let e = cx.send(me, "t", Value::Array(vec![nan_key.clone()])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.message().contains("NaN"), "{e}");
        let e = cx.send(me, "t", nested(200)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.message().contains("too deep"), "{e}");
        cx.send(me, "t", nested(128))?;
        assert_eq!(cx.recv().await.payload, nested(128), "128 levels still go");
        let child = Spawn::process(
            spindle_runtime::rust::AsyncProcess::new(|_| async { Ok(Value::Nil) }),
            HOST,
        )
        .args(vec![nan_key]);
        assert_eq!(cx.spawn(child, Ties::default()).unwrap_err().kind(), ErrorKind::Invalid);
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

/// A payload handed over as MessagePack bytes arrives as the value they encode (empty bytes
/// are nil); bytes that are not one value, or one no process can take, are refused from the
/// sender and nothing arrives.
#[test]
fn msgpack_payloads_arrive_decoded_or_are_refused() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        let peer = cx.spawn(
            proc(|cx| async move {
                let mut got = vec![];
                loop {
                    let m = cx.recv().await;
                    if m.topic == "end" {
                        cx.send(m.from, "got", Value::Array(got))?;
                        return Ok(Value::Nil);
                    }
                    got.push(Value::Array(vec![m.topic.as_str().into(), m.payload]));
                }
            }),
            Ties::default(),
        )?;
        let compound = Value::map([
            ("n", Value::Int(-7)),
            ("xs", Value::Array(vec![Value::Float(0.5), "s".into(), Value::Bytes(vec![0xff])])),
        ]);
        let nan_key = Value::Map(vec![(Value::Float(f64::NAN), Value::Int(1))]).to_msgpack();
        // Twice to each: the first send finds the receiver through the table, the next
        // through the sender's last destination.
        for dest in [me, peer, me, peer] {
            cx.send_serial_msgpack(dest.serial(), "int", &Value::Int(42).to_msgpack())?;
            cx.send_serial_msgpack(dest.serial(), "map", &compound.to_msgpack())?;
            cx.send_serial_msgpack(dest.serial(), "nil", &[])?;
            let e = cx.send_serial_msgpack(dest.serial(), "bad", &[0xc1]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
            let e = cx.send_serial_msgpack(dest.serial(), "bad", &[0x01, 0x02]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Invalid, "trailing bytes: {e}");
            let e = cx.send_serial_msgpack(dest.serial(), "bad", &nan_key).unwrap_err();
            assert!(e.kind() == ErrorKind::Invalid && e.message().contains("NaN"), "{e}");
            let e = cx.send_serial_msgpack(dest.serial(), "@x", &[0x01]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        }
        let expected = |n: usize| {
            let one = [("int", Value::Int(42)), ("map", compound.clone()), ("nil", Value::Nil)];
            let each = one.map(|(t, v)| Value::Array(vec![t.into(), v]));
            (0..n).flat_map(|_| each.clone()).collect::<Vec<_>>()
        };
        let mut mine = vec![];
        for _ in 0..6 {
            let m = cx.recv().await;
            assert_eq!(m.from, me);
            mine.push(Value::Array(vec![m.topic.as_str().into(), m.payload]));
        }
        assert_eq!(mine, expected(2));
        cx.send(peer, "end", Value::Nil)?;
        let got = cx.recv().await;
        assert_eq!(got.payload, Value::Array(expected(2)), "the peer got each one, in order");
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

#[test]
fn sending_to_dead_pid_is_fine_but_unknown_name_is_not_found() {
    let rt = runtime();
    let dead = exec(&rt, |cx| async move { Ok(cx.pid().to_string().into()) }).unwrap();
    let dead: spindle_runtime::Pid = dead.as_str().unwrap().parse().unwrap();
    assert!(!rt.is_alive(dead));
    assert_eq!(rt.send(dead, "t", 1), Ok(()));
    assert_eq!(rt.send("nobody", "t", 1).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn mailbox_limit_rate_limits_and_drops_nothing() {
    let rt = runtime_with(HostConfig::new(HOST).workers(2).mailbox_limit(3));
    let out = exec(&rt, |cx| async move {
        let child = cx.spawn(
            proc(|cx| async move {
                // Wait until told, then read everything that was queued.
                let _go = cx.event().await;
                let mut got = vec![];
                while let Some(m) = cx.try_receive(None) {
                    got.push(m.payload);
                }
                Ok(Value::Array(got))
            }),
            Ties { link: false, monitor: true },
        )?;
        for i in 0..3 {
            cx.send(child, "m", i)?;
        }
        let err = cx.send(child, "m", 3).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimited);
        assert!(err.message().contains(&child.to_string()), "{err}");
        cx.cancel(child, None)?;
        let exit = cx.event().await;
        exit.result.unwrap()
    });
    assert_eq!(out, Ok(Value::Array(vec![0.into(), 1.into(), 2.into()])));
}

#[test]
fn names_register_lookup_and_release_on_exit() {
    let rt = runtime();
    let (pid, watch) = rt
        .spawn_watched(proc(|cx| async move {
            cx.register("svc", None)?;
            assert_eq!(cx.register("svc", None).unwrap_err().kind(), ErrorKind::AlreadyExists);
            assert_eq!(cx.register("", None).unwrap_err().kind(), ErrorKind::Invalid);
            let m = cx.recv().await; // sent by name
            Ok(m.payload)
        }))
        .unwrap();
    let t0 = std::time::Instant::now();
    while rt.lookup("svc").is_none() {
        assert!(t0.elapsed() < PATIENCE);
        std::thread::yield_now();
    }
    assert_eq!(rt.lookup("svc"), Some(pid));
    rt.send("svc", "hello", "by name").unwrap();
    assert_eq!(watch.wait(), Ok(Value::from("by name")));
    assert_eq!(rt.lookup("svc"), None, "released on exit");
    assert_eq!(rt.send("svc", "t", 1).unwrap_err().kind(), ErrorKind::NotFound);
    // The name is free again.
    let out = exec(&rt, |cx| async move {
        cx.register("svc", None)?;
        cx.unregister("svc")?;
        assert_eq!(cx.lookup("svc"), None);
        assert_eq!(cx.unregister("svc").unwrap_err().kind(), ErrorKind::NotFound);
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

#[test]
fn external_send_and_pid_text() {
    let rt = runtime();
    let (pid, watch) =
        rt.spawn_watched(proc(|cx| async move { Ok(cx.recv().await.payload) })).unwrap();
    let text = pid.to_string();
    assert!(text.starts_with("{test:main|0x") && text.ends_with('}'), "{text}");
    assert_eq!(text.parse::<spindle_runtime::Pid>().unwrap(), pid);
    rt.send(text.as_str(), "t", Value::Bytes(vec![0xff, 0])).unwrap();
    assert_eq!(watch.wait(), Ok(Value::Bytes(vec![0xff, 0])));
}

#[test]
fn spawn_on_unknown_host_or_entry_fails_clearly() {
    let rt = runtime();
    let err = rt
        .spawn(Spawn::process(
            spindle_runtime::rust::AsyncProcess::new(|_| async { Ok(Value::Nil) }),
            "nope:host",
        ))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("nope:host"), "{err}");
    let err = rt.spawn(Spawn::entry("app:missing".parse().unwrap(), HOST)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("app:missing"), "{err}");
}

#[test]
fn host_process_limit() {
    let rt = runtime_with(HostConfig::new(HOST).workers(1).max_processes(2));
    let a = spawn(&rt, |cx| async move { Ok(cx.recv().await.payload) });
    let b = spawn(&rt, |cx| async move { Ok(cx.recv().await.payload) });
    let err = rt.spawn(proc(|_| async { Ok(Value::Nil) })).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let wa = rt.watch(a);
    rt.send(a, "t", 1).unwrap();
    wa.wait().unwrap();
    rt.spawn(proc(|_| async { Ok(Value::Nil) })).expect("room again");
    rt.terminate(b).unwrap();
}

#[test]
fn pids_from_serials() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        assert_eq!(cx.pid_from_serial(me.serial()), Some(me));
        assert_eq!(cx.pid_from_serial(u64::MAX), None);
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

/// A run of messages to one peer goes straight to its record (no table lookup from the second
/// message on): order and limits hold as before, and once the peer has ended, further messages
/// are dropped like any message to an ended process.
#[test]
fn runs_of_messages_to_one_peer_keep_order_and_end_with_it() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        let echo = cx.spawn(
            proc(move |cx| async move {
                loop {
                    let m = cx.recv().await;
                    if m.topic == "stop" {
                        return Ok(Value::Nil);
                    }
                    cx.send(me, "echo", m.payload)?;
                }
            }),
            Ties { link: false, monitor: true },
        )?;
        let other = cx.spawn(
            proc(move |cx| async move {
                let m = cx.recv().await;
                cx.send(me, "other", m.payload)?;
                Ok(Value::Nil)
            }),
            Ties::default(),
        )?;
        for i in 0..1000 {
            cx.send(echo, "n", i)?;
        }
        // A message to someone else in between, then the run goes on.
        cx.send(other, "n", -1)?;
        for i in 1000..2000 {
            cx.send(echo, "n", i)?;
        }
        let mut next = 0;
        let mut others = 0;
        while next < 2000 || others < 1 {
            let m = cx.recv().await;
            if m.topic == "other" {
                assert_eq!(m.payload, Value::Int(-1));
                others += 1;
                continue;
            }
            assert_eq!(m.payload, Value::Int(next), "echo out of order");
            next += 1;
        }
        cx.send(echo, "stop", Value::Nil)?;
        let exit = cx.event().await;
        assert_eq!(exit.from, echo);
        assert!(!cx.is_alive(echo));
        // Still remembered as the last peer: dropped, as to any process that ended.
        for i in 0..3 {
            cx.send(echo, "n", i)?;
        }
        Ok(Value::Bool(true))
    });
    assert_eq!(out, Ok(Value::Bool(true)));
}

/// A process's `Cx` used from an OS thread of its own sends next to the process itself: every
/// message arrives, in order per sender.
#[test]
fn a_cx_on_another_thread_sends_next_to_its_process() {
    const EACH: i64 = 20_000;
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        let sender = cx.spawn(
            proc(move |cx| async move {
                let far = cx.clone();
                let thread = std::thread::spawn(move || {
                    for i in 0..EACH {
                        far.send(me, "far", i).unwrap();
                    }
                });
                for i in 0..EACH {
                    cx.send(me, "near", i)?;
                    if i % 64 == 0 {
                        cx.yield_now().await;
                    }
                }
                thread.join().unwrap();
                Ok(Value::Nil)
            }),
            Ties::default(),
        )?;
        let (mut near, mut far) = (0, 0);
        while near < EACH || far < EACH {
            let m = cx.recv().await;
            assert_eq!(m.from, sender);
            let n = if m.topic == "near" { &mut near } else { &mut far };
            assert_eq!(m.payload, Value::Int(*n), "{} out of order", m.topic);
            *n += 1;
        }
        Ok(Value::Bool(true))
    });
    assert_eq!(out, Ok(Value::Bool(true)));
}

/// Sends `n` messages numbered from 0 to the calling process itself: they wait in its inbox,
/// several chunks of it.
fn queue_to_self(cx: &spindle_runtime::Cx, n: i64) -> spindle_runtime::Result<()> {
    for i in 0..n {
        cx.send(cx.pid(), "n", i)?;
    }
    Ok(())
}

fn number(m: &spindle_runtime::Message) -> i64 {
    m.payload.as_int().expect("a numbered message")
}

/// A receiver far behind its inbox takes a chunk of it at once; whatever else it does with its
/// inbox meanwhile (a non-blocking receive, an operation started by tag and then taken or
/// dropped, listening to a topic, waiting on something else) still sees every message once, in
/// order.
#[test]
fn a_receiver_behind_its_inbox_gets_every_message_once_in_order() {
    use spindle_runtime::{Completion, Op};
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        queue_to_self(&cx, 300)?;
        let mut next = 0;
        let mut expect = |got: i64| {
            assert_eq!(got, next, "out of order");
            next += 1;
            next
        };
        for _ in 0..10 {
            expect(number(&cx.recv().await));
        }
        expect(number(&cx.try_receive(None).expect("waiting")));
        expect(number(&cx.recv().await));
        // An inbox receive started by tag finds the oldest message at once.
        let tag = cx.start(Op::Receive { topic: None });
        match cx.take_completion(tag) {
            Some(Completion::Message(m)) => expect(number(&m)),
            other => panic!("expected a message at once, got {other:?}"),
        };
        expect(number(&cx.recv().await));
        // One that is dropped puts its message back in front.
        let tag = cx.start(Op::Receive { topic: None });
        cx.drop_op(tag);
        expect(number(&cx.recv().await));
        // Listening moves the queued messages of that topic, none of which are `n`.
        cx.listen("other")?;
        expect(number(&cx.recv().await));
        cx.send(cx.pid(), "other", -1)?;
        expect(number(&cx.recv().await));
        assert_eq!(cx.recv_topic("other").await?.payload, Value::Int(-1));
        // A wait on something else ends the step.
        cx.sleep(ms(1)).await;
        expect(number(&cx.recv().await));
        // Later messages come after all of the earlier ones.
        for i in 300..400 {
            cx.send(cx.pid(), "n", i)?;
        }
        while expect(number(&cx.recv().await)) < 400 {}
        assert!(cx.try_receive(None).is_none(), "each message once");
        Ok(Value::Bool(true))
    });
    assert_eq!(out, Ok(Value::Bool(true)));
}

/// Between its steps a process's mailbox is whole: what it took out of its inbox in one go
/// and has not received is counted as queued again.
#[test]
fn messages_taken_in_a_step_and_not_received_count_as_queued_after_it() {
    let rt = runtime();
    let (pid, watch) = rt
        .spawn_watched(proc(|cx| async move {
            queue_to_self(&cx, 300)?;
            for i in 0..10 {
                assert_eq!(number(&cx.recv().await), i);
            }
            let e = cx.event().await;
            assert_eq!(e.kind, spindle_runtime::EventKind::Cancel);
            for i in 10..300 {
                assert_eq!(number(&cx.recv().await), i);
            }
            Ok(Value::Bool(true))
        }))
        .expect("spawn");
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let info = rt.info(pid).expect("alive");
        if info.waiting {
            assert_eq!(info.queued_messages, 290);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never waited: {info:?}");
        std::thread::sleep(ms(1));
    }
    rt.cancel(pid, None).unwrap();
    assert_eq!(watch.wait_timeout(PATIENCE).unwrap(), Ok(Value::Bool(true)));
}

/// On a host with a mailbox limit a receiver takes its messages one at a time, so the limit
/// counts exactly: one message received makes room for exactly one more.
#[test]
fn a_mailbox_limit_counts_exactly_while_the_receiver_catches_up() {
    let rt = runtime_with(HostConfig::new(HOST).workers(2).mailbox_limit(200));
    let out = exec(&rt, |cx| async move {
        queue_to_self(&cx, 200)?;
        assert_eq!(cx.send(cx.pid(), "n", 200).unwrap_err().kind(), ErrorKind::RateLimited);
        assert_eq!(number(&cx.recv().await), 0);
        cx.send(cx.pid(), "n", 200)?;
        assert_eq!(cx.send(cx.pid(), "n", 201).unwrap_err().kind(), ErrorKind::RateLimited);
        for i in 1..=200 {
            assert_eq!(number(&cx.recv().await), i);
        }
        Ok(Value::Bool(true))
    });
    assert_eq!(out, Ok(Value::Bool(true)));
}
