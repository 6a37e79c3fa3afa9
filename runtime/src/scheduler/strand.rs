//! Strands: serial groups of processes that are never stepped at the same time.
//!
//! A backend whose processes share something single-threaded (a Lua island: one Lua state)
//! puts them in one strand. A member's wake-up queues the member on the strand's own ready queue
//! and queues the strand on the scheduler. The worker that takes the strand steps its ready
//! members one after another (up to `STRAND_BUDGET`, or until one spends a whole time slice,
//! or until the strand ran for `STRAND_SLICE`), then lets go: back into a run queue if members
//! are still ready, else idle. The strand has its own state word, so it is queued at
//! most once and run by at most one worker: that is what keeps its members serial.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::state::{Idle, State, Wake};
use super::{Scheduler, Task};
use crate::process_ref::ProcessRef;
use crate::step;
use crate::sync::{Mutex, lock};

/// How many member steps a worker runs at most before it lets a strand go.
const STRAND_BUDGET: usize = 64;
/// How long a worker runs a strand's members at most before it lets the strand go.
const STRAND_SLICE: Duration = Duration::from_micros(500);

/// A serial group of processes on one host (see the module docs).
pub struct Strand {
    state: State,
    ready: Mutex<VecDeque<ProcessRef>>,
    sched: Arc<Scheduler>,
    members: AtomicUsize,
    /// The worker that last ran it (`usize::MAX`: none yet); see `push_new`.
    home: AtomicUsize,
}

impl Strand {
    pub(crate) fn new(sched: Arc<Scheduler>) -> Arc<Strand> {
        Arc::new(Strand {
            state: State::new_idle(),
            ready: Mutex::new(VecDeque::new()),
            sched,
            members: AtomicUsize::new(0),
            home: AtomicUsize::new(usize::MAX),
        })
    }

    /// How many live processes belong to this strand (for placing new ones).
    pub fn members(&self) -> usize {
        self.members.load(Ordering::Relaxed)
    }

    pub(crate) fn joined(&self) {
        self.members.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn left(&self) {
        self.members.fetch_sub(1, Ordering::Relaxed);
    }

    /// Queues member `cell` (whose own state word the caller already set to scheduled).
    pub(crate) fn push(self: &Arc<Self>, cell: ProcessRef) {
        self.queue(cell, false);
    }

    /// Queues new member `cell` (its first step): on the worker that last ran the strand, if
    /// that is another one. A wake-up goes to the waker's worker (`push`), so that two members
    /// of different strands that message each other run on one worker, right after each other;
    /// but a spawner's worker running its children's strands drew every strand's memory (a Lua
    /// island's heap) to its own cache and back: on two workers, Lua processes spawned in a
    /// loop cost twice the CPU they cost on one. Sent home, a strand stays where its memory is,
    /// and an idle worker still takes it from there.
    pub(crate) fn push_new(self: &Arc<Self>, cell: ProcessRef) {
        self.queue(cell, true);
    }

    fn queue(self: &Arc<Self>, cell: ProcessRef, home: bool) {
        lock(&self.ready).push_back(cell);
        if self.state.wake() != Wake::Schedule {
            return;
        }
        let task = Task::Strand(self.clone());
        let at = self.home.load(Ordering::Relaxed);
        if home && at != usize::MAX && self.sched.current_worker() != Some(at) {
            self.sched.schedule_home(at, task);
        } else {
            self.sched.schedule(task);
        }
    }

    /// Forgets every queued member (shutdown: breaks the member → strand → member cycle).
    pub(crate) fn clear(&self) {
        lock(&self.ready).clear();
    }

    /// Runs ready members; returns `true` if the strand must be queued again.
    ///
    /// One lock of the ready queue per member: the lock that hands out the next member also
    /// tells whether there is one, and the clock is read only when there is (a strand woken
    /// for one member, the common case, steps it and goes idle).
    pub(super) fn run(&self) -> bool {
        if !self.state.start() {
            return false;
        }
        if let Some(me) = self.sched.current_worker() {
            self.home.store(me, Ordering::Relaxed);
        }
        let start = Instant::now();
        let mut next = lock(&self.ready).pop_front();
        let mut ran = 0;
        while let Some(cell) = next {
            let spent = step::run(&cell) == step::After::Requeue;
            ran += 1;
            if spent {
                // A member that spent its time slice lets the worker go: the strand's members
                // are one unit to the scheduler, and share a slice.
                lock(&self.ready).push_back(cell);
                self.state.requeue();
                return true;
            }
            drop(cell);
            next = lock(&self.ready).pop_front();
            // So does a strand that ran for a slice, or for its budget of steps.
            if let Some(cell) =
                next.take_if(|_| ran == STRAND_BUDGET || start.elapsed() >= STRAND_SLICE)
            {
                lock(&self.ready).push_front(cell);
                self.state.requeue();
                return true;
            }
        }
        self.state.idle() == Idle::Reschedule
    }
}

impl fmt::Debug for Strand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Strand")
            .field("state", &self.state)
            .field("members", &self.members())
            .finish()
    }
}
