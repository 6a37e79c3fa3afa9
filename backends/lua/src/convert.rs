//! Payloads between Lua and the runtime: deep copies, nothing shared.
//!
//! Integers stay integers, floats stay floats, strings stay byte-exact (valid UTF-8 becomes a
//! string, anything else bytes). A table whose keys are exactly 1..n becomes an array, any
//! other table a map. Functions, userdata, coroutines and cyclic tables are `INVALID`.

use std::collections::HashSet;
use std::ffi::c_void;

use mlua::{Lua, Table, Value as LuaValue};
use spindle_runtime::{Error, ErrorKind, Value};

/// Deepest nesting accepted, so a hostile payload cannot exhaust the Rust stack.
const MAX_DEPTH: usize = 128;

/// How many times one value may copy tables it has copied already. A table reached by two
/// paths is copied twice (a payload is a tree); one that reuses its tables at every level
/// (`t = {t, t}`, forty times over) would be copied 2^40 times, a hang and an allocation no
/// process's budget sees.
const MAX_RECOPIES: usize = 4096;

fn invalid(what: &str) -> Error {
    Error::new(ErrorKind::Invalid, format!("cannot send {what} (payloads are plain data)"))
}

/// Where a copy of a Lua value is: the tables it is inside of (a table inside itself is
/// refused), and those it has copied (see [`MAX_RECOPIES`]).
#[derive(Default)]
pub(crate) struct Walk {
    path: Vec<*const c_void>,
    seen: HashSet<*const c_void>,
    recopies: usize,
}

impl Walk {
    /// Goes into the table at `ptr`; [`Walk::leave`] comes back out of it.
    pub(crate) fn enter(&mut self, ptr: *const c_void) -> Result<(), Error> {
        if self.path.contains(&ptr) {
            return Err(invalid("a table that contains itself"));
        }
        if self.path.len() >= MAX_DEPTH {
            return Err(invalid("a table nested deeper than 128 levels"));
        }
        if !self.seen.insert(ptr) {
            self.recopies += 1;
            if self.recopies > MAX_RECOPIES {
                return Err(invalid(
                    "a value that reaches its tables by more than 4096 more paths (each path \
                     is a copy)",
                ));
            }
        }
        self.path.push(ptr);
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.path.pop();
    }
}

/// Copies a Lua value into a runtime [`Value`].
///
/// # Errors
/// `INVALID` for functions, userdata, coroutines, cycles and nesting deeper than 128.
pub fn to_value(v: &LuaValue) -> Result<Value, Error> {
    to_value_in(v, &mut Walk::default())
}

fn to_value_in(v: &LuaValue, path: &mut Walk) -> Result<Value, Error> {
    Ok(match v {
        LuaValue::Nil => Value::Nil,
        LuaValue::Boolean(b) => Value::Bool(*b),
        LuaValue::Integer(i) => Value::Int(*i),
        LuaValue::Number(n) => Value::Float(*n),
        LuaValue::String(s) => Value::from(s.as_bytes().to_vec()),
        LuaValue::Table(t) => table_to_value(t, path)?,
        LuaValue::Function(_) => return Err(invalid("a function")),
        LuaValue::Thread(_) => return Err(invalid("a coroutine")),
        LuaValue::UserData(_) | LuaValue::LightUserData(_) => return Err(invalid("userdata")),
        LuaValue::Error(_) => return Err(invalid("an error value")),
        _ => return Err(invalid("this value")),
    })
}

fn table_to_value(t: &Table, path: &mut Walk) -> Result<Value, Error> {
    path.enter(t.to_pointer())?;
    let n = t.raw_len();
    let mut count = 0usize;
    let mut is_array = true;
    let mut pairs = Vec::new();
    for pair in t.pairs::<LuaValue, LuaValue>() {
        let (k, v) = pair.map_err(|e| Error::new(ErrorKind::Invalid, e.to_string()))?;
        count += 1;
        if !matches!(k, LuaValue::Integer(i) if i >= 1 && (i as usize) <= n) {
            is_array = false;
        }
        pairs.push((k, v));
    }
    let out = if is_array && count == n {
        let mut items = vec![Value::Nil; n];
        for (k, v) in &pairs {
            if let LuaValue::Integer(i) = k {
                items[(*i - 1) as usize] = to_value_in(v, path)?;
            }
        }
        Value::Array(items)
    } else {
        let mut map = Vec::with_capacity(pairs.len());
        for (k, v) in &pairs {
            map.push((to_value_in(k, path)?, to_value_in(v, path)?));
        }
        Value::Map(map)
    };
    path.leave();
    Ok(out)
}

/// Builds the Lua value of a runtime [`Value`] (a fresh copy).
///
/// # Errors
/// A Lua error when memory runs out.
pub fn to_lua(lua: &Lua, v: &Value) -> mlua::Result<LuaValue> {
    to_lua_nested(lua, v, 0)
}

/// [`to_lua`] at nesting depth `depth`: as in `stack::push_value`, a map entry whose key is
/// nil or NaN is left out, and anything nested deeper than [`MAX_DEPTH`] is nil.
fn to_lua_nested(lua: &Lua, v: &Value, depth: usize) -> mlua::Result<LuaValue> {
    Ok(match v {
        Value::Array(_) | Value::Map(_) if depth >= MAX_DEPTH => LuaValue::Nil,
        Value::Nil => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Int(i) => LuaValue::Integer(*i),
        Value::Float(f) => LuaValue::Number(*f),
        Value::Str(s) => LuaValue::String(lua.create_string(s)?),
        Value::Bytes(b) => LuaValue::String(lua.create_string(b)?),
        Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua_nested(lua, item, depth + 1)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Map(pairs) => {
            let t = lua.create_table_with_capacity(0, pairs.len())?;
            for (k, v) in pairs {
                let k = to_lua_nested(lua, k, depth + 1)?;
                if k.is_nil() || matches!(k, LuaValue::Number(f) if f.is_nan()) {
                    continue;
                }
                t.raw_set(k, to_lua_nested(lua, v, depth + 1)?)?;
            }
            LuaValue::Table(t)
        }
    })
}
