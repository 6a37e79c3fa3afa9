//! Strands: members of one strand are never stepped at the same time, yet all make progress,
//! next to processes outside any strand.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use spindle_runtime::scheduler::Strand;
use spindle_runtime::{
    Backend, Cx, Entry, EntryId, Instance, Op, Placement, Process, ProcessBox, Prototype, Result,
    Spawn, Step, Ties, Value, WaitFor,
};

/// One strand's guard: set while one of its members is in a step.
#[derive(Default)]
struct Guard {
    busy: AtomicBool,
    overlaps: AtomicUsize,
    steps: AtomicUsize,
}

/// A member: receives `rounds` messages; each step spins a little inside the guard.
struct Member {
    guard: Arc<Guard>,
    rounds: i64,
    tag: Option<spindle_runtime::Tag>,
}

impl Process for Member {
    fn step(&mut self, cx: &Cx) -> Step {
        let g = &self.guard;
        if g.busy.swap(true, Ordering::SeqCst) {
            g.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        g.steps.fetch_add(1, Ordering::SeqCst);
        for _ in 0..200 {
            std::hint::spin_loop();
        }
        if let Some(tag) = self.tag.take() {
            // After a yield the step runs whether or not the receive completed.
            let Some(c) = cx.take_completion(tag) else {
                self.tag = Some(tag);
                g.busy.store(false, Ordering::SeqCst);
                return Step::Wait(WaitFor::Any);
            };
            let spindle_runtime::Completion::Message(m) = c else { panic!("{c:?}") };
            // Echo back to the sender: the ping-pong keeps both sides busy.
            let _ = cx.send(m.from, "echo", m.payload);
            self.rounds -= 1;
        }
        g.busy.store(false, Ordering::SeqCst);
        if self.rounds == 0 {
            return Step::Exit(Ok(Value::Nil));
        }
        self.tag = Some(cx.start(Op::Receive { topic: None }));
        if self.rounds % 7 == 0 { Step::Yield } else { Step::Wait(WaitFor::Any) }
    }
}

/// Places every instance in one of `n` strands of the host (the least loaded), as the Lua
/// islands do.
struct StrandBackend {
    n: usize,
    strands: Mutex<Vec<(Arc<Strand>, Arc<Guard>)>>,
}

struct StrandProto(Arc<StrandBackend>);

struct Installed(Arc<StrandBackend>);

impl Backend for Installed {
    fn kinds(&self) -> &[&str] {
        &["test.strand"]
    }
    fn prepare(&self, _: &Entry) -> Result<Arc<dyn Prototype>> {
        Ok(Arc::new(StrandProto(self.0.clone())))
    }
}

impl Prototype for StrandProto {
    fn instantiate(&self, args: Vec<Value>, place: &Placement<'_>) -> Result<Instance> {
        let mut strands = self.0.strands.lock().unwrap();
        while strands.len() < self.0.n {
            strands.push((place.host.new_strand(), Arc::new(Guard::default())));
        }
        let (strand, guard) = strands.iter().min_by_key(|(s, _)| s.members()).unwrap().clone();
        let rounds = args[0].as_int().unwrap();
        Ok(Instance {
            process: ProcessBox::new(Member { guard, rounds, tag: None }),
            strand: Some(strand),
        })
    }
}

/// A host of two workers whose `test:member` entry places its processes in `n` strands.
fn strand_runtime(n: usize) -> (spindle_runtime::Runtime, Arc<StrandBackend>, EntryId) {
    let backend = Arc::new(StrandBackend { n, strands: Mutex::new(vec![]) });
    let rt = spindle_runtime::Runtime::builder()
        .host(spindle_runtime::HostConfig::new(HOST).workers(2))
        .backend(Installed(backend.clone()))
        .build()
        .unwrap();
    let id: EntryId = "test:member".parse().unwrap();
    rt.put_entry(Entry::new(id.clone(), "test.strand"));
    (rt, backend, id)
}

#[test]
fn strand_members_never_overlap_and_all_progress() {
    const MEMBERS: usize = 40;
    const ROUNDS: i64 = 300;
    let (rt, backend, id) = strand_runtime(3);
    let out = exec(&rt, move |cx| async move {
        let mut members = vec![];
        for _ in 0..MEMBERS {
            let spawn = Spawn::entry(id.clone(), HOST).args(vec![Value::Int(ROUNDS)]);
            members.push(cx.spawn(spawn, Ties { link: false, monitor: true })?);
        }
        // Drive every member with ROUNDS messages, each answered with an echo.
        for m in &members {
            cx.send(*m, "ping", 0)?;
        }
        let mut echoes = 0;
        for _ in 0..MEMBERS as i64 * ROUNDS {
            let m = cx.recv().await;
            echoes += 1;
            let _ = cx.send(m.from, "ping", m.payload);
        }
        for _ in 0..MEMBERS {
            let e = cx.event().await;
            assert_eq!(e.result, Some(Ok(Value::Nil)));
        }
        Ok(Value::Int(echoes))
    });
    assert_eq!(out, Ok(Value::Int(MEMBERS as i64 * ROUNDS)));
    let strands = backend.strands.lock().unwrap();
    assert_eq!(strands.len(), 3);
    for (strand, guard) in strands.iter() {
        assert_eq!(
            guard.overlaps.load(Ordering::SeqCst),
            0,
            "two members of one strand ran at once"
        );
        assert!(guard.steps.load(Ordering::SeqCst) > 0);
        assert_eq!(strand.members(), 0, "every member left its strand");
    }
}

/// A new member's first step goes to the worker that last ran its strand: spawned in waves,
/// with the workers asleep in between (so each wave finds its strands' workers parked, busy
/// with the spawner, or elsewhere), every member still starts and ends, and members of one
/// strand still never overlap.
#[test]
fn new_members_start_on_sleeping_and_busy_workers_alike() {
    const WAVES: usize = 30;
    const EACH: usize = 20;
    let (rt, backend, id) = strand_runtime(4);
    let out = exec(&rt, move |cx| async move {
        let mut ended = 0;
        for wave in 0..WAVES {
            let mut members = vec![];
            for _ in 0..EACH {
                let spawn = Spawn::entry(id.clone(), HOST).args(vec![Value::Int(1)]);
                members.push(cx.spawn(spawn, Ties { link: false, monitor: true })?);
            }
            for m in &members {
                cx.send(*m, "ping", 0)?;
            }
            for _ in 0..EACH {
                let m = cx.recv().await;
                assert_eq!(m.topic, "echo");
            }
            for _ in 0..EACH {
                let e = cx.event().await;
                assert_eq!(e.result, Some(Ok(Value::Nil)));
                ended += 1;
            }
            if wave % 3 == 0 {
                cx.sleep(ms(3)).await;
            }
        }
        Ok(Value::Int(ended))
    });
    assert_eq!(out, Ok(Value::Int((WAVES * EACH) as i64)));
    for (strand, guard) in backend.strands.lock().unwrap().iter() {
        assert_eq!(
            guard.overlaps.load(Ordering::SeqCst),
            0,
            "two members of one strand ran at once"
        );
        assert_eq!(strand.members(), 0, "every member left its strand");
    }
}

/// A member that answers every message at once with a ball to its peer (whose serial the first
/// message names) and never yields: two of them in one strand keep it busy for good, each step
/// short.
struct Looper {
    steps: Arc<AtomicUsize>,
    peer: Option<u64>,
    tag: Option<spindle_runtime::Tag>,
}

impl Process for Looper {
    fn step(&mut self, cx: &Cx) -> Step {
        self.steps.fetch_add(1, Ordering::Relaxed);
        if let Some(tag) = self.tag.take() {
            let Some(c) = cx.take_completion(tag) else {
                self.tag = Some(tag);
                return Step::Wait(WaitFor::Any);
            };
            let spindle_runtime::Completion::Message(m) = c else { panic!("{c:?}") };
            if m.topic == "peer" {
                self.peer = m.payload.as_int().map(|s| s as u64);
            }
            if let Some(peer) = self.peer {
                let _ = cx.send_serial(peer, "ball", Value::Nil);
            }
        }
        self.tag = Some(cx.start(Op::Receive { topic: None }));
        Step::Wait(WaitFor::Any)
    }
}

/// Puts every looper in one strand.
#[derive(Default)]
struct LoopBackend {
    strand: Mutex<Option<Arc<Strand>>>,
    steps: Arc<AtomicUsize>,
}

struct LoopInstalled(Arc<LoopBackend>);

impl Backend for LoopInstalled {
    fn kinds(&self) -> &[&str] {
        &["test.loop"]
    }
    fn prepare(&self, _: &Entry) -> Result<Arc<dyn Prototype>> {
        Ok(Arc::new(LoopProto(self.0.clone())))
    }
}

struct LoopProto(Arc<LoopBackend>);

impl Prototype for LoopProto {
    fn instantiate(&self, _: Vec<Value>, place: &Placement<'_>) -> Result<Instance> {
        let strand =
            self.0.strand.lock().unwrap().get_or_insert_with(|| place.host.new_strand()).clone();
        let steps = self.0.steps.clone();
        Ok(Instance {
            process: ProcessBox::new(Looper { steps, peer: None, tag: None }),
            strand: Some(strand),
        })
    }
}

/// A strand whose members keep each other ready with short steps still lets its worker go
/// (after its budget of steps, or its time slice): on a host of one worker, a process outside
/// the strand keeps taking turns, and the strand between them.
#[test]
fn a_strand_kept_busy_by_its_members_lets_its_worker_go() {
    let backend = Arc::new(LoopBackend::default());
    let rt = spindle_runtime::Runtime::builder()
        .host(spindle_runtime::HostConfig::new(HOST).workers(1))
        .backend(LoopInstalled(backend.clone()))
        .build()
        .unwrap();
    let id: EntryId = "test:looper".parse().unwrap();
    rt.put_entry(Entry::new(id.clone(), "test.loop"));
    const TURNS: i64 = 200;
    let (_, watch) = rt
        .spawn_watched(proc(move |cx| async move {
            let a = cx.spawn(Spawn::entry(id.clone(), HOST), Ties::default())?;
            let b = cx.spawn(Spawn::entry(id, HOST), Ties::default())?;
            cx.send(a, "peer", b.serial() as i64)?;
            cx.send(b, "peer", a.serial() as i64)?;
            let mut turns = 0;
            for _ in 0..TURNS {
                cx.yield_now().await;
                turns += 1;
            }
            cx.terminate(a)?;
            cx.terminate(b)?;
            Ok(Value::Int(turns))
        }))
        .unwrap();
    let Some(out) = watch.wait_timeout(PATIENCE) else {
        // Its worker may never come back to stop: leave the runtime running.
        std::mem::forget(rt);
        panic!("the process outside the strand got no turn for {PATIENCE:?}");
    };
    assert_eq!(out, Ok(Value::Int(TURNS)));
    let steps = backend.steps.load(Ordering::Relaxed);
    assert!(steps > 64, "the strand barely ran: {steps} steps");
}
