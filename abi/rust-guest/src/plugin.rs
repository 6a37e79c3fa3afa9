//! The plugin's side of the ABI: `init`, `step` and `drop` for an `async fn` body, and the
//! per-thread state a step leaves for the context's operations.
//!
//! A step polls the process's future once, with the host table and context of that step stored
//! in a thread-local for the [`Cx`] operations to use; nothing crosses steps but the future.
//! Panics are caught here: at no point may one unwind into the host.

use std::cell::Cell;
use std::ffi::c_void;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::ptr;
use std::task::{Context, Poll, Waker};

use spindle_abi::*;

use crate::cx::Cx;
use crate::error::{Error, ErrorKind, Result};
use crate::value::{Packed, Value};

/// What a pending step asks for besides waiting.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Signal {
    None,
    Yield,
    Upgrade,
}

/// Combinators that went pending in this step: `select` needs any completion, `join` all.
pub(crate) const WANTS_ANY: u8 = 1;
pub(crate) const WANTS_ALL: u8 = 2;

/// What the step running on this thread lends to the process's operations. One thread-local
/// for all of it: in a shared library each thread-local access is a call into the loader.
pub(crate) struct Current {
    host: Cell<*const SpindleHost>,
    cx: Cell<*mut SpindleCx>,
    signal: Cell<Signal>,
    wants: Cell<u8>,
    /// How many operations were polled and found pending since the step began or an
    /// operation last gave a result (what was waited for before may not be any more: a
    /// `select` that ended keeps its loser if it was borrowed). A step whose futures want all
    /// asks the host's wait-all only if that is every outstanding operation: the host's
    /// wait-all is for the whole process, and would also wait for an operation a future keeps
    /// without waiting for it (a receive kept by `&mut` from a `select` it lost). (An operation
    /// polled twice between two results counts twice; no combinator of this crate does that.)
    waited: Cell<u32>,
}

impl Current {
    /// A started operation was polled and is still pending.
    pub(crate) fn op_pending(&self) {
        self.waited.set(self.waited.get() + 1);
    }

    /// An operation gave a result: the body goes on, and what it waits for is counted anew.
    pub(crate) fn progress(&self) {
        self.waited.set(0);
    }
}

thread_local! {
    static CURRENT: Current = const {
        Current {
            host: Cell::new(ptr::null()),
            cx: Cell::new(ptr::null_mut()),
            signal: Cell::new(Signal::None),
            wants: Cell::new(0),
            waited: Cell::new(0),
        }
    };
}

pub(crate) fn signal(s: Signal) {
    CURRENT.with(|c| c.signal.set(s));
}

pub(crate) fn wants(flag: u8) {
    CURRENT.with(|c| c.wants.set(c.wants.get() | flag));
}

/// Whether a step is running on this thread (host functions may be called).
pub(crate) fn in_step() -> bool {
    CURRENT.with(|c| !c.cx.get().is_null())
}

/// Calls `f` with the host table and context of the step running on this thread.
///
/// # Panics
/// When no step runs on this thread: the process context was kept and used outside its
/// process's step, which the ABI forbids.
#[inline]
pub(crate) fn with_host<R>(f: impl FnOnce(&SpindleHost, *mut SpindleCx) -> R) -> R {
    let (host, cx) = CURRENT.with(|c| (c.host.get(), c.cx.get()));
    assert!(!cx.is_null(), "spindle-guest: the process context was used outside its step");
    // SAFETY: set by `Enter` from the host's arguments for the step running on this thread;
    // the host table is static.
    f(unsafe { &*host }, cx)
}

/// [`with_host`], with the step's [`Current`] too (one thread-local access for both).
#[inline]
pub(crate) fn with_step<R>(f: impl FnOnce(&SpindleHost, *mut SpindleCx, &Current) -> R) -> R {
    CURRENT.with(|c| {
        let (host, cx) = (c.host.get(), c.cx.get());
        assert!(!cx.is_null(), "spindle-guest: the process context was used outside its step");
        // SAFETY: as in `with_host`.
        f(unsafe { &*host }, cx, c)
    })
}

/// An ABI status as a result, with the host's message for failures.
#[inline]
pub(crate) fn check(rc: i32) -> Result<()> {
    if rc == OK || rc == NONE { Ok(()) } else { Err(failed(rc)) }
}

/// The error of a host call that returned `rc`, with the host's message.
#[cold]
#[inline(never)]
fn failed(rc: i32) -> Error {
    let message = with_host(|h, cx| {
        let (mut p, mut n) = (ptr::null(), 0);
        // SAFETY: a host function of the running step, with valid out pointers.
        if unsafe { (h.last_error)(cx, &mut p, &mut n) } == OK && !p.is_null() {
            // SAFETY: the host lends `n` bytes at `p` until the next failure; copied at once.
            String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(p, n) }).into_owned()
        } else {
            format!("host call failed with code {rc}")
        }
    });
    Error::new(ErrorKind::from_code(rc), message)
}

/// Makes the host's table and context current on this thread for one init or step call. (An
/// init may run inside a step on the same thread: a spawn of the same plugin instantiates it
/// there. So the table and context are put back after, and an init leaves alone what the step
/// noted: its signal, what its combinators want, its operation counts. A step never runs
/// inside another.)
struct Enter {
    saved: (*const SpindleHost, *mut SpindleCx),
}

impl Enter {
    #[inline]
    fn new(host: *const SpindleHost, cx: *mut SpindleCx) -> Enter {
        // An init polls nothing: what a step around it noted so far stays.
        CURRENT.with(|c| Enter { saved: (c.host.replace(host), c.cx.replace(cx)) })
    }

    /// [`Enter::new`] for a step.
    #[inline]
    fn step(host: *const SpindleHost, cx: *mut SpindleCx) -> Enter {
        CURRENT.with(|c| {
            c.signal.set(Signal::None);
            c.wants.set(0);
            c.waited.set(0);
            Enter { saved: (c.host.replace(host), c.cx.replace(cx)) }
        })
    }

    /// What the step's pending futures asked for, as the step's return code.
    #[inline]
    fn pending(&self) -> i32 {
        CURRENT.with(|c| match c.signal.get() {
            Signal::Upgrade => STEP_UPGRADE,
            Signal::Yield => STEP_YIELD,
            Signal::None if c.wants.get() == WANTS_ALL && waits_for_all(c) => STEP_WAIT_ALL,
            Signal::None => STEP_WAIT_ANY,
        })
    }
}

/// Whether the operations the step's futures wait for are all the process has outstanding (a
/// host without `outstanding` cannot tell: no).
#[cold]
fn waits_for_all(c: &Current) -> bool {
    let end = std::mem::offset_of!(SpindleHost, outstanding) + std::mem::size_of::<usize>();
    // SAFETY: set by `Enter` for the step running on this thread; the host table is static.
    let host = unsafe { &*c.host.get() };
    if !SpindleHost::covers(host.size, end) {
        return false;
    }
    // SAFETY: a host function of the running step, present in the table (its size covers it).
    let outstanding = unsafe { (host.outstanding)(c.cx.get()) };
    u64::from(c.waited.get()) >= outstanding
}

impl Drop for Enter {
    #[inline]
    fn drop(&mut self) {
        let (host, cx) = self.saved;
        CURRENT.with(|c| {
            c.host.set(host);
            c.cx.set(cx);
        });
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

fn set_error(e: &Error) {
    let m = e.message();
    // SAFETY: a host function of the running step; the message is valid for the call.
    with_host(|h, cx| unsafe { (h.set_error)(cx, e.kind().code(), m.as_ptr(), m.len()) });
}

/// `init` for the body `make`: decodes the arguments and creates the future (which runs
/// nothing until the first step), boxed once, as the plugin's state.
///
/// # Safety
/// The arguments of `spindle_plugin.init` as the host passes them (spindle.h).
pub unsafe fn init<F: Body>(
    host: *const SpindleHost,
    cx: *mut SpindleCx,
    args: *const u8,
    args_len: usize,
    state: *mut *mut c_void,
    make: fn(Cx, Vec<Value>) -> F,
) -> i32 {
    let _enter = Enter::new(host, cx);
    let r = catch_unwind(|| {
        let bytes = if args_len == 0 || args.is_null() {
            &[][..]
        } else {
            // SAFETY: the host passes `args_len` readable bytes for the call.
            unsafe { std::slice::from_raw_parts(args, args_len) }
        };
        let args = crate::value::arguments(bytes)?;
        // Made where it stays: built first and moved into its box, the future was copied
        // whole.
        let body = Box::<F>::new_uninit();
        Ok(Box::into_raw(Box::write(body, make(Cx::current(), args))))
    });
    let e = match r {
        Ok(Ok(body)) => {
            // SAFETY: the host passes a valid out pointer.
            unsafe { *state = body.cast() };
            return OK;
        }
        Ok(Err(e)) => e,
        Err(panic) => Error::new(
            ErrorKind::Internal,
            format!("plugin panicked in init: {}", panic_message(&*panic)),
        ),
    };
    set_error(&e);
    e.kind().code()
}

/// The future of a process body.
pub trait Body: Future<Output = Result<Value>> + 'static {}

impl<F: Future<Output = Result<Value>> + 'static> Body for F {}

/// `step` for the body `make` made: polls it once. (`make` only names the body's type: the
/// state is a box of that type itself, so a step reaches the future without an indirection
/// or a dynamic call.)
///
/// # Safety
/// The arguments of `spindle_plugin.step` as the host passes them: `state` from [`init`] with
/// the same `make`.
pub unsafe fn step<F: Body>(
    state: *mut c_void,
    host: *const SpindleHost,
    cx: *mut SpindleCx,
    _make: fn(Cx, Vec<Value>) -> F,
) -> i32 {
    let enter = Enter::step(host, cx);
    // SAFETY: `state` is the box of `F` `init` made, used by one thread at a time and never
    // moved out of its box until `drop`.
    let body = unsafe { Pin::new_unchecked(&mut *state.cast::<F>()) };
    let polled =
        catch_unwind(AssertUnwindSafe(|| body.poll(&mut Context::from_waker(Waker::noop()))));
    match polled {
        Ok(Poll::Pending) => enter.pending(),
        // A process that ends without a result ends with nil (spindle.h): no host call. Told
        // apart here by the tags alone: handed to `exit`, the outcome is read in words it was
        // not written in, which stalls on store forwarding.
        Ok(Poll::Ready(Ok(Value::Nil))) => STEP_EXIT_OK,
        Ok(Poll::Ready(r)) => exit(r),
        Err(panic) => exit(Err(Error::new(
            ErrorKind::Internal,
            format!("plugin panicked: {}", panic_message(&*panic)),
        ))),
    }
}

/// Hands the body's outcome to the host (a nil result `step` reports without a host call);
/// the step's return code.
fn exit(outcome: Result<Value>) -> i32 {
    // Reporting must not unwind either (a host call could fail in a way that panics).
    let reported = catch_unwind(|| match outcome {
        Ok(v) => {
            let mut p = Packed::new();
            let b = p.value(&v);
            // SAFETY: a host function of the running step; the bytes are valid for the call.
            let rc = with_host(|h, cx| unsafe { (h.set_result)(cx, b.as_ptr(), b.len()) });
            check(rc).map_or(STEP_EXIT_ERROR, |()| STEP_EXIT_OK)
        }
        Err(e) => {
            set_error(&e);
            STEP_EXIT_ERROR
        }
    });
    reported.unwrap_or(STEP_EXIT_ERROR)
}

/// `drop` for the body `make` made: frees it. No host function may be called from here:
/// operations the body still holds are not dropped one by one (the host drops them with the
/// process).
///
/// # Safety
/// `state` from [`init`] with the same `make`, dropped once.
pub unsafe fn drop<F: Body>(state: *mut c_void, _make: fn(Cx, Vec<Value>) -> F) {
    // SAFETY: `state` is the box of `F` `init` made; the host drops it once.
    let body = unsafe { Box::from_raw(state.cast::<F>()) };
    // A destructor that panics must not unwind into the host; what it leaked stays leaked.
    let _ = catch_unwind(AssertUnwindSafe(move || std::mem::drop(body)));
}
