//! The live record of one process: its identity, run state, lock-protected mailbox and
//! relations, and its body (the backend's state machine).
//!
//! Who touches what:
//! * `state` — anyone, through the transitions in `scheduler/state.rs`.
//! * `refs` — anyone, through [`ProcessRef`] (taking and dropping references).
//! * `inner` — anyone, under its lock; never held while process code runs, and never together
//!   with another process's lock.
//! * `body` — only the worker that holds the `RUNNING` bit (or, after the workers stopped, the
//!   runtime's shutdown).

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::error::Error;
use crate::host::Host;
use crate::lease::Lease;
use crate::mailbox::{Mailbox, Queued};
use crate::pid::Pid;
use crate::process::{ProcessBox, Tag};
use crate::process_ref::ProcessRef;
use crate::registry::EntryId;
use crate::runtime::Shared;
use crate::scheduler::Strand;
use crate::scheduler::state::{State, Wake};
use crate::scheduler::{Scheduler, Task};
use crate::sync::{AtomicUsize, SpinLock, lock};
use crate::value::Value;

/// Aligned to a cache line: records of processes that run on different workers never share
/// one (unaligned records of 208 bytes measured a quarter slower on `ring`).
///
/// Four lines, 256 bytes, and that is the whole allocation: the reference count is inside
/// (see [`ProcessRef`]). Three lines would save nothing: an allocator with size classes serves
/// a 64-aligned power of two as it is, but mimalloc puts a 64-aligned request of 192 bytes in
/// its 256-byte class all the same. So the fourth line holds the mailbox's oldest outstanding
/// operation, which would otherwise take an allocation of its own.
///
/// Laid out in order (`repr(C)`): the first line holds what is set at spawn and then only read
/// by others (host, identity, body pointer; the process itself changes its last destination
/// when it starts sending to another peer, and the messages it took out of its inbox), the
/// other three what other processes write (the state word, the reference count, the lock and
/// the mailbox, and the kill flag; a waker takes its reference as it sets the state). A parent
/// that spawns in a loop reads its own `rt` and `host` for every child while its children write
/// its mailbox: on one line, every spawn waited for that line to come back from the children's
/// worker.
#[repr(C, align(64))]
pub(crate) struct ProcessCell {
    /// Its host, and through it the runtime (one reference count per process, not two, and a
    /// batched one: see `lease`).
    pub(crate) host: Lease<Host>,
    pub(crate) pid: Pid,
    pub(crate) strand: Option<Arc<Strand>>,
    body: UnsafeCell<Option<ProcessBox>>,
    /// Where this process last sent to, so that a run of messages to one peer needs no table
    /// lookups (a ring node, a stream of replies). Like `body`, touched only by the worker
    /// running the process (see [`ProcessCell::last_dest`]); emptied when it ends.
    last_dest: UnsafeCell<LastDest>,
    /// Inbox messages that the running step took out of the mailbox together (see
    /// [`Shared::receive_or_start`](crate::runtime::Shared::receive_or_start)), oldest first,
    /// all older than any still in the mailbox. Like `body`, touched only by the worker running
    /// the process, and empty between steps: the step's end, and anything in the step that
    /// looks at the inbox other than a plain receive, put them back in front of the inbox
    /// ([`ProcessCell::put_back_taken`]), so that between steps the mailbox is whole (during
    /// one, the count of queued messages that others read leaves them out).
    taken: UnsafeCell<Taken>,
    _second_line: LineStart,
    pub(crate) state: State,
    /// How many [`ProcessRef`]s there are; only `ProcessRef` touches it.
    pub(crate) refs: AtomicUsize,
    pub(crate) inner: SpinLock<Inner>,
    /// Mirrors `inner.kill.is_some()` so that a step can check it without the lock.
    pub(crate) killed: AtomicBool,
}

/// Where a process last sent to, in one word: nothing (0), the serial of a process it sent to
/// once (`serial << 1 | 1`), or, once it sent to the same process twice in a row, that
/// process's record (a counted reference). Only a second message in a row takes the
/// reference, so a process that sends once and ends (a child reporting to its parent) or that
/// answers many peers in turn changes no reference counts.
#[derive(Default)]
pub(crate) struct LastDest(usize);

impl LastDest {
    /// The remembered record, if the word holds one (even and non-zero): this slot then holds
    /// a counted reference to it (see `remember`), so it is alive while the slot is.
    fn record(&self) -> Option<*const ProcessCell> {
        (self.0 & 1 == 0 && self.0 != 0).then_some(self.0 as *const ProcessCell)
    }

    /// The record of process `serial`, if it is the one remembered.
    pub(crate) fn get(&self, serial: u64) -> Option<&ProcessCell> {
        // SAFETY: alive while the slot is (see `record`).
        let cell = unsafe { &*self.record()? };
        (cell.pid.serial() == serial).then_some(cell)
    }

    /// Another reference to the remembered record, if it is one.
    pub(crate) fn new_ref(&self) -> Option<ProcessRef> {
        let ptr = self.record()?;
        // SAFETY: alive (see `record`); the count taken here goes to the new `ProcessRef`.
        unsafe {
            ProcessRef::increment_strong_count(ptr);
            Some(ProcessRef::from_raw(ptr))
        }
    }

    /// Whether the last message (before this one) went to process `serial` as well; if not,
    /// notes that this one did. Returns the reference it held, if any, to be dropped.
    pub(crate) fn again(&mut self, serial: u64) -> (bool, Option<ProcessRef>) {
        let mark = (serial as usize) << 1 | 1;
        if self.0 == mark {
            return (true, None);
        }
        let old = self.clear();
        self.0 = mark;
        (false, old)
    }

    /// Remembers `dest`'s record; returns the reference it held, if any, to be dropped.
    pub(crate) fn remember(&mut self, dest: ProcessRef) -> Option<ProcessRef> {
        let old = self.clear();
        self.0 = ProcessRef::into_raw(dest) as usize;
        old
    }

    /// Forgets what it held; returns the reference, if any, to be dropped.
    pub(crate) fn clear(&mut self) -> Option<ProcessRef> {
        let ptr = self.record();
        self.0 = 0;
        // SAFETY: the record's reference came from `ProcessRef::into_raw` in `remember`, and
        // is taken back once (the slot is emptied above).
        ptr.map(|p| unsafe { ProcessRef::from_raw(p) })
    }
}

impl Drop for LastDest {
    /// A record dropped without `forget_dest` still lets its last destination go.
    fn drop(&mut self) {
        drop(self.clear());
    }
}

/// See [`ProcessCell::taken`]: one word in the record's first line, where a `VecDeque` (four)
/// does not fit; allocated the first time a process falls behind its inbox.
pub(crate) type Taken = Option<Box<VecDeque<Queued>>>;

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

/// Removes the first item that satisfies `f`; returns whether there was one.
pub(crate) fn remove_first<T>(v: &mut Vec<T>, f: impl FnMut(&T) -> bool) -> bool {
    let Some(i) = v.iter().position(f) else { return false };
    v.remove(i);
    true
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
        host: Lease<Host>,
        strand: Option<Arc<Strand>>,
        body: ProcessBox,
        inner: Inner,
    ) -> ProcessCell {
        ProcessCell {
            pid,
            state: State::new_scheduled(),
            host,
            strand,
            inner: SpinLock::new(inner),
            killed: AtomicBool::new(false),
            // The one reference `ProcessRef::new` hands out.
            refs: AtomicUsize::new(1),
            _second_line: LineStart,
            body: UnsafeCell::new(Some(body)),
            last_dest: UnsafeCell::new(LastDest::default()),
            taken: UnsafeCell::new(None),
        }
    }

    /// The cache of the last destination, for the thread that is running this process's step
    /// (`None` on any other thread: a `Cx` may have been sent elsewhere).
    #[expect(clippy::mut_from_ref, reason = "exclusivity comes from the running step")]
    pub(crate) fn last_dest(&self) -> Option<&mut LastDest> {
        // SAFETY: only the thread whose running step is this process's gets the slot, and a
        // step runs on one thread at a time (the RUNNING bit); the slot is not touched by
        // anything that step calls while the returned borrow is in use (`Shared::send_from`
        // holds it across a delivery to another process only).
        crate::step::running(self).then(|| unsafe { &mut *self.last_dest.get() })
    }

    /// The messages the running step took out of its inbox, for the thread running this
    /// process's step (`None` on any other thread, as for [`ProcessCell::last_dest`]).
    #[expect(clippy::mut_from_ref, reason = "exclusivity comes from the running step")]
    pub(crate) fn taken(&self) -> Option<&mut Taken> {
        // SAFETY: as in `last_dest`; nothing the step calls holds the borrow across a call
        // that takes it again.
        crate::step::running(self).then(|| unsafe { &mut *self.taken.get() })
    }

    /// The messages the running step took out of its inbox and has not received yet, if there
    /// are any (and this thread runs the step).
    pub(crate) fn taken_left(&self) -> Option<&mut VecDeque<Queued>> {
        self.taken().and_then(|t| t.as_deref_mut()).filter(|t| !t.is_empty())
    }

    /// Puts the messages the running step took out of its inbox back in front of it, under
    /// the process's lock (`inner`); does nothing on a thread that is not running the process.
    pub(crate) fn put_back_taken(&self, inner: &mut Inner) {
        if let Some(left) = self.taken_left() {
            inner.mailbox.put_back_taken(std::mem::take(left));
        }
    }

    /// Drops the messages the process took out of its inbox and never received (it ends).
    ///
    /// # Safety
    /// As for [`ProcessCell::body`]: the caller runs the process or all workers have stopped.
    pub(crate) unsafe fn drop_taken(&self) {
        // SAFETY: the caller's contract.
        drop(unsafe { &mut *self.taken.get() }.take());
    }

    /// Forgets the last destination (the process ends: a record it holds goes now).
    ///
    /// # Safety
    /// As for [`ProcessCell::body`]: the caller runs the process or all workers have stopped.
    pub(crate) unsafe fn forget_dest(&self) -> Option<ProcessRef> {
        // SAFETY: the caller's contract.
        unsafe { &mut *self.last_dest.get() }.clear()
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
    pub(crate) unsafe fn body(&self) -> &mut Option<ProcessBox> {
        // SAFETY: exclusivity is the caller's contract above.
        unsafe { &mut *self.body.get() }
    }
}

impl ProcessRef {
    /// Queues the process after its wait was satisfied (or it must run to be killed).
    pub(crate) fn wake(&self) {
        if self.state.wake() == Wake::Schedule {
            self.enqueue();
        }
    }

    /// Queues the process as [`ProcessRef::wake`] does, handing this reference to the run
    /// queue instead of taking a new one and dropping this (two reference count changes fewer
    /// for every message that wakes its receiver).
    pub(crate) fn wake_owned(self) {
        if self.state.wake() != Wake::Schedule {
            return;
        }
        if self.strand.is_some() {
            return self.enqueue();
        }
        let sched: *const Scheduler = &*self.host.sched;
        if let Err(Task::Process(cell)) = Scheduler::schedule_here(sched, Task::Process(self)) {
            cell.enqueue();
        }
    }

    /// [`ProcessRef::enqueue`], handing this reference to the run queue (a new process's first
    /// queueing: no count taken and dropped).
    pub(crate) fn enqueue_owned(self) {
        if let Some(strand) = &self.strand {
            return strand.clone().push_new(self);
        }
        let sched: *const Scheduler = &*self.host.sched;
        if let Err(Task::Process(cell)) = Scheduler::schedule_here(sched, Task::Process(self)) {
            cell.enqueue();
        }
    }

    /// Puts the process (whose state word says scheduled) into its run queue.
    pub(crate) fn enqueue(&self) {
        match &self.strand {
            Some(strand) => strand.push(self.clone()),
            None => self.host.sched.schedule(Task::Process(self.clone())),
        }
    }

    /// Runs `f` under the lock; wakes the process if `f` says so.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Inner) -> (R, bool)) -> R {
        let (r, wake) = f(&mut lock(&self.inner));
        if wake {
            self.wake();
        }
        r
    }

    /// What the process's [`Waker`](std::task::Waker) does (Rust processes awaiting foreign
    /// futures): the next wait-any returns at once, and a parked process is queued.
    pub(crate) fn wake_by_waker(&self) {
        self.with(|inner| {
            inner.mailbox.notified = true;
            ((), inner.mailbox.wake_check())
        });
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    /// Idle memory per process is a goal (for a native plugin's process, at most 512 bytes
    /// beyond the plugin's own state): the record, its reference count included, is four cache
    /// lines, one 256-byte allocation.
    #[test]
    fn a_process_record_is_four_lines() {
        assert!(
            std::mem::offset_of!(ProcessCell, state) >= 64
                && std::mem::offset_of!(ProcessCell, refs) >= 64,
            "what other processes write starts on the second line"
        );
        assert!(
            size_of::<ProcessCell>() == 256,
            "ProcessCell is {} bytes: a larger record takes the next size class, and a smaller \
             one (192) is served from this one all the same",
            size_of::<ProcessCell>()
        );
    }
}
