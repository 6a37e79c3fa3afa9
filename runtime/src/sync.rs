//! The concurrency primitives the scheduler's protocols are built on, swapped for loom's
//! model-checked versions under `--cfg spindle_loom` (see `scheduler/state.rs` for the models).

#[cfg(spindle_loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
#[cfg(spindle_loom)]
pub(crate) use loom::sync::Mutex;

#[cfg(not(spindle_loom))]
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(spindle_loom))]
pub(crate) use std::sync::Mutex;

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
