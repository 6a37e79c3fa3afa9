//! Upgrade: new code, same identity — pid, mailbox, names, links and monitors kept.

mod common;

use common::*;
use spindle_runtime::rust::rust_entry;
use spindle_runtime::{EntryId, ErrorKind, EventKind, ProcessBox, Spawn, Ties, Value};

fn id(s: &str) -> EntryId {
    s.parse().unwrap()
}

#[test]
fn upgrade_keeps_identity_and_mailbox_contents() {
    let rt = runtime();
    // v1 counts "inc" messages; on "upgrade" it becomes v2, passing its count on.
    rt.put_entry(rust_entry(id("app:counter.v1"), |cx, _args| async move {
        cx.register("counter", None)?;
        let mut n = 0;
        loop {
            let m = cx.recv().await;
            match m.topic.as_str() {
                "inc" => n += 1,
                "upgrade" => {
                    let args =
                        vec![n.into(), cx.pid().to_string().into(), m.from.to_string().into()];
                    match cx.upgrade(Some(id("app:counter.v2")), args).await {}
                }
                _ => {}
            }
        }
    }));
    // v2 checks it is still itself, then reads the messages v1 left unread and reports.
    rt.put_entry(rust_entry(id("app:counter.v2"), |cx, args| async move {
        let old_pid = args[1].as_str().unwrap().to_owned();
        assert_eq!(cx.pid().to_string(), old_pid, "same pid");
        assert_eq!(cx.lookup("counter"), Some(cx.pid()), "name kept");
        assert_eq!(cx.entry(), Some(id("app:counter.v2")));
        let mut n = args[0].as_int().unwrap();
        cx.send(args[2].as_str().unwrap(), "v2-ready", Value::Nil)?;
        loop {
            let m = cx.recv().await;
            match m.topic.as_str() {
                "inc" => n += 10,
                "stop" => {
                    return Err(spindle_runtime::Error::new(
                        ErrorKind::Unknown,
                        format!("final count {n}"),
                    ));
                }
                _ => {}
            }
        }
    }));

    let out = exec(&rt, |cx| async move {
        cx.set_trap_links(true);
        let pid =
            cx.spawn(Spawn::entry(id("app:counter.v1"), HOST), Ties { link: true, monitor: true })?;
        // 3 incs for v1, the upgrade request, then 2 incs that v1 never reads: they wait in
        // the mailbox and v2 must get them. All sent at once, before anything ran.
        for _ in 0..3 {
            cx.send(pid, "inc", Value::Nil)?;
        }
        cx.send(pid, "upgrade", Value::Nil)?;
        cx.send(pid, "inc", Value::Nil)?;
        cx.send(pid, "inc", Value::Nil)?;
        assert_eq!(cx.recv().await.topic, "v2-ready");
        cx.send("counter", "stop", Value::Nil)?; // by name, registered by v1
        // Monitor and link both still point at the same pid.
        let mut seen = vec![];
        for _ in 0..2 {
            let e = cx.event().await;
            assert_eq!(e.from, pid);
            let err = e.result.unwrap().unwrap_err();
            seen.push((e.kind, err.message().to_owned()));
        }
        seen.sort_by_key(|(k, _)| *k == EventKind::Exit);
        assert_eq!(seen[0], (EventKind::LinkDown, "final count 23".to_owned()));
        assert_eq!(seen[1], (EventKind::Exit, "final count 23".to_owned()));
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

/// The old code's listened topics end with it: the new code can listen to them again, and
/// what was queued for them waits in the inbox.
#[test]
fn upgrade_ends_the_old_codes_topics_and_keeps_their_messages() {
    let rt = runtime();
    rt.put_entry(rust_entry(id("app:topics.v1"), |cx, _| async move {
        cx.listen("news")?;
        cx.send(cx.pid(), "news", "queued for the topic")?;
        match cx.upgrade(Some(id("app:topics.v2")), vec![]).await {}
    }));
    rt.put_entry(rust_entry(id("app:topics.v2"), |cx, _| async move {
        let m = cx.recv().await;
        assert_eq!((m.topic.as_str(), m.payload), ("news", Value::from("queued for the topic")));
        cx.listen("news")?;
        cx.send(cx.pid(), "news", "listened again")?;
        Ok(cx.recv_topic("news").await?.payload)
    }));
    let (_, watch) = rt.spawn_watched(Spawn::entry(id("app:topics.v1"), HOST)).unwrap();
    assert_eq!(watch.wait_timeout(PATIENCE).unwrap(), Ok(Value::from("listened again")));
}

#[test]
fn upgrade_to_nil_reloads_the_current_entry() {
    let rt = runtime();
    let e = id("app:reloadable");
    rt.put_entry(rust_entry(e.clone(), |cx, _| async move {
        cx.recv().await; // "reload" arrives after the entry was replaced
        match cx.upgrade(None, vec![Value::from("state")]).await {}
    }));
    let (pid, watch) = rt.spawn_watched(Spawn::entry(e.clone(), HOST)).unwrap();
    let v1 = rt.entry(&e).unwrap().version;
    rt.put_entry(rust_entry(e.clone(), |_, args| async move {
        Ok(Value::Array(vec!["new code".into(), args[0].clone()]))
    }));
    assert!(rt.entry(&e).unwrap().version > v1);
    rt.send(pid, "reload", Value::Nil).unwrap();
    assert_eq!(
        watch.wait_timeout(PATIENCE).unwrap(),
        Ok(Value::Array(vec!["new code".into(), "state".into()]))
    );
}

#[test]
fn failed_upgrade_ends_the_process_with_the_error() {
    let rt = runtime();
    let out = exec(&rt, |cx| async move {
        let p =
            cx.spawn(
                proc(|cx| async move {
                    match cx.upgrade(Some(id("app:does.not.exist")), vec![]).await {}
                }),
                Ties { link: false, monitor: true },
            )?;
        let e = cx.event().await;
        assert_eq!(e.from, p);
        let err = e.result.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(
            err.message().contains("upgrade") && err.message().contains("app:does.not.exist"),
            "{err}"
        );
        // A process not started from an entry cannot reload itself.
        let q = cx.spawn(
            proc(|cx| async move { match cx.upgrade(None, vec![]).await {} }),
            Ties { link: false, monitor: true },
        )?;
        let e = cx.event().await;
        assert_eq!(e.from, q);
        assert_eq!(e.result.unwrap().unwrap_err().kind(), ErrorKind::Invalid);
        Ok(Value::Nil)
    });
    assert_eq!(out, Ok(Value::Nil));
}

#[test]
fn outdated_reaches_upgradable_processes_of_the_entry() {
    let rt = runtime();
    let e = id("app:watcher");
    rt.put_entry(rust_entry(e.clone(), |cx, args| async move {
        cx.set_upgradable(args.first().and_then(Value::as_bool).unwrap_or(false));
        cx.send(cx.lookup("test").unwrap(), "ready", Value::Nil)?;
        let ev = cx.event().await;
        Ok(Value::from(ev.kind.name()))
    }));
    let out = exec(&rt, move |cx| async move {
        cx.register("test", None)?;
        let up = cx.spawn(
            Spawn::entry(e.clone(), HOST).args(vec![true.into()]),
            Ties { link: false, monitor: true },
        )?;
        let _not =
            cx.spawn(Spawn::entry(e.clone(), HOST).args(vec![false.into()]), Ties::default())?;
        cx.recv().await;
        cx.recv().await;
        Ok(Value::Array(vec![up.to_string().into()]))
    })
    .unwrap();
    let up: spindle_runtime::Pid = out.as_array().unwrap()[0].as_str().unwrap().parse().unwrap();
    let watch = rt.watch(up);
    assert_eq!(rt.notify_outdated(&id("app:watcher")), 1, "only the upgradable one");
    assert_eq!(watch.wait_timeout(PATIENCE).unwrap(), Ok(Value::from("OUTDATED")));
}

#[test]
fn prototypes_are_built_once_per_version() {
    use spindle_runtime::{Backend, Entry, Instance, Placement, Prototype, Result};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(Arc<AtomicUsize>);
    struct Proto(i64);
    impl Backend for Counting {
        fn kinds(&self) -> &[&str] {
            &["test.counting"]
        }
        fn prepare(&self, entry: &Entry) -> Result<Arc<dyn Prototype>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(Proto(entry.fields.get("answer").and_then(Value::as_int).unwrap_or(0))))
        }
    }
    impl Prototype for Proto {
        fn instantiate(&self, _: Vec<Value>, _: &Placement<'_>) -> Result<Instance> {
            let v = self.0;
            Ok(Instance {
                process: ProcessBox::new(spindle_runtime::rust::AsyncProcess::new(
                    move |_| async move { Ok(Value::Int(v)) },
                )),
                strand: None,
            })
        }
    }

    let prepared = Arc::new(AtomicUsize::new(0));
    let rt = spindle_runtime::Runtime::builder()
        .host(spindle_runtime::HostConfig::new(HOST).workers(2))
        .backend(Counting(prepared.clone()))
        .build()
        .unwrap();
    let mut entry = Entry::new(id("app:counted"), "test.counting");
    entry.fields = Value::map([("answer", Value::Int(1))]);
    rt.put_entry(entry.clone());
    for _ in 0..50 {
        assert_eq!(rt.exec(Spawn::entry(id("app:counted"), HOST)), Ok(Value::Int(1)));
    }
    assert_eq!(prepared.load(Ordering::SeqCst), 1, "compiled once for 50 spawns");
    entry.fields = Value::map([("answer", Value::Int(2))]);
    rt.put_entry(entry);
    for _ in 0..10 {
        assert_eq!(rt.exec(Spawn::entry(id("app:counted"), HOST)), Ok(Value::Int(2)));
    }
    assert_eq!(prepared.load(Ordering::SeqCst), 2, "a new version is compiled once more");
    assert_eq!(rt.cached_prototypes(), 1);
    // An entry whose kind has no backend.
    rt.put_entry(Entry::new(id("app:alien"), "process.cobol"));
    let err = rt.spawn(Spawn::entry(id("app:alien"), HOST)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("process.cobol"), "{err}");
}

#[test]
fn entry_ids_are_checked() {
    assert!("a:b".parse::<EntryId>().is_ok());
    for bad in ["", "ab", ":b", "a:", "a:b:c", "a b:c"] {
        let err = bad.parse::<EntryId>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{bad}");
    }
}

/// A process that upgrades while far behind its inbox (it took a chunk of it in one go and
/// received only part of that) keeps every message: the new code receives the rest, in order.
#[test]
fn upgrade_while_behind_the_inbox_keeps_every_message_in_order() {
    let rt = runtime();
    rt.put_entry(rust_entry(id("app:behind.v1"), |cx, _args| async move {
        for i in 0..300 {
            cx.send(cx.pid(), "n", i)?;
        }
        for i in 0..10 {
            assert_eq!(cx.recv().await.payload, Value::Int(i));
        }
        match cx.upgrade(Some(id("app:behind.v2")), vec![]).await {}
    }));
    rt.put_entry(rust_entry(id("app:behind.v2"), |cx, _args| async move {
        let mut n = 10;
        while let Some(m) = cx.try_receive(None) {
            assert_eq!(m.payload, Value::Int(n), "out of order after the upgrade");
            n += 1;
        }
        Ok(Value::Int(n))
    }));
    let out = exec(&rt, |cx| async move { cx.exec(Spawn::entry(id("app:behind.v1"), HOST)).await });
    assert_eq!(out, Ok(Value::Int(300)));
}

/// What a backend shares between the processes of one code version (a plugin's library) is
/// leased; once no process leases it any more, it is dropped even while its worker never goes
/// idle (the spare lease counts a worker keeps for values it stopped using go back from time to
/// time), so an old version's code does not stay loaded for as long as the host is busy.
#[test]
fn a_busy_worker_lets_go_of_what_no_process_leases() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use spindle_runtime::{HostConfig, Lease, LeaseCount, Leased};

    struct Shared {
        leases: LeaseCount,
        dropped: Arc<AtomicBool>,
    }
    // SAFETY: its own count, used only by leases.
    unsafe impl Leased for Shared {
        fn lease_count(&self) -> &LeaseCount {
            &self.leases
        }
    }
    impl Drop for Shared {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    let rt = runtime_with(HostConfig::new(HOST).workers(1));
    // The one worker never goes idle (which would give every spare back) from here on.
    let stop = Arc::new(AtomicBool::new(false));
    let busy = stop.clone();
    spawn(&rt, move |cx| async move {
        while !busy.load(Ordering::Relaxed) {
            cx.yield_now().await;
        }
        Ok(Value::Nil)
    });
    let dropped = Arc::new(AtomicBool::new(false));
    let value = Arc::new(Shared { leases: LeaseCount::default(), dropped: dropped.clone() });
    let shared = value.clone();
    let leased = exec(&rt, move |_| async move {
        let lease = Lease::new(&shared);
        drop(shared);
        drop(lease);
        Ok(Value::Nil)
    });
    assert_eq!(leased, Ok(Value::Nil));
    drop(value);
    let deadline = std::time::Instant::now() + PATIENCE;
    while !dropped.load(Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "the busy worker kept the value alive");
        std::thread::sleep(ms(1));
    }
    stop.store(true, Ordering::Relaxed);
}
