//! [`ProcessRef`]: a counted reference to a process record, and the waker built on it.
//!
//! `Arc<ProcessCell>` put its two counts in front of the record, and with the record aligned to
//! a cache line they took a line of their own. A process record is never referenced weakly, so
//! one count is enough, and it lives in the record itself (`ProcessCell::refs`, on the line of
//! the state word, which whoever takes a reference to queue the process writes too): the
//! allocation is the record alone.
//!
//! The count follows `Arc`'s protocol: a new reference is counted with a Relaxed increment
//! (whoever clones already holds one, so the record cannot go meanwhile); a dropped one with a
//! Release decrement, and the drop that takes the count to zero issues an Acquire fence before
//! it frees the record, so every use through another reference happened before.

use crate::records::Records;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;
use std::task::{RawWaker, RawWakerVTable, Waker};

use crate::cell::ProcessCell;
use crate::sync::{Ordering, fence};

/// More references than this abort the process, as `Arc` does: the count must never wrap
/// (a leak of `ProcessRef`s in a loop could otherwise free a record still in use).
const MAX_REFS: usize = isize::MAX as usize;

/// A counted shared reference to a [`ProcessCell`]; the record is freed with the last one.
pub(crate) struct ProcessRef {
    ptr: NonNull<ProcessCell>,
}

// SAFETY: a `ProcessRef` gives out only `&ProcessCell`, and the count is atomic, so handing
// one to another thread (or sharing one) is sharing the record: sound because `ProcessCell`
// is `Send + Sync` (asserted below), the same bounds under which `Arc<T>` is `Send + Sync`.
unsafe impl Send for ProcessRef {}
// SAFETY: as for `Send` above.
unsafe impl Sync for ProcessRef {}

const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<ProcessCell>();
};

impl ProcessRef {
    /// Moves `cell` (whose count says one, see `ProcessCell::new`) into an allocation of its
    /// own and returns that one reference.
    pub(crate) fn new(cell: ProcessCell) -> ProcessRef {
        let ptr = crate::records::take::<Records>().cast::<ProcessCell>();
        // SAFETY: `ptr` is memory for a `ProcessCell` that nobody uses (see `records`).
        unsafe { ptr.write(cell) };
        ProcessRef { ptr }
    }

    /// Two references to a new record, counted as it is written: a clone of a record just
    /// written is a read-modify-write that waits for all of the record's stores to complete
    /// first.
    pub(crate) fn new_pair(cell: ProcessCell) -> (ProcessRef, ProcessRef) {
        cell.refs.store(2, Ordering::Relaxed);
        let one = ProcessRef::new(cell);
        let two = ProcessRef { ptr: one.ptr };
        (one, two)
    }

    /// The record, without touching the count.
    pub(crate) fn as_ptr(this: &ProcessRef) -> *const ProcessCell {
        this.ptr.as_ptr()
    }

    /// Gives up the reference without dropping it; [`ProcessRef::from_raw`] takes it back.
    pub(crate) fn into_raw(this: ProcessRef) -> *const ProcessCell {
        ManuallyDrop::new(this).ptr.as_ptr()
    }

    /// Takes back a reference given up by [`ProcessRef::into_raw`] (or counted with
    /// [`ProcessRef::increment_strong_count`]).
    ///
    /// # Safety
    /// `ptr` came from [`ProcessRef::into_raw`] or [`ProcessRef::as_ptr`], and the returned
    /// `ProcessRef` owns a count: one given up by `into_raw` or taken with
    /// `increment_strong_count` and not taken back yet, or, if it is never dropped
    /// (`ManuallyDrop`), the count of another reference that outlives it.
    pub(crate) unsafe fn from_raw(ptr: *const ProcessCell) -> ProcessRef {
        // SAFETY: by the contract, `ptr` is the non-null pointer of a live record.
        ProcessRef { ptr: unsafe { NonNull::new_unchecked(ptr.cast_mut()) } }
    }

    /// Counts one more reference to the record at `ptr`, to be taken with
    /// [`ProcessRef::from_raw`].
    ///
    /// # Safety
    /// `ptr` came from [`ProcessRef::into_raw`] or [`ProcessRef::as_ptr`], and a reference that
    /// keeps the record alive exists for the duration of the call.
    pub(crate) unsafe fn increment_strong_count(ptr: *const ProcessCell) {
        // SAFETY: the record is alive for the call, by the contract.
        let cell = unsafe { &*ptr };
        let old = cell.refs.fetch_add(1, Ordering::Relaxed);
        if old > MAX_REFS {
            std::process::abort();
        }
    }

    /// A [`Waker`] that wakes the process (owning this reference).
    pub(crate) fn into_waker(self) -> Waker {
        let data = ProcessRef::into_raw(self).cast::<()>();
        // SAFETY: the vtable's functions treat `data` as a reference given up by `into_raw`,
        // which it is, and keep the count right (see each one).
        unsafe { Waker::from_raw(RawWaker::new(data, &WAKER)) }
    }
}

impl Clone for ProcessRef {
    fn clone(&self) -> ProcessRef {
        // SAFETY: `self` keeps the record alive for the call.
        unsafe { ProcessRef::increment_strong_count(ProcessRef::as_ptr(self)) };
        ProcessRef { ptr: self.ptr }
    }
}

impl Drop for ProcessRef {
    fn drop(&mut self) {
        // Release: this reference's uses of the record happen before the final drop, which
        // pairs with it through the Acquire fence below.
        if self.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        // SAFETY: the count was one, this was the last reference, and nothing can count a new
        // one (that takes a live reference). `ptr` came from `records::take` in `new`.
        unsafe {
            self.ptr.drop_in_place();
            crate::records::give::<Records>(self.ptr.cast());
        }
    }
}

impl Deref for ProcessRef {
    type Target = ProcessCell;
    fn deref(&self) -> &ProcessCell {
        // SAFETY: the record lives as long as any reference to it, and this is one.
        unsafe { self.ptr.as_ref() }
    }
}

/// The waker of a process: its data is a reference given up by [`ProcessRef::into_raw`].
static WAKER: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

/// # Safety
/// `data` is a waker's reference (see [`WAKER`]), alive for the call.
unsafe fn waker_clone(data: *const ()) -> RawWaker {
    // SAFETY: the waker being cloned holds a reference for the duration of the call.
    unsafe { ProcessRef::increment_strong_count(data.cast()) };
    RawWaker::new(data, &WAKER)
}

/// # Safety
/// As for `waker_clone`; the call consumes the waker's reference.
unsafe fn waker_wake(data: *const ()) {
    // SAFETY: the waker's reference, handed over by the contract.
    let cell = unsafe { ProcessRef::from_raw(data.cast()) };
    cell.wake_by_waker();
}

/// # Safety
/// As for `waker_clone`.
unsafe fn waker_wake_by_ref(data: *const ()) {
    // SAFETY: the waker keeps its reference: it is borrowed here, never dropped.
    let cell = ManuallyDrop::new(unsafe { ProcessRef::from_raw(data.cast()) });
    cell.wake_by_waker();
}

/// # Safety
/// As for `waker_clone`; the call consumes the waker's reference.
unsafe fn waker_drop(data: *const ()) {
    // SAFETY: the waker's reference, handed over by the contract.
    drop(unsafe { ProcessRef::from_raw(data.cast()) });
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    use super::ProcessRef;
    use crate::cell::{Inner, ProcessCell};
    use crate::context::Cx;
    use crate::pid::Pid;
    use crate::process::{Process, Step};
    use crate::value::Value;
    use crate::{HostConfig, Runtime};

    /// The system allocator, noting the allocations the current thread makes while asked to.
    struct Census;

    thread_local! {
        static COUNTING: Cell<bool> = const { Cell::new(false) };
        static ALLOCATED: Cell<(usize, Option<Layout>)> = const { Cell::new((0, None)) };
    }

    // SAFETY: every call goes to `System` unchanged; the census only reads the layout.
    unsafe impl GlobalAlloc for Census {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if COUNTING.with(Cell::get) {
                ALLOCATED.with(|a| a.set((a.get().0 + 1, Some(layout))));
            }
            // SAFETY: the caller's contract is `System`'s.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: as above.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static CENSUS: Census = Census;

    /// A body that counts its drops.
    struct Counted(Arc<AtomicUsize>);

    impl Process for Counted {
        fn step(&mut self, _: &Cx) -> Step {
            Step::Exit(Ok(Value::Nil))
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A runtime and a record of its host that is never scheduled; the body counts its drops
    /// in the returned counter.
    fn record() -> (Runtime, ProcessCell, Arc<AtomicUsize>) {
        let rt = Runtime::builder().host(HostConfig::new("test:main").workers(1)).build().unwrap();
        let host = rt.host("test:main").unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let body = crate::process::ProcessBox::new(Counted(drops.clone()));
        let cell = ProcessCell::new(
            Pid::fresh(host.id),
            crate::lease::Lease::from_arc(host),
            None,
            body,
            Inner::default(),
        );
        (rt, cell, drops)
    }

    #[test]
    fn a_record_is_one_allocation_of_its_own_size() {
        let (_rt, cell, _) = record();
        COUNTING.with(|c| c.set(true));
        let r = ProcessRef::new(cell);
        COUNTING.with(|c| c.set(false));
        let (count, layout) = ALLOCATED.with(Cell::get);
        assert_eq!(count, 1);
        assert_eq!(layout, Some(Layout::new::<ProcessCell>()));
        assert_eq!(ProcessRef::as_ptr(&r).addr() % 64, 0);
    }

    #[test]
    fn the_last_reference_drops_the_record_once() {
        let (_rt, cell, drops) = record();
        let first = ProcessRef::new(cell);
        let refs: Vec<ProcessRef> = (0..8).map(|_| first.clone()).collect();
        assert_eq!(first.refs.load(Ordering::Relaxed), 9);
        std::thread::scope(|s| {
            for r in refs {
                s.spawn(move || drop(r));
            }
        });
        assert_eq!(first.refs.load(Ordering::Relaxed), 1);
        assert_eq!(drops.load(Ordering::SeqCst), 0, "dropped while a reference was left");
        std::thread::spawn(move || drop(first)).join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_new_pair_is_two_references_to_one_record() {
        let (_rt, cell, drops) = record();
        let (one, two) = ProcessRef::new_pair(cell);
        assert_eq!(ProcessRef::as_ptr(&one), ProcessRef::as_ptr(&two));
        assert_eq!(one.refs.load(Ordering::Relaxed), 2);
        std::thread::spawn(move || drop(two)).join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 0, "dropped while a reference was left");
        drop(one);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_waker_holds_a_reference_of_its_own() {
        let (_rt, cell, drops) = record();
        let r = ProcessRef::new(cell);
        let waker = r.clone().into_waker();
        let other = waker.clone();
        assert_eq!(r.refs.load(Ordering::Relaxed), 3);
        // The process waits for nothing: a wake notes the call and queues nothing.
        waker.wake_by_ref();
        waker.wake();
        assert_eq!(r.refs.load(Ordering::Relaxed), 2);
        assert!(crate::sync::lock(&r.inner).mailbox.notified);
        drop(r);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(other);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    /// Threads (more than cores) clone the reference and hand the clones to one another over
    /// channels, so most are dropped on a thread other than the one that counted them.
    #[test]
    fn refs_stampede_across_threads() {
        const THREADS: usize = 6;
        const EACH: usize = 20_000;
        let (_rt, cell, drops) = record();
        let r = ProcessRef::new(cell);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..THREADS).map(|_| mpsc::channel::<ProcessRef>()).unzip();
        std::thread::scope(|s| {
            for (i, rx) in receivers.into_iter().enumerate() {
                let next = senders[(i + 1) % THREADS].clone();
                let r = &r;
                s.spawn(move || {
                    for n in 0..EACH {
                        let mine = r.clone();
                        if n % 2 == 0 {
                            next.send(mine).unwrap();
                        }
                        while let Ok(theirs) = rx.try_recv() {
                            drop(theirs);
                        }
                    }
                    drop(next);
                    // The ones still under way arrive until every sender of this channel
                    // is gone.
                    rx.into_iter().for_each(drop);
                });
            }
            drop(senders);
        });
        assert_eq!(r.refs.load(Ordering::Relaxed), 1);
        drop(r);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    /// The last-destination slot takes a reference only at the second message in a row to one
    /// process, gives it back when another process comes, and holds no count after `clear`.
    #[test]
    fn a_last_destination_is_counted_from_the_second_message_on() {
        use crate::cell::LastDest;
        let (_rt, cell, drops) = record();
        let r = ProcessRef::new(cell);
        let serial = r.pid.serial();
        let refs = |r: &ProcessRef| r.refs.load(Ordering::Relaxed);
        let mut slot = LastDest::default();
        assert!(slot.get(serial).is_none());
        let (again, old) = slot.again(serial);
        assert!(!again && old.is_none() && slot.get(serial).is_none(), "a first message: noted");
        let (again, _) = slot.again(serial);
        assert!(again, "the second in a row");
        assert!(slot.remember(r.clone()).is_none());
        assert_eq!(refs(&r), 2);
        assert!(slot.get(serial).is_some_and(|c| std::ptr::eq(c, &*r)));
        assert!(slot.get(serial + 1).is_none(), "another serial is not it");
        drop(slot.new_ref());
        assert_eq!(refs(&r), 2, "new_ref hands out a count of its own");
        let (again, old) = slot.again(serial + 1);
        assert!(!again);
        drop(old);
        assert_eq!(refs(&r), 1, "another process came: the reference went");
        assert!(slot.remember(r.clone()).is_none());
        drop(slot.clear());
        assert!(slot.clear().is_none() && slot.get(serial).is_none());
        drop(r);
        assert_eq!(drops.load(Ordering::Relaxed), 1, "the record went with its last reference");
    }
}
