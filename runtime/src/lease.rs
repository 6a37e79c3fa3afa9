//! Counted references that worker threads take and give back in batches.
//!
//! A process holds counted references to what many processes share: its host, its entry's id,
//! a plugin's library. When a parent spawns on one worker and its children end on another, a
//! plain `Arc` count is raised on the first core and lowered on the second, and its cache line
//! travels between them twice per child (a fifth of a native plugin's spawn-and-exit).
//!
//! A [`Lease`] counts like an `Arc` clone, but a worker thread keeps a small stock of spare
//! counts per shared value: it takes counts from the shared count [`BATCH`] at a time, keeps
//! the ones its leases give back, and returns them `BATCH` at a time, and all of them when it
//! goes idle or stops. The shared line then moves once per batch. Threads that are not workers
//! (and workers while their thread ends) count directly, like an `Arc`.
//!
//! Soundness rests on one invariant: the shared count is at least the number of live leases
//! plus every stock's spares, and a stock slot exists only while it holds a spare. So a
//! stocked value is alive, and its address is not reused for another value while a slot names
//! it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

/// Counts taken from a shared count at once, and given back at once.
const BATCH: usize = 16;
/// Shared values a worker keeps spares for; the oldest slot goes back first.
const SLOTS: usize = 8;

/// A counted reference to a `T` held in an [`Arc`], whose count a worker thread batches.
///
/// Clone and drop it like an `Arc`: the value lives until the last lease and the last `Arc`
/// are gone (a worker may return its spare counts later, when it next goes idle).
pub struct Lease<T: Send + Sync + 'static> {
    ptr: NonNull<T>,
    _owns: PhantomData<Arc<T>>,
}

// SAFETY: a lease is a counted reference to a `T` that is `Send + Sync`, like `Arc<T>`.
unsafe impl<T: Send + Sync + 'static> Send for Lease<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync + 'static> Sync for Lease<T> {}

impl<T: Send + Sync + 'static> Lease<T> {
    /// A new counted reference to `arc`'s value.
    pub fn new(arc: &Arc<T>) -> Lease<T> {
        let ptr = Arc::as_ptr(arc);
        take::<T>(ptr);
        Lease { ptr: NonNull::from(&**arc), _owns: PhantomData }
    }

    /// `arc` turned into a lease (its count becomes the lease's).
    pub fn from_arc(arc: Arc<T>) -> Lease<T> {
        // SAFETY: `into_raw` never returns null.
        let ptr = unsafe { NonNull::new_unchecked(Arc::into_raw(arc).cast_mut()) };
        Lease { ptr, _owns: PhantomData }
    }

    /// Whether both refer to the same value.
    pub fn ptr_eq(a: &Lease<T>, b: &Lease<T>) -> bool {
        a.ptr == b.ptr
    }
}

impl<T: Send + Sync + 'static> Clone for Lease<T> {
    fn clone(&self) -> Lease<T> {
        take::<T>(self.ptr.as_ptr());
        Lease { ptr: self.ptr, _owns: PhantomData }
    }
}

impl<T: Send + Sync + 'static> Drop for Lease<T> {
    fn drop(&mut self) {
        give::<T>(self.ptr.as_ptr());
    }
}

impl<T: Send + Sync + 'static> Deref for Lease<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the lease's count keeps the value alive.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Send + Sync + fmt::Debug + 'static> fmt::Debug for Lease<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Spare counts of one shared value, and how to give them back (its type is erased).
struct Spare {
    ptr: *const (),
    count: usize,
    release: unsafe fn(*const (), usize),
}

impl Spare {
    /// Gives the counts back to the shared count (which may drop the value: never call it
    /// while the stock is borrowed).
    fn release(self) {
        // SAFETY: a spare's counts are counts of the `Arc` at `ptr`, of the type `release`
        // was made for, that nobody else owns.
        unsafe { (self.release)(self.ptr, self.count) }
    }
}

/// Lowers the count of the `Arc<T>` at `ptr` `n` times.
///
/// # Safety
/// `ptr` is an `Arc<T>`'s, and the caller owns `n` of its counts.
unsafe fn release<T>(ptr: *const (), n: usize) {
    for _ in 0..n {
        // SAFETY: the caller's contract; the value outlives every decrement but the last.
        unsafe { Arc::decrement_strong_count(ptr.cast::<T>()) };
    }
}

/// A thread's spares. `on` only on a worker's thread, while the worker runs.
#[derive(Default)]
struct Stock {
    on: Cell<bool>,
    spares: RefCell<Vec<Spare>>,
}

impl Drop for Stock {
    fn drop(&mut self) {
        for s in self.spares.take() {
            s.release();
        }
    }
}

thread_local! {
    static STOCK: Stock = Stock::default();
}

/// Raises the count of the `Arc<T>` at `ptr` for a new lease.
fn take<T: Send + Sync + 'static>(ptr: *const T) {
    let evicted = STOCK.try_with(|stock| {
        if !stock.on.get() {
            return Err(());
        }
        let mut spares = stock.spares.borrow_mut();
        if let Some(i) = spares.iter().position(|s| s.ptr == ptr.cast()) {
            let s = &mut spares[i];
            s.count -= 1;
            if s.count == 0 {
                // No slot without a spare (see the module doc).
                spares.remove(i);
            }
            return Ok(None);
        }
        // One count for the lease and a batch for the stock. Raising counts runs no code of
        // `T`'s, so it may happen while the stock is borrowed.
        for _ in 0..=BATCH {
            // SAFETY: the caller holds a counted reference to the value (an `Arc` or a lease).
            unsafe { Arc::increment_strong_count(ptr) };
        }
        spares.push(Spare { ptr: ptr.cast(), count: BATCH, release: release::<T> });
        Ok((spares.len() > SLOTS).then(|| spares.remove(0)))
    });
    match evicted {
        Ok(Ok(Some(old))) => old.release(),
        Ok(Ok(None)) => {}
        // SAFETY: as above.
        _ => unsafe { Arc::increment_strong_count(ptr) },
    }
}

/// Lowers the count of the `Arc<T>` at `ptr` for a lease that ends.
fn give<T: Send + Sync + 'static>(ptr: *const T) {
    let back = STOCK.try_with(|stock| {
        if !stock.on.get() {
            return Err(());
        }
        let mut spares = stock.spares.borrow_mut();
        if let Some(s) = spares.iter_mut().find(|s| s.ptr == ptr.cast()) {
            s.count += 1;
            if s.count <= 2 * BATCH {
                return Ok(None);
            }
            s.count -= BATCH;
            return Ok(Some(Spare { ptr: s.ptr, count: BATCH, release: s.release }));
        }
        spares.push(Spare { ptr: ptr.cast(), count: 1, release: release::<T> });
        Ok((spares.len() > SLOTS).then(|| spares.remove(0)))
    });
    match back {
        Ok(Ok(Some(spare))) => spare.release(),
        Ok(Ok(None)) => {}
        // SAFETY: the ending lease owned one count.
        _ => unsafe { Arc::decrement_strong_count(ptr) },
    }
}

/// The calling thread (a worker) stocks spare counts from now on.
pub(crate) fn enable() {
    let _ = STOCK.try_with(|s| s.on.set(true));
}

/// Gives back every spare count the calling thread holds (a worker going idle).
pub(crate) fn flush() {
    let spares = STOCK.try_with(|s| s.spares.take()).unwrap_or_default();
    for s in spares {
        s.release();
    }
}

/// Gives back every spare count and stops stocking (a worker that stops).
pub(crate) fn disable() {
    let _ = STOCK.try_with(|s| s.on.set(false));
    flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counted(&'static AtomicUsize);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn counts_balance_on_a_plain_thread() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let arc = Arc::new(Counted(&DROPS));
        let a = Lease::new(&arc);
        let b = a.clone();
        assert_eq!(Arc::strong_count(&arc), 3);
        drop((a, b));
        assert_eq!(Arc::strong_count(&arc), 1);
        drop(arc);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_worker_stocks_spares_and_gives_them_back() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let arc = Arc::new(Counted(&DROPS));
        std::thread::scope(|s| {
            s.spawn(|| {
                enable();
                let leases: Vec<_> = (0..100).map(|_| Lease::new(&arc)).collect();
                // The shared count holds every lease, and a spare at most a batch beyond.
                let n = Arc::strong_count(&arc);
                assert!((101..=101 + BATCH).contains(&n), "{n}");
                drop(leases);
                assert!(Arc::strong_count(&arc) > 1, "spares stay with the worker");
                assert!(Arc::strong_count(&arc) <= 1 + 2 * BATCH);
                flush();
                assert_eq!(Arc::strong_count(&arc), 1);
                disable();
            });
        });
        drop(arc);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_last_lease_may_end_on_another_worker() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let arc = Arc::new(Counted(&DROPS));
        let (tx, rx) = std::sync::mpsc::channel::<Lease<Counted>>();
        std::thread::scope(|s| {
            s.spawn(move || {
                enable();
                for _ in 0..1000 {
                    tx.send(Lease::new(&arc)).unwrap();
                }
                drop(arc);
                disable();
            });
            s.spawn(move || {
                enable();
                for lease in rx {
                    drop(lease);
                }
                assert_eq!(DROPS.load(Ordering::SeqCst), 0, "spares keep it alive");
                disable();
                assert_eq!(DROPS.load(Ordering::SeqCst), 1);
            });
        });
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn slots_are_bounded_and_a_value_may_drop_leases_as_it_drops() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        // Each value holds a lease of the next: releasing one drops a chain of values, whose
        // drops give leases back to the stock that is releasing.
        struct Link {
            _counted: Counted,
            _next: Option<Lease<Link>>,
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                enable();
                let mut next: Option<Lease<Link>> = None;
                for _ in 0..(3 * SLOTS) {
                    let arc = Arc::new(Link { _counted: Counted(&DROPS), _next: next.take() });
                    next = Some(Lease::new(&arc));
                }
                drop(next);
                disable();
            });
        });
        assert_eq!(DROPS.load(Ordering::SeqCst), 3 * SLOTS);
    }

    #[test]
    fn leases_held_across_workers_stay_valid_under_churn() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let values: Vec<Arc<Counted>> = (0..3 * SLOTS).map(|_| Arc::new(Counted(&DROPS))).collect();
        std::thread::scope(|s| {
            for t in 0..2 {
                let values = &values;
                s.spawn(move || {
                    enable();
                    let mut held = Vec::new();
                    for i in 0..20_000usize {
                        let v = &values[(i * 7 + t) % values.len()];
                        held.push(Lease::new(v));
                        if held.len() > 50 {
                            drop(held.swap_remove(i % held.len()));
                        }
                        if i % 5_000 == 0 {
                            flush();
                        }
                    }
                    drop(held);
                    disable();
                });
            }
        });
        for v in &values {
            assert_eq!(Arc::strong_count(v), 1);
        }
        drop(values);
        assert_eq!(DROPS.load(Ordering::SeqCst), 3 * SLOTS);
    }
}
