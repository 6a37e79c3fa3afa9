//! The concurrency primitives the scheduler's protocols are built on, swapped for loom's
//! model-checked versions under `--cfg spindle_loom` (see the `loom_models` modules of
//! `scheduler/state.rs`, `scheduler/idle.rs`, `table.rs` and `lease.rs`).

#[cfg(spindle_loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(spindle_loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering, fence};

#[cfg(not(spindle_loom))]
pub(crate) use std::sync::Mutex;
#[cfg(not(spindle_loom))]
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering, fence};

#[cfg(not(spindle_loom))]
pub(crate) use crossbeam_utils::sync::{Parker, Unparker};

/// Something [`lock`] can lock.
pub(crate) trait Lockable {
    type Guard<'a>
    where
        Self: 'a;
    fn acquire(&self) -> Self::Guard<'_>;
}

/// Locks `l`, ignoring poisoning: process code never runs under these locks, and every critical
/// section leaves its data consistent before anything that could panic.
pub(crate) fn lock<L: Lockable>(l: &L) -> L::Guard<'_> {
    l.acquire()
}

#[cfg(not(spindle_loom))]
impl<T> Lockable for Mutex<T> {
    type Guard<'a>
        = std::sync::MutexGuard<'a, T>
    where
        T: 'a;
    fn acquire(&self) -> Self::Guard<'_> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(spindle_loom)]
impl<T> Lockable for Mutex<T> {
    type Guard<'a>
        = loom::sync::MutexGuard<'a, T>
    where
        T: 'a;
    fn acquire(&self) -> Self::Guard<'_> {
        self.lock().unwrap()
    }
}

/// Under loom the spin lock is loom's mutex, so models see it as a lock.
#[cfg(spindle_loom)]
pub(crate) type SpinLock<T> = Mutex<T>;

#[cfg(not(spindle_loom))]
pub(crate) use spin::SpinLock;

/// A lock for the runtime's tiny critical sections (a process's mailbox, a table shard): no
/// process code and no allocation-heavy work ever runs under it. Unlike the futex mutex it is
/// released with a plain store instead of a read-modify-write, which matters on the message
/// path where one send takes two of them. A waiter spins briefly, then yields its thread, so a
/// holder that was preempted is not spun against for long.
#[cfg(not(spindle_loom))]
mod spin {
    use std::cell::UnsafeCell;
    use std::ops::{Deref, DerefMut};
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::Lockable;

    const SPINS_BEFORE_YIELD: u32 = 64;

    #[derive(Default)]
    pub(crate) struct SpinLock<T> {
        locked: AtomicBool,
        data: UnsafeCell<T>,
    }

    // SAFETY: the data is only reached through a guard, and at most one guard exists at a time
    // (the `locked` flag, taken with Acquire and released with Release, orders the accesses).
    unsafe impl<T: Send> Sync for SpinLock<T> {}

    pub(crate) struct Guard<'a, T> {
        lock: &'a SpinLock<T>,
    }

    impl<T> SpinLock<T> {
        pub(crate) fn new(data: T) -> SpinLock<T> {
            SpinLock { locked: AtomicBool::new(false), data: UnsafeCell::new(data) }
        }
    }

    impl<T> Lockable for SpinLock<T> {
        type Guard<'a>
            = Guard<'a, T>
        where
            T: 'a;

        fn acquire(&self) -> Guard<'_, T> {
            let mut spins = 0;
            loop {
                if self
                    .locked
                    .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Guard { lock: self };
                }
                while self.locked.load(Ordering::Relaxed) {
                    if spins < SPINS_BEFORE_YIELD {
                        spins += 1;
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
            }
        }
    }

    impl<T> Deref for Guard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            // SAFETY: this guard is the only one (see `Sync` above).
            unsafe { &*self.lock.data.get() }
        }
    }

    impl<T> DerefMut for Guard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: this guard is the only one (see `Sync` above).
            unsafe { &mut *self.lock.data.get() }
        }
    }

    impl<T> Drop for Guard<'_, T> {
        fn drop(&mut self) {
            self.lock.locked.store(false, Ordering::Release);
        }
    }
}

/// A parker with a sticky token, as crossbeam's: an unpark before the park is not lost.
#[cfg(spindle_loom)]
pub(crate) struct Parker {
    unparker: Unparker,
}

#[cfg(spindle_loom)]
#[derive(Clone)]
pub(crate) struct Unparker(loom::sync::Arc<loom::sync::Notify>);

#[cfg(spindle_loom)]
impl Parker {
    pub(crate) fn new() -> Parker {
        Parker { unparker: Unparker(loom::sync::Arc::new(loom::sync::Notify::new())) }
    }
    pub(crate) fn park(&self) {
        self.unparker.0.wait();
    }
    pub(crate) fn unparker(&self) -> &Unparker {
        &self.unparker
    }
}

#[cfg(spindle_loom)]
impl Unparker {
    pub(crate) fn unpark(&self) {
        self.0.notify();
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::{SpinLock, lock};

    /// Threads (more than cores, so holders get preempted) add to a plain counter under the
    /// lock: a lost update means two guards existed at once.
    #[test]
    fn spin_lock_stampede_loses_no_update() {
        const THREADS: usize = 6;
        const EACH: usize = 50_000;
        let counter = SpinLock::new(0usize);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..EACH {
                        let mut g = lock(&counter);
                        let v = *g;
                        std::hint::black_box(&v);
                        *g = v + 1;
                    }
                });
            }
        });
        assert_eq!(*lock(&counter), THREADS * EACH);
    }
}
