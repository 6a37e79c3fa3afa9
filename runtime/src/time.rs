//! Time: the runtime's clock and the I/O driver.
//!
//! The driver is a small tokio runtime beside the workers that carries out waits that are not
//! process-to-process (timers; I/O later) and completes the waiting process's operation.
//!
//! A runtime runs on the real clock, or on a [`ManualClock`] that moves only when told to: then
//! every timer (`Op::Sleep`) fires exactly when the clock is advanced past its deadline, so
//! time-driven behaviour (restart backoff, timeouts) can be tested without waiting and without
//! wall-clock assertions.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Handle, Runtime as Tokio};
use tokio::task::AbortHandle;

use crate::error::{Error, ErrorKind, Result};
use crate::process::{Completion, Tag};
use crate::process_ref::ProcessRef;
use crate::sync::{Mutex, lock};

/// Where a runtime's time comes from: the real clock (the default) or a [`ManualClock`].
#[derive(Clone, Debug, Default)]
pub struct Clock(Source);

#[derive(Clone, Debug, Default)]
enum Source {
    #[default]
    Real,
    Manual(ManualClock),
}

impl Clock {
    /// The real clock.
    pub fn real() -> Clock {
        Clock(Source::Real)
    }
}

impl From<ManualClock> for Clock {
    fn from(clock: ManualClock) -> Clock {
        Clock(Source::Manual(clock))
    }
}

/// A clock that stands still until [`advance`](ManualClock::advance)d; cloning it gives another
/// handle to the same clock.
#[derive(Clone, Default)]
pub struct ManualClock(Arc<Mutex<Manual>>);

#[derive(Default)]
struct Manual {
    now: Duration,
    next_id: u64,
    /// Timers by deadline, then by the order they were started.
    timers: BTreeMap<(Duration, u64), (ProcessRef, Tag)>,
}

impl ManualClock {
    /// A clock at zero with no timers.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// The time since the clock was made.
    pub fn now(&self) -> Duration {
        lock(&*self.0).now
    }

    /// Moves the clock forward by `d` and fires every timer due by then, earliest first.
    pub fn advance(&self, d: Duration) {
        let due = {
            let mut m = lock(&*self.0);
            m.now += d;
            let cut = (m.now, u64::MAX);
            let later = m.timers.split_off(&cut);
            std::mem::replace(&mut m.timers, later)
        };
        for (cell, tag) in due.into_values() {
            cell.rt().complete(&cell, tag, Completion::Timer);
        }
    }

    /// Timers waiting to fire.
    pub fn pending_timers(&self) -> usize {
        lock(&*self.0).timers.len()
    }

    /// The earliest deadline of a waiting timer, as a time of this clock.
    pub fn next_deadline(&self) -> Option<Duration> {
        lock(&*self.0).timers.keys().next().map(|(at, _)| *at)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = lock(&*self.0);
        f.debug_struct("ManualClock").field("now", &m.now).field("timers", &m.timers.len()).finish()
    }
}

/// A started timer, for cancelling it.
pub(crate) enum TimerHandle {
    Real(AbortHandle),
    Manual(ManualClock, (Duration, u64)),
    /// Already due when it was started: the caller completes it.
    Due,
}

impl TimerHandle {
    pub(crate) fn is_due(&self) -> bool {
        matches!(self, TimerHandle::Due)
    }

    pub(crate) fn cancel(self) {
        match self {
            TimerHandle::Real(h) => h.abort(),
            TimerHandle::Manual(clock, key) => {
                lock(&*clock.0).timers.remove(&key);
            }
            TimerHandle::Due => {}
        }
    }
}

pub(crate) struct Driver {
    tokio: Mutex<Option<Tokio>>,
    handle: Handle,
    clock: Source,
    started: Instant,
}

impl Driver {
    pub(crate) fn start(clock: Clock) -> Result<Driver> {
        let tokio = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("spindle:io")
            .enable_time()
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Internal, format!("starting the I/O driver: {e}"))
            })?;
        Ok(Driver {
            handle: tokio.handle().clone(),
            tokio: Mutex::new(Some(tokio)),
            clock: clock.0,
            started: Instant::now(),
        })
    }

    /// The time since the runtime started, on its clock.
    pub(crate) fn now(&self) -> Duration {
        match &self.clock {
            Source::Real => self.started.elapsed(),
            Source::Manual(m) => m.now(),
        }
    }

    /// Completes operation `tag` of `cell` with [`Completion::Timer`] after `d`. Called under
    /// the cell's lock, so a timer that is already due is not completed here: the handle says
    /// [`TimerHandle::Due`] and the caller completes it once the lock is released.
    pub(crate) fn sleep(&self, cell: ProcessRef, tag: Tag, d: Duration) -> TimerHandle {
        match &self.clock {
            Source::Real => TimerHandle::Real(
                self.handle
                    .spawn(async move {
                        tokio::time::sleep(d).await;
                        cell.rt().complete(&cell, tag, Completion::Timer);
                    })
                    .abort_handle(),
            ),
            Source::Manual(clock) => {
                let mut m = lock(&*clock.0);
                if d.is_zero() {
                    return TimerHandle::Due;
                }
                m.next_id += 1;
                let key = (m.now + d, m.next_id);
                m.timers.insert(key, (cell, tag));
                TimerHandle::Manual(clock.clone(), key)
            }
        }
    }

    pub(crate) fn shutdown(&self) {
        if let Source::Manual(clock) = &self.clock {
            // The timers hold their processes; the runtime is going away.
            lock(&*clock.0).timers.clear();
        }
        if let Some(t) = lock(&self.tokio).take() {
            t.shutdown_background();
        }
    }
}
