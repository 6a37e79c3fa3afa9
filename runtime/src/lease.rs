//! Counted references that worker threads take and give back in batches.
//!
//! A process holds counted references to what many processes share: its host, its entry's id,
//! a plugin's library. When a parent spawns on one worker and its children end on another, a
//! plain `Arc` count is raised on the first core and lowered on the second, and its cache line
//! travels between them twice per child (a fifth of a native plugin's spawn-and-exit).
//!
//! A [`Lease`] counts like an `Arc` clone, but in a count of its own that the value keeps (a
//! [`LeaseCount`]: the leases together hold one count of the value's `Arc`), and a worker
//! thread keeps a small stock of spare lease counts per shared value: it takes counts from the
//! shared count [`BATCH`] at a time, keeps the ones its leases give back, and returns them
//! `BATCH` at a time, and all of them when it goes idle or stops, or, busy, every so many
//! tasks: else a value that every lease let go of (an old version of a plugin's library after
//! an upgrade) would stay alive for as long as the worker is busy. The shared line then moves
//! once per batch. Threads that are not workers (and workers while their thread ends) count
//! one at a time.
//!
//! Soundness rests on two invariants. The lease count is at least the number of live leases
//! plus every stock's spares, and while it is above zero the leases hold one count of the
//! `Arc` (taken by whoever raises it from zero, who holds another reference to the value, and
//! given back by whoever lowers it to zero). And a stock slot exists only while it holds a
//! spare. So a stocked value is alive, and its address is not reused for another value while a
//! slot names it.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::stock::{GiveBack, Stock};
use crate::sync::{AtomicUsize, Ordering};

/// Counts taken from a shared count at once, and given back at once.
const BATCH: usize = 16;
/// Shared values a worker keeps spares for; the least recently used slot goes back first.
const SLOTS: usize = 16;

/// A value that can be leased: it keeps the count of its leases.
///
/// # Safety
/// `lease_count` returns the same [`LeaseCount`] on every call, one that this value owns and
/// that nothing but [`Lease`] uses: the count decides when the value's `Arc` count is taken and
/// given back.
pub unsafe trait Leased: Send + Sync + 'static {
    /// The count of this value's leases.
    fn lease_count(&self) -> &LeaseCount;
}

/// How many leases of a value there are (spares that workers keep included).
#[derive(Debug, Default)]
pub struct LeaseCount(AtomicUsize);

impl LeaseCount {
    /// Adds `n` leases; true if there were none.
    fn add(&self, n: usize) -> bool {
        self.0.fetch_add(n, Ordering::AcqRel) == 0
    }

    /// Removes `n` leases; true if none are left.
    fn sub(&self, n: usize) -> bool {
        self.0.fetch_sub(n, Ordering::AcqRel) == n
    }
}

/// Counts `n` more leases of the value at `ptr`; the first lease takes a count of the `Arc`.
///
/// # Safety
/// `ptr` is an `Arc<T>`'s, and the caller holds a counted reference to it (an `Arc` or a
/// lease) for the call.
unsafe fn raise<T: Leased>(ptr: *const T, n: usize) {
    // SAFETY: alive for the call (the caller's reference).
    if unsafe { &*ptr }.lease_count().add(n) {
        // SAFETY: as above; the count is the leases'.
        unsafe { Arc::increment_strong_count(ptr) };
    }
}

/// Ends `n` leases of the value at `ptr`; the last gives the leases' `Arc` count back (which
/// may drop the value: never call it while the stock is borrowed).
///
/// # Safety
/// `ptr` is an `Arc<T>`'s, and the caller owns `n` of its lease counts.
unsafe fn lower<T: Leased>(ptr: *const (), n: usize) {
    let ptr = ptr.cast::<T>();
    // SAFETY: alive while the caller's lease counts are (the leases hold an `Arc` count).
    if unsafe { &*ptr }.lease_count().sub(n) {
        // SAFETY: the leases' count, given back by whoever ended the last lease.
        unsafe { Arc::decrement_strong_count(ptr) };
    }
}

/// A counted reference to a `T` held in an [`Arc`], whose count a worker thread batches.
///
/// Clone and drop it like an `Arc`: the value lives until the last lease and the last `Arc`
/// are gone (a worker may return its spare counts later, when it next goes idle).
pub struct Lease<T: Leased> {
    ptr: NonNull<T>,
    _owns: PhantomData<Arc<T>>,
}

// SAFETY: a lease is a counted reference to a `T` that is `Send + Sync`, like `Arc<T>`.
unsafe impl<T: Leased> Send for Lease<T> {}
// SAFETY: as above.
unsafe impl<T: Leased> Sync for Lease<T> {}

impl<T: Leased> Lease<T> {
    /// A new counted reference to `arc`'s value.
    pub fn new(arc: &Arc<T>) -> Lease<T> {
        let ptr = Arc::as_ptr(arc);
        take::<T>(ptr);
        Lease { ptr: NonNull::from(&**arc), _owns: PhantomData }
    }

    /// `arc` turned into a lease (its count becomes the leases' if they had none).
    pub fn from_arc(arc: Arc<T>) -> Lease<T> {
        let ptr = NonNull::from(&*arc);
        if arc.lease_count().add(1) {
            // The leases' count of the `Arc`.
            std::mem::forget(arc);
        }
        Lease { ptr, _owns: PhantomData }
    }

    /// Whether both refer to the same value.
    pub fn ptr_eq(a: &Lease<T>, b: &Lease<T>) -> bool {
        a.ptr == b.ptr
    }

    /// Whether this is the value's only lease, and no worker keeps a spare (a value just made,
    /// and moved since: a lease that was ever cloned on a worker is counted with spares).
    pub fn is_only(&self) -> bool {
        // SAFETY: alive while this lease is.
        unsafe { self.ptr.as_ref() }.lease_count().0.load(Ordering::Relaxed) == 1
    }
}

impl<T: Leased> Clone for Lease<T> {
    fn clone(&self) -> Lease<T> {
        take::<T>(self.ptr.as_ptr());
        Lease { ptr: self.ptr, _owns: PhantomData }
    }
}

impl<T: Leased> Drop for Lease<T> {
    fn drop(&mut self) {
        give::<T>(self.ptr.as_ptr());
    }
}

impl<T: Leased> Deref for Lease<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the lease's count keeps the value alive.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Leased + fmt::Debug> fmt::Debug for Lease<T> {
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
        // SAFETY: a spare's counts are lease counts of the value at `ptr`, of the type
        // `release` was made for, that nobody else owns.
        unsafe { (self.release)(self.ptr, self.count) }
    }
}

impl GiveBack for Spare {
    fn give_back(self) {
        self.release();
    }
}

thread_local! {
    /// This thread's spare counts (see [`Stock`]).
    static STOCK: Stock<Spare> = const { Stock::new() };
}

/// The slot of the value at `ptr`, moved to the end (the most recently used: slots are
/// searched from there, and evicted from the front).
fn recent(spares: &mut Vec<Spare>, ptr: *const ()) -> Option<&mut Spare> {
    let i = spares.iter().rposition(|s| s.ptr == ptr)?;
    let last = spares.len() - 1;
    if i != last {
        let s = spares.remove(i);
        spares.push(s);
    }
    spares.last_mut()
}

/// Counts a new lease of the value at `ptr` (whose caller holds a counted reference to it).
fn take<T: Leased>(ptr: *const T) {
    let evicted = STOCK.try_with(|stock| {
        let Some(mut spares) = stock.spares() else { return Err(()) };
        if let Some(s) = recent(&mut spares, ptr.cast()) {
            s.count -= 1;
            if s.count == 0 {
                // No slot without a spare (see the module doc).
                spares.pop();
            }
            return Ok(None);
        }
        // One count for the lease and a batch for the stock. Raising counts runs no code of
        // `T`'s, so it may happen while the stock is borrowed.
        // SAFETY: the caller holds a counted reference to the value (an `Arc` or a lease).
        unsafe { raise(ptr, 1 + BATCH) };
        spares.push(Spare { ptr: ptr.cast(), count: BATCH, release: lower::<T> });
        Ok((spares.len() > SLOTS).then(|| spares.remove(0)))
    });
    match evicted {
        Ok(Ok(Some(old))) => old.release(),
        Ok(Ok(None)) => {}
        // SAFETY: as above.
        _ => unsafe { raise(ptr, 1) },
    }
}

/// Counts a lease of the value at `ptr` that ends.
fn give<T: Leased>(ptr: *const T) {
    let back = STOCK.try_with(|stock| {
        let Some(mut spares) = stock.spares() else { return Err(()) };
        if let Some(s) = recent(&mut spares, ptr.cast()) {
            s.count += 1;
            if s.count <= 2 * BATCH {
                return Ok(None);
            }
            s.count -= BATCH;
            return Ok(Some(Spare { ptr: s.ptr, count: BATCH, release: s.release }));
        }
        spares.push(Spare { ptr: ptr.cast(), count: 1, release: lower::<T> });
        Ok((spares.len() > SLOTS).then(|| spares.remove(0)))
    });
    match back {
        Ok(Ok(Some(spare))) => spare.release(),
        Ok(Ok(None)) => {}
        // SAFETY: the ending lease owned one count.
        _ => unsafe { lower::<T>(ptr.cast(), 1) },
    }
}

/// The calling thread (a worker) stocks spare counts from now on.
pub(crate) fn enable() {
    let _ = STOCK.try_with(|s| s.keep(true));
}

/// Gives back every spare count the calling thread holds (a worker going idle, or a busy one
/// every so many tasks).
pub(crate) fn flush() {
    let spares = STOCK.try_with(Stock::take_all).unwrap_or_default();
    for s in spares {
        s.release();
    }
}

/// Gives back every spare count and stops stocking (a worker that stops).
pub(crate) fn disable() {
    let _ = STOCK.try_with(|s| s.keep(false));
    flush();
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counted {
        drops: &'static AtomicUsize,
        leases: LeaseCount,
    }

    impl Counted {
        fn new(drops: &'static AtomicUsize) -> Counted {
            Counted { drops, leases: LeaseCount::default() }
        }
    }

    // SAFETY: its own count, used only by leases.
    unsafe impl Leased for Counted {
        fn lease_count(&self) -> &LeaseCount {
            &self.leases
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn leases(v: &Counted) -> usize {
        v.leases.0.load(Ordering::SeqCst)
    }

    #[test]
    fn counts_balance_on_a_plain_thread() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let arc = Arc::new(Counted::new(&DROPS));
        let a = Lease::new(&arc);
        let b = a.clone();
        assert_eq!((leases(&arc), Arc::strong_count(&arc)), (2, 2), "the leases hold one count");
        drop((a, b));
        assert_eq!((leases(&arc), Arc::strong_count(&arc)), (0, 1));
        // An `Arc` turned into a lease: its count is the leases' one, then dropped with them.
        let c = Lease::from_arc(arc.clone());
        let d = Lease::from_arc(arc.clone());
        assert_eq!((leases(&arc), Arc::strong_count(&arc)), (2, 2));
        drop(arc);
        drop(c);
        assert_eq!(DROPS.load(Ordering::SeqCst), 0);
        drop(d);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_worker_stocks_spares_and_gives_them_back() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let arc = Arc::new(Counted::new(&DROPS));
        std::thread::scope(|s| {
            s.spawn(|| {
                enable();
                let held: Vec<_> = (0..100).map(|_| Lease::new(&arc)).collect();
                // Every lease is counted, and a spare batch at most beyond them.
                let n = leases(&arc);
                assert!((100..=100 + BATCH).contains(&n), "{n}");
                assert_eq!(Arc::strong_count(&arc), 2);
                drop(held);
                let n = leases(&arc);
                assert!((1..=2 * BATCH).contains(&n), "spares stay with the worker: {n}");
                flush();
                assert_eq!((leases(&arc), Arc::strong_count(&arc)), (0, 1));
                disable();
            });
        });
        drop(arc);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_last_lease_may_end_on_another_worker() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let arc = Arc::new(Counted::new(&DROPS));
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
            leases: LeaseCount,
        }
        // SAFETY: its own count, used only by leases.
        unsafe impl Leased for Link {
            fn lease_count(&self) -> &LeaseCount {
                &self.leases
            }
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                enable();
                let mut next: Option<Lease<Link>> = None;
                for _ in 0..(3 * SLOTS) {
                    let counted = Counted::new(&DROPS);
                    let link = Link {
                        _counted: counted,
                        _next: next.take(),
                        leases: LeaseCount::default(),
                    };
                    next = Some(Lease::new(&Arc::new(link)));
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
        let values: Vec<Arc<Counted>> =
            (0..3 * SLOTS).map(|_| Arc::new(Counted::new(&DROPS))).collect();
        let (tx, rx) = std::sync::mpsc::channel::<Lease<Counted>>();
        std::thread::scope(|s| {
            let values = &values;
            s.spawn(move || {
                enable();
                let mut held = Vec::new();
                for i in 0..20_000usize {
                    held.push(Lease::new(&values[(i * 7) % values.len()]));
                    if held.len() > 50 {
                        let l = held.swap_remove(i % held.len());
                        // Half go to the other worker to end there.
                        if i % 2 == 0 { tx.send(l).unwrap() } else { drop(l) }
                    }
                    if i % 5_000 == 0 {
                        flush();
                    }
                }
                drop((held, tx));
                disable();
            });
            s.spawn(move || {
                enable();
                for (i, lease) in rx.into_iter().enumerate() {
                    assert_eq!(lease.drops.load(Ordering::SeqCst), 0);
                    let again = lease.clone();
                    drop(lease);
                    drop(again);
                    if i % 3_000 == 0 {
                        flush();
                    }
                }
                disable();
            });
        });
        for v in &values {
            assert_eq!((leases(v), Arc::strong_count(v)), (0, 1));
        }
        drop(values);
        assert_eq!(DROPS.load(Ordering::SeqCst), 3 * SLOTS);
    }
}

#[cfg(all(test, spindle_loom))]
mod loom_models {
    use super::LeaseCount;
    use loom::sync::Arc;
    use loom::thread;

    struct Value {
        leases: LeaseCount,
    }

    /// `raise` on loom's `Arc`; `v` is the caller's own reference.
    fn raise(v: &Arc<Value>, n: usize) {
        if v.leases.add(n) {
            // SAFETY: `v` keeps the value alive for the call.
            unsafe { Arc::increment_strong_count(Arc::as_ptr(v)) };
        }
    }

    /// `lower` on loom's `Arc`.
    ///
    /// # Safety
    /// The caller owns `n` lease counts of the value at `p`.
    unsafe fn lower(p: *const Value, n: usize) {
        // SAFETY: alive while the caller's lease counts are.
        if unsafe { &*p }.leases.sub(n) {
            // SAFETY: the leases' count.
            unsafe { Arc::decrement_strong_count(p) };
        }
    }

    #[test]
    fn loom_the_leases_arc_count_changes_hands_at_zero() {
        loom::model(|| {
            let owner = Arc::new(Value { leases: LeaseCount::default() });
            // A lease (0 → 1) that another thread ends (1 → 0) while a third, holding an
            // `Arc` of its own, takes and ends leases (raising from zero again, or not): the
            // value is freed once, after the last reference of either kind, and not leaked
            // (loom checks both).
            raise(&owner, 1);
            let p = Arc::as_ptr(&owner) as usize;
            let ender = thread::spawn(move || {
                // SAFETY: the lease taken above is this thread's to end.
                unsafe { lower(p as *const Value, 1) }
            });
            let other = owner.clone();
            let taker = thread::spawn(move || {
                raise(&other, 2);
                drop(other);
                // SAFETY: its own two lease counts; the leases hold the value now.
                unsafe { lower(p as *const Value, 1) };
                unsafe { lower(p as *const Value, 1) };
            });
            drop(owner);
            ender.join().unwrap();
            taker.join().unwrap();
        });
    }
}
