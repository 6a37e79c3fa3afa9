//! Links, monitors, trap_links, cancel and terminate, panics.

mod common;

use common::*;
use spindle_runtime::rust::AsyncProcess;
use spindle_runtime::{Error, ErrorKind, EventKind, HostConfig, Spawn, Ties, Value};

fn fail(msg: &str) -> Error {
    Error::new(ErrorKind::Unknown, msg)
}

#[test]
fn monitors_see_exit_with_value_and_with_error() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let ok = cx.spawn(
            proc(|_| async { Ok(Value::from("fine")) }),
            Ties { link: false, monitor: true },
        )?;
        let e = cx.event().await;
        assert_eq!((e.kind, e.from), (EventKind::Exit, ok));
        assert_eq!(e.result, Some(Ok(Value::from("fine"))));

        let bad =
            cx.spawn(proc(|_| async { Err(fail("boom")) }), Ties { link: false, monitor: true })?;
        let e = cx.event().await;
        assert_eq!((e.kind, e.from), (EventKind::Exit, bad));
        assert_eq!(e.result, Some(Err(fail("boom"))));
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

#[test]
fn monitor_after_spawn_and_unmonitor() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let a = cx.spawn(proc(|cx| async move { Ok(cx.recv().await.payload) }), Ties::default())?;
        let b = cx.spawn(proc(|cx| async move { Ok(cx.recv().await.payload) }), Ties::default())?;
        cx.monitor(a);
        cx.monitor(b);
        cx.unmonitor(b);
        cx.send(b, "go", 2)?;
        cx.send(a, "go", 1)?;
        let e = cx.event().await;
        assert_eq!((e.from, e.result), (a, Some(Ok(Value::Int(1)))));
        // Monitoring a dead process yields EXIT with NOT_FOUND at once.
        cx.sleep(ms(20)).await;
        cx.monitor(b);
        let e = cx.event().await;
        assert_eq!(e.from, b);
        assert_eq!(e.result.unwrap().unwrap_err().kind(), ErrorKind::NotFound);
        assert!(cx.try_event().is_none(), "unmonitored b sent no EXIT");
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

#[test]
fn link_down_only_on_abnormal_exit() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        cx.set_trap_links(true);
        assert!(cx.trap_links());
        let _normal =
            cx.spawn(proc(|_| async { Ok(Value::Nil) }), Ties { link: true, monitor: false })?;
        let crashing =
            cx.spawn(proc(|_| async { Err(fail("crash")) }), Ties { link: true, monitor: false })?;
        let e = cx.event().await;
        assert_eq!((e.kind, e.from), (EventKind::LinkDown, crashing));
        assert_eq!(e.result, Some(Err(fail("crash"))));
        cx.sleep(ms(20)).await;
        assert!(cx.try_event().is_none(), "a normal exit sends no LINK_DOWN");
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

#[test]
fn linked_process_fails_without_trap_links() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        // middle links to a crasher and does not trap: it must fail too, and its monitor sees why.
        let middle = cx.spawn(
            proc(|cx| async move {
                cx.spawn(
                    proc(|cx| async move {
                        cx.sleep(ms(5)).await;
                        Err(fail("root cause"))
                    }),
                    Ties { link: true, monitor: false },
                )?;
                let never = cx.recv().await; // killed while waiting here
                Ok(never.payload)
            }),
            Ties { link: false, monitor: true },
        )?;
        let e = cx.event().await;
        assert_eq!(e.from, middle);
        let err = e.result.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unknown, "the linked failure's kind propagates");
        assert!(err.message().contains("root cause") && err.message().contains("linked"), "{err}");
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

/// A process that links or unlinks itself to pids it is sent, acknowledging each request.
fn relinker() -> spindle_runtime::Spawn {
    proc(|cx| async move {
        loop {
            let m = cx.recv().await;
            let target: spindle_runtime::Pid = m.payload.as_str().unwrap().parse()?;
            match m.topic.as_str() {
                "link" => cx.link(target)?,
                "unlink" => cx.unlink(target),
                _ => return Ok(m.payload),
            }
            cx.send(m.from, "ack", Value::Nil)?;
        }
    })
}

#[test]
fn link_failure_propagates_along_a_chain_and_unlink_stops_it() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        cx.set_trap_links(true);
        // me — a — b — c, then b unlinks c; killing... c's crash must reach b only while linked.
        let a = cx.spawn(relinker(), Ties { link: true, monitor: false })?;
        let b = cx.spawn(relinker(), Ties::default())?;
        let c = cx.spawn(relinker(), Ties { link: false, monitor: true })?;
        for (who, topic, target) in [(a, "link", b), (b, "link", c), (b, "unlink", c)] {
            cx.send(who, topic, target.to_string())?;
            assert_eq!(cx.recv().await.topic, "ack");
        }
        // c crashes: it is no longer linked to b, so the chain stays up.
        cx.terminate(c)?;
        let e = cx.event().await;
        assert_eq!((e.kind, e.from), (EventKind::Exit, c));
        cx.sleep(ms(20)).await;
        assert!(cx.is_alive(a) && cx.is_alive(b));
        // b crashes: a fails through its link (not trapping), and I get LINK_DOWN from a.
        cx.terminate(b)?;
        let e = cx.event().await;
        assert_eq!((e.kind, e.from), (EventKind::LinkDown, a));
        let err = e.result.unwrap().unwrap_err();
        assert!(err.message().contains(&b.to_string()), "{err}");
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

#[test]
fn link_and_unlink_after_spawn() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        cx.set_trap_links(true);
        let waiter = || proc(|cx| async move { Ok(cx.recv().await.payload) });
        let a = cx.spawn(waiter(), Ties::default())?;
        let b = cx.spawn(waiter(), Ties { link: false, monitor: true })?;
        cx.link(a)?;
        cx.link(b)?;
        cx.unlink(b);
        assert_eq!(cx.link(cx.pid()).unwrap_err().kind(), ErrorKind::Invalid);
        cx.terminate(a)?;
        cx.terminate(b)?;
        let mut kinds = vec![];
        for _ in 0..2 {
            let e = cx.event().await;
            kinds.push((e.kind, e.from));
        }
        kinds.sort_by_key(|(_, p)| *p);
        assert_eq!(kinds, vec![(EventKind::LinkDown, a), (EventKind::Exit, b)]);
        // Linking to a dead process is NOT_FOUND.
        assert_eq!(cx.link(a).unwrap_err().kind(), ErrorKind::NotFound);
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

#[test]
fn cancel_is_polite_terminate_is_not() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        // A process that handles CANCEL by cleaning up and returning a value.
        let polite = cx.spawn(
            proc(|cx| async move {
                let e = cx.event().await;
                assert_eq!(e.kind, EventKind::Cancel);
                Ok(Value::Array(vec!["cleaned up".into(), e.reason.unwrap_or_default()]))
            }),
            Ties { link: false, monitor: true },
        )?;
        cx.cancel(polite, Some("shutdown".into()))?;
        let e = cx.event().await;
        assert_eq!(e.result, Some(Ok(Value::Array(vec!["cleaned up".into(), "shutdown".into()]))));

        // A process that ignores CANCEL keeps running; terminate ends it with CANCELED.
        let stubborn = cx.spawn(
            proc(|cx| async move {
                loop {
                    cx.sleep(ms(1)).await;
                }
            }),
            Ties { link: false, monitor: true },
        )?;
        cx.cancel(stubborn, None)?;
        cx.sleep(ms(30)).await;
        assert!(cx.is_alive(stubborn), "cancel does not stop a process that ignores it");
        cx.terminate(stubborn)?;
        let e = cx.event().await;
        assert_eq!(e.from, stubborn);
        let err = e.result.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Canceled);
        assert!(err.message().contains("terminated"), "{err}");
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

#[test]
fn terminate_ends_a_busy_yielding_process() {
    let rt = runtime();
    let busy = spawn(&rt, |cx| async move {
        loop {
            cx.yield_now().await;
        }
    });
    let watch = rt.watch(busy);
    rt.terminate(busy).unwrap();
    let r = watch.wait_timeout(PATIENCE).expect("terminated in time");
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Canceled);
}

#[test]
fn a_panic_ends_only_that_process() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let p = cx.spawn(
            proc(|_| async {
                let v: Vec<i32> = vec![];
                #[expect(clippy::indexing_slicing, reason = "the panic is the point")]
                let x = v[3];
                Ok(Value::Int(i64::from(x)))
            }),
            Ties { link: false, monitor: true },
        )?;
        let e = cx.event().await;
        assert_eq!(e.from, p);
        let err = e.result.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert!(err.message().contains("panicked"), "{err}");
        Ok(Value::from("still here"))
    });
    assert_eq!(out, Ok(Value::from("still here")));
}

#[test]
fn supervisor_restarts_a_crashing_worker() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let mut crashes = 0;
        let worker = |attempt: i64| {
            proc(move |_| async move {
                if attempt < 3 { Err(fail("flaky")) } else { Ok(Value::Int(attempt)) }
            })
        };
        let mut attempt = 0;
        cx.spawn(worker(attempt), Ties { link: false, monitor: true })?;
        loop {
            let e = cx.event().await;
            match e.result {
                Some(Err(_)) => {
                    crashes += 1;
                    attempt += 1;
                    cx.spawn(worker(attempt), Ties { link: false, monitor: true })?;
                }
                Some(Ok(v)) => return Ok(Value::Array(vec![v, Value::Int(crashes)])),
                None => unreachable!(),
            }
        }
    });
    assert_eq!(out, Ok(Value::Array(vec![Value::Int(3), Value::Int(3)])));
}

#[test]
fn relations_are_cleaned_up_when_either_side_ends() {
    let rt = runtime();
    let server = spawn(&rt, |cx| async move {
        cx.register("server", None)?;
        Ok(cx.recv().await.payload)
    });
    // 200 short-lived clients monitor and link the server, then end (normally).
    for _ in 0..200 {
        let r = exec(&rt, move |cx| async move {
            cx.monitor(server);
            cx.link(server)?;
            Ok(Value::Nil)
        });
        assert_eq!(r, Ok(Value::Nil));
    }
    let info = rt.info(server).expect("server alive");
    assert_eq!(info.monitored_by, vec![], "monitors of ended clients are gone");
    assert_eq!(info.links, vec![], "links to ended clients are gone");
    assert_eq!(info.names, vec!["server".to_owned()]);
    // A monitor whose target ended is gone from the watcher's side too.
    let watcher = spawn(&rt, move |cx| async move {
        cx.monitor(server);
        cx.send(server, "stop", 1)?;
        cx.event().await;
        Ok(cx.recv().await.payload)
    });
    let t0 = std::time::Instant::now();
    while rt.is_alive(server) || !rt.info(watcher).expect("watcher alive").monitoring.is_empty() {
        assert!(t0.elapsed() < PATIENCE, "the watcher still lists the ended server");
        std::thread::sleep(ms(1));
    }
    rt.terminate(watcher).unwrap();
}

/// Monitors and links that race their targets' exits. Per round, a monitor of one target is
/// dropped while it exits: its EXIT comes only if it was in the mailbox when the unmonitor
/// returned (an unmonitor has the last word, even against an exit under way). A monitor of a
/// second target and a link to the first are made while they exit: the monitor tells the exit
/// once (as NOT_FOUND if the target was gone already), and neither leaves anything behind on
/// this process's side.
#[test]
fn monitors_and_links_racing_an_exit_tell_once_and_leave_nothing_behind() {
    const ROUNDS: usize = 2000;
    const OTHER: &str = "test:other";
    // The targets run on a host of their own, so that they exit on its worker while this
    // process goes on with its calls on the first host's.
    let rt = spindle_runtime::Runtime::builder()
        .host(HostConfig::new(HOST).workers(1))
        .host(HostConfig::new(OTHER).workers(1))
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tester = spawn(&rt, move |cx| async move {
        let me = cx.pid();
        let mut late = 0;
        let target = || {
            Spawn::process(
                AsyncProcess::new(|cx| async move {
                    cx.recv().await;
                    Ok(Value::Nil)
                }),
                OTHER,
            )
        };
        for _ in 0..ROUNDS {
            let (first, second) =
                (cx.spawn(target(), Ties::default())?, cx.spawn(target(), Ties::default())?);
            // The probe monitors both after this process's monitor of the first: its word that
            // both ended comes once that monitor was told, if it was.
            let probe = cx.spawn(
                proc(move |cx| async move {
                    cx.monitor(first);
                    cx.monitor(second);
                    cx.send(me, "ready", Value::Nil)?;
                    cx.event().await;
                    cx.event().await;
                    cx.send(me, "ended", Value::Nil)?;
                    Ok(Value::Nil)
                }),
                Ties::default(),
            )?;
            cx.monitor(first);
            assert_eq!(cx.recv().await.from, probe);
            cx.send(first, "go", Value::Nil)?;
            cx.send(second, "go", Value::Nil)?;
            cx.unmonitor(first); // racing the exit
            while let Some(e) = cx.try_event() {
                assert_eq!((e.kind, e.from), (EventKind::Exit, first)); // in time
            }
            cx.monitor(second); // racing the exit
            let _ = cx.link(first); // racing the exit: linked, or NOT_FOUND
            let m = cx.recv().await;
            assert_eq!((m.from, m.topic.as_str()), (probe, "ended"));
            let e = cx.event().await;
            assert_eq!((e.kind, e.from), (EventKind::Exit, second));
            cx.sleep(ms(0)).await;
            while let Some(e) = cx.try_event() {
                assert_eq!(e.from, first, "a second EXIT of the second target");
                late += 1;
            }
        }
        tx.send(late).unwrap();
        cx.recv().await;
        Ok(Value::Nil)
    });
    let late = rx.recv_timeout(PATIENCE).expect("the rounds finished");
    assert_eq!(late, 0, "EXITs that came after their unmonitor had returned");
    let info = rt.info(tester).expect("tester alive");
    assert_eq!(info.monitoring, vec![], "monitors of ended targets are left");
    assert_eq!(info.links, vec![], "links to ended targets are left");
    rt.send(tester, "done", Value::Nil).unwrap();
}
