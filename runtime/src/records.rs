//! Memory for process records, recycled between workers in batches.
//!
//! A record is allocated by the worker that spawns the process and freed by the worker that
//! ends it, often another one. Through the allocator, each record then goes back to its
//! allocating thread one at a time (a remote free, collected later by walking the freed blocks
//! one after another), and the spawner writes a fresh record into lines the other core holds.
//!
//! Instead, a worker keeps the records its processes leave behind in a stack of its own and
//! passes them on [`BATCH`] at a time through a shared pool, from which a worker that spawns
//! takes a whole batch when its own stack is empty. A spawn takes the top of the stack and
//! prefetches the next record for writing, so that its lines are on their way before the next
//! spawn writes them. The pool keeps at most [`KEEP`] batches (the rest go back to the
//! allocator), a worker at most `2 * BATCH - 1` records, and a worker that goes idle hands its
//! stack to the pool. Threads that are not workers use the allocator directly.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::ptr::NonNull;
use std::sync::Mutex;

use crate::cell::ProcessCell;
use crate::stock::{GiveBack, Stock};

/// Records passed on at once.
const BATCH: usize = 64;
/// Batches the shared pool keeps.
const KEEP: usize = 16;

const LAYOUT: Layout = Layout::new::<ProcessCell>();

/// Uninitialized record memory, owned by whoever holds the pointer.
struct Spare(NonNull<ProcessCell>);

// SAFETY: a spare is memory that nothing else refers to; it can be freed on any thread.
unsafe impl Send for Spare {}

impl Spare {
    fn free(self) {
        // SAFETY: allocated with `LAYOUT` (see `take`) and no longer used by anyone.
        unsafe { dealloc(self.0.as_ptr().cast(), LAYOUT) };
    }
}

/// Batches on their way from the workers that free records to the ones that spawn.
struct Pool(Mutex<Vec<Vec<Spare>>>);

impl Pool {
    /// The batches (a panic elsewhere while holding them leaves them consistent).
    fn batches(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Spare>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for batch in std::mem::take(&mut *self.batches()) {
            batch.into_iter().for_each(Spare::free);
        }
    }
}

/// The pool of the program's workers.
static POOL: Pool = Pool(Mutex::new(Vec::new()));

impl GiveBack for Spare {
    fn give_back(self) {
        self.free();
    }
}

thread_local! {
    /// This thread's stack of spare records (see [`Stock`]).
    static STOCK: Stock<Spare> = const { Stock::new() };
}

/// Memory for one record: a spare one if the thread has one (or the pool a batch), else fresh.
pub(crate) fn take() -> NonNull<ProcessCell> {
    take_from(&POOL)
}

/// Takes back the memory of a record that was dropped.
///
/// # Safety
/// `ptr` came from [`take`], and the record it held was dropped and is used by no one.
pub(crate) unsafe fn give(ptr: NonNull<ProcessCell>) {
    // SAFETY: the caller's contract.
    unsafe { give_to(&POOL, ptr) }
}

fn take_from(pool: &Pool) -> NonNull<ProcessCell> {
    let spare = STOCK.try_with(|stock| {
        let mut spares = stock.spares()?;
        if spares.is_empty()
            && let Some(batch) = pool.batches().pop()
        {
            *spares = batch;
        }
        let spare = spares.pop()?;
        if let Some(next) = spares.last() {
            prefetch_for_write(next.0);
        }
        Some(spare.0)
    });
    if let Ok(Some(ptr)) = spare {
        return ptr;
    }
    // SAFETY: the layout is not zero-sized (a record holds a pid, among other things).
    let ptr = unsafe { alloc(LAYOUT) }.cast::<ProcessCell>();
    NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(LAYOUT))
}

/// # Safety
/// As for [`give`].
unsafe fn give_to(pool: &Pool, ptr: NonNull<ProcessCell>) {
    let kept = STOCK.try_with(|stock| {
        let Some(mut spares) = stock.spares() else { return false };
        spares.push(Spare(ptr));
        if spares.len() >= 2 * BATCH {
            // The oldest go on: the newest are the likeliest still in this core's cache.
            let batch: Vec<Spare> = spares.drain(..BATCH).collect();
            drop(spares);
            pass_on(pool, batch);
        }
        true
    });
    if kept != Ok(true) {
        Spare(ptr).free();
    }
}

/// Puts a batch into the pool, or frees it if the pool is full.
fn pass_on(pool: &Pool, batch: Vec<Spare>) {
    if batch.is_empty() {
        return;
    }
    let mut batches = pool.batches();
    if batches.len() < KEEP {
        batches.push(batch);
        return;
    }
    drop(batches);
    for s in batch {
        s.free();
    }
}

/// The calling thread (a worker) keeps spare records from now on.
pub(crate) fn enable() {
    let _ = STOCK.try_with(|s| s.keep(true));
}

/// Hands the calling thread's spare records to the pool (a worker going idle).
pub(crate) fn flush() {
    flush_to(&POOL);
}

fn flush_to(pool: &Pool) {
    let spares = STOCK.try_with(Stock::take_all).unwrap_or_default();
    pass_on(pool, spares);
}

/// Hands back every spare record and stops keeping them (a worker that stops).
pub(crate) fn disable() {
    let _ = STOCK.try_with(|s| s.keep(false));
    flush();
}

/// Asks for the record's lines in this core's cache, ready to be written (a hint only).
fn prefetch_for_write(ptr: NonNull<ProcessCell>) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_ET0, _mm_prefetch};
        let base = ptr.as_ptr().cast::<i8>();
        for line in 0..size_of::<ProcessCell>().div_ceil(64) {
            // SAFETY: a prefetch reads nothing and faults on nothing; the address is within
            // the record's allocation.
            unsafe { _mm_prefetch::<_MM_HINT_ET0>(base.wrapping_add(64 * line)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    fn pool() -> Pool {
        Pool(Mutex::new(Vec::new()))
    }

    fn batches(pool: &Pool) -> Vec<usize> {
        pool.batches().iter().map(Vec::len).collect()
    }

    fn stocked() -> usize {
        STOCK.with(Stock::len)
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
            let _ = STOCK.try_with(|s| s.keep(false));
            flush_to(&pool);
            // SAFETY: as above.
            unsafe { give_to(&pool, a) };
            assert_eq!(stocked(), 0);
        });
        assert!(batches(&pool).is_empty());
    }
}
