//! The scheduler: one per host. N workers, each with a local FIFO queue; a global injector for
//! wake-ups from outside the host's workers; idle workers steal, then park.
//!
//! * `state.rs` — the state word that makes a wake-up queue a process at most once.
//! * `worker.rs` — the worker loop: find work, run it, park.
//! * `idle.rs` — parking and waking workers without losing a wake-up.
//! * `strand.rs` — serial groups of processes moved between workers as one unit.

mod idle;
pub(crate) mod state;
mod strand;
mod worker;

pub use strand::Strand;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_deque::{Injector, Stealer, Worker};

use crate::process_ref::ProcessRef;
use crate::sync::{Mutex, lock};
use idle::Idle;
use worker::Push;

/// Something a worker can run.
pub(crate) enum Task {
    Process(ProcessRef),
    Strand(Arc<Strand>),
}

/// The run queues and workers of one host.
pub(crate) struct Scheduler {
    name: String,
    injector: Injector<Task>,
    /// Per worker: strands with a new member, sent to the worker that last ran them (see
    /// `Strand::push_new`); idle workers take from the others' too.
    homes: Vec<Injector<Task>>,
    stealers: Vec<Stealer<Task>>,
    idle: Idle,
    shutdown: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Scheduler {
    /// Starts a scheduler with `workers` threads named after the host.
    pub(crate) fn start(name: &str, workers: usize) -> Arc<Scheduler> {
        let workers = workers.max(1);
        let locals: Vec<Worker<Task>> = (0..workers).map(|_| Worker::new_fifo()).collect();
        let sched = Arc::new(Scheduler {
            name: name.to_owned(),
            injector: Injector::new(),
            homes: (0..workers).map(|_| Injector::new()).collect(),
            stealers: locals.iter().map(Worker::stealer).collect(),
            idle: Idle::new(workers),
            shutdown: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        let mut threads = lock(&sched.threads);
        for (index, local) in locals.into_iter().enumerate() {
            let s = sched.clone();
            let handle = std::thread::Builder::new()
                .name(format!("spindle:{}:{index}", name))
                .spawn(move || worker::run(s, index, local))
                .expect("spawning a scheduler worker thread");
            threads.push(handle);
        }
        drop(threads);
        sched
    }

    /// The number of workers.
    pub(crate) fn workers(&self) -> usize {
        self.stealers.len()
    }

    /// The index of the calling thread among this scheduler's workers, if it is one of them.
    pub(crate) fn current_worker(&self) -> Option<usize> {
        worker::current_index(self)
    }

    /// Queues `task` on worker `home`'s own queue, waking that worker if it sleeps.
    pub(crate) fn schedule_home(&self, home: usize, task: Task) {
        self.homes[home].push(task);
        self.idle.notify_worker(home);
    }

    /// Queues a task that was just woken or spawned: in the current worker's `next` slot when
    /// called from one of this scheduler's workers, else on the injector.
    pub(crate) fn schedule(&self, task: Task) {
        self.push(task, Push::Wake);
    }

    /// Queues `task` as [`Scheduler::schedule`] does when the caller is one of the workers of
    /// the scheduler at `sched`; gives it back otherwise. For a waker whose only reference to
    /// the scheduler is kept alive by `task` itself.
    pub(crate) fn schedule_here(sched: *const Scheduler, task: Task) -> Result<(), Task> {
        worker::push_local(sched, task, Push::Wake)
    }

    fn push(&self, task: Task, how: Push) {
        if let Err(task) = worker::push_local(self, task, how) {
            self.injector.push(task);
            self.idle.notify_one();
        }
    }

    /// Stops the workers (after their current task) and joins them. Tasks left in the queues
    /// are dropped.
    pub(crate) fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.idle.notify_all();
        let threads = std::mem::take(&mut *lock(&self.threads));
        let me = std::thread::current().id();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        // Queued strands hold the scheduler (and it them): emptied, the cycle is broken.
        for queue in std::iter::once(&self.injector).chain(&self.homes) {
            while !queue.is_empty() {
                let _ = queue.steal();
            }
        }
    }

    fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("name", &self.name)
            .field("workers", &self.workers())
            .finish()
    }
}
