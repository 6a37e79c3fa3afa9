//! Payloads and completions onto a Lua stack, and payloads off it, with Lua's C API: the path
//! of every message (a step's completion, `send`, `start_receive`) without mlua's values, each
//! of which costs a slot of mlua's reference thread and its lock.
//!
//! The pushes may raise a Lua error (out of memory), which is a `longjmp`: they are called only
//! in protected code, from frames that hold nothing to drop. Reading ([`value_at`]) raises
//! nothing.

use std::ffi::c_int;

use mlua::ffi;
use spindle_runtime::{Completion, Error, ErrorKind, Pid, Value};

use crate::convert::Walk;

/// Deepest nesting accepted, as in [`crate::convert`].
const MAX_DEPTH: usize = 128;

/// The kind of a completion as the prelude takes it (its `MSG`, `EVENT`, ... constants).
#[derive(Clone, Copy)]
enum Kind {
    Message = 1,
    Event = 2,
    Timer = 3,
    Exit = 4,
    Failed = 5,
}

fn invalid(what: &str) -> Error {
    Error::new(ErrorKind::Invalid, format!("cannot send {what} (payloads are plain data)"))
}

/// Pushes `bytes` as a Lua string.
///
/// # Safety
/// `state` is a Lua state with room for one more value; see the module doc about errors.
pub(crate) unsafe fn push_bytes(state: *mut ffi::lua_State, bytes: &[u8]) {
    // SAFETY: the caller's contract; `lua_pushlstring` copies the bytes.
    unsafe {
        ffi::lua_pushlstring(state, bytes.as_ptr().cast(), bytes.len());
    }
}

/// Pushes `pid` as the string processes see (`{host|0x…}`), formatted without allocating;
/// Lua interns it, so a pid seen before costs a hash lookup.
///
/// # Safety
/// As for [`push_bytes`].
pub(crate) unsafe fn push_pid(state: *mut ffi::lua_State, pid: Pid) {
    let mut buf = [0u8; 128];
    let len = match pid.write_to(&mut buf) {
        Some(n) => n,
        None => {
            let text = pid.to_string();
            // SAFETY: the caller's contract (a host name longer than the buffer); the text
            // leaks only if the push raises (out of memory).
            return unsafe { push_bytes(state, text.as_bytes()) };
        }
    };
    // SAFETY: the caller's contract.
    unsafe { push_bytes(state, &buf[..len]) }
}

/// Pushes a message's sender as the prelude keeps it until someone asks (`Message:from`): the
/// pid's bits as an integer, which costs no string; the pid as text if it has no bits.
///
/// # Safety
/// As for [`push_bytes`].
pub(crate) unsafe fn push_sender(state: *mut ffi::lua_State, pid: Pid) {
    // SAFETY: the caller's contract.
    unsafe {
        match pid.to_bits() {
            Some(bits) => ffi::lua_pushinteger(state, bits as ffi::lua_Integer),
            None => push_pid(state, pid),
        }
    }
}

/// Pushes a copy of `v`. What no Lua table can hold is left out rather than raised in the
/// receiving process (the runtime refuses it from senders, see `Value::check_portable`): a map
/// entry whose key is nil or NaN, and anything nested deeper than [`MAX_DEPTH`] (nil).
///
/// # Safety
/// As for [`push_bytes`]; nesting is bounded by the stack room it asks for itself.
pub(crate) unsafe fn push_value(state: *mut ffi::lua_State, v: &Value) {
    // SAFETY: the caller's contract.
    unsafe { push_nested(state, v, 0) }
}

/// [`push_value`] at nesting depth `depth`.
///
/// # Safety
/// As for [`push_value`].
unsafe fn push_nested(state: *mut ffi::lua_State, v: &Value, depth: usize) {
    // SAFETY: the caller's contract; `luaL_checkstack` makes room for a table, a key and a
    // value before each level (it raises if there is none, see the module doc).
    unsafe {
        match v {
            Value::Array(_) | Value::Map(_) if depth >= MAX_DEPTH => ffi::lua_pushnil(state),
            Value::Nil => ffi::lua_pushnil(state),
            Value::Bool(b) => ffi::lua_pushboolean(state, c_int::from(*b)),
            Value::Int(i) => ffi::lua_pushinteger(state, *i),
            Value::Float(f) => ffi::lua_pushnumber(state, *f),
            Value::Str(s) => push_bytes(state, s.as_bytes()),
            Value::Bytes(b) => push_bytes(state, b),
            Value::Array(items) => {
                ffi::luaL_checkstack(state, 3, std::ptr::null());
                ffi::lua_createtable(state, c_int::try_from(items.len()).unwrap_or(0), 0);
                for (i, item) in items.iter().enumerate() {
                    push_nested(state, item, depth + 1);
                    ffi::lua_rawseti(state, -2, i as ffi::lua_Integer + 1);
                }
            }
            Value::Map(pairs) => {
                ffi::luaL_checkstack(state, 3, std::ptr::null());
                ffi::lua_createtable(state, 0, c_int::try_from(pairs.len()).unwrap_or(0));
                for (k, v) in pairs {
                    if matches!(k, Value::Nil) || matches!(k, Value::Float(f) if f.is_nan()) {
                        continue;
                    }
                    push_nested(state, k, depth + 1);
                    push_nested(state, v, depth + 1);
                    ffi::lua_rawset(state, -3);
                }
            }
        }
    }
}

/// Pushes a completion as the prelude takes it, `kind, ...` (see the prelude's protocol);
/// returns how many values it pushed.
///
/// # Safety
/// As for [`push_bytes`], with room for eight values.
pub(crate) unsafe fn push_completion(state: *mut ffi::lua_State, c: &Completion) -> c_int {
    let kind = |k: Kind| k as ffi::lua_Integer;
    // SAFETY: the caller's contract.
    unsafe {
        match c {
            Completion::Message(m) => {
                ffi::lua_pushinteger(state, kind(Kind::Message));
                push_sender(state, m.from);
                push_bytes(state, m.topic.as_str().as_bytes());
                push_value(state, &m.payload);
                4
            }
            Completion::Event(e) => {
                ffi::lua_pushinteger(state, kind(Kind::Event));
                push_bytes(state, e.kind.name().as_bytes());
                push_pid(state, e.from);
                match &e.result {
                    Some(Ok(v)) => {
                        ffi::lua_pushboolean(state, 1);
                        push_value(state, v);
                        ffi::lua_pushnil(state);
                    }
                    Some(Err(err)) => {
                        ffi::lua_pushboolean(state, 0);
                        push_bytes(state, err.kind().name().as_bytes());
                        push_bytes(state, err.message().as_bytes());
                    }
                    None => {
                        ffi::lua_pushnil(state);
                        ffi::lua_pushnil(state);
                        ffi::lua_pushnil(state);
                    }
                }
                match &e.reason {
                    Some(r) => {
                        push_value(state, r);
                        7
                    }
                    None => 6,
                }
            }
            Completion::Timer => {
                ffi::lua_pushinteger(state, kind(Kind::Timer));
                1
            }
            Completion::Exit(Ok(v)) => {
                ffi::lua_pushinteger(state, kind(Kind::Exit));
                ffi::lua_pushboolean(state, 1);
                push_value(state, v);
                3
            }
            Completion::Exit(Err(err)) => {
                ffi::lua_pushinteger(state, kind(Kind::Exit));
                ffi::lua_pushboolean(state, 0);
                push_bytes(state, err.kind().name().as_bytes());
                push_bytes(state, err.message().as_bytes());
                4
            }
            Completion::Failed(err) => {
                ffi::lua_pushinteger(state, kind(Kind::Failed));
                push_bytes(state, err.kind().name().as_bytes());
                push_bytes(state, err.message().as_bytes());
                3
            }
        }
    }
}

/// The bytes of the string at `idx`, if it is a string (numbers are not converted).
///
/// # Safety
/// `idx` is a valid index of `state`; the slice lives as long as the value stays there.
pub(crate) unsafe fn str_at<'a>(state: *mut ffi::lua_State, idx: c_int) -> Option<&'a [u8]> {
    // SAFETY: the caller's contract; a string's bytes do not move while it is on the stack.
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TSTRING {
            return None;
        }
        let mut len = 0usize;
        let p = ffi::lua_tolstring(state, idx, &mut len);
        Some(std::slice::from_raw_parts(p.cast::<u8>(), len))
    }
}

/// A copy of the Lua value at `idx` as a runtime [`Value`]; the same rules as
/// [`crate::convert::to_value`], and raw like it (no metamethod runs). Raises nothing.
///
/// # Safety
/// `idx` is a valid index of `state`.
pub(crate) unsafe fn value_at(state: *mut ffi::lua_State, idx: c_int) -> Result<Value, Error> {
    let mut path = Walk::default();
    // SAFETY: the caller's contract.
    unsafe { value_in(state, ffi::lua_absindex(state, idx), &mut path) }
}

unsafe fn value_in(
    state: *mut ffi::lua_State,
    idx: c_int,
    path: &mut Walk,
) -> Result<Value, Error> {
    // SAFETY: `idx` is absolute and valid (the caller's contract); the table walk keeps the
    // stack balanced and asks for room first; `lua_next` on a key it returned raises nothing.
    unsafe {
        Ok(match ffi::lua_type(state, idx) {
            ffi::LUA_TNIL | ffi::LUA_TNONE => Value::Nil,
            ffi::LUA_TBOOLEAN => Value::Bool(ffi::lua_toboolean(state, idx) != 0),
            ffi::LUA_TNUMBER => {
                if ffi::lua_isinteger(state, idx) != 0 {
                    Value::Int(ffi::lua_tointegerx(state, idx, std::ptr::null_mut()))
                } else {
                    Value::Float(ffi::lua_tonumberx(state, idx, std::ptr::null_mut()))
                }
            }
            ffi::LUA_TSTRING => Value::from(str_at(state, idx).unwrap_or_default().to_vec()),
            ffi::LUA_TTABLE => table_in(state, idx, path)?,
            ffi::LUA_TFUNCTION => return Err(invalid("a function")),
            ffi::LUA_TTHREAD => return Err(invalid("a coroutine")),
            ffi::LUA_TUSERDATA | ffi::LUA_TLIGHTUSERDATA => return Err(invalid("userdata")),
            _ => return Err(invalid("this value")),
        })
    }
}

unsafe fn table_in(
    state: *mut ffi::lua_State,
    idx: c_int,
    path: &mut Walk,
) -> Result<Value, Error> {
    // SAFETY: as in `value_in`.
    unsafe {
        if ffi::lua_checkstack(state, 3) == 0 {
            return Err(invalid("a table nested this deep"));
        }
        path.enter(ffi::lua_topointer(state, idx))?;
        let n = ffi::lua_rawlen(state, idx);
        let mut is_array = true;
        let mut pairs = Vec::new();
        ffi::lua_pushnil(state);
        while ffi::lua_next(state, idx) != 0 {
            let top = ffi::lua_gettop(state);
            let k = value_in(state, top - 1, path);
            let v = value_in(state, top, path);
            ffi::lua_settop(state, top - 1);
            let (k, v) = match (k, v) {
                (Ok(k), Ok(v)) => (k, v),
                (Err(e), _) | (_, Err(e)) => {
                    ffi::lua_settop(state, top - 2);
                    return Err(e);
                }
            };
            if !matches!(k, Value::Int(i) if i >= 1 && (i as usize) <= n) {
                is_array = false;
            }
            pairs.push((k, v));
        }
        path.leave();
        if is_message(state, idx)
            && let Some((Value::Int(1), from @ Value::Int(_))) = pairs.first_mut()
        {
            // A received message sent on as it is: its sender as text, as `m:from()` gives it.
            *from = sender(from);
        }
        Ok(if is_array && pairs.len() == n {
            let mut items = vec![Value::Nil; n];
            for (k, v) in pairs {
                if let Value::Int(i) = k {
                    items[(i - 1) as usize] = v;
                }
            }
            Value::Array(items)
        } else {
            Value::Map(pairs)
        })
    }
}

/// Whether the table at `idx` is a received message (its metatable is the prelude's
/// `Message`, named `spindle.message`).
///
/// # Safety
/// `idx` is an absolute index of a table, with room for two more values.
unsafe fn is_message(state: *mut ffi::lua_State, idx: c_int) -> bool {
    // SAFETY: the caller's contract; `luaL_getmetafield` reads the field raw (no code runs)
    // and pushes it only when it is there.
    unsafe {
        if ffi::luaL_getmetafield(state, idx, c"__name".as_ptr()) == ffi::LUA_TNIL {
            return false;
        }
        let yes = str_at(state, -1) == Some(&b"spindle.message"[..]);
        ffi::lua_settop(state, -2);
        yes
    }
}

/// A message's sender as the prelude keeps it ([`push_sender`]), as text.
fn sender(v: &Value) -> Value {
    match v {
        Value::Int(bits) => match sender_pid(*bits) {
            Some(pid) => Value::Str(pid.to_string()),
            None => v.clone(),
        },
        other => other.clone(),
    }
}

/// The pid whose bits [`push_sender`] pushed as `bits`.
pub(crate) fn sender_pid(bits: ffi::lua_Integer) -> Option<Pid> {
    u64::try_from(bits).ok().and_then(Pid::from_bits)
}
