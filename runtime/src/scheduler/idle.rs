//! Parking idle workers without losing a wake-up.
//!
//! Protocol (a Dekker pair over `sleeping` and the run queues):
//!
//! 1. A worker that found no work adds itself to `sleepers` and bumps `sleeping` (SeqCst),
//! 2. then checks every queue once more; if it finds work it takes itself out again and runs it,
//! 3. else it parks on its own `Parker`, whose token is sticky: an unpark that comes before the
//!    park is not lost.
//!
//! A producer pushes its task, then (`notify_one`) issues a SeqCst fence and reads `sleeping`.
//! Either the producer sees the sleeper (and unparks one), or the sleeper's re-check in step 2
//! sees the task: both cannot miss each other, because both sides order "write mine, fence,
//! read theirs".

use crate::sync::{AtomicUsize, Mutex, Ordering, Parker, Unparker, fence, lock};

pub(super) struct Idle {
    sleeping: AtomicUsize,
    sleepers: Mutex<Vec<usize>>,
    unparkers: Mutex<Vec<Option<Unparker>>>,
}

impl Idle {
    pub(super) fn new(workers: usize) -> Idle {
        Idle {
            sleeping: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            unparkers: Mutex::new(vec![None; workers]),
        }
    }

    /// Registers the parker of worker `index` (once, when the worker starts).
    pub(super) fn register(&self, index: usize, parker: &Parker) {
        lock(&self.unparkers)[index] = Some(parker.unparker().clone());
    }

    /// Step 1: worker `index` announces it is about to sleep.
    pub(super) fn announce(&self, index: usize) {
        lock(&self.sleepers).push(index);
        self.sleeping.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Worker `index` found work after announcing (or woke up, or is being woken): it is no
    /// longer a sleeper. Returns whether it was one.
    pub(super) fn withdraw(&self, index: usize) -> bool {
        let mut sleepers = lock(&self.sleepers);
        let Some(i) = sleepers.iter().position(|&w| w == index) else { return false };
        sleepers.swap_remove(i);
        self.sleeping.fetch_sub(1, Ordering::SeqCst);
        true
    }

    /// Wakes one sleeping worker, if any sleeps.
    pub(super) fn notify_one(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) == 0 {
            return;
        }
        let woken = {
            let mut sleepers = lock(&self.sleepers);
            let w = sleepers.pop();
            if w.is_some() {
                self.sleeping.fetch_sub(1, Ordering::SeqCst);
            }
            w
        };
        if let Some(w) = woken {
            self.unpark(w);
        }
    }

    /// Wakes worker `index` if it sleeps (as `notify_one` does for any).
    pub(super) fn notify_worker(&self, index: usize) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) != 0 && self.withdraw(index) {
            self.unpark(index);
        }
    }

    /// Wakes every worker (shutdown).
    pub(super) fn notify_all(&self) {
        let n = lock(&self.unparkers).len();
        for w in 0..n {
            self.withdraw(w);
            self.unpark(w);
        }
    }

    fn unpark(&self, index: usize) {
        if let Some(u) = &lock(&self.unparkers)[index] {
            u.unpark();
        }
    }
}

/// Model check of the park protocol: a worker that finds nothing and parks, against a producer
/// that pushes and notifies. If a wake-up could be lost, the worker would park forever and
/// loom would report the deadlock.
#[cfg(all(test, spindle_loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// The worker's loop from `worker.rs`, with a counter for a queue.
    fn worker(idle: &Idle, queue: &AtomicUsize, parker: &Parker) {
        worker_at(0, idle, queue, parker);
    }

    fn worker_at(index: usize, idle: &Idle, queue: &AtomicUsize, parker: &Parker) {
        loop {
            if take(queue) {
                return;
            }
            idle.announce(index);
            if take(queue) {
                idle.withdraw(index);
                return;
            }
            parker.park();
            idle.withdraw(index);
        }
    }

    fn take(queue: &AtomicUsize) -> bool {
        queue.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }

    /// The same for a push meant for one worker (a strand sent to its home worker), while
    /// another worker sleeps too: the one it is meant for is woken.
    #[test]
    fn loom_park_never_misses_a_push_for_this_worker() {
        loom::model(|| {
            let idle = Arc::new(Idle::new(2));
            let queue = Arc::new(AtomicUsize::new(0));
            let (parker, other) = (Parker::new(), Parker::new());
            idle.register(0, &other);
            idle.announce(0);
            idle.register(1, &parker);
            let producer = {
                let (idle, queue) = (idle.clone(), queue.clone());
                thread::spawn(move || {
                    queue.fetch_add(1, Ordering::Release);
                    idle.notify_worker(1);
                })
            };
            worker_at(1, &idle, &queue, &parker);
            producer.join().unwrap();
        });
    }

    #[test]
    fn loom_park_never_misses_a_push() {
        loom::model(|| {
            let idle = Arc::new(Idle::new(1));
            let queue = Arc::new(AtomicUsize::new(0));
            let parker = Parker::new();
            idle.register(0, &parker);
            let producer = {
                let (idle, queue) = (idle.clone(), queue.clone());
                thread::spawn(move || {
                    queue.fetch_add(1, Ordering::Release);
                    idle.notify_one();
                })
            };
            worker(&idle, &queue, &parker);
            producer.join().unwrap();
        });
    }
}
