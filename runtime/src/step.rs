//! How a worker runs one process: step it, act on the returned [`Step`], end it.
//!
//! A process taken from a queue is stepped repeatedly while its wait is already satisfied (a
//! receive that found a queued message), up to `STEP_BUDGET` steps; then it goes behind the
//! others. A panic in a step ends that process with an `INTERNAL` error and nothing else.

use std::cell::Cell;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::cell::{ProcessCell, Relations};
use crate::context::Cx;
use crate::error::{Error, ErrorKind, Result};
use crate::process::{ProcessBox, Step, WaitFor};
use crate::process_ref::ProcessRef;
use crate::registry::EntryId;
use crate::runtime::undo;
use crate::scheduler::state::Idle;
use crate::sync::lock;
use crate::value::Value;

const STEP_BUDGET: u32 = 64;

thread_local! {
    /// Set when the running step armed a wait-any (`Mailbox::arm`).
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// The process whose step this thread is running, if any.
    static RUNNING: Cell<*const ProcessCell> = const { Cell::new(std::ptr::null()) };
}

/// Whether this thread is running a step of `cell`.
pub(crate) fn running(cell: &ProcessCell) -> bool {
    RUNNING.with(|r| std::ptr::eq(r.get(), cell))
}

/// Notes that the step running on this thread armed a wait-any.
pub(crate) fn armed() {
    ARMED.with(|a| a.set(true));
}

/// What the worker does with the process after [`run`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// It ended, or it waits: nothing to do.
    Done,
    /// Queue it again (behind the others).
    Requeue,
}

pub(crate) fn run(cell: &ProcessRef) -> After {
    if !cell.state.start() {
        return After::Done;
    }
    // The context lent to the steps aliases the caller's reference instead of taking one of its
    // own (two atomic read-modify-writes per run saved).
    let alias = ProcessRef::as_ptr(cell);
    // SAFETY: `cell` outlives this frame; the alias is never dropped (`ManuallyDrop`) and is
    // only lent by shared reference, so nothing can move it out: clones of it take their own
    // reference, and the count stays right.
    let cx = ManuallyDrop::new(Cx { cell: unsafe { ProcessRef::from_raw(alias) } });
    for _ in 0..STEP_BUDGET {
        if cell.killed.load(Ordering::Acquire) {
            let err = lock(&cell.inner).take_kill();
            let err = err.unwrap_or_else(|| Error::new(ErrorKind::Canceled, "killed"));
            exit(cell, Err(err));
            return After::Done;
        }
        // SAFETY: `start` above gave this worker the RUNNING bit; it is released only by the
        // `idle`, `requeue` or `complete` transitions below, after the last use of the body.
        let body = unsafe { cell.body() };
        let Some(process) = body.as_mut().map(ProcessBox::get) else {
            exit(cell, Err(Error::new(ErrorKind::Internal, "process has no code")));
            return After::Done;
        };
        ARMED.with(|a| a.set(false));
        let outer = RUNNING.with(|r| r.replace(ProcessRef::as_ptr(cell)));
        // The step's result is written in place and looked at by reference: a copy of the
        // whole enum right after the step wrote only its tag would stall on store forwarding.
        let mut out = MaybeUninit::<Step>::uninit();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            out.write(process.step(&cx));
        }));
        // SAFETY: the closure returned normally, so it wrote `out`; a `Yield` or `Wait` left in
        // it owns nothing that needs dropping.
        let step = caught.as_ref().ok().map(|()| unsafe { out.assume_init_ref() });
        if step.is_some_and(|s| !matches!(s, Step::Exit(_))) {
            put_back(cell);
        }
        RUNNING.with(|r| r.set(outer));
        let step = match (caught, step) {
            (Ok(()), Some(step)) => step,
            (Err(panic), _) => {
                let msg = panic_message(&*panic);
                let msg = format!("process panicked: {msg}");
                exit(cell, Err(Error::new(ErrorKind::Internal, msg)));
                return After::Done;
            }
            (Ok(()), None) => unreachable!("a step that returned wrote its result"),
        };
        match step {
            Step::Exit(_) | Step::Upgrade { .. } => {}
            Step::Yield => {
                cell.state.requeue();
                return After::Requeue;
            }
            Step::Wait(WaitFor::Any) if ARMED.with(Cell::get) => {
                // Armed during the step: anything that became ready since woke the process
                // through the state word (NOTIFIED), so `idle` alone decides.
                return match cell.state.idle() {
                    Idle::Parked => After::Done,
                    Idle::Reschedule => After::Requeue,
                };
            }
            &Step::Wait(mode) => {
                let mut inner = lock(&cell.inner);
                if inner.kill_pending() || inner.mailbox.ready(mode) {
                    // Step again at once; a waker call seen here is consumed by that step, and
                    // an armed wait is moot.
                    inner.mailbox.notified = false;
                    inner.mailbox.waiting = None;
                    continue;
                }
                inner.mailbox.waiting = Some(mode);
                // Whatever woke it during the step was seen under this lock and is not a
                // reason to run now (an armed wait-any's wake-up, say, for a step that then
                // waits for all): it must not undo the parking. What comes from here on wakes
                // it through `waiting`.
                cell.state.forget_wake();
                drop(inner);
                return match cell.state.idle() {
                    Idle::Parked => After::Done,
                    Idle::Reschedule => After::Requeue,
                };
            }
        }
        // SAFETY: as above; an `Exit` or `Upgrade` is moved out of `out` once, here.
        match unsafe { out.assume_init() } {
            Step::Exit(result) => {
                exit(cell, result);
                return After::Done;
            }
            Step::Upgrade { entry, args } => {
                if let Err(e) = upgrade(cell, entry, args) {
                    exit(cell, Err(e));
                    return After::Done;
                }
            }
            Step::Yield | Step::Wait(_) => unreachable!("handled above"),
        }
    }
    cell.state.requeue();
    After::Requeue
}

/// At the end of a step, the inbox messages it took out and did not receive go back in front
/// of the inbox (see `ProcessCell::taken`).
fn put_back(cell: &ProcessCell) {
    if let Some(left) = cell.taken_left() {
        lock(&cell.inner).mailbox.put_back_taken(std::mem::take(left));
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

/// Swaps in the code of `entry` (the current entry if `None`), keeping identity and mailbox.
fn upgrade(cell: &ProcessRef, entry: Option<EntryId>, args: Vec<Value>) -> Result<()> {
    let pid = cell.pid;
    let id = match entry {
        Some(id) => id,
        None => lock(&cell.inner).entry.clone().ok_or_else(|| {
            Error::invalid(format!("upgrade of {pid}: it was not started from an entry to reload"))
        })?,
    };
    let fail = |e: Error| e.context(format!("upgrade of {pid} to {id}"));
    let instantiated = cell.rt().instantiate(id.clone(), args, &cell.host, cell.strand.as_ref());
    let (inst, id) = instantiated.map_err(fail)?;
    let same_strand = match (&inst.strand, &cell.strand) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    };
    if !same_strand {
        return Err(fail(Error::new(
            ErrorKind::Unavailable,
            "the new code would run in another isolation group (island or backend) than the old, \
             and an upgrade keeps the process where it runs",
        )));
    }
    let ops = {
        let mut inner = lock(&cell.inner);
        inner.entry = Some(id);
        inner.mailbox.reset_ops()
    };
    ops.into_iter().for_each(|op| undo(cell.rt(), op));
    // SAFETY: called from `run`, which holds the RUNNING bit.
    let old = unsafe { cell.body() }.replace(inst.process);
    drop(old);
    Ok(())
}

/// Ends `cell` with `result`: it leaves the table, its names are released, its operations are
/// dropped, its code is dropped, and its monitors and links are told.
fn exit(cell: &ProcessRef, result: Result<Value, Error>) {
    let rt = &cell.rt();
    // Uncounted before it leaves the table: whoever sees the table without it (under the
    // shard's lock) then sees the host's count without it too.
    cell.host.live.remove(&cell.host.sched);
    // Out of the table first: the lock taken next, which marks the process ended, also waits
    // out any delivery that found it there (see `Table::take_out`).
    let listed = rt.table.take_out(cell.pid);
    let (rel, ops, entry) = {
        let mut inner = lock(&cell.inner);
        inner.exited = true;
        let entry = if result.is_err() { inner.entry.clone() } else { None };
        (inner.take_relations(), inner.mailbox.close(), entry)
    };
    if let Err(e) = &result {
        // A crash report, as Erlang's: failures are worth a line; stops on request are not.
        let entry = entry.as_ref().map_or("-", EntryId::as_str);
        if e.kind() == ErrorKind::Canceled {
            tracing::debug!(pid = %cell.pid, entry, "process stopped: {e}");
        } else {
            tracing::warn!(pid = %cell.pid, entry, "process failed: {e}");
        }
    }
    let Relations { links, watchers, names, monitoring, .. } = rel;
    ops.into_iter().for_each(|op| undo(rt, op));
    // SAFETY: called from `run`, which holds the RUNNING bit until `complete` below.
    let body = unsafe { cell.body() }.take();
    // SAFETY: as above.
    let dest = unsafe { cell.forget_dest() };
    // SAFETY: as above. Messages it took out of its inbox and never received go with it.
    unsafe { cell.drop_taken() };
    cell.state.complete();
    drop(listed);
    if let Some(s) = &cell.strand {
        s.left();
    }
    for name in &names {
        rt.names.remove(name, cell.pid);
    }
    for target in monitoring {
        rt.drop_monitor(cell.pid, target);
    }
    // The code goes before anyone hears of the exit: its destructors run as part of the process.
    drop(body);
    drop(dest);
    rt.notify_exit(cell.pid, &result, links, watchers);
}
