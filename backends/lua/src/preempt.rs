//! Preemption: the hook that yields a busy process back to the scheduler.
//!
//! Two ways to fire it. By time (the default, [`crate::slice`]): processes run without a
//! hook, and a step that outlasts its slice gets a one-instruction hook set on its running
//! coroutine. By instruction count (`LuaConfig::slice_instructions`, deterministic, for tests
//! that want a preemption at every possible point): a count hook makes Lua call into the hook
//! machinery before every VM instruction of the thread it is set on, which costs about a
//! quarter of the interpreter's speed, so it is set on process coroutines only: mlua installs
//! it on the island's main thread ([`Lua::set_global_hook`]), [`install`] takes it off there
//! again, and the `arm` function it returns puts it on each process's main coroutine.
//! Coroutines a process makes inherit it from their maker (Lua copies a thread's hook into the
//! threads it creates). The prelude's scheduler runs on the main thread: it does a bounded
//! amount of work per step and is not counted against the process.

use std::cell::Cell;
use std::ffi::c_int;
use std::ptr;
use std::sync::OnceLock;

use mlua::{Function, HookTriggers, Lua, VmState, ffi};

use crate::api::Current;

/// The message of the error that ends a process past its memory budget.
pub(crate) const MEMORY_BUDGET: &str = "the process exceeded its memory budget";

/// The message of the error that stops a process running in code the hook cannot yield.
pub(crate) const STUCK: &str = "the process ran 20 time slices where it could not be preempted \
     (a long loop inside a callback of a library function, e.g. a table.sort comparator or an \
     __index metamethod that string.gsub looks a replacement up through)";

/// Slices a step may run past its first: a hook yields the process, which ends the step, so a
/// second hook in one step means the first could not yield (Lua cannot yield across a C
/// function such as `table.sort` calling back into Lua).
pub(crate) const STUCK_SLICES: u32 = 20;

/// mlua's hook function: one function for every Lua state, which finds the Rust callback in
/// the state it is called for.
static HOOK_PROC: OnceLock<ffi::lua_Hook> = OnceLock::new();

thread_local! {
    /// The coroutine the preemption hook is yielding, for the `RT.resume` it yields to.
    static YIELDING: Cell<*mut ffi::lua_State> = const { Cell::new(ptr::null_mut()) };
}

/// Runs mlua's hook function (the preemption callback, which yields `state` if it can) on
/// `state`, noting that a yield of `state` from here is a preemption (see [`preempted`]).
///
/// # Safety
/// Called as a hook is: by Lua, on the thread the hook is set on, with its debug record.
pub(crate) unsafe fn preempt(state: *mut ffi::lua_State, ar: *mut ffi::lua_Debug) {
    let Some(&hook) = HOOK_PROC.get() else { return };
    // SAFETY: the caller's contract; an error leaves this frame by `longjmp`, and it holds
    // nothing to drop. A hook's yield returns here (Lua leaves the hook, then yields).
    unsafe {
        hook(state, ar);
        if ffi::lua_status(state) == ffi::LUA_YIELD {
            YIELDING.set(state);
        }
    }
}

/// Whether `co`, which has just yielded no values to a resume, was preempted by the hook
/// rather than yielding by itself (`coroutine.yield()`). Forgets the note either way.
pub(crate) fn preempted(co: *mut ffi::lua_State) -> bool {
    YIELDING.replace(ptr::null_mut()) == co
}

/// Notes that the yield of `state` about to happen is a preemption (made by code that yields
/// by itself where no hook can, see [`crate::pattern`]).
pub(crate) fn yielding(state: *mut ffi::lua_State) {
    YIELDING.set(state);
}

/// The instruction count `state` is preempted after, if it is preempted by count.
///
/// # Safety
/// `state` is a live thread of this thread's running state.
pub(crate) unsafe fn counting(state: *mut ffi::lua_State) -> Option<usize> {
    // SAFETY: the caller's contract; both only read the thread's hook settings.
    unsafe {
        if ffi::lua_gethookmask(state) & ffi::LUA_MASKCOUNT == 0 {
            return None;
        }
        usize::try_from(ffi::lua_gethookcount(state)).ok()
    }
}

/// The count hook: [`preempt`] every N instructions.
unsafe extern "C-unwind" fn on_count(state: *mut ffi::lua_State, ar: *mut ffi::lua_Debug) {
    // SAFETY: Lua calls the hook as a hook.
    unsafe { preempt(state, ar) }
}

/// Sets up preemption in `lua`: after `instructions` VM instructions if that is not 0, else
/// when [`crate::slice`] arms a coroutine (if `timed`), else never. Returns the function that
/// arms a new process coroutine (`arm(co)`; it does nothing unless counting instructions).
pub(crate) fn install(lua: &Lua, instructions: u32, timed: bool) -> mlua::Result<Function> {
    if instructions == 0 && !timed {
        return lua.create_function(|_, _: mlua::Value| Ok(()));
    }
    // The trigger only matters for the count hook: a timed slice sets its own (see `slice`).
    let every = instructions.max(1);
    lua.set_global_hook(HookTriggers::new().every_nth_instruction(every), move |lua, _| {
        // A process past its memory budget gets the error here, inside the step; if it catches
        // it and goes on, the next hook yields it, and the step's end ends it.
        let over = Current::with(lua, |s| {
            lua.used_memory().saturating_sub(s.memory_at_start) > s.memory_left
                && !s.memory_raised.replace(true)
        });
        if over == Some(true) {
            return Err(mlua::Error::MemoryError(MEMORY_BUDGET.to_owned()));
        }
        // Raised inside the callback, the error unwinds through the library function; caught
        // and carried on from, the process is back where the next hook can yield it.
        let stuck = Current::with(lua, crate::api::Stepping::stuck_slice);
        if stuck == Some(true) {
            return Err(mlua::Error::runtime(STUCK));
        }
        Ok(VmState::Yield)
    })?;
    // SAFETY: `exec_raw` runs the closure with the state's lock held and in protected mode, on
    // the main thread (nothing runs in the state yet); the closure reads the hook mlua just set,
    // clears it on this thread only, and pushes one value, the C closure returned.
    unsafe {
        lua.exec_raw((), |state| {
            if let Some(hook) = ffi::lua_gethook(state) {
                HOOK_PROC.get_or_init(|| hook);
            }
            let count = if instructions == 0 { 0 } else { ffi::lua_gethookcount(state) };
            ffi::lua_sethook(state, None, 0, 0);
            ffi::lua_pushinteger(state, ffi::lua_Integer::from(count));
            ffi::lua_pushcclosure(state, arm, 1);
        })
    }
}

/// `arm(co)`: sets the count hook, every upvalue-1 instructions (0: none), on coroutine `co`.
unsafe extern "C-unwind" fn arm(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this as a C function with its arguments on `state`'s stack and the
    // closure's one upvalue in place (see `install`). `lua_tothread` and `lua_tointegerx` only
    // read, and setting the hook of another coroutine is what `debug.sethook(co, …)` does;
    // none of them raises a Lua error, so nothing unwinds through this frame.
    unsafe {
        let co = ffi::lua_tothread(state, 1);
        let count = ffi::lua_tointegerx(state, ffi::lua_upvalueindex(1), ptr::null_mut());
        if !co.is_null() && count > 0 {
            let count = c_int::try_from(count).unwrap_or(c_int::MAX);
            ffi::lua_sethook(co, Some(on_count), ffi::LUA_MASKCOUNT, count);
        }
    }
    0
}
