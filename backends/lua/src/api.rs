//! `RT`: the primitive runtime functions the Lua prelude builds the process API on.
//!
//! They act on the process being stepped, whose context the step puts into the Lua state's app
//! data ([`Current`]) for the length of the step. Failures come back Lua-style as
//! `nil, kind, message`; the prelude turns them into error objects. Completions go to Lua as
//! plain values, never as tables (see [`push_completion`] and the prelude's protocol).

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mlua::{Lua, LuaString, MultiValue, Table, Value as LuaValue, Variadic};
use spindle_runtime::{
    Completion, Cx, Dest, EntryId, Error, ErrorKind, Op, Pid, Spawn, Tag, Ties, Value,
};

use crate::convert::{to_lua, to_value};

/// The process being stepped in this Lua state.
pub(crate) struct Stepping {
    pub(crate) cx: Cx,
    /// The state's memory use when the step began.
    pub(crate) memory_at_start: usize,
    /// What the process may still grow by in this step before its budget is spent (bytes).
    pub(crate) memory_left: usize,
    /// Memory attributed to the process before this step (bytes), for `collectgarbage("count")`.
    pub(crate) memory_before: usize,
    /// The hook already raised the budget error in this step.
    pub(crate) memory_raised: Cell<bool>,
}

/// The app data slot that holds the process being stepped, if any: put into the Lua state once,
/// filled for the length of each step (no allocation per step).
#[derive(Default)]
pub(crate) struct Current(RefCell<Option<Stepping>>);

impl Current {
    /// Makes `s` the process being stepped in `lua`.
    pub(crate) fn enter(lua: &Lua, s: Stepping) {
        if let Some(cur) = lua.app_data_ref::<Current>() {
            *cur.0.borrow_mut() = Some(s);
        } else {
            lua.set_app_data(Current(RefCell::new(Some(s))));
        }
    }

    /// Ends the step: no process is being stepped.
    pub(crate) fn leave(lua: &Lua) {
        if let Some(cur) = lua.app_data_ref::<Current>() {
            cur.0.borrow_mut().take();
        }
    }

    /// Runs `f` with the process being stepped, if any.
    pub(crate) fn with<R>(lua: &Lua, f: impl FnOnce(&Stepping) -> R) -> Option<R> {
        let cur = lua.app_data_ref::<Current>()?;
        let s = cur.0.try_borrow().ok()?;
        s.as_ref().map(f)
    }
}

/// Set by the instruction-count hook when it preempts; read (and cleared) by the prelude.
pub(crate) type Preempted = Arc<AtomicBool>;

type Ret = mlua::Result<MultiValue>;

pub(crate) fn cx(lua: &Lua) -> mlua::Result<Cx> {
    with_cx(lua, Cx::clone)
}

/// Runs `f` with the context of the process being stepped.
fn with_cx<R>(lua: &Lua, f: impl FnOnce(&Cx) -> R) -> mlua::Result<R> {
    Current::with(lua, |s| f(&s.cx))
        .ok_or_else(|| mlua::Error::runtime("process API used outside of a process step"))
}

/// The kind of a completion as the prelude takes it (its `MSG`, `EVENT`, ... constants).
#[derive(Clone, Copy)]
enum Kind {
    Message = 1,
    Event = 2,
    Timer = 3,
    Exit = 4,
    Failed = 5,
}

impl From<Kind> for LuaValue {
    fn from(k: Kind) -> LuaValue {
        LuaValue::Integer(k as i64)
    }
}

/// Appends a completion as the prelude takes it: `tag, kind, ...` (see the prelude's protocol).
pub(crate) fn push_completion(
    lua: &Lua,
    tag: Option<Tag>,
    c: Completion,
    out: &mut MultiValue,
) -> mlua::Result<()> {
    out.push_back(match tag {
        Some(t) => LuaValue::Integer(t.get() as i64),
        None => LuaValue::Boolean(false),
    });
    let s = |v: &str| lua.create_string(v).map(LuaValue::String);
    match c {
        Completion::Message(m) => {
            out.push_back(Kind::Message.into());
            out.push_back(pid_string(lua, m.from)?);
            out.push_back(s(m.topic.as_str())?);
            out.push_back(to_lua(lua, &m.payload)?);
        }
        Completion::Event(e) => {
            out.push_back(Kind::Event.into());
            out.push_back(s(e.kind.name())?);
            out.push_back(pid_string(lua, e.from)?);
            match &e.result {
                Some(Ok(v)) => {
                    out.push_back(LuaValue::Boolean(true));
                    out.push_back(to_lua(lua, v)?);
                    out.push_back(LuaValue::Nil);
                }
                Some(Err(err)) => {
                    out.push_back(LuaValue::Boolean(false));
                    out.push_back(s(err.kind().name())?);
                    out.push_back(s(err.message())?);
                }
                None => out.extend([LuaValue::Nil, LuaValue::Nil, LuaValue::Nil]),
            }
            if let Some(r) = &e.reason {
                out.push_back(to_lua(lua, r)?);
            }
        }
        Completion::Timer => out.push_back(Kind::Timer.into()),
        Completion::Exit(Ok(v)) => {
            out.push_back(Kind::Exit.into());
            out.push_back(LuaValue::Boolean(true));
            out.push_back(to_lua(lua, &v)?);
        }
        Completion::Exit(Err(err)) => {
            out.push_back(Kind::Exit.into());
            out.push_back(LuaValue::Boolean(false));
            out.push_back(s(err.kind().name())?);
            out.push_back(s(err.message())?);
        }
        Completion::Failed(err) => {
            out.push_back(Kind::Failed.into());
            out.push_back(s(err.kind().name())?);
            out.push_back(s(err.message())?);
        }
    }
    Ok(())
}

/// How many pids' strings an island keeps at hand (a direct-mapped cache by serial number).
const PID_STRINGS: usize = 256;

/// The recently used pids' strings of a Lua state: most messages come from a few senders, and
/// printing a pid and interning the string costs more than the rest of a small message.
#[derive(Default)]
pub(crate) struct PidStrings(RefCell<Vec<Option<(Pid, LuaString)>>>);

/// `pid` as the Lua string processes see (`{host|0x…}`).
pub(crate) fn pid_string(lua: &Lua, pid: Pid) -> mlua::Result<LuaValue> {
    let slot = (pid.serial() as usize) % PID_STRINGS;
    if let Some(cache) = lua.app_data_ref::<PidStrings>()
        && let Ok(cache) = cache.0.try_borrow()
        && let Some(Some((p, s))) = cache.get(slot)
        && *p == pid
    {
        return Ok(LuaValue::String(s.clone()));
    }
    let s = lua.create_string(pid.to_string())?;
    if let Some(cache) = lua.app_data_ref::<PidStrings>()
        && let Ok(mut cache) = cache.0.try_borrow_mut()
    {
        if cache.is_empty() {
            cache.resize(PID_STRINGS, None);
        }
        cache[slot] = Some((pid, s.clone()));
    }
    Ok(LuaValue::String(s))
}

/// A started receive or event: its tag, or `false` and the completion if it completed at once.
fn started(lua: &Lua, r: std::result::Result<Completion, Tag>) -> Ret {
    match r {
        Err(tag) => Ok(MultiValue::from_vec(vec![LuaValue::Integer(tag.get() as i64)])),
        Ok(c) => {
            let mut out = MultiValue::with_capacity(8);
            push_completion(lua, None, c, &mut out)?;
            Ok(out)
        }
    }
}

/// A completion taken without waiting: `false` and the completion, or nothing.
fn taken(lua: &Lua, c: Option<Completion>) -> Ret {
    let mut out = MultiValue::with_capacity(8);
    if let Some(c) = c {
        push_completion(lua, None, c, &mut out)?;
    }
    Ok(out)
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
        LuaValue::String(s) => {
            s.to_str().map_err(|_| Error::new(ErrorKind::Invalid, "entry id is not text"))?.parse()
        }
        _ => Err(Error::new(ErrorKind::Invalid, "entry id must be a string `namespace:name`")),
    }
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
pub(crate) fn build(lua: &Lua, preempted: Preempted) -> mlua::Result<Table> {
    let rt = lua.create_table()?;
    rt.set("pid", lua.create_function(|lua, ()| pid_string(lua, with_cx(lua, Cx::pid)?))?)?;
    rt.set(
        "send",
        lua.create_function(|lua, (d, topic, payload): (LuaValue, LuaValue, LuaValue)| {
            let r = with_cx(lua, |cx| {
                let d = dest(&d)?;
                let LuaValue::String(topic) = &topic else {
                    return Err(Error::new(ErrorKind::Invalid, "topic must be a string"));
                };
                let topic = topic
                    .to_str()
                    .map_err(|_| Error::new(ErrorKind::Invalid, "topic must be text"))?;
                cx.send(d, &topic, to_value(&payload)?).map(|()| true)
            })?;
            result(lua, r)
        })?,
    )?;
    rt.set(
        "spawn",
        lua.create_function(|lua, (mode, args): (i64, Variadic<LuaValue>)| {
            let cx = cx(lua)?;
            let ties = Ties { monitor: mode & 1 != 0, link: mode & 2 != 0 };
            let r = spawn_of(&args).and_then(|s| cx.spawn(s, ties)).map(|p| p.to_string());
            result(lua, r)
        })?,
    )?;
    rt.set(
        "start_exec",
        lua.create_function(|lua, args: Variadic<LuaValue>| {
            let cx = cx(lua)?;
            let r = spawn_of(&args).map(|s| cx.start(Op::Exec(s)).get() as i64);
            result(lua, r)
        })?,
    )?;
    rt.set(
        "start_receive",
        lua.create_function(|lua, topic: Option<String>| {
            let r = with_cx(lua, |cx| cx.start_or_take(Op::Receive { topic }))?;
            started(lua, r)
        })?,
    )?;
    rt.set(
        "start_event",
        lua.create_function(|lua, ()| {
            let r = with_cx(lua, |cx| cx.start_or_take(Op::Event))?;
            started(lua, r)
        })?,
    )?;
    rt.set(
        "try_take",
        lua.create_function(|lua, (event, topic): (bool, Option<String>)| {
            let got = with_cx(lua, |cx| {
                if event {
                    cx.try_event().map(Completion::Event)
                } else {
                    cx.try_receive(topic.as_deref()).map(Completion::Message)
                }
            })?;
            taken(lua, got)
        })?,
    )?;
    rt.set(
        "take_completion",
        lua.create_function(|lua, t: i64| {
            let got = with_cx(lua, |cx| cx.take_completion(tag(t)))?;
            taken(lua, got)
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
    rt.set("json", crate::json::module(lua)?)?;
    rt.set(
        "memory",
        lua.create_function(|lua, ()| {
            let now = lua.used_memory();
            Ok(Current::with(lua, |s| (s.memory_before + now).saturating_sub(s.memory_at_start))
                .unwrap_or(0))
        })?,
    )?;
    let p = preempted.clone();
    rt.set(
        "take_preempted",
        lua.create_function(move |_, ()| Ok(p.swap(false, Ordering::Relaxed)))?,
    )?;
    let p = preempted;
    rt.set(
        "mark_preempted",
        lua.create_function(move |_, ()| {
            p.store(true, Ordering::Relaxed);
            Ok(())
        })?,
    )?;
    crate::terminal::register(lua, &rt)?;
    crate::opaque::register(lua, &rt)?;
    Ok(rt)
}
