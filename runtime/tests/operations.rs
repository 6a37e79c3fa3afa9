//! Blocking operations: several outstanding at once, waited for any or all; exec; timers.

mod common;

use common::*;
use spindle_runtime::rust::{First, both, first};
use spindle_runtime::{
    Completion, Cx, ErrorKind, Op, Pid, Process, Spawn, Step, Tag, Ties, Value, WaitFor,
};

/// A hand-written state machine: listens to three topics, starts a receive on each, then waits
/// for `first` (any or all), then for `second`, and reports every step's completions to
/// `observer` as `[step, n_completions, outstanding]`.
struct Waiter {
    observer: Pid,
    modes: [WaitFor; 2],
    tags: Vec<Tag>,
    steps: i64,
}

impl Process for Waiter {
    fn step(&mut self, cx: &Cx) -> Step {
        self.steps += 1;
        if self.steps == 1 {
            for t in ["a", "b", "c"] {
                cx.listen(t).unwrap();
                self.tags.push(cx.start(Op::Receive { topic: Some(t.into()) }));
            }
            cx.send(self.observer, "ready", Value::Nil).unwrap();
            return Step::Wait(self.modes[0]);
        }
        let mut got = vec![];
        while let Some((tag, c)) = cx.next_completion() {
            assert!(self.tags.contains(&tag));
            let Completion::Message(m) = c else { panic!("expected a message, got {c:?}") };
            got.push(m.payload);
        }
        let report = vec![
            Value::Int(self.steps),
            Value::Int(got.len() as i64),
            Value::Int(cx.outstanding() as i64),
            Value::Array(got),
        ];
        cx.send(self.observer, "step", Value::Array(report)).unwrap();
        if self.steps == 2 { Step::Wait(self.modes[1]) } else { Step::Exit(Ok(Value::Nil)) }
    }
}

/// Sends each batch (pausing between messages, to give an early wake-up every chance to
/// happen), then takes one step report per batch.
fn run_waiter(
    modes: [WaitFor; 2],
    batches: &'static [&'static [(&'static str, i64)]],
) -> Vec<Value> {
    let rt = runtime();
    let out = exec(&rt, move |cx| async move {
        let w = Waiter { observer: cx.pid(), modes, tags: vec![], steps: 0 };
        let pid = cx.spawn(Spawn::process(w, HOST), Ties::default())?;
        assert_eq!(cx.recv().await.topic, "ready");
        let mut reports = vec![];
        for batch in batches {
            for (t, v) in *batch {
                cx.send(pid, t, *v)?;
                cx.sleep(ms(10)).await;
            }
            reports.push(cx.recv().await.payload);
        }
        Ok(Value::Array(reports))
    });
    match out.unwrap() {
        Value::Array(a) => a,
        other => panic!("{other:?}"),
    }
}

fn report(step: i64, n: i64, outstanding: i64, got: &[i64]) -> Value {
    Value::Array(vec![
        step.into(),
        n.into(),
        outstanding.into(),
        Value::Array(got.iter().map(|&g| g.into()).collect()),
    ])
}

#[test]
fn wait_any_wakes_on_the_first_completion() {
    let r = run_waiter([WaitFor::Any, WaitFor::All], &[&[("b", 2)], &[("a", 1), ("c", 3)]]);
    assert_eq!(r[0], report(2, 1, 2, &[2]), "woken by b alone, a and c still outstanding");
    assert_eq!(r[1], report(3, 2, 0, &[1, 3]));
}

#[test]
fn wait_all_wakes_only_after_the_last() {
    // With All, neither a nor b alone may step the process: its one step sees all three.
    let r = run_waiter([WaitFor::All, WaitFor::All], &[&[("a", 1), ("b", 2), ("c", 3)], &[]]);
    assert_eq!(r[0], report(2, 3, 0, &[1, 2, 3]));
    assert_eq!(r[1], report(3, 0, 0, &[]), "All with nothing outstanding returns at once");
}

/// A completion that comes during the step (a receive served at once, after an earlier
/// operation had armed a wait-any) does not step again a process that then waits for all.
#[test]
fn wait_all_is_not_cut_short_by_a_completion_during_the_step() {
    struct Both {
        observer: Pid,
        steps: i64,
    }
    impl Process for Both {
        fn step(&mut self, cx: &Cx) -> Step {
            self.steps += 1;
            if self.steps == 1 {
                cx.listen("late").unwrap();
                cx.start(Op::Receive { topic: Some("late".into()) });
                cx.send(cx.pid(), "now", Value::Nil).unwrap();
                cx.start(Op::Receive { topic: None });
                cx.send(self.observer, "ready", Value::Nil).unwrap();
                return Step::Wait(WaitFor::All);
            }
            let report = vec![Value::Int(self.steps), Value::Int(cx.outstanding() as i64)];
            cx.send(self.observer, "step", Value::Array(report)).unwrap();
            Step::Exit(Ok(Value::Nil))
        }
    }
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let both = Both { observer: cx.pid(), steps: 0 };
        let pid = cx.spawn(Spawn::process(both, HOST), Ties::default())?;
        assert_eq!(cx.recv().await.topic, "ready");
        // An early second step would report now, with the topic receive still outstanding.
        cx.sleep(ms(20)).await;
        cx.send(pid, "late", 1)?;
        Ok(cx.recv().await.payload)
    });
    assert_eq!(out, Ok(Value::Array(vec![2.into(), 0.into()])), "stepped before the last");
}

#[test]
fn wait_all_over_mixed_operations() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        // Timer, exec and receive outstanding at once; join-style wait for all three.
        let me = cx.pid();
        let child = proc(move |cx| async move {
            cx.send(me, "from-child", "hi")?;
            Ok(Value::Int(7))
        });
        let t0 = std::time::Instant::now();
        let sleep = cx.op(Op::Sleep(ms(30)));
        let exec = cx.op(Op::Exec(child));
        let recv = cx.op(Op::Receive { topic: None });
        let ((a, b), c) = both(both(sleep, exec), recv).await;
        assert!(t0.elapsed() >= ms(30));
        assert!(matches!(a, Completion::Timer));
        assert!(matches!(b, Completion::Exit(Ok(Value::Int(7)))), "{b:?}");
        let Completion::Message(m) = c else { panic!("{c:?}") };
        Ok(m.payload)
    });
    assert_eq!(out, Ok(Value::from("hi")));
}

#[test]
fn select_takes_the_first_and_drops_the_rest_without_losing_messages() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        // A receive races a long timer: the message wins; the timer is dropped.
        cx.send(me, "t", 1)?;
        let won = match first(cx.recv(), cx.sleep(ms(10_000))).await {
            First::Left(m) => Some(m.payload),
            First::Right(()) => None,
        };
        assert_eq!(won, Some(Value::Int(1)));
        assert_eq!(cx.outstanding(), 0, "the dropped timer is no longer outstanding");
        // A started receive that is dropped after its message arrived gives the message back.
        let tag = cx.start(Op::Receive { topic: None });
        cx.send(me, "t", 2)?;
        cx.sleep(ms(5)).await;
        cx.drop_op(tag);
        Ok(cx.recv().await.payload)
    });
    assert_eq!(out, Ok(Value::Int(2)));
}

/// `take_completion_into` moves a completion into the caller's slot only once its operation
/// has completed, leaving the slot as it was otherwise; any of several completions can be
/// taken, in any order.
#[test]
fn completions_taken_into_a_slot() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        let mut slot = Some(Completion::Timer);
        let first = cx.start(Op::Receive { topic: None });
        assert!(!cx.take_completion_into(first, &mut slot), "nothing arrived yet");
        assert!(matches!(slot, Some(Completion::Timer)), "the slot is left alone");
        let second = cx.start(Op::Receive { topic: None });
        let timer = cx.start(Op::Sleep(ms(1)));
        cx.send(me, "t", 1)?;
        cx.send(me, "t", 2)?;
        while cx.outstanding() > 0 {
            cx.sleep(ms(1)).await;
        }
        assert!(cx.take_completion_into(second, &mut slot));
        let Some(Completion::Message(m)) = &slot else { panic!("expected a message: {slot:?}") };
        assert_eq!(m.payload, Value::Int(2), "the second receive got the second message");
        assert!(cx.take_completion_into(timer, &mut slot));
        assert!(matches!(slot, Some(Completion::Timer)));
        assert!(cx.take_completion_into(first, &mut slot));
        let Some(Completion::Message(m)) = &slot else { panic!("expected a message: {slot:?}") };
        assert_eq!((m.from, m.payload.clone()), (me, Value::Int(1)));
        assert!(!cx.take_completion_into(first, &mut slot), "taken once");
        assert!(matches!(&slot, Some(Completion::Message(_))));
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

/// Messages that reach a queue other than by delivery go to the receives already waiting
/// there, oldest first: those an unlisten moves to the inbox, and one a dropped receive puts
/// back (which goes to the next receive, ahead of later messages).
#[test]
fn moved_and_put_back_messages_reach_waiting_receives() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        let message = |c: Option<Completion>| match c {
            Some(Completion::Message(m)) => m.payload,
            other => panic!("expected a message, got {other:?}"),
        };
        cx.listen("t")?;
        cx.send(me, "t", 1)?;
        let inbox = cx.start(Op::Receive { topic: None });
        assert!(cx.take_completion(inbox).is_none(), "a topic message is not the inbox's");
        cx.unlisten("t")?;
        assert_eq!(message(cx.take_completion(inbox)), Value::Int(1));
        // The same with the receive awaited: it is woken.
        cx.listen("t")?;
        cx.send(me, "t", 2)?;
        let (m, unlistened) = both(cx.recv(), async { cx.unlisten("t") }).await;
        assert_eq!((m.payload, unlistened), (Value::Int(2), Ok(())));
        // A received message put back by a dropped receive goes to the next one waiting.
        let (first, second) =
            (cx.start(Op::Receive { topic: None }), cx.start(Op::Receive { topic: None }));
        cx.send(me, "m", 3)?;
        cx.drop_op(first);
        assert_eq!(message(cx.take_completion(second)), Value::Int(3));
        cx.send(me, "m", 4)?;
        assert_eq!(cx.recv().await.payload, Value::Int(4));
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

#[test]
fn exec_returns_value_or_error() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let ok = cx.exec(proc(|_| async { Ok(Value::from("done")) })).await;
        assert_eq!(ok, Ok(Value::from("done")));
        let err = cx
            .exec(proc(|_| async {
                Err(spindle_runtime::Error::new(ErrorKind::Timeout, "too slow"))
            }))
            .await;
        assert_eq!(err.unwrap_err().kind(), ErrorKind::Timeout);
        let bad_host = cx
            .exec(Spawn::process(
                spindle_runtime::rust::AsyncProcess::new(|_| async { Ok(Value::Nil) }),
                "no:host",
            ))
            .await;
        assert_eq!(bad_host.unwrap_err().kind(), ErrorKind::NotFound);
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
    // And from outside the runtime's processes:
    assert_eq!(rt.exec(proc(|_| async { Ok(Value::Int(5)) })), Ok(Value::Int(5)));
}

/// The process an exec runs is stopped once nobody waits for its result: when the operation is
/// dropped, and when the process that started it ends. (Its pid is not handed out: nothing else
/// could stop it.)
#[test]
fn an_abandoned_exec_stops_its_process() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        // A child that tells the test its pid (as the sender), then waits for ever.
        let child = move || {
            proc(move |cx| async move {
                cx.send(me, "child", Value::Nil)?;
                cx.recv().await;
                Ok(Value::Nil)
            })
        };
        let stopped = |ev: spindle_runtime::Event, child: Pid| {
            assert_eq!(ev.from, child);
            let err = ev.result.expect("an exit has a result").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Canceled, "{err}");
        };

        // Dropped.
        let tag = cx.start(Op::Exec(child()));
        let c = cx.recv().await.from;
        cx.monitor(c);
        cx.drop_op(tag);
        stopped(cx.event().await, c);

        // Its starter ends.
        let starter = proc(move |cx| async move {
            cx.start(Op::Exec(child()));
            cx.recv().await;
            Ok(Value::Nil)
        });
        let s = cx.spawn(starter, Ties::default())?;
        let c = cx.recv().await.from;
        cx.monitor(c);
        cx.send(s, "end", Value::Nil)?;
        stopped(cx.event().await, c);
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

#[test]
fn sleeps_wake_in_deadline_order() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        for d in [40u64, 10, 25] {
            cx.spawn(
                proc(move |cx| async move {
                    cx.sleep(ms(d)).await;
                    cx.send(me, "woke", d as i64)?;
                    Ok(Value::Nil)
                }),
                Ties::default(),
            )?;
        }
        let mut order = vec![];
        for _ in 0..3 {
            order.push(cx.recv().await.payload);
        }
        Ok(Value::Array(order))
    });
    assert_eq!(out, Ok(Value::Array(vec![10.into(), 25.into(), 40.into()])));
}

#[test]
fn foreign_futures_wake_the_process() {
    let rt = runtime();
    let (tx, rx) = std::sync::mpsc::channel::<std::task::Waker>();
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f2 = flag.clone();
    let (pid, watch) = rt
        .spawn_watched(proc(move |_| async move {
            std::future::poll_fn(|t| {
                if f2.load(std::sync::atomic::Ordering::SeqCst) {
                    std::task::Poll::Ready(())
                } else {
                    tx.send(t.waker().clone()).unwrap();
                    std::task::Poll::Pending
                }
            })
            .await;
            Ok(Value::from("woken"))
        }))
        .unwrap();
    let waker = rx.recv_timeout(PATIENCE).unwrap();
    assert!(rt.is_alive(pid));
    flag.store(true, std::sync::atomic::Ordering::SeqCst);
    waker.wake();
    assert_eq!(watch.wait_timeout(PATIENCE).unwrap(), Ok(Value::from("woken")));
}

#[test]
fn external_operations_complete_from_other_threads() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let ok = cx
            .external(|c| {
                std::thread::spawn(move || {
                    std::thread::sleep(ms(5));
                    c.complete(Ok(Value::from("line")));
                });
            })
            .await;
        let failed = cx
            .external(|c| c.complete(Err(spindle_runtime::Error::new(ErrorKind::Invalid, "no"))))
            .await;
        let abandoned = cx.external(drop).await;
        Ok(Value::Array(vec![
            ok?,
            failed.unwrap_err().kind().name().into(),
            abandoned.unwrap_err().kind().name().into(),
        ]))
    });
    assert_eq!(out, Ok(Value::Array(vec!["line".into(), "INVALID".into(), "CANCELED".into()])));
}

/// On a manual clock timers fire exactly when the clock passes their deadline, in order.
#[test]
fn manual_clock_fires_timers_only_when_advanced() {
    use spindle_runtime::{HostConfig, ManualClock, Runtime};
    let clock = ManualClock::new();
    let rt = Runtime::builder()
        .host(HostConfig::new(HOST).workers(2))
        .clock(clock.clone())
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<i64>();
    for d in [3000u64, 1000, 2000] {
        let tx = tx.clone();
        spawn(&rt, move |cx| async move {
            cx.sleep(ms(d)).await;
            tx.send(d as i64).unwrap();
            Ok(Value::Nil)
        });
    }
    // A zero sleep does not wait for the clock.
    let zero = exec(&rt, |cx| async move {
        cx.sleep(ms(0)).await;
        Ok(Value::from(cx.now().as_millis() as i64))
    });
    assert_eq!(zero, Ok(Value::Int(0)));
    let deadline = std::time::Instant::now() + PATIENCE;
    while clock.pending_timers() < 3 {
        assert!(std::time::Instant::now() < deadline, "timers were not started");
        std::thread::yield_now();
    }
    assert_eq!(clock.next_deadline(), Some(ms(1000)));
    clock.advance(ms(999));
    assert_eq!(clock.pending_timers(), 3);
    assert!(rx.try_recv().is_err());
    clock.advance(ms(1));
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(1000));
    // One advance past both deadlines fires both; the two sleepers then run at once, on two
    // workers, so the order in which they report is theirs.
    clock.advance(ms(5000));
    let mut both = [rx.recv_timeout(PATIENCE).unwrap(), rx.recv_timeout(PATIENCE).unwrap()];
    both.sort_unstable();
    assert_eq!(both, [2000, 3000]);
    assert_eq!(rt.now(), ms(6000));
    assert_eq!(clock.pending_timers(), 0);
}

/// A timer dropped before it fires is gone from the manual clock.
#[test]
fn dropped_timers_leave_the_manual_clock() {
    use spindle_runtime::{HostConfig, ManualClock, Runtime};
    let clock = ManualClock::new();
    let rt = Runtime::builder()
        .host(HostConfig::new(HOST).workers(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    let out = exec(&rt, |cx| async move {
        let tag = cx.start(Op::Sleep(ms(500)));
        cx.drop_op(tag);
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
    assert_eq!(clock.pending_timers(), 0);
}
