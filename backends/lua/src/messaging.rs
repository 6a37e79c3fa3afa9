//! The RT primitives of every message, and of spawning, as raw C functions: `send`, the
//! receives (`start_receive`, `start_event`, `try_take`, `take_completion`) that hand a
//! waiting message or event over at once, and `spawn`. An mlua callback costs its lock, a protected call and a reference
//! slot per value; these read their arguments off the stack and push their results with
//! [`crate::stack`].
//!
//! Each function finds the process being stepped through its upvalue, a pointer to the
//! state's [`Current`] (fixed for the state's life). Rust work runs first under
//! `catch_unwind`; its owned results are dropped or parked in [`Current::pushing`] before
//! anything is pushed, since a push may raise (a `longjmp` that would skip destructors).

use std::ffi::{c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use mlua::{Lua, Table, ffi};
use std::borrow::Cow;

use spindle_runtime::{Completion, Cx, Dest, Error, ErrorKind, HostId, Op, Pid, Spawn, Tag, Ties};

use crate::api::Current;
use crate::stack::{push_bytes, push_completion, push_pid, sender_pid, str_at, value_at};

/// Adds the functions to the prelude's `RT` table.
pub(crate) fn register(lua: &Lua, rt: &Table) -> mlua::Result<()> {
    let current = {
        let slot = lua.app_data_ref::<Current>();
        let slot = slot.ok_or_else(|| mlua::Error::runtime("the Lua state has no process slot"))?;
        std::ptr::from_ref::<Current>(&slot)
    };
    let fns: [(&std::ffi::CStr, ffi::lua_CFunction); 9] = [
        (c"pid", pid),
        (c"pid_text", pid_text),
        (c"send", send),
        (c"start_receive", start_receive),
        (c"start_event", start_event),
        (c"try_take", try_take),
        (c"take_completion", take_completion),
        (c"resume", crate::slice::resume),
        (c"error_class", error_class),
    ];
    // The four spawns: one function, told apart by its second upvalue (the ties' bits).
    let spawns: [(&std::ffi::CStr, ffi::lua_Integer); 4] = [
        (c"spawn", 0),
        (c"spawn_monitored", 1),
        (c"spawn_linked", 2),
        (c"spawn_linked_monitored", 3),
    ];
    // SAFETY: `exec_raw` runs the closure in protected mode with `rt` at index 1; each
    // function gets the pointer to `Current` as its first upvalue (the app data box outlives
    // every call: it is dropped with the state).
    unsafe {
        lua.exec_raw::<()>(rt, |state| {
            for (name, f) in fns {
                ffi::lua_pushlightuserdata(state, current.cast_mut().cast::<c_void>());
                ffi::lua_pushcclosure(state, f, 1);
                ffi::lua_setfield(state, 1, name.as_ptr());
            }
            for (name, ties) in spawns {
                ffi::lua_pushlightuserdata(state, current.cast_mut().cast::<c_void>());
                ffi::lua_pushinteger(state, ties);
                ffi::lua_pushcclosure(state, spawn, 2);
                ffi::lua_setfield(state, 1, name.as_ptr());
            }
            crate::slice::push_preempted(state);
            ffi::lua_setfield(state, 1, c"PREEMPTED".as_ptr());
        })
    }
}

/// The `Current` of the state a function of this module was called in.
///
/// # Safety
/// Called only from those functions (their upvalue 1 is the pointer).
unsafe fn current<'a>(state: *mut ffi::lua_State) -> &'a Current {
    // SAFETY: see `register`.
    unsafe { &*ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)).cast::<Current>() }
}

/// What the Rust side of a function came to.
enum Outcome {
    /// Push `true`.
    Done,
    /// Push the operation's tag.
    Started(Tag),
    /// Push the pid (as text).
    Pid(Pid),
    /// Push `false` and the completion parked in `Current::pushing`.
    Completed,
    /// Push nothing.
    Nothing,
    /// Push `nil, kind, message`.
    Failed(Error),
    /// Raise this (the API used outside a step, a panic).
    Raise(&'static str),
}

/// Runs `f` with the process being stepped, stopping panics; parks a completion `f` returns.
fn run(cur: &Current, f: impl FnOnce(&Cx) -> Result<Outcome, Error>) -> Outcome {
    let r = catch_unwind(AssertUnwindSafe(|| cur.with_here(|s| f(s.cx()))));
    match r {
        Ok(Some(Ok(o))) => o,
        Ok(Some(Err(e))) => Outcome::Failed(e),
        Ok(None) => Outcome::Raise("process API used outside of a process step"),
        Err(_) => Outcome::Raise("the runtime failed in a process API call"),
    }
}

/// A completion for Lua: parked, to be pushed by [`finish`].
fn completed(cur: &Current, c: Completion) -> Outcome {
    cur.pushing.set(Some(c));
    Outcome::Completed
}

/// How a function of this module reports a failure.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fails {
    /// `nil, kind, message`, for the prelude to turn into an error (its `fail`).
    Raw,
    /// `nil, err`: the function is the process API's own.
    Nil,
    /// `false, err`: likewise, for a function whose success is `true`.
    False,
}

/// The registry key of the prelude's error class (see [`error_class`]).
static ERROR_CLASS: u8 = 0;

/// `error_class(class)`: the metatable of error objects, which the prelude hands over once
/// so that the API functions of this module make their errors themselves.
unsafe extern "C-unwind" fn error_class(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this with its argument on the stack; `lua_rawsetp` pops it.
    unsafe {
        ffi::lua_settop(state, 1);
        ffi::lua_rawsetp(state, ffi::LUA_REGISTRYINDEX, std::ptr::from_ref(&ERROR_CLASS).cast());
    }
    0
}

/// Pushes an error object (`{_kind, _message}` of the prelude's error class), as the
/// prelude's `new_error` makes it.
///
/// # Safety
/// In a function of this module, with room for three values; may raise (out of memory).
unsafe fn push_error(state: *mut ffi::lua_State, kind: &str, message: &[u8]) {
    // SAFETY: the caller's contract.
    unsafe {
        ffi::lua_createtable(state, 0, 2);
        push_bytes(state, kind.as_bytes());
        ffi::lua_setfield(state, -2, c"_kind".as_ptr());
        push_bytes(state, message);
        ffi::lua_setfield(state, -2, c"_message".as_ptr());
        ffi::lua_rawgetp(state, ffi::LUA_REGISTRYINDEX, std::ptr::from_ref(&ERROR_CLASS).cast());
        ffi::lua_setmetatable(state, -2);
    }
}

/// Pushes `o`; returns the count of results (raises for [`Outcome::Raise`]).
///
/// # Safety
/// Called at the end of a function of this module, holding nothing to drop.
unsafe fn finish(state: *mut ffi::lua_State, cur: &Current, o: Outcome) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { finish_as(state, cur, o, Fails::Raw) }
}

/// [`finish`], with failures reported as `fails` says.
///
/// # Safety
/// As for [`finish`].
unsafe fn finish_as(state: *mut ffi::lua_State, cur: &Current, o: Outcome, fails: Fails) -> c_int {
    // SAFETY: the caller's contract; a C function has room for LUA_MINSTACK (20) values,
    // and a completion takes at most eight.
    unsafe {
        match o {
            Outcome::Done => {
                ffi::lua_pushboolean(state, 1);
                1
            }
            Outcome::Started(tag) => {
                ffi::lua_pushinteger(state, tag.get() as ffi::lua_Integer);
                1
            }
            Outcome::Pid(pid) => {
                push_pid(state, pid);
                1
            }
            Outcome::Completed => {
                ffi::lua_pushboolean(state, 0);
                let n = match cur.pushing_ref() {
                    Some(c) => push_completion(state, c),
                    None => 0,
                };
                cur.pushing.take();
                1 + n
            }
            Outcome::Nothing => 0,
            Outcome::Failed(e) => {
                let kind = e.kind().name();
                let message = Box::into_raw(e.message().to_owned().into_boxed_str());
                drop(e);
                if fails == Fails::False {
                    ffi::lua_pushboolean(state, 0);
                } else {
                    ffi::lua_pushnil(state);
                }
                // SAFETY: `message` is the box leaked just above; if a push raises, it stays
                // leaked (out of memory only), else it is freed right after.
                let n = if fails == Fails::Raw {
                    push_bytes(state, kind.as_bytes());
                    push_bytes(state, (*message).as_bytes());
                    3
                } else {
                    push_error(state, kind, (*message).as_bytes());
                    2
                };
                drop(Box::from_raw(message));
                n
            }
            Outcome::Raise(m) => {
                push_bytes(state, m.as_bytes());
                ffi::lua_error(state)
            }
        }
    }
}

fn text<'a>(bytes: Option<&'a [u8]>, what: &'static str) -> Result<&'a str, Error> {
    let bytes =
        bytes.ok_or_else(|| Error::new(ErrorKind::Invalid, format!("{what} must be a string")))?;
    std::str::from_utf8(bytes)
        .map_err(|_| Error::new(ErrorKind::Invalid, format!("{what} must be text")))
}

/// `pid()` → this process's pid (as text).
unsafe extern "C-unwind" fn pid(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this with its upvalue; see the module doc about raising.
    unsafe {
        let cur = current(state);
        let o = run(cur, |cx| Ok(Outcome::Pid(cx.pid())));
        finish(state, cur, o)
    }
}

/// `pid_text(sender)` → a received message's sender as text: `sender` as the message keeps
/// it (see [`crate::stack::push_sender`]).
unsafe extern "C-unwind" fn pid_text(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this with its arguments on the stack; one value is pushed (room for
    // LUA_MINSTACK); a push may raise, and nothing is held to drop.
    unsafe {
        if ffi::lua_isinteger(state, 1) != 0 {
            let bits = ffi::lua_tointegerx(state, 1, std::ptr::null_mut());
            if let Some(pid) = sender_pid(bits) {
                push_pid(state, pid);
                return 1;
            }
        }
        ffi::lua_settop(state, 1);
        1
    }
}

/// `send(dest, topic, payload)` → `true` or `false, err` (`process.send` itself).
unsafe extern "C-unwind" fn send(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this with its arguments on the stack (absent ones read as none); the
    // strings read stay on the stack for the call; see the module doc about raising.
    unsafe {
        let cur = current(state);
        let o = run(cur, |cx| {
            let dest = match str_at(state, 1) {
                Some(d) => Dest::from(text(Some(d), "destination")?),
                None => {
                    return Err(Error::new(
                        ErrorKind::Invalid,
                        "destination must be a pid or a registered name",
                    ));
                }
            };
            let topic = text(str_at(state, 2), "topic")?;
            cx.send(dest, topic, value_at(state, 3)?)?;
            Ok(Outcome::Done)
        });
        finish_as(state, cur, o, Fails::False)
    }
}

/// A started receive: its tag, or the completion if one was waiting.
fn started(cur: &Current, r: Result<Completion, Tag>) -> Outcome {
    match r {
        Ok(c) => completed(cur, c),
        Err(tag) => Outcome::Started(tag),
    }
}

/// `start_receive(topic?)` → `tag`, or `false` and the waiting message's completion.
unsafe extern "C-unwind" fn start_receive(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as in `send`.
    unsafe {
        let cur = current(state);
        let o = run(cur, |cx| {
            let topic = match str_at(state, 1) {
                Some(t) => Some(text(Some(t), "topic")?.to_owned()),
                None => None,
            };
            Ok(started(cur, cx.start_or_take(Op::Receive { topic })))
        });
        finish(state, cur, o)
    }
}

/// `start_event()` → `tag`, or `false` and the waiting event's completion.
unsafe extern "C-unwind" fn start_event(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as in `send`.
    unsafe {
        let cur = current(state);
        let o = run(cur, |cx| Ok(started(cur, cx.start_or_take(Op::Event))));
        finish(state, cur, o)
    }
}

/// `try_take(event, topic?)` → `false` and the waiting event's (or message's) completion, or
/// nothing.
unsafe extern "C-unwind" fn try_take(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as in `send`.
    unsafe {
        let cur = current(state);
        let o = run(cur, |cx| {
            let got = if ffi::lua_toboolean(state, 1) != 0 {
                cx.try_event().map(Completion::Event)
            } else {
                let topic = match str_at(state, 2) {
                    Some(t) => Some(text(Some(t), "topic")?),
                    None => None,
                };
                cx.try_receive(topic).map(Completion::Message)
            };
            Ok(match got {
                Some(c) => completed(cur, c),
                None => Outcome::Nothing,
            })
        });
        finish(state, cur, o)
    }
}

/// `take_completion(tag)` → `false` and the completion of operation `tag` if it completed,
/// or nothing.
unsafe extern "C-unwind" fn take_completion(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as in `send`.
    unsafe {
        let cur = current(state);
        let o = run(cur, |cx| {
            let tag = Tag::from_raw(ffi::lua_tointegerx(state, 1, std::ptr::null_mut()) as u64);
            Ok(match cx.take_completion(tag) {
                Some(c) => completed(cur, c),
                None => Outcome::Nothing,
            })
        });
        finish(state, cur, o)
    }
}

/// `spawn(id, host, ...)` → the child's pid, or `nil, err` (`process.spawn` and its three
/// siblings themselves); the second upvalue's bits say the ties: 1 monitors the child, 2 links
/// it. A loop that spawns one entry parses its id once (the last one is kept) and names a known
/// host without allocating.
unsafe extern "C-unwind" fn spawn(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as in `send`.
    unsafe {
        let cur = current(state);
        let o = run(cur, |cx| {
            let mode = ffi::lua_tointegerx(state, ffi::lua_upvalueindex(2), std::ptr::null_mut());
            let ties = Ties { monitor: mode & 1 != 0, link: mode & 2 != 0 };
            let id = match str_at(state, 1) {
                Some(b) => cur.entry_id(b)?,
                None => {
                    return Err(Error::new(
                        ErrorKind::Invalid,
                        "entry id must be a string `namespace:name`",
                    ));
                }
            };
            let host = text(str_at(state, 2), "host")?;
            let host: Cow<'static, str> = match HostId::lookup(host) {
                Some(h) => Cow::Borrowed(h.name()),
                None => Cow::Owned(host.to_owned()),
            };
            let top = ffi::lua_gettop(state);
            let mut args = Vec::with_capacity(usize::try_from(top - 2).unwrap_or(0));
            for i in 3..=top {
                args.push(value_at(state, i)?);
            }
            Ok(Outcome::Pid(cx.spawn(Spawn::entry(id, host).args(args), ties)?))
        });
        finish_as(state, cur, o, Fails::Nil)
    }
}
