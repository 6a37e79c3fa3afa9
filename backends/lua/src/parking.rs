//! Blocking calls that wait one call frame deep.
//!
//! A coroutine that waits keeps every frame of its call chain: a Lua function that yields
//! through `coroutine.yield` sits two frames deep (its own and the yield's), each a 64-byte
//! call record plus its stack slots, for as long as the wait lasts. Most idle processes wait in
//! a channel receive, so that one is a C function that yields itself: `RT.parking(f, token,
//! class)` makes it from the prelude's Lua part `f`, which gets the channel's state (unboxed
//! here), does the bookkeeping and says whether the caller must wait. `f` is called yieldable,
//! so that the hook preempts it as it would a Lua caller's code (the island's processes would
//! wait for a loop of receives otherwise).

use std::ffi::c_int;

use mlua::{LightUserData, Lua, Table, ffi};

/// What a coroutine that must wait yields (`RT.PARK`), and what one that upgrades its process
/// yields first (`RT.UPGRADE`): light userdata, which no Lua code can make and which `==`
/// compares without metamethods (a table's `__eq` could run a process's code).
static PARK: u8 = 0;
static UPGRADE: u8 = 0;
/// The third value a receive of a listened topic is resumed with (`RT.TOPIC`): the first is
/// then the message, whose data the receive returns. The prelude keeps the message until the
/// receiving coroutine runs, so that an upgrade before that can give it back.
static TOPIC: u8 = 0;

/// Adds `parking` and the three marks to the prelude's `RT` table.
pub(crate) fn register(lua: &Lua, rt: &Table) -> mlua::Result<()> {
    rt.raw_set("PARK", LightUserData((&raw const PARK).cast_mut().cast()))?;
    rt.raw_set("UPGRADE", LightUserData((&raw const UPGRADE).cast_mut().cast()))?;
    rt.raw_set("TOPIC", LightUserData((&raw const TOPIC).cast_mut().cast()))?;
    // SAFETY: `parking` follows the `lua_CFunction` protocol and holds no Rust values.
    unsafe { rt.raw_set("parking", lua.create_c_function(parking)?) }
}

/// `parking(f, token, class)`: a C function `g(self, ...)` that calls `f(s, ...)`, where `s` is
/// the state of `self` if `self` is a box of `class` (see `opaque.rs`) and nil otherwise: a
/// method of a boxed object that unboxes without a call of its own. When `f` returns `true, a,
/// b`, `g` returns `a, b`. When `f` returns `false` (it queued the running coroutine to be
/// woken), `g` yields `token` and returns the first two values it is resumed with.
unsafe extern "C-unwind" fn parking(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this with its arguments on the stack; `lua_pushcclosure` takes the
    // three values at the top as the closure's upvalues. A memory error raised here skips a
    // frame that holds nothing to drop.
    unsafe {
        ffi::lua_settop(state, 3);
        ffi::lua_pushcclosure(state, parked, 3);
    }
    1
}

/// A function made by [`parking`]: upvalue 1 is `f`, upvalue 2 the token it yields, upvalue 3
/// the class whose boxes it unboxes.
unsafe extern "C-unwind" fn parked(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this with its `n` arguments on the stack and room for LUA_MINSTACK more
    // values, so `f` fits below them. An error `f` raises unwinds through this frame, which
    // holds no Rust values. `f` runs yieldable (the hook may preempt it): if it yields, Lua
    // goes on in `called` once it has returned, with its results where this call leaves them.
    // Unboxing raises nothing (no metamethods: the comparison is raw, the user value is read
    // by index).
    unsafe {
        let n = ffi::lua_gettop(state).max(1);
        ffi::lua_settop(state, n);
        let boxed = ffi::lua_type(state, 1) == ffi::LUA_TUSERDATA
            && ffi::lua_getmetatable(state, 1) != 0
            && ffi::lua_rawequal(state, -1, ffi::lua_upvalueindex(3)) != 0;
        ffi::lua_settop(state, n);
        if boxed {
            ffi::lua_getiuservalue(state, 1, 1);
        } else {
            ffi::lua_pushnil(state);
        }
        ffi::lua_replace(state, 1);
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_insert(state, 1);
        ffi::lua_callk(state, n, 3, 0, Some(called));
        called(state, ffi::LUA_OK, 0)
    }
}

/// The rest of [`parked`] once `f` has returned its three results (at 1 to 3).
unsafe extern "C-unwind" fn called(
    state: *mut ffi::lua_State,
    _status: c_int,
    _ctx: ffi::lua_KContext,
) -> c_int {
    // SAFETY: as in `parked`, whose frame this is. The yield (Lua's `longjmp`) skips nothing
    // to drop; when the coroutine is resumed, Lua goes on in `resumed`.
    unsafe {
        if ffi::lua_toboolean(state, 1) != 0 {
            return 2;
        }
        ffi::lua_settop(state, 0);
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(2));
        ffi::lua_yieldk(state, 1, 0, Some(resumed))
    }
}

/// The end of [`parked`] after its yield: the values it was resumed with are all its stack
/// holds, and it returns the first two (a topic's message resumed with [`TOPIC`] as its data).
unsafe extern "C-unwind" fn resumed(
    state: *mut ffi::lua_State,
    _status: c_int,
    _ctx: ffi::lua_KContext,
) -> c_int {
    // SAFETY: called by Lua as a continuation of `parked`'s frame; index 3 is within the frame's
    // reserved slots (read as none past the top); the prelude resumes with `TOPIC` only after
    // a message table, which `lua_rawgeti` reads without metamethods; `lua_settop` drops the
    // rest or pads with nil.
    unsafe {
        if ffi::lua_type(state, 3) == ffi::LUA_TLIGHTUSERDATA
            && ffi::lua_touserdata(state, 3).cast_const() == (&raw const TOPIC).cast()
            && ffi::lua_type(state, 1) == ffi::LUA_TTABLE
        {
            ffi::lua_rawgeti(state, 1, 3);
            ffi::lua_replace(state, 1);
        }
        ffi::lua_settop(state, 2);
    }
    2
}
