//! `RT`: the primitive runtime functions the Lua prelude builds the process API on.
//!
//! They act on the process being stepped, whose context the step puts into the Lua state's app
//! data ([`Current`]) for the length of the step. Failures come back Lua-style as
//! `nil, kind, message`; the prelude turns them into error objects. Completions go to Lua as
//! plain values, never as tables (see [`crate::stack::push_completion`] and the prelude's
//! protocol); the primitives of every message are raw C functions ([`crate::messaging`]).

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mlua::{Lua, MultiValue, Table, Value as LuaValue, Variadic};
use spindle_runtime::{Completion, Cx, Dest, EntryId, Error, ErrorKind, Op, Spawn, Tag, Value};

use crate::convert::to_value;

/// The process being stepped in this Lua state.
pub(crate) struct Stepping {
    /// The step's context, lent for the step (see [`Current::enter`]): no reference count is
    /// taken and given back per step.
    cx: NonNull<Cx>,
    /// The state's memory use when the step began.
    pub(crate) memory_at_start: usize,
    /// What the process may still grow by in this step before its budget is spent (bytes).
    pub(crate) memory_left: usize,
    /// Memory attributed to the process before this step (bytes), for `collectgarbage("count")`.
    pub(crate) memory_before: usize,
    /// The hook already raised the budget error in this step.
    pub(crate) memory_raised: Cell<bool>,
    /// Count hooks in this step that could not yield (see `preempt`).
    pub(crate) slices: Cell<u32>,
}

/// The app data slot that holds the process being stepped, if any: put into the Lua state once
/// (before anything reads it, and never replaced, so its address is fixed: the raw C functions
/// of [`crate::messaging`] and the step entry reach it by pointer), filled for the length of
/// each step (no allocation per step).
#[derive(Default)]
pub(crate) struct Current {
    stepping: RefCell<Option<Stepping>>,
    /// A completion being pushed onto the Lua stack: kept here rather than in the pushing
    /// frame, so that a Lua error (a `longjmp`) skips no destructor. Emptied right after the
    /// push (or by the next one).
    pub(crate) pushing: Cell<Option<Completion>>,
    /// The completion after the one being handed to the prelude (see the step entry).
    pub(crate) pending: Cell<Option<(Tag, Completion)>>,
    /// The entry id spawned last, so that a loop that spawns one entry parses it once.
    last_entry: RefCell<Option<EntryId>>,
}

// SAFETY: a `Stepping` exists only during a step, on the thread running it (the island, whose
// app data holds it, moves between threads only between steps), and the `Cx` it points to is
// `Send` and `Sync`.
unsafe impl Send for Stepping {}

impl Stepping {
    /// Counts a time slice of this step that ended where the process could not yield; true
    /// once there were more than [`crate::preempt::STUCK_SLICES`] (and the count starts over).
    pub(crate) fn stuck_slice(&self) -> bool {
        let n = self.slices.get() + 1;
        self.slices.set(if n > crate::preempt::STUCK_SLICES { 0 } else { n });
        n > crate::preempt::STUCK_SLICES
    }

    /// The context of the process being stepped.
    pub(crate) fn cx(&self) -> &Cx {
        // SAFETY: a `Stepping` is made only by `Current::enter` and reachable until the
        // `InStep` it returns is dropped, for which the `Cx` it points to is borrowed.
        unsafe { self.cx.as_ref() }
    }
}

/// A step in progress in an island (see [`Current::enter`]); ends it when dropped, unwinding
/// included.
pub(crate) struct InStep<'a> {
    current: &'a Current,
    _cx: PhantomData<&'a Cx>,
}

impl Drop for InStep<'_> {
    fn drop(&mut self) {
        self.current.leave();
    }
}

impl Current {
    /// Makes process `cx` the one being stepped until the returned guard is dropped (which
    /// borrows `cx` meanwhile); the memory figures are [`Stepping`]'s.
    pub(crate) fn enter<'a>(
        &'a self,
        cx: &'a Cx,
        memory_at_start: usize,
        memory_left: usize,
        memory_before: usize,
    ) -> InStep<'a> {
        *self.stepping.borrow_mut() = Some(Stepping {
            cx: NonNull::from(cx),
            memory_at_start,
            memory_left,
            memory_before,
            memory_raised: Cell::new(false),
            slices: Cell::new(0),
        });
        InStep { current: self, _cx: PhantomData }
    }

    /// Ends the step: no process is being stepped.
    fn leave(&self) {
        self.stepping.borrow_mut().take();
        self.pushing.take();
        self.pending.take();
    }

    /// Runs `f` with the process being stepped in `lua`, if any.
    pub(crate) fn with<R>(lua: &Lua, f: impl FnOnce(&Stepping) -> R) -> Option<R> {
        lua.app_data_ref::<Current>()?.with_here(f)
    }

    /// Runs `f` with the process being stepped, if any.
    pub(crate) fn with_here<R>(&self, f: impl FnOnce(&Stepping) -> R) -> Option<R> {
        let s = self.stepping.try_borrow().ok()?;
        s.as_ref().map(f)
    }

    /// The entry id `text` names (checked and parsed unless it is the one spawned last).
    pub(crate) fn entry_id(&self, text: &[u8]) -> Result<EntryId, Error> {
        let mut last = self.last_entry.borrow_mut();
        if let Some(id) = last.as_ref().filter(|id| id.as_str().as_bytes() == text) {
            return Ok(id.clone());
        }
        let id = parse_entry_id(text)?;
        *last = Some(id.clone());
        Ok(id)
    }

    /// The completion in [`Current::pushing`], to push it.
    ///
    /// # Safety
    /// The reference must be gone before `pushing` is set or taken again.
    pub(crate) unsafe fn pushing_ref(&self) -> Option<&Completion> {
        // SAFETY: the caller's contract; nothing else reaches the cell meanwhile (one thread
        // runs the Lua state).
        unsafe { (*self.pushing.as_ptr()).as_ref() }
    }
}

type Ret = mlua::Result<MultiValue>;

pub(crate) fn cx(lua: &Lua) -> mlua::Result<Cx> {
    with_cx(lua, Cx::clone)
}

/// Runs `f` with the context of the process being stepped.
fn with_cx<R>(lua: &Lua, f: impl FnOnce(&Cx) -> R) -> mlua::Result<R> {
    Current::with(lua, |s| f(s.cx()))
        .ok_or_else(|| mlua::Error::runtime("process API used outside of a process step"))
}

fn ok(lua: &Lua, v: impl mlua::IntoLua) -> Ret {
    Ok(MultiValue::from_vec(vec![v.into_lua(lua)?]))
}

fn err(lua: &Lua, e: &Error) -> Ret {
    Ok(MultiValue::from_vec(vec![
        LuaValue::Nil,
        e.kind().name().into_lua(lua)?,
        e.message().into_lua(lua)?,
    ]))
}

use mlua::IntoLua;

fn result<T: IntoLua>(lua: &Lua, r: Result<T, Error>) -> Ret {
    match r {
        Ok(v) => ok(lua, v),
        Err(e) => err(lua, &e),
    }
}

fn dest(v: &LuaValue) -> Result<Dest, Error> {
    match v {
        LuaValue::String(s) => Ok(Dest::from(
            &*s.to_str().map_err(|_| Error::new(ErrorKind::Invalid, "destination must be text"))?,
        )),
        _ => Err(Error::new(ErrorKind::Invalid, "destination must be a pid or a registered name")),
    }
}

fn pid_arg(cx: &Cx, v: &LuaValue) -> Result<spindle_runtime::Pid, Error> {
    match dest(v)? {
        Dest::Pid(p) => Ok(p),
        Dest::Name(n) => cx.lookup(&n).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, format!("no process is registered as `{n}`"))
        }),
    }
}

fn entry_id(v: &LuaValue) -> Result<EntryId, Error> {
    match v {
        LuaValue::String(s) => parse_entry_id(&s.as_bytes()),
        _ => Err(Error::new(ErrorKind::Invalid, "entry id must be a string `namespace:name`")),
    }
}

/// The entry id the bytes of a Lua string spell.
fn parse_entry_id(text: &[u8]) -> Result<EntryId, Error> {
    std::str::from_utf8(text)
        .map_err(|_| Error::new(ErrorKind::Invalid, "entry id is not text"))?
        .parse()
}

fn host_name(v: &LuaValue) -> Result<String, Error> {
    match v {
        LuaValue::String(s) => Ok(s.to_str().map(|s| s.to_owned()).unwrap_or_default()),
        _ => Err(Error::new(ErrorKind::Invalid, "host must be a string")),
    }
}

fn args_of(vals: &[LuaValue]) -> Result<Vec<Value>, Error> {
    vals.iter().map(to_value).collect()
}

fn spawn_of(args: &[LuaValue]) -> Result<Spawn, Error> {
    let id = entry_id(args.first().unwrap_or(&LuaValue::Nil))?;
    let host = host_name(args.get(1).unwrap_or(&LuaValue::Nil))?;
    let rest = if args.len() > 2 { &args[2..] } else { &[] };
    Ok(Spawn::entry(id, host).args(args_of(rest)?))
}

fn tag(n: i64) -> Tag {
    Tag::from_raw(n as u64)
}

/// Builds the `RT` table.
pub(crate) fn build(lua: &Lua) -> mlua::Result<Table> {
    let rt = lua.create_table()?;
    rt.set(
        "start_exec",
        lua.create_function(|lua, args: Variadic<LuaValue>| {
            let cx = cx(lua)?;
            let r = spawn_of(&args).map(|s| cx.start(Op::Exec(s)).get() as i64);
            result(lua, r)
        })?,
    )?;
    rt.set(
        "start_sleep",
        lua.create_function(|lua, ns: i64| {
            let d = Duration::from_nanos(ns.max(0) as u64);
            Ok(cx(lua)?.start(Op::Sleep(d)).get() as i64)
        })?,
    )?;
    rt.set(
        "drop",
        lua.create_function(|lua, t: i64| {
            cx(lua)?.drop_op(tag(t));
            Ok(())
        })?,
    )?;
    rt.set(
        "listen",
        lua.create_function(|lua, topic: String| {
            let r = cx(lua)?.listen(&topic).map(|()| true);
            result(lua, r)
        })?,
    )?;
    rt.set(
        "unlisten",
        lua.create_function(|lua, topic: String| {
            let r = cx(lua)?.unlisten(&topic).map(|()| true);
            result(lua, r)
        })?,
    )?;
    rt.set(
        "monitor",
        lua.create_function(|lua, p: LuaValue| {
            let cx = cx(lua)?;
            let r = pid_arg(&cx, &p).map(|p| {
                cx.monitor(p);
                true
            });
            result(lua, r)
        })?,
    )?;
    rt.set(
        "unmonitor",
        lua.create_function(|lua, p: LuaValue| {
            let cx = cx(lua)?;
            let r = pid_arg(&cx, &p).map(|p| {
                cx.unmonitor(p);
                true
            });
            result(lua, r)
        })?,
    )?;
    rt.set(
        "link",
        lua.create_function(|lua, p: LuaValue| {
            let cx = cx(lua)?;
            let r = pid_arg(&cx, &p).and_then(|p| cx.link(p)).map(|()| true);
            result(lua, r)
        })?,
    )?;
    rt.set(
        "unlink",
        lua.create_function(|lua, p: LuaValue| {
            let cx = cx(lua)?;
            let r = pid_arg(&cx, &p).map(|p| {
                cx.unlink(p);
                true
            });
            result(lua, r)
        })?,
    )?;
    rt.set(
        "set_options",
        lua.create_function(|lua, (trap, up): (Option<bool>, Option<bool>)| {
            let cx = cx(lua)?;
            if let Some(t) = trap {
                cx.set_trap_links(t);
            }
            if let Some(u) = up {
                cx.set_upgradable(u);
            }
            Ok(true)
        })?,
    )?;
    rt.set(
        "get_options",
        lua.create_function(|lua, ()| {
            let cx = cx(lua)?;
            Ok((cx.trap_links(), cx.upgradable()))
        })?,
    )?;
    rt.set(
        "cancel",
        lua.create_function(|lua, (d, reason): (LuaValue, LuaValue)| {
            let cx = cx(lua)?;
            let r = (|| {
                let reason = if reason.is_nil() { None } else { Some(to_value(&reason)?) };
                cx.cancel(dest(&d)?, reason).map(|()| true)
            })();
            result(lua, r)
        })?,
    )?;
    rt.set(
        "terminate",
        lua.create_function(|lua, d: LuaValue| {
            let cx = cx(lua)?;
            let r = dest(&d).and_then(|d| cx.terminate(d)).map(|()| true);
            result(lua, r)
        })?,
    )?;
    rt.set(
        "register",
        lua.create_function(|lua, (name, p): (LuaValue, LuaValue)| {
            let cx = cx(lua)?;
            let r = (|| {
                let name = host_name(&name)
                    .map_err(|_| Error::new(ErrorKind::Invalid, "name must be a string"))?;
                let pid = if p.is_nil() { None } else { Some(pid_arg(&cx, &p)?) };
                cx.register(&name, pid).map(|()| true)
            })();
            result(lua, r)
        })?,
    )?;
    rt.set(
        "lookup",
        lua.create_function(|lua, name: String| {
            let cx = cx(lua)?;
            let r = cx.lookup(&name).map(|p| p.to_string()).ok_or_else(|| {
                Error::new(ErrorKind::NotFound, format!("no process is registered as `{name}`"))
            });
            result(lua, r)
        })?,
    )?;
    rt.set(
        "unregister",
        lua.create_function(|lua, name: String| {
            let r = cx(lua)?.unregister(&name).map(|()| true);
            result(lua, r)
        })?,
    )?;
    rt.set(
        "now",
        lua.create_function(|_, ()| {
            let ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            Ok(ns as i64)
        })?,
    )?;
    // The runtime's clock (monotonic, and the manual one when the runtime runs on it), in
    // nanoseconds since the runtime started: what timers count from.
    rt.set(
        "clock",
        lua.create_function(|lua, ()| {
            Ok(i64::try_from(cx(lua)?.now().as_nanos()).unwrap_or(i64::MAX))
        })?,
    )?;
    rt.set("json", crate::json::module(lua)?)?;
    rt.set(
        "memory",
        lua.create_function(|lua, ()| {
            let now = lua.used_memory();
            Ok(Current::with(lua, |s| (s.memory_before + now).saturating_sub(s.memory_at_start))
                .unwrap_or(0))
        })?,
    )?;
    crate::terminal::register(lua, &rt)?;
    crate::opaque::register(lua, &rt)?;
    crate::messaging::register(lua, &rt)?;
    crate::parking::register(lua, &rt)?;
    crate::pattern::register(lua, &rt)?;
    Ok(rt)
}
