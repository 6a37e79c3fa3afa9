//! The concurrency primitives the scheduler's protocols are built on, swapped for loom's
//! model-checked versions under `--cfg spindle_loom` (see the `loom_models` modules of
//! `scheduler/state.rs` and `scheduler/idle.rs`).

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

/// Locks `m`, ignoring poisoning: process code never runs under these locks, and every critical
/// section leaves its data consistent before anything that could panic.
#[cfg(not(spindle_loom))]
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(spindle_loom)]
pub(crate) fn lock<T>(m: &Mutex<T>) -> loom::sync::MutexGuard<'_, T> {
    m.lock().unwrap()
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
