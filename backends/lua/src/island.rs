//! Islands: Lua states shared by many processes, each run by one worker at a time.
//!
//! In islands mode a host gets a few Lua states per worker; every process is a coroutine with
//! its own `_ENV` in one of them, and the island is a strand of the scheduler, so its processes
//! are never stepped at once and the island moves between workers with its ready processes.
//! In state mode every process gets an island of its own (its own heap, a hard memory limit).

use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, LuaOptions, LuaString, StdLib, Table, ffi};
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
    pub(crate) describe_error: Function,
    /// The time slice of a step, if preemption is by time (see [`crate::slice`]).
    pub(crate) slice: Option<Duration>,
    /// Steps that ended preempted.
    pub(crate) preemptions: AtomicUsize,
    chunks: Mutex<HashMap<EntryId, Arc<Loaded>>>,
}

/// An entry's code loaded into an island, with what its processes share read-only.
pub(crate) struct Loaded {
    version: u64,
    /// The compiled chunk (a function of the process's `_ENV`).
    pub(crate) chunk: Function,
    /// The name of the method that runs as the process body.
    pub(crate) method: LuaString,
    /// The set of modules the entry's processes may `require`.
    pub(crate) granted: Table,
}

/// The address of a state's [`Current`].
struct CurrentPtr(*const Current);

// SAFETY: the pointer is only followed by the thread that runs the island's Lua state (an
// island is stepped by one worker at a time), while the state, which owns the pointee, lives.
unsafe impl Send for CurrentPtr {}
// SAFETY: as above.
unsafe impl Sync for CurrentPtr {}

impl Island {
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
        // SAFETY: `exec_raw` runs the closure in protected mode with the three functions at 1
        // to 3; `luaL_ref` pops the top into the registry and returns its reference.
        unsafe {
            lua.exec_raw::<()>((start, step, deliver), |state| {
                deliver_ref = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
                step_ref = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
                start_ref = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
            })
            .map_err(lua_err)?;
        }
        Ok(Island {
            start: start_ref,
            step: step_ref,
            deliver: deliver_ref,
            current,
            describe_error: exports.get("describe_error").map_err(lua_err)?,
            lua,
            strand,
            slice: slicing.time(),
            preemptions: AtomicUsize::new(0),
            chunks: Mutex::new(HashMap::new()),
        })
    }

    /// The code of entry `id` at `version`, loaded from `bytecode` once per island (counted
    /// in `loads`). Shared, not copied: a spawn runs on the spawner's worker, and a copy of the
    /// code's Lua values would take the island's lock, which a step on another worker may hold.
    pub(crate) fn load(&self, code: &Code<'_>, loads: &AtomicUsize) -> Result<Arc<Loaded>, Error> {
        let mut chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = chunks.get(code.id)
            && l.version == code.version
        {
            return Ok(l.clone());
        }
        let id = code.id;
        let fail = |e: mlua::Error| Error::new(ErrorKind::Internal, format!("loading {id}: {e}"));
        let chunk = self
            .lua
            .load(code.bytecode)
            .set_name(code.name)
            .set_mode(ChunkMode::Binary)
            .into_function()
            .map_err(fail)?;
        let granted = self.lua.create_table().map_err(fail)?;
        for m in (code.granted)() {
            granted.raw_set(m.as_str(), true).map_err(fail)?;
        }
        let loaded = Arc::new(Loaded {
            version: code.version,
            chunk,
            method: self.lua.create_string(code.method).map_err(fail)?,
            granted,
        });
        // An older version's code is no longer needed by new processes.
        chunks.insert(id.clone(), loaded.clone());
        loads.fetch_add(1, Ordering::Relaxed);
        Ok(loaded)
    }
}

/// What [`Island::load`] loads: an entry's compiled code and settings.
pub(crate) struct Code<'a> {
    pub(crate) id: &'a EntryId,
    pub(crate) version: u64,
    /// The chunk's name in error messages (`@path`).
    pub(crate) name: &'a str,
    pub(crate) bytecode: &'a [u8],
    pub(crate) method: &'a str,
    /// The modules granted (worked out only when the code is loaded).
    pub(crate) granted: &'a dyn Fn() -> Vec<String>,
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
