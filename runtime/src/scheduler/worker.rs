//! The worker loop.
//!
//! A worker takes tasks from its `next` slot, then, taking turns, its local FIFO queue and its
//! home queue (strands with a new member, sent to the worker that last ran them: see
//! `Strand::push_new`); every `INJECTOR_INTERVAL` tasks, and after every task that yielded (a
//! spent time slice), it looks at the injector first, so wake-ups from outside (timers, other
//! hosts) are not starved by a busy local queue. With no local work it takes its home queue,
//! a batch from the injector, another worker's home queue, steals a batch from another
//! worker, then parks (see `idle.rs`).
//!
//! The `next` slot holds the last task woken by this worker (a message's receiver, a spawned
//! child): it runs right after the current task, on the same core, while the message is still in
//! cache and without waking another worker. A task displaced from the slot goes to the local
//! queue, where idle workers can steal it. Two processes messaging each other keep the worker
//! only while nobody else waits in its local queue, or for `STREAK_BUDGET` (a time slice) when
//! somebody does: then the slot task goes to the injector, where the first worker to finish
//! its current task finds it. A task that yields goes behind the others in the local queue,
//! never into the slot.

use std::cell::Cell;
use std::iter;
use std::ptr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_deque::{Steal, Worker};

use super::{Scheduler, Task};
use crate::step;
use crate::sync::Parker;

const INJECTOR_INTERVAL: u32 = 61;
/// Slot tasks in a row that always run before the streak is looked at.
const MAX_NEXT_STREAK: u32 = 3;
/// How often (in tasks) a busy worker gives back its spare lease counts, as an idle one does:
/// a value that no process leases any more is then dropped (see `lease`). The values it still
/// uses take a batch again on their next lease.
const LEASE_FLUSH_INTERVAL: u32 = 1 << 14;
/// How long a streak of slot tasks may keep others in the local queue waiting.
const STREAK_BUDGET: Duration = Duration::from_micros(250);
/// How often (in slot tasks) a long streak reads the clock.
const STREAK_CLOCK_EVERY: u32 = 16;

struct Local {
    sched: *const Scheduler,
    index: usize,
    queue: Worker<Task>,
    next: Cell<Option<Task>>,
}

/// How a task re-enters a run queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Push {
    /// Woken or spawned: run it soon (the `next` slot).
    Wake,
    /// Yielded: behind everything that is ready.
    Yield,
}

thread_local! {
    static LOCAL: Cell<*const Local> = const { Cell::new(ptr::null()) };
}

/// Pushes `task` onto the calling worker's own queues if the caller is a worker of the
/// scheduler at `sched` (only compared: the address may come from a reference that `task`
/// itself keeps alive); wakes a sleeping worker if stealable work was added. Gives the task
/// back otherwise.
pub(super) fn push_local(sched: *const Scheduler, task: Task, how: Push) -> Result<(), Task> {
    LOCAL.with(|l| {
        let local = l.get();
        // SAFETY: `LOCAL` points at the `Local` on the stack of `run` below for exactly as long
        // as that frame lives on this thread (it is reset before `run` returns), and only this
        // thread reads it.
        let Some(local) = (unsafe { local.as_ref() }).filter(|l| ptr::eq(l.sched, sched)) else {
            return Err(task);
        };
        // What goes into the local queue can be stolen: a yielded task, or the one a woken
        // task displaces from the `next` slot.
        let queued = match how {
            Push::Wake => local.next.replace(Some(task)),
            Push::Yield => Some(task),
        };
        if let Some(queued) = queued {
            local.queue.push(queued);
            // SAFETY: `local.sched` comes from the `Arc` that `run` holds for as long as `LOCAL`
            // points at its frame.
            unsafe { &*local.sched }.idle.notify_one();
        }
        Ok(())
    })
}

/// The index of the calling thread among the workers of `sched`, if it is one of them.
pub(super) fn current_index(sched: &Scheduler) -> Option<usize> {
    LOCAL.with(|l| {
        // SAFETY: as in `push_local`.
        unsafe { l.get().as_ref() }.filter(|local| ptr::eq(local.sched, sched)).map(|l| l.index)
    })
}

pub(super) fn run(sched: Arc<Scheduler>, index: usize, queue: Worker<Task>) {
    let local = Local { sched: Arc::as_ptr(&sched), index, queue, next: Cell::new(None) };
    LOCAL.with(|l| l.set(&local));
    crate::lease::enable();
    crate::records::enable();
    let parker = Parker::new();
    sched.idle.register(index, &parker);
    let mut tick: u32 = 0;
    let mut streak: u32 = 0;
    let mut streak_since: Option<Instant> = None;
    let mut yielded = false;

    while !sched.is_shutdown() {
        tick = tick.wrapping_add(1);
        if tick.is_multiple_of(LEASE_FLUSH_INTERVAL) {
            crate::lease::flush();
        }
        let mut task = local.next.take();
        if task.is_some() {
            streak += 1;
            if streak > MAX_NEXT_STREAK && streak_spent(&mut streak_since, streak, &local.queue) {
                // Into the global queue rather than behind this worker's queue: the first
                // worker whose task ends (one that spent its slice looks there first) takes
                // it, so it waits for at most one slice, not for one on this worker (or a
                // parked worker takes it at once).
                sched.injector.push(task.take().expect("checked"));
                sched.idle.notify_one();
                streak = 0;
                streak_since = None;
            }
        } else {
            streak = 0;
            streak_since = None;
        }
        let task = task.or_else(|| {
            // After a yield a whole time slice has passed: wake-ups from outside go first.
            if tick.is_multiple_of(INJECTOR_INTERVAL) || std::mem::take(&mut yielded) {
                steal_injector(&sched, &local.queue)
                    .or_else(|| steal_home(&sched, index))
                    .or_else(|| local.queue.pop())
            } else if tick.is_multiple_of(2) {
                // Strands sent here and the local queue take turns: neither starves the other.
                steal_home(&sched, index).or_else(|| local.queue.pop())
            } else {
                local.queue.pop().or_else(|| steal_home(&sched, index))
            }
        });
        let task = task.or_else(|| find_work(&sched, index, &local.queue));
        match task {
            Some(task) => yielded = run_task(&sched, task),
            None => {
                sched.idle.announce(index);
                if let Some(task) = find_work(&sched, index, &local.queue) {
                    sched.idle.withdraw(index);
                    yielded = run_task(&sched, task);
                    continue;
                }
                if sched.is_shutdown() {
                    break;
                }
                // Idle: the spare reference counts and records this worker keeps go back.
                crate::lease::flush();
                crate::records::flush();
                parker.park();
                sched.idle.withdraw(index);
            }
        }
    }
    LOCAL.with(|l| l.set(ptr::null()));
    crate::lease::disable();
    crate::records::disable();
    // Tasks still queued here are dropped with the queue; `Runtime::shutdown` ends processes.
    drop(local.next.take());
}

fn steal_injector(sched: &Scheduler, queue: &Worker<Task>) -> Option<Task> {
    iter::repeat_with(|| sched.injector.steal_batch_and_pop(queue))
        .find(|s| !s.is_retry())
        .and_then(Steal::success)
}

/// A strand sent to worker `index` (see `Strand::push_new`).
fn steal_home(sched: &Scheduler, index: usize) -> Option<Task> {
    iter::repeat_with(|| sched.homes[index].steal())
        .find(|s| !s.is_retry())
        .and_then(Steal::success)
}

fn find_work(sched: &Scheduler, index: usize, queue: &Worker<Task>) -> Option<Task> {
    if let Some(t) = steal_home(sched, index) {
        return Some(t);
    }
    if let Some(t) = steal_injector(sched, queue) {
        return Some(t);
    }
    // Strands sent to a busy worker go to whoever is idle.
    let n = sched.homes.len();
    for k in 1..n {
        if let Some(t) = steal_home(sched, (index + k) % n) {
            return Some(t);
        }
    }
    let n = sched.stealers.len();
    for k in 1..n {
        let victim = &sched.stealers[(index + k) % n];
        let got = iter::repeat_with(|| victim.steal_batch_and_pop(queue))
            .find(|s| !s.is_retry())
            .and_then(Steal::success);
        if got.is_some() {
            return got;
        }
    }
    None
}

/// Whether a streak of `streak` slot tasks has had its share: only when others wait in the local
/// queue, and then after `STREAK_BUDGET` (the clock is read every `STREAK_CLOCK_EVERY` tasks).
fn streak_spent(since: &mut Option<Instant>, streak: u32, queue: &Worker<Task>) -> bool {
    if queue.is_empty() || !(streak - MAX_NEXT_STREAK - 1).is_multiple_of(STREAK_CLOCK_EVERY) {
        return false;
    }
    let now = Instant::now();
    now.duration_since(*since.get_or_insert(now)) >= STREAK_BUDGET
}

/// Runs one task; returns whether it went back to the queue (yielded or out of budget).
fn run_task(sched: &Scheduler, task: Task) -> bool {
    match task {
        Task::Process(cell) => {
            let again = step::run(&cell) == step::After::Requeue;
            if again {
                sched.push(Task::Process(cell), Push::Yield);
            }
            again
        }
        Task::Strand(strand) => {
            let again = strand.run();
            if again {
                sched.push(Task::Strand(strand), Push::Yield);
            }
            again
        }
    }
}
