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

/// Aligned to a cache line: records of processes that run on different workers never share
/// one (with the reference counts in front, the allocation is 256 bytes; unaligned records of
/// 208 bytes measured a quarter slower on `ring`).
///
/// Laid out in order (`repr(C)`): the first line holds what is set at spawn and then only read
/// (host, identity, body pointer), the next two what other processes write (the state
/// word, the lock and the mailbox). A parent that spawns in a loop reads its own `rt` and
/// `host` for every child while its children write its mailbox: on one line, every spawn
/// waited for that line to come back from the children's worker.
#[repr(C, align(64))]
pub(crate) struct ProcessCell {
    /// Its host, and through it the runtime (one reference count per process, not two).
    pub(crate) host: Arc<Host>,
    pub(crate) pid: Pid,
    pub(crate) strand: Option<Arc<Strand>>,
    body: UnsafeCell<Option<Box<dyn Process>>>,
    /// Mirrors `inner.kill.is_some()` so that a step can check it without the lock.
    pub(crate) killed: AtomicBool,
    _second_line: LineStart,
    pub(crate) state: State,
    pub(crate) inner: SpinLock<Inner>,
}

/// Takes no room; the field after it starts a cache line.
#[repr(align(64))]
struct LineStart;

// SAFETY: `body` is only accessed by the one thread that holds the RUNNING bit of `state` (or by
// shutdown after every worker has stopped); the state word's AcqRel transitions order those
// accesses. Everything else is `Sync` on its own.
unsafe impl Sync for ProcessCell {}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) mailbox: Mailbox,
    pub(crate) exited: bool,
    pub(crate) entry: Option<EntryId>,
    pub(crate) trap_links: bool,
    pub(crate) upgradable: bool,
    /// Links, monitors, names and a pending kill: most processes have none of them, so they
    /// live behind one pointer that is allocated on first use.
    pub(crate) rel: Option<Box<Relations>>,
}

/// What ties a process to others, and the error it is to end with.
#[derive(Default)]
pub(crate) struct Relations {
    /// Set by `terminate` or a broken link: the process ends with this error before its next
    /// step.
    pub(crate) kill: Option<Error>,
    pub(crate) links: Vec<Pid>,
    pub(crate) watchers: Vec<Watcher>,
    /// The processes this one monitors, so that its monitors go when it ends.
    pub(crate) monitoring: Vec<Pid>,
    pub(crate) names: Vec<String>,
}

impl Inner {
    /// The relations, allocated on first use.
    pub(crate) fn rel(&mut self) -> &mut Relations {
        self.rel.get_or_insert_with(Box::default)
    }

    /// The relations, if any were ever made.
    pub(crate) fn rel_mut(&mut self) -> Option<&mut Relations> {
        self.rel.as_deref_mut()
    }

    pub(crate) fn links(&self) -> &[Pid] {
        self.rel.as_ref().map_or(&[], |r| &r.links)
    }

    pub(crate) fn watchers(&self) -> &[Watcher] {
        self.rel.as_ref().map_or(&[], |r| &r.watchers)
    }

    pub(crate) fn monitoring(&self) -> &[Pid] {
        self.rel.as_ref().map_or(&[], |r| &r.monitoring)
    }

    pub(crate) fn names(&self) -> &[String] {
        self.rel.as_ref().map_or(&[], |r| &r.names)
    }

    /// Whether a kill is pending.
    pub(crate) fn kill_pending(&self) -> bool {
        self.rel.as_ref().is_some_and(|r| r.kill.is_some())
    }

    pub(crate) fn take_kill(&mut self) -> Option<Error> {
        self.rel.as_mut().and_then(|r| r.kill.take())
    }

    /// Takes every relation (the process is ending).
    pub(crate) fn take_relations(&mut self) -> Relations {
        self.rel.take().map(|r| *r).unwrap_or_default()
    }
}

/// Removes the first item matching `f`, if any.
pub(crate) fn remove_first<T>(v: &mut Vec<T>, f: impl FnMut(&T) -> bool) {
    if let Some(i) = v.iter().position(f) {
        v.remove(i);
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
        host: Arc<Host>,
        strand: Option<Arc<Strand>>,
        body: Box<dyn Process>,
        inner: Inner,
    ) -> ProcessCell {
        ProcessCell {
            pid,
            state: State::new_scheduled(),
            host,
            strand,
            inner: SpinLock::new(inner),
            killed: AtomicBool::new(false),
            _second_line: LineStart,
            body: UnsafeCell::new(Some(body)),
        }
    }

    /// The runtime the process belongs to.
    pub(crate) fn rt(&self) -> &Arc<Shared> {
        &self.host.rt
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
    /// is three cache lines, and with its reference counts one 256-byte allocation.
    #[test]
    fn a_process_record_fits_256_bytes() {
        assert!(
            std::mem::offset_of!(ProcessCell, state) >= 64,
            "what other processes write starts on the second line"
        );
        assert!(
            size_of::<ProcessCell>() <= 192,
            "ProcessCell is {} bytes",
            size_of::<ProcessCell>()
        );
    }
}
