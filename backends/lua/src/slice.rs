//! Time slices: a Lua step that runs longer than its slice is preempted.
//!
//! A count hook makes Lua call into the hook machinery before every VM instruction of the
//! coroutine it is set on: a tenth of a message hop, a quarter of a busy loop's speed. So
//! processes run without a hook. A step notes when it began; a watchdog thread sleeps until
//! the earliest running step's slice is over and, if that step still runs, sends its worker a
//! signal (again after every further slice, for a step that cannot yield). The handler, on
//! the worker's own thread, sets a count hook of one instruction on the coroutine running
//! there (setting a hook is what Lua allows a signal handler to do: it is how its own
//! interpreter breaks a loop on Ctrl-C), and that hook yields the coroutine (see
//! [`crate::preempt`]), which ends the step.
//!
//! The handler knows which coroutine runs because every resume of a process's coroutines goes
//! through `RT.resume` ([`resume`]), which notes it in a thread-local. A signal that comes
//! while the prelude's own code runs (no coroutine of the process) is kept for the next
//! resume of the step. With no step running the watchdog looks once a slice, and after
//! `QUIET_LOOKS` such looks sleeps until a step begins.
//!
//! The signal is `SIGRTMAX - 1`; an application that embeds the runtime must leave it alone.

use std::cell::{Cell, RefCell};
use std::ffi::c_int;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mlua::ffi;

use crate::doze::{Doze, MutexGuard};

/// Looks without a running step before the watchdog sleeps until one begins.
const QUIET_LOOKS: u32 = 64;

/// How often a sleeping watchdog looks anyway.
const ASLEEP_CHECK: Duration = Duration::from_millis(100);

/// The watchdog never sleeps shorter than this.
const MIN_SLEEP: Duration = Duration::from_micros(20);

thread_local! {
    /// The process coroutine this thread runs, if any (set by `resume`, read by the handler).
    static RUNNING: Cell<*mut ffi::lua_State> = const { Cell::new(ptr::null_mut()) };
    /// The coroutine the handler set the hook on, until the hook fires or `resume` takes it
    /// off. Only compared, never followed, outside `resume`: it may be gone by then.
    static ARMED: Cell<*mut ffi::lua_State> = const { Cell::new(ptr::null_mut()) };
    /// The signal came while no coroutine of the process ran: the next resume arms.
    static PENDING: Cell<bool> = const { Cell::new(false) };
    /// A step under a time slice runs on this thread (a late signal finds none, or finds a
    /// step preempted by instruction count, and leaves its hooks alone).
    static TIMED: Cell<bool> = const { Cell::new(false) };
    /// This thread's record with the watchdog, made by its first Lua step.
    static SLOT: RefCell<Option<Registered>> = const { RefCell::new(None) };
}

/// A thread that runs Lua steps, as the watchdog sees it.
struct Slot {
    thread: libc::pthread_t,
    /// Bumped when a step begins and when it ends: odd while one runs.
    seq: AtomicU64,
    /// When the running step began ([`now`]) and its slice, in nanoseconds.
    start: AtomicU64,
    slice: AtomicU64,
    /// The watchdog's own notes: the step it signalled last, and when.
    signalled: AtomicU64,
    signalled_at: AtomicU64,
}

/// Nanoseconds on a clock shared by the workers and the watchdog.
fn now() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Removes the thread's slot when the thread ends, so that its id is never signalled again.
struct Registered(Arc<Slot>);

impl Drop for Registered {
    fn drop(&mut self) {
        let mut slots = watchdog().lock();
        slots.retain(|s| !Arc::ptr_eq(s, &self.0));
    }
}

struct Watchdog {
    /// The threads that run Lua steps; the watchdog sleeps on it while none runs one.
    slots: Doze<Vec<Arc<Slot>>>,
    signal: c_int,
}

impl Watchdog {
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Slot>>> {
        self.slots.lock()
    }
}

/// The watchdog, started (and the signal handler installed) on first use.
fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<Watchdog> = OnceLock::new();
    static STARTED: OnceLock<()> = OnceLock::new();
    let w = WATCHDOG
        .get_or_init(|| Watchdog { slots: Doze::new(Vec::new()), signal: libc::SIGRTMAX() - 1 });
    STARTED.get_or_init(|| {
        install_handler(w.signal);
        // Without the watchdog no step is ever preempted by time: failing to start a thread
        // at all leaves the runtime in no state to run either.
        std::thread::Builder::new()
            .name("spindle:slices".into())
            .spawn(move || watch(w))
            .expect("starting the Lua time-slice watchdog");
    });
    w
}

fn install_handler(signal: c_int) {
    // SAFETY: `sigaction` with a zeroed struct, an empty mask and a handler that only touches
    // thread-locals and calls `lua_sethook` (see `on_signal`); SA_RESTART keeps interrupted
    // system calls of the worker going.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, ptr::null_mut());
    }
}

/// Whether `signal` still has [`on_signal`] as its handler. The signal is the runtime's, but
/// code loaded later (a native plugin, the embedding program) may have set one of its own:
/// then no step would ever be preempted by time.
fn handler_is_ours(signal: c_int) -> bool {
    // SAFETY: `sigaction` with a null new action only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, ptr::null(), &mut old) == 0
            && old.sa_sigaction == on_signal as *const () as libc::sighandler_t
    }
}

/// Signals `thread`, first putting the handler back if something replaced it.
///
/// # Safety
/// `thread` is alive.
unsafe fn preempt_thread(w: &Watchdog, thread: libc::pthread_t) {
    if !handler_is_ours(w.signal) {
        tracing::warn!(
            signal = w.signal,
            "the Lua time-slice signal (SIGRTMAX-1) had another handler; it is the runtime's, \
             and its handler is installed again"
        );
        install_handler(w.signal);
    }
    // SAFETY: the thread is alive, by the contract.
    unsafe { libc::pthread_kill(thread, w.signal) };
}

fn watch(w: &'static Watchdog) {
    // A timer's default slack (50 µs) would make every slice that much longer.
    // SAFETY: PR_SET_TIMERSLACK only sets this thread's timer slack (in nanoseconds).
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let mut quiet = 0;
    let mut slice = Duration::from_millis(1);
    loop {
        let mut sleep = slice;
        {
            let slots = w.lock();
            let now = now();
            let mut running = false;
            for s in slots.iter() {
                let seq = s.seq.load(Ordering::SeqCst);
                if seq & 1 == 0 {
                    continue;
                }
                running = true;
                let len = s.slice.load(Ordering::Relaxed);
                slice = Duration::from_nanos(len);
                // A step that was signalled and still runs could not yield: once a slice.
                let from = if s.signalled.load(Ordering::Relaxed) == seq {
                    s.signalled_at.load(Ordering::Relaxed)
                } else {
                    s.start.load(Ordering::Relaxed)
                };
                let mut deadline = from.saturating_add(len);
                if now >= deadline {
                    // SAFETY: the thread is alive: a slot leaves the list (under this lock)
                    // before its thread ends.
                    unsafe { preempt_thread(w, s.thread) };
                    s.signalled.store(seq, Ordering::Relaxed);
                    s.signalled_at.store(now, Ordering::Relaxed);
                    deadline = now.saturating_add(len);
                }
                sleep = sleep.min(Duration::from_nanos(deadline - now));
            }
            quiet = if running { 0 } else { quiet + 1 };
            if quiet >= QUIET_LOOKS {
                // Until a step begins (see `doze` for why none is missed). Still quiet after
                // the timeout: the next look finds no step and sleeps again.
                let running = |slots: &Vec<Arc<Slot>>| {
                    slots.iter().any(|s| s.seq.load(Ordering::SeqCst) & 1 == 1)
                };
                drop(w.slots.sleep(slots, running, ASLEEP_CHECK));
                continue;
            }
        }
        std::thread::sleep(sleep.max(MIN_SLEEP));
    }
}

/// The slot of this thread, registered with the watchdog on first use. It lives until the
/// thread ends (its registration is a thread-local).
fn slot() -> *const Slot {
    SLOT.with(|s| {
        let mut s = s.borrow_mut();
        if let Some(r) = s.as_ref() {
            return Arc::as_ptr(&r.0);
        }
        let slot = Arc::new(Slot {
            // SAFETY: `pthread_self` has no preconditions.
            thread: unsafe { libc::pthread_self() },
            seq: AtomicU64::new(0),
            start: AtomicU64::new(0),
            slice: AtomicU64::new(0),
            signalled: AtomicU64::new(0),
            signalled_at: AtomicU64::new(0),
        });
        watchdog().lock().push(slot.clone());
        let ptr = Arc::as_ptr(&slot);
        *s = Some(Registered(slot));
        ptr
    })
}

/// A step under a time slice: from [`begin`] until dropped, on the thread that began it (the
/// pointer is to that thread's slot, which outlives every step of the thread).
pub(crate) struct Timed(*const Slot);

/// A step with slice `slice` begins on this thread.
pub(crate) fn begin(slice: Duration) -> Timed {
    let ptr = slot();
    // SAFETY: see `slot`.
    let slot = unsafe { &*ptr };
    RUNNING.set(ptr::null_mut());
    ARMED.set(ptr::null_mut());
    PENDING.set(false);
    TIMED.set(true);
    slot.slice.store(u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    slot.start.store(now(), Ordering::Relaxed);
    // Only this thread writes its counter.
    slot.seq.store(slot.seq.load(Ordering::Relaxed) + 1, Ordering::Release);
    watchdog().slots.rouse();
    Timed(ptr)
}

impl Drop for Timed {
    fn drop(&mut self) {
        // SAFETY: see `Timed`.
        let slot = unsafe { &*self.0 };
        slot.seq.store(slot.seq.load(Ordering::Relaxed) + 1, Ordering::Release);
        TIMED.set(false);
        RUNNING.set(ptr::null_mut());
        ARMED.set(ptr::null_mut());
        PENDING.set(false);
    }
}

/// The signal handler: arms the coroutine running on this thread, or notes the signal for the
/// next resume.
extern "C" fn on_signal(_signal: c_int) {
    if !TIMED.get() {
        return;
    }
    let co = RUNNING.get();
    if co.is_null() {
        PENDING.set(true);
    } else {
        arm(co);
    }
}

/// Sets the one-instruction hook on `co` (a coroutine this thread runs or is about to).
fn arm(co: *mut ffi::lua_State) {
    if ARMED.get() != co {
        // SAFETY: `co` is alive (it runs on this thread, or `resume` holds it on its stack),
        // and `lua_sethook` only stores into the thread and marks its Lua frames.
        unsafe { ffi::lua_sethook(co, Some(on_slice), ffi::LUA_MASKCOUNT, 1) };
        ARMED.set(co);
    }
}

/// Whether the handler armed `co`, which runs on this thread: its step's slice is over. If so,
/// takes the hook off again: the caller, code that runs in C where no hook fires (a pattern
/// match, see [`crate::pattern`]), yields by itself.
pub(crate) fn disarm(co: *mut ffi::lua_State) -> bool {
    if co.is_null() || ARMED.get() != co {
        return false;
    }
    // SAFETY: `co` runs on this thread (the caller's code runs in it).
    unsafe { ffi::lua_sethook(co, None, 0, 0) };
    ARMED.set(ptr::null_mut());
    true
}

/// The hook the handler set: takes itself off, then hands over to the preemption hook, which
/// yields the coroutine if it can.
unsafe extern "C-unwind" fn on_slice(state: *mut ffi::lua_State, ar: *mut ffi::lua_Debug) {
    // SAFETY: Lua calls the hook on the thread it is set on, with its debug record; the
    // preemption hook is called the same way Lua would call it.
    unsafe {
        ffi::lua_sethook(state, None, 0, 0);
        ARMED.set(ptr::null_mut());
        crate::preempt::preempt(state, ar);
    }
}

/// What `RT.resume` returns after `true` for a coroutine that the hook preempted (it yielded no
/// values, but not by itself): a light userdata, which no Lua code can make.
static PREEMPTED: u8 = 0;

/// Pushes the mark of a preemption (see [`PREEMPTED`]).
///
/// # Safety
/// `state` has room for one more value.
pub(crate) unsafe fn push_preempted(state: *mut ffi::lua_State) {
    // SAFETY: the caller's contract; the address of a static is a valid light userdata.
    unsafe { ffi::lua_pushlightuserdata(state, (&raw const PREEMPTED).cast_mut().cast()) };
}

/// `RT.resume(co, ...)`: `coroutine.resume`, noting the coroutine as the one this thread runs
/// while it runs (the prelude resumes every coroutine of a process through it), and telling a
/// preemption apart from the coroutine's own yield: `true, PREEMPTED` (`RT.PREEMPTED`).
pub(crate) unsafe extern "C-unwind" fn resume(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this with its arguments on `state`'s stack. As Lua's own
    // `coroutine.resume`: values move between the two stacks after room is checked, and
    // `lua_resume` catches every error of the coroutine. What may raise here (a wrong
    // argument, out of memory for a message) raises before anything needs undoing, or after
    // the thread-locals are restored; this frame owns nothing to drop.
    unsafe {
        let co = ffi::lua_tothread(state, 1);
        if co.is_null() {
            return ffi::luaL_argerror(state, 1, c"coroutine expected".as_ptr());
        }
        let narg = ffi::lua_gettop(state) - 1;
        if ffi::lua_checkstack(co, narg) == 0 {
            ffi::lua_pushboolean(state, 0);
            ffi::lua_pushstring(state, c"too many arguments to resume".as_ptr());
            return 2;
        }
        ffi::lua_xmove(state, co, narg);
        let outer = RUNNING.replace(co);
        if PENDING.replace(false) {
            arm(co);
        }
        let mut nres = 0;
        let status = ffi::lua_resume(co, state, narg, &mut nres);
        let preempted = crate::preempt::preempted(co) && status == ffi::LUA_YIELD && nres == 0;
        RUNNING.set(outer);
        if ARMED.get() == co {
            // Armed, but it stopped before an instruction ran: no stale preemption later.
            ffi::lua_sethook(co, None, 0, 0);
            ARMED.set(ptr::null_mut());
        }
        if preempted {
            ffi::lua_pushboolean(state, 1);
            push_preempted(state);
            return 2;
        }
        if status == ffi::LUA_OK || status == ffi::LUA_YIELD {
            if ffi::lua_checkstack(state, nres + 1) == 0 {
                ffi::lua_pop(co, nres);
                ffi::lua_pushboolean(state, 0);
                ffi::lua_pushstring(state, c"too many results to resume".as_ptr());
                return 2;
            }
            ffi::lua_pushboolean(state, 1);
            ffi::lua_xmove(co, state, nres);
            nres + 1
        } else {
            ffi::lua_pushboolean(state, 0);
            ffi::lua_xmove(co, state, 1);
            2
        }
    }
}
