//! The watchdog's sleep, and the wake-up a beginning step gives it, without losing one.
//!
//! Protocol (a Dekker pair over `asleep` and the workers' step counters): the watchdog, holding
//! the lock, sets `asleep`, issues a SeqCst fence, then looks at the counters once more and
//! waits on the condition variable only if no step runs. A step publishes itself (writes its
//! counter), issues a SeqCst fence, then reads `asleep`; if set, it takes the lock, clears it
//! and notifies. Both sides write theirs, fence, then read the other's: at least one sees the
//! other, so either the watchdog's second look sees the step, or the step sees the watchdog
//! asleep and wakes it. The lock keeps the notification from falling between the watchdog's
//! look and its wait.

#[cfg(spindle_loom)]
pub(crate) use loom::sync::MutexGuard;
#[cfg(spindle_loom)]
use loom::sync::{Condvar, Mutex, atomic::AtomicBool, atomic::Ordering, atomic::fence};
#[cfg(not(spindle_loom))]
pub(crate) use std::sync::MutexGuard;
#[cfg(not(spindle_loom))]
use std::sync::{Condvar, Mutex, atomic::AtomicBool, atomic::Ordering, atomic::fence};

/// Data under a lock, and a sleeper that steps wake (see the module docs).
pub(crate) struct Doze<T> {
    data: Mutex<T>,
    asleep: AtomicBool,
    wake: Condvar,
}

impl<T> Doze<T> {
    pub(crate) fn new(data: T) -> Doze<T> {
        Doze { data: Mutex::new(data), asleep: AtomicBool::new(false), wake: Condvar::new() }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The watchdog sleeps unless `busy` says a step runs, until a step wakes it (or, outside
    /// the model, until `timeout`, which only bounds the harm of a bug here).
    pub(crate) fn sleep<'a>(
        &'a self,
        guard: MutexGuard<'a, T>,
        busy: impl Fn(&T) -> bool,
        #[cfg_attr(spindle_loom, allow(unused_variables))] timeout: std::time::Duration,
    ) -> MutexGuard<'a, T> {
        self.asleep.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut guard = guard;
        if !busy(&guard) {
            #[cfg(not(spindle_loom))]
            {
                guard = self
                    .wake
                    .wait_timeout_while(guard, timeout, |_| self.asleep.load(Ordering::SeqCst))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            #[cfg(spindle_loom)]
            {
                while self.asleep.load(Ordering::SeqCst) {
                    guard = self.wake.wait(guard).unwrap();
                }
            }
        }
        self.asleep.store(false, Ordering::SeqCst);
        guard
    }

    /// A step that has published itself wakes the watchdog if it sleeps.
    pub(crate) fn rouse(&self) {
        fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::SeqCst) {
            let _guard = self.lock();
            self.asleep.store(false, Ordering::SeqCst);
            self.wake.notify_one();
        }
    }
}

#[cfg(all(test, spindle_loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicU64;
    use loom::thread;

    /// A step begins while the watchdog goes to sleep: the watchdog is never left asleep with
    /// the step running (loom reports a wait nobody ends as a deadlock).
    #[test]
    fn loom_a_beginning_step_always_wakes_the_watchdog() {
        loom::model(|| {
            let doze = Arc::new(Doze::new(()));
            let seq = Arc::new(AtomicU64::new(0));
            let step = {
                let (doze, seq) = (doze.clone(), seq.clone());
                thread::spawn(move || {
                    seq.store(1, Ordering::Release);
                    doze.rouse();
                })
            };
            let guard = doze.lock();
            let guard = doze.sleep(
                guard,
                |_| seq.load(Ordering::Acquire) & 1 == 1,
                std::time::Duration::ZERO,
            );
            drop(guard);
            step.join().unwrap();
        });
    }
}
