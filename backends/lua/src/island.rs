//! Islands: Lua states shared by many processes, each run by one worker at a time.
//!
//! In islands mode a host gets a few Lua states per worker; every process is a coroutine with
//! its own `_ENV` in one of them, and the island is a strand of the scheduler, so its processes
//! are never stepped at once and the island moves between workers with its ready processes.
//! In state mode every process gets an island of its own (its own heap, a hard memory limit).

use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, LuaOptions, MultiValue, StdLib, Table, ffi};
use spindle_runtime::scheduler::Strand;
use spindle_runtime::{EntryId, Error, ErrorKind};

use crate::api::{self, Current};
use crate::preempt;

const PRELUDE: &str = include_str!("prelude.lua");

/// When an island's processes are preempted (see `LuaConfig::slice`).
#[derive(Clone, Copy)]
pub(crate) struct Slicing {
    pub(crate) instructions: u32,
    pub(crate) time: Duration,
}

impl Slicing {
    /// The time slice, unless counting instructions (or never preempting).
    fn time(self) -> Option<Duration> {
        (self.instructions == 0 && !self.time.is_zero()).then_some(self.time)
    }
}

/// A Lua state with the prelude loaded.
pub(crate) struct Island {
    pub(crate) lua: Lua,
    pub(crate) strand: Option<Arc<Strand>>,
    /// The prelude's `start(chunk, method, granted, ...)` (a new process and its first step),
    /// `step(P, tag, ...)` (a step, with the last completion) and `deliver(P, tag, ...)` (a
    /// completion before the step's last one), as references in the registry, for the raw
    /// step entries.
    pub(crate) start: c_int,
    pub(crate) step: c_int,
    pub(crate) deliver: c_int,
    /// The state's process slot (its app data, never replaced, so its address is fixed).
    current: CurrentPtr,
    /// The state's main thread, for reading its heap's size without `Lua`'s lock.
    main: MainState,
    pub(crate) describe_error: Function,
    /// The time slice of a step, if preemption is by time (see [`crate::slice`]).
    pub(crate) slice: Option<Duration>,
    /// Steps that ended preempted.
    pub(crate) preemptions: AtomicUsize,
    chunks: Mutex<HashMap<EntryId, Arc<Loaded>>>,
    /// References let go of outside the island's steps.
    pub(crate) unrefs: Arc<Unrefs>,
}

/// An entry's code loaded into an island, with what its processes share read-only: the
/// compiled chunk (a function of the process's `_ENV`), the name of the method that runs as
/// the process body and the set of modules the processes may `require`, as references in the
/// island's registry. Dropped on any thread: the references are freed by the island's next
/// step (see [`Unrefs`]).
pub(crate) struct Loaded {
    version: u64,
    pub(crate) chunk: c_int,
    pub(crate) method: c_int,
    pub(crate) granted: c_int,
    unrefs: Arc<Unrefs>,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        self.unrefs.push(&[self.chunk, self.method, self.granted]);
    }
}

/// Registry references of an island that were let go of outside its steps, freed by its next
/// step. Whatever drops them (another island's step, a spawn that failed, a process ended by
/// the runtime) never waits for the island's Lua state: a worker stepping one island must never
/// wait for another's, which may be waiting for the first (a deadlock of both workers).
#[derive(Default)]
pub(crate) struct Unrefs {
    pending: AtomicBool,
    refs: Mutex<Vec<c_int>>,
}

impl Unrefs {
    pub(crate) fn push(&self, refs: &[c_int]) {
        self.refs.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(refs);
        self.pending.store(true, Ordering::Release);
    }

    /// Frees the references let go of so far.
    ///
    /// # Safety
    /// `s` is the island's state, in protected mode (inside `exec_raw` or `protected`).
    pub(crate) unsafe fn free(&self, s: *mut ffi::lua_State) {
        if !self.pending.load(Ordering::Acquire) {
            return;
        }
        self.pending.store(false, Ordering::Relaxed);
        let refs = std::mem::take(&mut *self.refs.lock().unwrap_or_else(|e| e.into_inner()));
        for r in refs {
            // SAFETY: the caller's contract; each reference was made in this state's registry
            // and is freed once.
            unsafe { ffi::luaL_unref(s, ffi::LUA_REGISTRYINDEX, r) };
        }
    }
}

/// An entry's compiled code and settings, shared by its prototype and the processes that have
/// yet to load it.
pub(crate) struct Compiled {
    pub(crate) id: EntryId,
    pub(crate) version: u64,
    /// The chunk's name in error messages (`@path`).
    pub(crate) name: String,
    pub(crate) bytecode: Vec<u8>,
    pub(crate) method: String,
}

/// The code a new process starts with: loaded into its island already, or to be loaded by its
/// first step (the first process of an entry version on the island).
pub(crate) enum Code {
    Loaded(Arc<Loaded>),
    Load {
        compiled: Arc<Compiled>,
        /// The modules granted to the entry's processes on this island's host.
        granted: Vec<String>,
        /// The backend's count of loads.
        loads: Arc<AtomicUsize>,
    },
}

/// The address of a state's [`Current`].
struct CurrentPtr(*const Current);

// SAFETY: the pointer is only followed by the thread that runs the island's Lua state (an
// island is stepped by one worker at a time), while the state, which owns the pointee, lives.
unsafe impl Send for CurrentPtr {}
// SAFETY: as above.
unsafe impl Sync for CurrentPtr {}

/// The registry key under which a step's error waits to be raised again (see
/// [`Island::protected`]); set to `false` when the island starts, so that storing there never
/// allocates.
static STEP_ERROR: u8 = 0;

/// The main thread of an island's state.
struct MainState(*mut ffi::lua_State);

// SAFETY: as for `CurrentPtr`: followed only by the thread that runs the island's state, while
// the state lives.
unsafe impl Send for MainState {}
// SAFETY: as above.
unsafe impl Sync for MainState {}

impl Island {
    /// The bytes the state's heap holds, garbage not yet collected included: Lua's own count,
    /// the same as `Lua::used_memory`'s (both add up the blocks the state's allocator handed
    /// out), read without that method's lock. Only for the thread running the island.
    pub(crate) fn used_memory(&self) -> usize {
        // SAFETY: the state lives as long as `self.lua`, and this thread runs it (see
        // `MainState`); `LUA_GCCOUNT` and `LUA_GCCOUNTB` only read the collector's counts.
        let (kb, b) = unsafe {
            let l = self.main.0;
            (ffi::lua_gc(l, ffi::LUA_GCCOUNT, 0), ffi::lua_gc(l, ffi::LUA_GCCOUNTB, 0))
        };
        match (usize::try_from(kb), usize::try_from(b)) {
            (Ok(kb), Ok(b)) => kb * 1024 + b,
            // While a finalizer runs, `lua_gc` answers nothing.
            _ => self.lua.used_memory(),
        }
    }

    /// Runs `f` on the state's main thread in protected mode, as `Lua::exec_raw` does, and
    /// returns what `f` left on the stack; without that method's lock, stack checks and error
    /// handler, which cost a step about a tenth of a microsecond. `f` starts on an empty frame
    /// with room for `LUA_MINSTACK` values. Only for the thread running the island.
    ///
    /// What `f` leaves is handed back through `exec_raw` (rare: most steps leave nothing), and
    /// so is an error it raises, so that mlua's error values and panics come out as they do
    /// from `exec_raw`. A Rust panic in `f` itself is caught and resumed after the call.
    ///
    /// # Safety
    /// As for `exec_raw`: `f` raises Lua errors only where no value of its own frame needs
    /// dropping.
    pub(crate) unsafe fn protected<F: FnOnce(*mut ffi::lua_State)>(
        &self,
        f: F,
    ) -> mlua::Result<MultiValue> {
        struct Call<F> {
            f: Option<F>,
            panic: Option<Box<dyn std::any::Any + Send>>,
            /// What `f` left, as registry references, first value first.
            left: Vec<c_int>,
        }

        unsafe extern "C-unwind" fn enter<F: FnOnce(*mut ffi::lua_State)>(
            s: *mut ffi::lua_State,
        ) -> c_int {
            // SAFETY: called by `lua_pcall` below with the pointer to the `Call` as its one
            // argument; the `Call` outlives the call. `luaL_ref` may raise (out of memory),
            // which `lua_pcall` catches; the frame then holds nothing to drop.
            unsafe {
                let call = &mut *ffi::lua_touserdata(s, 1).cast::<Call<F>>();
                ffi::lua_settop(s, 0);
                let Some(f) = call.f.take() else { return 0 };
                if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(s))) {
                    call.panic = Some(p);
                    return 0;
                }
                let n = ffi::lua_gettop(s);
                call.left.reserve(usize::try_from(n).unwrap_or(0));
                for _ in 0..n {
                    call.left.push(ffi::luaL_ref(s, ffi::LUA_REGISTRYINDEX));
                }
                call.left.reverse();
                0
            }
        }

        let s = self.main.0;
        let mut call = Call { f: Some(f), panic: None, left: Vec::new() };
        // SAFETY: `s` is the island's main thread (see `MainState`), not running anything: a
        // step starts from the worker. Two values need room, which `lua_checkstack` makes
        // (it reports failure rather than raising); pushing a C function without upvalues and
        // a light userdata allocates nothing, so nothing raises outside the protected call.
        let status = unsafe {
            let top = ffi::lua_gettop(s);
            if ffi::lua_checkstack(s, 2) == 0 {
                return Err(mlua::Error::MemoryError("no room on the Lua stack".into()));
            }
            ffi::lua_pushcfunction(s, enter::<F>);
            ffi::lua_pushlightuserdata(s, (&raw mut call).cast());
            let status = ffi::lua_pcall(s, 1, 0, 0);
            if status == ffi::LUA_OK {
                ffi::lua_settop(s, top);
            }
            status
        };
        if let Some(p) = call.panic {
            std::panic::resume_unwind(p);
        }
        match status {
            ffi::LUA_OK if call.left.is_empty() => Ok(MultiValue::new()),
            // SAFETY: the closure pushes the values its references keep, and lets them go.
            ffi::LUA_OK => unsafe {
                self.lua.exec_raw::<MultiValue>((), |s| {
                    for r in &call.left {
                        ffi::lua_rawgeti(s, ffi::LUA_REGISTRYINDEX, ffi::lua_Integer::from(*r));
                        ffi::luaL_unref(s, ffi::LUA_REGISTRYINDEX, *r);
                    }
                })
            },
            // Lua's own out-of-memory error carries a plain message: as `exec_raw` reports it.
            ffi::LUA_ERRMEM => {
                // SAFETY: the error value is at the top of `s`; reading a string allocates
                // nothing; popping it restores the stack.
                let message = unsafe {
                    let m = crate::stack::str_at(s, -1)
                        .map(|m| String::from_utf8_lossy(m).into_owned());
                    ffi::lua_pop(s, 1);
                    m
                };
                Err(mlua::Error::MemoryError(message.unwrap_or_default()))
            }
            // Raised again inside `exec_raw`, which turns it into an `mlua::Error` (or resumes
            // the panic it carries) as it would have.
            _ => {
                // SAFETY: the error value is at the top of `s`; storing it under a key that is
                // in the registry from the island's start allocates nothing.
                unsafe {
                    ffi::lua_rawsetp(s, ffi::LUA_REGISTRYINDEX, (&raw const STEP_ERROR).cast())
                };
                // SAFETY: the closure takes the value back, clears the slot, and raises it.
                let r = unsafe {
                    self.lua.exec_raw::<()>((), |s| {
                        ffi::lua_rawgetp(s, ffi::LUA_REGISTRYINDEX, (&raw const STEP_ERROR).cast());
                        ffi::lua_pushboolean(s, 0);
                        ffi::lua_rawsetp(s, ffi::LUA_REGISTRYINDEX, (&raw const STEP_ERROR).cast());
                        ffi::lua_error(s);
                    })
                };
                Err(r.err().unwrap_or_else(|| mlua::Error::runtime("a step failed")))
            }
        }
    }

    /// The state's process slot.
    pub(crate) fn current(&self) -> &Current {
        // SAFETY: the app data box lives as long as `self.lua` (see `CurrentPtr`).
        unsafe { &*self.current.0 }
    }
}

fn lua_err(e: mlua::Error) -> Error {
    Error::new(ErrorKind::Internal, format!("starting a Lua state: {e}"))
}

impl Island {
    /// A new island; `slicing` says when its processes are preempted, `memory_limit` the hard
    /// limit of
    /// the whole state (0: none).
    pub(crate) fn new(
        strand: Option<Arc<Strand>>,
        slicing: Slicing,
        memory_limit: usize,
    ) -> Result<Island, Error> {
        let libs = StdLib::COROUTINE
            | StdLib::TABLE
            | StdLib::STRING
            | StdLib::UTF8
            | StdLib::MATH
            | StdLib::OS;
        let lua = Lua::new_with(libs, LuaOptions::default()).map_err(lua_err)?;
        lua.set_app_data(Current::default());
        let current = {
            let slot = lua.app_data_ref::<Current>();
            let slot = slot.ok_or_else(|| lua_err(mlua::Error::runtime("no process slot")))?;
            CurrentPtr(std::ptr::from_ref::<Current>(&slot))
        };
        let rt = api::build(&lua).map_err(lua_err)?;
        rt.set(
            "arm",
            preempt::install(&lua, slicing.instructions, slicing.time().is_some())
                .map_err(lua_err)?,
        )
        .map_err(lua_err)?;
        lua.globals()
            .set("print", crate::terminal::print(&lua).map_err(lua_err)?)
            .map_err(lua_err)?;
        let exports: Table = lua
            .load(PRELUDE)
            .set_name("=spindle")
            .set_mode(ChunkMode::Text)
            .call(rt)
            .map_err(lua_err)?;
        if memory_limit > 0 {
            lua.set_memory_limit(memory_limit).map_err(lua_err)?;
        }
        let start: Function = exports.get("start").map_err(lua_err)?;
        let step: Function = exports.get("step").map_err(lua_err)?;
        let deliver: Function = exports.get("deliver").map_err(lua_err)?;
        let (mut start_ref, mut step_ref, mut deliver_ref) = (0, 0, 0);
        let mut main = std::ptr::null_mut();
        // SAFETY: `exec_raw` runs the closure in protected mode with the three functions at 1
        // to 3; `luaL_ref` pops the top into the registry and returns its reference.
        unsafe {
            lua.exec_raw::<()>((start, step, deliver), |state| {
                deliver_ref = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
                step_ref = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
                start_ref = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
                ffi::lua_pushboolean(state, 0);
                ffi::lua_rawsetp(state, ffi::LUA_REGISTRYINDEX, (&raw const STEP_ERROR).cast());
                main = state;
            })
            .map_err(lua_err)?;
        }
        Ok(Island {
            start: start_ref,
            step: step_ref,
            deliver: deliver_ref,
            current,
            main: MainState(main),
            describe_error: exports.get("describe_error").map_err(lua_err)?,
            lua,
            strand,
            slice: slicing.time(),
            preemptions: AtomicUsize::new(0),
            chunks: Mutex::new(HashMap::new()),
            unrefs: Arc::default(),
        })
    }

    /// The code a new process of `compiled` starts with on this island: the loaded code if
    /// its version was loaded here, else what its first step loads (with the modules
    /// `granted`, worked out only then). Never waits for the island's Lua state, which the
    /// island's worker may hold.
    pub(crate) fn code(
        &self,
        compiled: &Arc<Compiled>,
        granted: impl FnOnce() -> Vec<String>,
        loads: &Arc<AtomicUsize>,
    ) -> Code {
        match self.cached(compiled) {
            Some(l) => Code::Loaded(l),
            None => {
                Code::Load { compiled: compiled.clone(), granted: granted(), loads: loads.clone() }
            }
        }
    }

    fn cached(&self, compiled: &Compiled) -> Option<Arc<Loaded>> {
        let chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        chunks.get(&compiled.id).filter(|l| l.version == compiled.version).cloned()
    }

    /// The code of `compiled`, loaded into the island once per entry version with the modules
    /// `granted` (counted in `loads`).
    /// Called by the worker stepping the island (for the first step of a process), which holds
    /// its Lua state or takes it without holding another island's.
    pub(crate) fn load(
        &self,
        compiled: &Compiled,
        granted: &[String],
        loads: &AtomicUsize,
    ) -> mlua::Result<Arc<Loaded>> {
        // A process spawned before the first of its version started finds it loaded.
        if let Some(l) = self.cached(compiled) {
            return Ok(l);
        }
        let id = &compiled.id;
        let name = std::ffi::CString::new(compiled.name.as_bytes())
            .map_err(|_| mlua::Error::runtime(format!("loading {id}: a NUL in the chunk name")))?;
        let mut failure = None;
        let (mut chunk, mut method, mut set) = (0, 0, 0);
        // SAFETY: `exec_raw` runs the closure in protected mode; `luaL_loadbufferx` leaves the
        // function or an error message on the stack without raising; every push fits the
        // room of a C function (LUA_MINSTACK); `luaL_ref` pops into the registry.
        unsafe {
            self.lua.exec_raw::<()>((), |s| {
                let b = &compiled.bytecode;
                let rc = ffi::luaL_loadbufferx(
                    s,
                    b.as_ptr().cast(),
                    b.len(),
                    name.as_ptr(),
                    c"b".as_ptr(),
                );
                if rc != ffi::LUA_OK {
                    let m = crate::stack::str_at(s, -1).unwrap_or(b"not a loadable chunk");
                    failure = Some(String::from_utf8_lossy(m).into_owned());
                    return;
                }
                chunk = ffi::luaL_ref(s, ffi::LUA_REGISTRYINDEX);
                crate::stack::push_bytes(s, compiled.method.as_bytes());
                method = ffi::luaL_ref(s, ffi::LUA_REGISTRYINDEX);
                ffi::lua_createtable(s, 0, c_int::try_from(granted.len()).unwrap_or(0));
                for m in granted {
                    crate::stack::push_bytes(s, m.as_bytes());
                    ffi::lua_pushboolean(s, 1);
                    ffi::lua_rawset(s, -3);
                }
                set = ffi::luaL_ref(s, ffi::LUA_REGISTRYINDEX);
            })?;
        }
        if let Some(m) = failure {
            return Err(mlua::Error::runtime(format!("loading {id}: {m}")));
        }
        let loaded = Arc::new(Loaded {
            version: compiled.version,
            chunk,
            method,
            granted: set,
            unrefs: self.unrefs.clone(),
        });
        // An older version's code is no longer needed by new processes.
        let old = self
            .chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), loaded.clone());
        drop(old);
        loads.fetch_add(1, Ordering::Relaxed);
        Ok(loaded)
    }
}

/// The islands of one host.
#[derive(Default)]
pub(crate) struct Islands {
    islands: Vec<Arc<Island>>,
}

impl Islands {
    /// The least loaded island, creating the host's islands on first use.
    pub(crate) fn place(
        &mut self,
        states: &AtomicUsize,
        host: &spindle_runtime::Host,
        count: usize,
        slicing: Slicing,
        island_memory: usize,
    ) -> Result<Arc<Island>, Error> {
        while self.islands.len() < count {
            states.fetch_add(1, Ordering::Relaxed);
            self.islands.push(Arc::new(Island::new(
                Some(host.new_strand()),
                slicing,
                island_memory,
            )?));
        }
        let best = self
            .islands
            .iter()
            .min_by_key(|i| i.strand.as_ref().map_or(0, |s| s.members()))
            .expect("at least one island");
        Ok(best.clone())
    }

    /// Every island of the host.
    pub(crate) fn all(&self) -> impl Iterator<Item = Arc<Island>> + '_ {
        self.islands.iter().cloned()
    }

    /// The island whose strand is `strand`.
    pub(crate) fn by_strand(&self, strand: &Arc<Strand>) -> Option<Arc<Island>> {
        self.islands
            .iter()
            .find(|i| i.strand.as_ref().is_some_and(|s| Arc::ptr_eq(s, strand)))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::Value as LuaValue;

    fn new_island(memory_limit: usize) -> Island {
        Island::new(None, Slicing { instructions: 0, time: Duration::ZERO }, memory_limit).unwrap()
    }

    /// `island.protected(f)`, for closures that only push values or raise, which is safe.
    fn call(island: &Island, f: impl FnOnce(*mut ffi::lua_State)) -> mlua::Result<MultiValue> {
        // SAFETY: the closures of these tests hold no values that need dropping.
        unsafe { island.protected(f) }
    }

    /// The height of the island's main stack.
    fn top(island: &Island) -> c_int {
        // SAFETY: the island's main thread, on the thread that made it, with nothing running.
        unsafe { ffi::lua_gettop(island.main.0) }
    }

    /// What a protected call leaves, it returns; a call that leaves nothing returns nothing; the
    /// stack is as it was either way.
    #[test]
    fn protected_returns_what_is_left() {
        let island = new_island(0);
        let before = top(&island);
        assert!(call(&island, |_| {}).unwrap().is_empty());
        let left = call(&island, |s| {
            // SAFETY: pushing onto a frame with room for LUA_MINSTACK values.
            unsafe {
                ffi::lua_pushinteger(s, 7);
                ffi::lua_pushstring(s, c"seven".as_ptr());
            }
        })
        .unwrap();
        let left: Vec<_> = left.into_iter().collect();
        assert!(
            matches!(left.as_slice(), [LuaValue::Integer(7), LuaValue::String(s)] if s == "seven")
        );
        assert_eq!(top(&island), before);
    }

    /// A Lua error comes out as `exec_raw` reports it: a runtime error with its message, the
    /// error of a Rust callback as `exec_raw` has it, Lua running out of memory as a memory
    /// error; a panic goes on unwinding. The island works on afterwards.
    #[test]
    fn protected_reports_errors_as_exec_raw_does() {
        let island = new_island(0);
        let before = top(&island);
        let e = call(&island, |s| {
            // SAFETY: raising with a string on top; nothing to drop.
            unsafe {
                ffi::lua_pushstring(s, c"broken on purpose".as_ptr());
                ffi::lua_error(s);
            }
        })
        .unwrap_err();
        assert!(
            matches!(&e, mlua::Error::RuntimeError(m) if m.contains("broken on purpose")),
            "{e:?}"
        );
        let f = island
            .lua
            .create_function(|_, ()| -> mlua::Result<()> {
                Err(mlua::Error::MemoryError("a budget".into()))
            })
            .unwrap();
        island.lua.globals().set("fails", f).unwrap();
        let fails = |s: *mut ffi::lua_State| {
            // SAFETY: calling a global function from a frame with room; nothing to drop.
            unsafe {
                ffi::lua_getglobal(s, c"fails".as_ptr());
                ffi::lua_call(s, 0, 0);
            }
        };
        let e = call(&island, fails).unwrap_err();
        // SAFETY: as for `call`.
        let raw = unsafe { island.lua.exec_raw::<()>((), fails) }.unwrap_err();
        let cause = |e: &mlua::Error| match e {
            mlua::Error::CallbackError { cause, .. } => format!("{cause:?}"),
            other => format!("{other:?}"),
        };
        assert_eq!(cause(&e), cause(&raw));
        assert_eq!(cause(&e), r#"MemoryError("a budget")"#);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            call(&island, |_| panic!("a panic in the step"))
        }));
        assert_eq!(panicked.unwrap_err().downcast_ref::<&str>(), Some(&"a panic in the step"));
        assert_eq!(top(&island), before);
        let one = call(&island, |s| {
            // SAFETY: pushing onto a frame with room.
            unsafe { ffi::lua_pushinteger(s, 1) }
        });
        assert_eq!(one.unwrap().len(), 1);

        let small = new_island(512 * 1024);
        let e = call(&small, |s| {
            // SAFETY: a table too big for the limit (its allocation raises); nothing to drop.
            unsafe { ffi::lua_createtable(s, 1 << 20, 0) }
        })
        .unwrap_err();
        assert!(matches!(e, mlua::Error::MemoryError(_)), "{e:?}");
        assert!(call(&small, |_| {}).unwrap().is_empty());
    }

    /// The step's lock-free reading of the heap's size is the count `Lua::used_memory` keeps
    /// (the budget's hook reads that one), as the heap grows and shrinks.
    #[test]
    fn used_memory_reads_the_allocators_count() {
        let island =
            Island::new(None, Slicing { instructions: 0, time: Duration::ZERO }, 0).unwrap();
        assert_eq!(island.used_memory(), island.lua.used_memory());
        let grow = island.lua.load("big = {} for i = 1, 10000 do big[i] = tostring(i) end");
        grow.exec().unwrap();
        let grown = island.used_memory();
        assert_eq!(grown, island.lua.used_memory());
        island.lua.load("big = nil").exec().unwrap();
        island.lua.gc_collect().unwrap();
        assert!(island.used_memory() < grown - 100_000, "the collection shows");
        assert_eq!(island.used_memory(), island.lua.used_memory());
    }
}
