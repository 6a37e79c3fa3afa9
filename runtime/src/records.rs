//! Memory for process records and small process bodies, recycled between workers in batches.
//!
//! A record is allocated by the worker that spawns the process and freed by the worker that
//! ends it, often another one. Through the allocator, each record then goes back to its
//! allocating thread one at a time (a remote free, collected later by walking the freed blocks
//! one after another), and the spawner writes a fresh record into lines the other core holds.
//! So does a process's body, when the runtime keeps it (see `ProcessBox`).
//!
//! Instead, a worker keeps the blocks its processes leave behind in a stack of its own (one per
//! [`Kind`]) and passes them on [`BATCH`] at a time through a shared pool, from which a worker
//! that spawns takes a whole batch when its own stack is empty. A spawn takes the top of the
//! stack and prefetches the next block for writing, so that its lines are on their way before
//! the next spawn writes them. A pool keeps at most [`KEEP`] batches (the rest go back to the
//! allocator), a worker at most `2 * BATCH - 1` blocks of a kind, and a worker that goes idle
//! hands its stacks to the pools. Threads that are not workers use the allocator directly.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::LocalKey;

use crate::cell::ProcessCell;
use crate::stock::{GiveBack, Stock};

/// Blocks passed on at once.
const BATCH: usize = 64;
/// Batches a shared pool keeps.
const KEEP: usize = 16;

/// What blocks of one kind are: their layout, and where they wait to be used again.
pub(crate) trait Kind: Sized + 'static {
    const LAYOUT: Layout;
    /// The pool of the program's workers.
    fn pool() -> &'static Pool<Self>;
    /// The calling thread's stack of spare blocks.
    fn stock() -> &'static LocalKey<Stock<Spare<Self>>>;
}

/// Process records.
pub(crate) struct Records;

/// Process bodies of up to five words (see `ProcessBox`).
pub(crate) struct Bodies;

static RECORDS: Pool<Records> = Pool::new();
static BODIES: Pool<Bodies> = Pool::new();

thread_local! {
    static RECORD_STOCK: Stock<Spare<Records>> = const { Stock::new() };
    static BODY_STOCK: Stock<Spare<Bodies>> = const { Stock::new() };
}

impl Kind for Records {
    const LAYOUT: Layout = Layout::new::<ProcessCell>();
    fn pool() -> &'static Pool<Records> {
        &RECORDS
    }
    fn stock() -> &'static LocalKey<Stock<Spare<Records>>> {
        &RECORD_STOCK
    }
}

impl Kind for Bodies {
    /// Five words with a word's alignment: a native or a Rust process, in the size class
    /// (48 bytes) its box took, so that recycling them costs no memory. (A request whose size
    /// plus alignment minus one passes a class boundary is served from the next class whenever
    /// a fresh page is needed: mimalloc aligns a size that is not a power of two by
    /// over-allocating.)
    const LAYOUT: Layout = match Layout::from_size_align(40, 8) {
        Ok(l) => l,
        Err(_) => panic!("a body block's layout"),
    };
    fn pool() -> &'static Pool<Bodies> {
        &BODIES
    }
    fn stock() -> &'static LocalKey<Stock<Spare<Bodies>>> {
        &BODY_STOCK
    }
}

/// Uninitialized memory for a `K`, owned by whoever holds the pointer.
pub(crate) struct Spare<K: Kind>(NonNull<u8>, PhantomData<K>);

// SAFETY: a spare is memory that nothing else refers to; it can be freed on any thread.
unsafe impl<K: Kind> Send for Spare<K> {}

impl<K: Kind> Spare<K> {
    fn free(self) {
        // SAFETY: allocated with `K::LAYOUT` (see `take_from`) and no longer used by anyone.
        unsafe { dealloc(self.0.as_ptr(), K::LAYOUT) };
    }
}

impl<K: Kind> GiveBack for Spare<K> {
    fn give_back(self) {
        self.free();
    }
}

/// Batches on their way from the workers that free blocks to the ones that spawn, and whether
/// there are any: a spawner whose stack is empty looks without taking the lock (in a parent's
/// burst of spawns, when the children have not ended yet, there never are).
pub(crate) struct Pool<K: Kind> {
    batches: Mutex<Vec<Vec<Spare<K>>>>,
    /// Whether `batches` holds any: a hint, kept under the lock (seen stale, it costs a lock
    /// for nothing or a fresh block).
    stocked: AtomicBool,
}

impl<K: Kind> Pool<K> {
    const fn new() -> Pool<K> {
        Pool { batches: Mutex::new(Vec::new()), stocked: AtomicBool::new(false) }
    }

    /// The batches (a panic elsewhere while holding them leaves them consistent).
    fn batches(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Spare<K>>>> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A batch, if there is one.
    fn pop(&self) -> Option<Vec<Spare<K>>> {
        if !self.stocked.load(Ordering::Relaxed) {
            return None;
        }
        let mut batches = self.batches();
        let batch = batches.pop();
        self.stocked.store(!batches.is_empty(), Ordering::Relaxed);
        batch
    }

    /// Keeps `batch`, or gives it back if the pool holds [`KEEP`] batches already.
    fn push(&self, batch: Vec<Spare<K>>) -> Option<Vec<Spare<K>>> {
        let mut batches = self.batches();
        if batches.len() >= KEEP {
            return Some(batch);
        }
        batches.push(batch);
        self.stocked.store(true, Ordering::Relaxed);
        None
    }
}

impl<K: Kind> Drop for Pool<K> {
    fn drop(&mut self) {
        for batch in std::mem::take(&mut *self.batches()) {
            batch.into_iter().for_each(Spare::free);
        }
    }
}

/// Memory for one `K`: a spare block if the thread has one (or the pool a batch), else fresh.
pub(crate) fn take<K: Kind>() -> NonNull<u8> {
    take_from(K::pool())
}

/// Takes back a block that is no longer used.
///
/// # Safety
/// `ptr` came from [`take`] of the same kind, and what it held was dropped and is used by no
/// one.
pub(crate) unsafe fn give<K: Kind>(ptr: NonNull<u8>) {
    // SAFETY: the caller's contract.
    unsafe { give_to(K::pool(), ptr) }
}

fn take_from<K: Kind>(pool: &Pool<K>) -> NonNull<u8> {
    let spare = K::stock().try_with(|stock| {
        let mut spares = stock.spares()?;
        if spares.is_empty()
            && let Some(batch) = pool.pop()
        {
            *spares = batch;
        }
        let spare = spares.pop()?;
        if let Some(next) = spares.last() {
            prefetch_for_write::<K>(next.0);
        }
        Some(spare.0)
    });
    if let Ok(Some(ptr)) = spare {
        return ptr;
    }
    // SAFETY: neither layout is zero-sized.
    let ptr = unsafe { alloc(K::LAYOUT) };
    NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(K::LAYOUT))
}

/// # Safety
/// As for [`give`].
unsafe fn give_to<K: Kind>(pool: &Pool<K>, ptr: NonNull<u8>) {
    let kept = K::stock().try_with(|stock| {
        let Some(mut spares) = stock.spares() else { return false };
        spares.push(Spare(ptr, PhantomData));
        if spares.len() >= 2 * BATCH {
            // The oldest go on: the newest are the likeliest still in this core's cache.
            let batch: Vec<Spare<K>> = spares.drain(..BATCH).collect();
            drop(spares);
            pass_on(pool, batch);
        }
        true
    });
    if kept != Ok(true) {
        Spare::<K>(ptr, PhantomData).free();
    }
}

/// Puts a batch into the pool, or frees it if the pool is full.
fn pass_on<K: Kind>(pool: &Pool<K>, batch: Vec<Spare<K>>) {
    if batch.is_empty() {
        return;
    }
    if let Some(full) = pool.push(batch) {
        full.into_iter().for_each(Spare::free);
    }
}

/// The calling thread (a worker) keeps spare blocks from now on.
pub(crate) fn enable() {
    let _ = Records::stock().try_with(|s| s.keep(true));
    let _ = Bodies::stock().try_with(|s| s.keep(true));
}

/// Hands the calling thread's spare blocks to the pools (a worker going idle).
pub(crate) fn flush() {
    flush_to(Records::pool());
    flush_to(Bodies::pool());
}

fn flush_to<K: Kind>(pool: &Pool<K>) {
    let spares = K::stock().try_with(Stock::take_all).unwrap_or_default();
    pass_on(pool, spares);
}

/// Hands back every spare block and stops keeping them (a worker that stops).
pub(crate) fn disable() {
    let _ = Records::stock().try_with(|s| s.keep(false));
    let _ = Bodies::stock().try_with(|s| s.keep(false));
    flush();
}

/// Asks for the block's lines in this core's cache, ready to be written (a hint only).
fn prefetch_for_write<K: Kind>(ptr: NonNull<u8>) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_ET0, _mm_prefetch};
        let base = ptr.as_ptr().cast::<i8>();
        for line in 0..K::LAYOUT.size().div_ceil(64) {
            // SAFETY: a prefetch reads nothing and faults on nothing; the address is within
            // the block's allocation.
            unsafe { _mm_prefetch::<_MM_HINT_ET0>(base.wrapping_add(64 * line)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    fn pool() -> Pool<Records> {
        Pool::new()
    }

    fn batches(pool: &Pool<Records>) -> Vec<usize> {
        pool.batches().iter().map(Vec::len).collect()
    }

    fn stocked() -> usize {
        Records::stock().with(Stock::len)
    }

    /// Runs `f` on a thread of its own (a fresh stock), as a worker if `worker`.
    fn on_thread<R: Send>(worker: bool, f: impl FnOnce() -> R + Send) -> R {
        std::thread::scope(|s| {
            s.spawn(|| {
                if worker {
                    enable();
                }
                f()
            })
            .join()
            .unwrap()
        })
    }

    #[test]
    fn a_worker_reuses_the_record_it_gave_back_last() {
        let pool = pool();
        on_thread(true, || {
            let a = take_from(&pool);
            let b = take_from(&pool);
            // SAFETY: memory from `take_from`, holding nothing.
            unsafe { give_to(&pool, a) };
            // SAFETY: as above.
            unsafe { give_to(&pool, b) };
            assert_eq!(stocked(), 2);
            assert_eq!(take_from(&pool), b);
            assert_eq!(take_from(&pool), a);
            assert_eq!(stocked(), 0);
            // SAFETY: as above.
            unsafe { give_to(&pool, a) };
            // SAFETY: as above.
            unsafe { give_to(&pool, b) };
        });
        assert!(batches(&pool).is_empty(), "a stock below two batches keeps its records");
    }

    #[test]
    fn other_threads_use_the_allocator() {
        let pool = pool();
        on_thread(false, || {
            let a = take_from(&pool);
            // SAFETY: as above.
            unsafe { give_to(&pool, a) };
            assert_eq!(stocked(), 0);
        });
        assert!(batches(&pool).is_empty());
    }

    #[test]
    fn batches_go_from_the_worker_that_frees_to_the_one_that_spawns() {
        let pool = pool();
        let freed: Vec<usize> = on_thread(true, || {
            let records: Vec<_> = (0..2 * BATCH).map(|_| take_from(&pool)).collect();
            let addrs = records.iter().map(|p| p.as_ptr().addr()).collect();
            for r in records {
                // SAFETY: as above.
                unsafe { give_to(&pool, r) };
            }
            assert_eq!(stocked(), BATCH, "the oldest batch went on");
            flush_to(&pool);
            assert_eq!(stocked(), 0);
            addrs
        });
        assert_eq!(batches(&pool), [BATCH, BATCH]);
        on_thread(true, || {
            let got: Vec<_> = (0..2 * BATCH).map(|_| take_from(&pool)).collect();
            for p in &got {
                assert!(freed.contains(&p.as_ptr().addr()), "a record from the pool");
            }
            for p in got {
                // SAFETY: as above.
                unsafe { give_to(&pool, p) };
            }
        });
        assert_eq!(
            batches(&pool),
            [BATCH],
            "one batch went on again, the stock's thread freed the rest"
        );
    }

    #[test]
    fn the_pool_keeps_at_most_its_batches() {
        let pool = pool();
        on_thread(true, || {
            let records: Vec<_> = (0..(KEEP + 3) * BATCH).map(|_| take_from(&pool)).collect();
            for r in records {
                // SAFETY: as above.
                unsafe { give_to(&pool, r) };
            }
            flush_to(&pool);
        });
        assert_eq!(batches(&pool).len(), KEEP);
    }

    #[test]
    fn a_stopped_worker_keeps_nothing() {
        let pool = pool();
        on_thread(true, || {
            let a = take_from(&pool);
            let _ = Records::stock().try_with(|s| s.keep(false));
            flush_to(&pool);
            // SAFETY: as above.
            unsafe { give_to(&pool, a) };
            assert_eq!(stocked(), 0);
        });
        assert!(batches(&pool).is_empty());
    }
}
