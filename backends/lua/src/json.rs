//! `require("json")`: encode Lua values as JSON text and decode it back.
