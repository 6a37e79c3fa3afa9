//! Stress: many processes, many sleepers, and wake-ups racing steps from every direction.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use spindle_runtime::rust::{First, first};
use spindle_runtime::{Error, ErrorKind, EventKind, Ties, Value};

#[test]
fn hundred_thousand_processes_spawned_and_reaped() {
    const N: i64 = 100_000;
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        for i in 0..N {
            cx.spawn(
                proc(move |cx| async move {
                    cx.send(me, "done", i)?;
                    Ok(Value::Nil)
                }),
                Ties::default(),
            )?;
        }
        let mut sum = 0;
        for _ in 0..N {
            sum += cx.recv().await.payload.as_int().unwrap();
        }
        Ok(Value::Int(sum))
    });
    assert_eq!(out, Ok(Value::Int(N * (N - 1) / 2)));
    let t0 = std::time::Instant::now();
    while rt.process_count() > 0 {
        assert!(t0.elapsed() < PATIENCE, "{} processes left", rt.process_count());
        std::thread::sleep(ms(1));
    }
    assert_eq!(rt.host(HOST).unwrap().live_processes(), 0);
}

#[test]
fn hundred_thousand_concurrent_sleepers() {
    const N: i64 = 100_000;
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        for i in 0..N {
            cx.spawn(
                proc(move |cx| async move {
                    cx.sleep(ms(200 + (i % 50) as u64)).await;
                    cx.send(me, "woke", Value::Nil)?;
                    Ok(Value::Nil)
                }),
                Ties::default(),
            )?;
        }
        for _ in 0..N {
            cx.recv().await;
        }
        Ok(Value::Bool(true))
    });
    assert_eq!(out, Ok(Value::Bool(true)));
}

/// Every receiver waits on its inbox and a short timer at once; messages arrive from other
/// processes and from plain threads outside the runtime while receivers step, yield and
/// re-wait. A lost wake-up leaves a receiver short of messages forever; a double run trips the
/// state word's assertions (debug builds) or double-counts.
#[test]
fn stampede_of_wakeups_loses_nothing() {
    const RECEIVERS: usize = 32;
    const INSIDE_SENDERS: usize = 8;
    const OUTSIDE_THREADS: usize = 3;
    const EACH: usize = 2_000;
    let per_receiver = (INSIDE_SENDERS + OUTSIDE_THREADS) * EACH / RECEIVERS;
    let rt = runtime();
    let received = Arc::new(AtomicUsize::new(0));
    let mut receivers = vec![];
    let mut watches = vec![];
    for _ in 0..RECEIVERS {
        let received = received.clone();
        let (pid, w) = rt
            .spawn_watched(proc(move |cx| async move {
                let mut got = 0;
                while got < per_receiver {
                    if let First::Left(_) = first(cx.recv(), cx.sleep(ms(1))).await {
                        got += 1;
                        received.fetch_add(1, Ordering::Relaxed);
                        if got % 64 == 0 {
                            cx.yield_now().await;
                        }
                    }
                }
                Ok(Value::Int(got as i64))
            }))
            .unwrap();
        receivers.push(pid);
        watches.push(w);
    }
    let receivers = Arc::new(receivers);
    for s in 0..INSIDE_SENDERS {
        let receivers = receivers.clone();
        rt.spawn(proc(move |cx| async move {
            for i in 0..EACH {
                cx.send(receivers[(s * EACH + i) % RECEIVERS], "m", i as i64)?;
                if i % 50 == 0 {
                    cx.yield_now().await;
                }
            }
            Ok(Value::Nil)
        }))
        .unwrap();
    }
    std::thread::scope(|scope| {
        for t in 0..OUTSIDE_THREADS {
            let (rt, receivers) = (&rt, receivers.clone());
            scope.spawn(move || {
                for i in 0..EACH {
                    let r = receivers[((INSIDE_SENDERS + t) * EACH + i) % RECEIVERS];
                    rt.send(r, "m", i as i64).unwrap();
                }
            });
        }
    });
    for w in watches {
        let r = w.wait_timeout(PATIENCE).expect("a receiver never got all its messages");
        assert_eq!(r, Ok(Value::Int(per_receiver as i64)));
    }
    assert_eq!(received.load(Ordering::Relaxed), per_receiver * RECEIVERS);
}

#[test]
fn shutdown_with_live_processes_ends_them_all() {
    let rt = runtime();
    let dropped = Arc::new(AtomicUsize::new(0));
    struct OnDrop(Arc<AtomicUsize>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    for _ in 0..1000 {
        let guard = OnDrop(dropped.clone());
        spawn(&rt, move |cx| async move {
            let _guard = guard;
            cx.sleep(ms(60_000)).await;
            Ok(Value::Nil)
        });
    }
    rt.shutdown();
    assert_eq!(dropped.load(Ordering::SeqCst), 1000, "every process's state was dropped");
    assert_eq!(rt.process_count(), 0);
    let err = rt.spawn(proc(|_| async { Ok(Value::Nil) })).unwrap_err();
    assert_eq!(err.kind(), spindle_runtime::ErrorKind::Unavailable);
}

/// On a single worker, processes that yield forever must not starve the others: a yielding
/// process goes behind everything that is ready.
#[test]
fn no_starvation_by_yielding_processes() {
    let rt = runtime_with(spindle_runtime::HostConfig::new(HOST).workers(1));
    let busy: Vec<_> = (0..4)
        .map(|_| {
            spawn(&rt, |cx| async move {
                loop {
                    cx.yield_now().await;
                }
            })
        })
        .collect();
    let out = exec(&rt, |cx| async move {
        let echo = cx.spawn(
            proc(|cx| async move {
                loop {
                    let m = cx.recv().await;
                    cx.send(m.from, "pong", m.payload)?;
                }
            }),
            Ties { link: true, monitor: false },
        )?;
        for i in 0..1_000 {
            cx.send(echo, "ping", i)?;
            assert_eq!(cx.recv().await.payload, Value::Int(i));
        }
        Ok(Value::from("all pongs"))
    });
    assert_eq!(out, Ok(Value::from("all pongs")));
    for b in busy {
        rt.terminate(b).unwrap();
    }
}

/// Monitors and links made while their targets end, from other workers: every monitor brings
/// exactly one EXIT event (with the target's result, or NOT_FOUND if it had ended already),
/// and a link either fails with NOT_FOUND or brings exactly one LINK_DOWN to a process that
/// traps links (the targets all end abnormally). Lost or doubled notifications hang or fail.
#[test]
fn relations_race_with_exits() {
    const ROUNDS: i64 = 200;
    const TARGETS: usize = 16;
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let me = cx.pid();
        for round in 0..ROUNDS {
            // Targets end on their own (an error) after a few yields, or are terminated.
            let mut targets = Vec::new();
            for t in 0..TARGETS {
                let pid = cx.spawn(
                    proc(move |cx| async move {
                        for _ in 0..(t % 4) {
                            cx.yield_now().await;
                        }
                        Err(Error::new(ErrorKind::Internal, "target ends"))
                    }),
                    Ties::default(),
                )?;
                targets.push(pid);
            }
            // Watchers monitor and link every target while the targets end.
            let mut watchers = Vec::new();
            for w in 0..2 {
                let targets = targets.clone();
                let pid = cx.spawn(
                    proc(move |cx| async move {
                        cx.set_trap_links(true);
                        let mut linked = 0;
                        for (i, &t) in targets.iter().enumerate() {
                            cx.monitor(t);
                            if (i + w) % 2 == 0 && cx.link(t).is_ok() {
                                linked += 1;
                            }
                        }
                        let (mut exits, mut downs) = (0, 0);
                        while exits < targets.len() || downs < linked {
                            let ev = cx.event().await;
                            match ev.kind {
                                EventKind::Exit => exits += 1,
                                EventKind::LinkDown => downs += 1,
                                other => panic!("unexpected {other:?}"),
                            }
                            assert!(ev.result.is_some_and(|r| r.is_err()), "{:?}", ev.from);
                        }
                        // Nothing more may come: one short wait for a stray event.
                        let stray = first(cx.event(), cx.sleep(ms(2))).await;
                        assert!(matches!(stray, First::Right(())), "an extra event");
                        cx.send(me, "watched", Value::Int(exits as i64))?;
                        Ok(Value::Nil)
                    }),
                    Ties::default(),
                )?;
                watchers.push(pid);
            }
            for (i, &t) in targets.iter().enumerate() {
                if (i as i64 + round) % 3 == 0 {
                    cx.terminate(t)?;
                }
            }
            for _ in 0..watchers.len() {
                let m = cx.recv().await;
                assert_eq!(m.payload, Value::Int(TARGETS as i64), "round {round}");
            }
        }
        Ok(Value::Bool(true))
    });
    assert_eq!(out, Ok(Value::Bool(true)));
}
