//! Opaque objects: what the prelude hands to processes but keeps the state of to itself.
//!
//! A channel, timer or ticker given to a process is a userdata with no bytes and one user
//! value, the object's state table. Lua code without the debug library cannot reach a user
//! value, and `rawset`, `rawget`, `next` and `setmetatable` refuse userdata, so the state the
//! process scheduler reads (and calls into) outside the process's coroutine is only what the
//! prelude put there. Raw C functions, not mlua callbacks: `unbox` runs on every channel
//! operation.

use std::ffi::c_int;

use mlua::{Lua, Table, ffi};

/// Adds `box`, `unbox` and `metatable` to the prelude's `RT` table.
pub(crate) fn register(lua: &Lua, rt: &Table) -> mlua::Result<()> {
    // SAFETY: the three functions follow the `lua_CFunction` protocol (arguments on the
    // stack, results pushed, the count returned) and keep no Rust values with destructors
    // alive across a Lua call that may raise.
    unsafe {
        rt.raw_set("box", lua.create_c_function(boxed)?)?;
        rt.raw_set("unbox", lua.create_c_function(unbox)?)?;
        rt.raw_set("metatable", lua.create_c_function(metatable)?)?;
    }
    Ok(())
}

/// `box(state, mt)`: a new userdata with metatable `mt` whose one user value is `state`.
unsafe extern "C-unwind" fn boxed(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this with its arguments at 1 and 2 and room for LUA_MINSTACK more
    // values. `lua_newuserdatauv` may raise a memory error: this frame holds nothing to drop.
    unsafe {
        ffi::lua_settop(state, 2);
        ffi::lua_newuserdatauv(state, 0, 1);
        ffi::lua_pushvalue(state, 1);
        ffi::lua_setiuservalue(state, -2, 1);
        ffi::lua_pushvalue(state, 2);
        ffi::lua_setmetatable(state, -2);
    }
    1
}

/// `unbox(v, mt)`: the state of `v` if `v` was made by `box(state, mt)`, else nothing.
unsafe extern "C-unwind" fn unbox(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as in `boxed`; none of these calls raises (no metamethods: the comparison is
    // raw and the user value is read by index).
    unsafe {
        if ffi::lua_type(state, 1) != ffi::LUA_TUSERDATA || ffi::lua_getmetatable(state, 1) == 0 {
            return 0;
        }
        if ffi::lua_rawequal(state, -1, 2) == 0 {
            return 0;
        }
        ffi::lua_getiuservalue(state, 1, 1);
    }
    1
}

/// `metatable(v)`: the metatable of `v` itself, whatever its `__metatable` field says.
unsafe extern "C-unwind" fn metatable(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as in `unbox`.
    unsafe { ffi::lua_getmetatable(state, 1) }
}
