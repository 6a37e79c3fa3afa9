//! The live record of one process: its identity, run state, lock-protected mailbox and
//! relations, and its body (the backend's state machine).
//!
//! Who touches what:
//! * `state` — anyone, through the transitions in `scheduler/state.rs`.
//! * `inner` — anyone, under its lock; never held while process code runs, and never together
//!   with another process's lock.
//! * `body` — only the worker that holds the `RUNNING` bit (or, after the workers stopped, the
//!   runtime's shutdown).

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::error::Error;
use crate::host::Host;
use crate::mailbox::Mailbox;
use crate::pid::Pid;
use crate::process::{Process, Tag};
use crate::registry::EntryId;
use crate::runtime::Shared;
use crate::scheduler::Strand;
use crate::scheduler::Task;
use crate::scheduler::state::{State, Wake};
use crate::sync::{SpinLock, lock};
use crate::value::Value;

pub(crate) struct ProcessCell {
    pub(crate) pid: Pid,
    pub(crate) state: State,
    pub(crate) rt: Arc<Shared>,
    pub(crate) host: Arc<Host>,
    pub(crate) strand: Option<Arc<Strand>>,
    pub(crate) inner: SpinLock<Inner>,
    /// Mirrors `inner.kill.is_some()` so that a step can check it without the lock.
    pub(crate) killed: AtomicBool,
    body: UnsafeCell<Option<Box<dyn Process>>>,
}

// SAFETY: `body` is only accessed by the one thread that holds the RUNNING bit of `state` (or by
// shutdown after every worker has stopped); the state word's AcqRel transitions order those
// accesses. Everything else is `Sync` on its own.
unsafe impl Sync for ProcessCell {}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) mailbox: Mailbox,
    pub(crate) exited: bool,
    /// Set by `terminate` or a broken link: the process ends with this error before its next step.
    pub(crate) kill: Option<Box<Error>>,
    pub(crate) entry: Option<EntryId>,
    pub(crate) links: List<Pid>,
    pub(crate) watchers: List<Watcher>,
    /// The processes this one monitors, so that its monitors go when it ends.
    pub(crate) monitoring: List<Pid>,
    pub(crate) names: List<String>,
    pub(crate) trap_links: bool,
    pub(crate) upgradable: bool,
}

/// A list that costs one pointer while empty, as most relation lists of most processes are.
#[expect(clippy::box_collection, reason = "one pointer instead of three while empty")]
pub(crate) struct List<T>(Option<Box<Vec<T>>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(None)
    }
}

impl<T> List<T> {
    pub(crate) fn push(&mut self, item: T) {
        self.0.get_or_insert_with(Box::default).push(item);
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.as_deref().map_or(&[][..], Vec::as_slice).iter()
    }

    pub(crate) fn retain(&mut self, f: impl FnMut(&T) -> bool) {
        if let Some(v) = &mut self.0 {
            v.retain(f);
        }
    }

    /// Removes the first item matching `f`.
    pub(crate) fn remove_first(&mut self, f: impl FnMut(&T) -> bool) {
        if let Some(v) = &mut self.0
            && let Some(i) = v.iter().position(f)
        {
            v.remove(i);
        }
    }

    pub(crate) fn take(&mut self) -> Vec<T> {
        self.0.take().map(|b| *b).unwrap_or_default()
    }
}

impl<T: PartialEq> List<T> {
    pub(crate) fn contains(&self, item: &T) -> bool {
        self.iter().any(|x| x == item)
    }
}

/// Who is told when this process ends, and how.
pub(crate) enum Watcher {
    /// A monitor: an EXIT event to `pid`.
    Monitor(Pid),
    /// An exec: completes operation `tag` of process `pid` with the result.
    Exec(Pid, Tag),
    /// Code outside the runtime's processes awaiting the result.
    External(std::sync::mpsc::Sender<Result<Value, Error>>),
}

impl ProcessCell {
    pub(crate) fn new(
        pid: Pid,
        rt: Arc<Shared>,
        host: Arc<Host>,
        strand: Option<Arc<Strand>>,
        body: Box<dyn Process>,
        inner: Inner,
    ) -> ProcessCell {
        ProcessCell {
            pid,
            state: State::new_scheduled(),
            rt,
            host,
            strand,
            inner: SpinLock::new(inner),
            killed: AtomicBool::new(false),
            body: UnsafeCell::new(Some(body)),
        }
    }

    /// The body, for the worker that holds `RUNNING`.
    ///
    /// # Safety
    /// The caller holds the `RUNNING` bit of `self.state` (or all workers of the runtime have
    /// stopped), so no other reference to the body exists.
    #[expect(clippy::mut_from_ref, reason = "exclusivity comes from the state word")]
    pub(crate) unsafe fn body(&self) -> &mut Option<Box<dyn Process>> {
        // SAFETY: exclusivity is the caller's contract above.
        unsafe { &mut *self.body.get() }
    }

    /// Queues the process after its wait was satisfied (or it must run to be killed).
    pub(crate) fn wake(self: &Arc<Self>) {
        if self.state.wake() == Wake::Schedule {
            self.enqueue();
        }
    }

    /// Puts the process (whose state word says scheduled) into its run queue.
    pub(crate) fn enqueue(self: &Arc<Self>) {
        match &self.strand {
            Some(strand) => strand.push(self.clone()),
            None => self.host.sched.schedule(Task::Process(self.clone())),
        }
    }

    /// Runs `f` under the lock; wakes the process if `f` says so.
    pub(crate) fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut Inner) -> (R, bool)) -> R {
        let (r, wake) = f(&mut lock(&self.inner));
        if wake {
            self.wake();
        }
        r
    }
}

impl std::task::Wake for ProcessCell {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.with(|inner| {
            inner.mailbox.notified = true;
            ((), inner.mailbox.wake_check())
        });
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    /// Idle memory per process is a goal (≤ 1 KB with the body and the table entry): the record
    /// itself must stay within one 256-byte allocation, with the reference counts.
    #[test]
    fn a_process_record_fits_256_bytes() {
        assert!(
            size_of::<ProcessCell>() <= 240,
            "ProcessCell is {} bytes",
            size_of::<ProcessCell>()
        );
    }
}
