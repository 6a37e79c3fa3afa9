//! # spindle-guest
//!
//! Write Spindle native plugin processes in Rust. Rust's `async` already compiles to a
//! resumable state machine, and that is what a Spindle step is: [`plugin!`] turns an
//! `async fn(Cx, Vec<Value>) -> Result<Value>` into a library that exports the stable C ABI
//! (`spindle_plugin_entry`, see `abi/include/spindle.h`). Each step polls the function's future once;
//! the operations it awaits ([`Cx::recv`], [`Cx::sleep`], [`Cx::exec`] …) start on first poll
//! and complete in a later step. [`join`] waits for both of two operations (the step returns
//! *wait-all*), [`select`] for the first (*wait-any*).
//!
//! ```no_run
//! // src/lib.rs of a crate with `crate-type = ["cdylib"]`
//! use std::time::Duration;
//! use spindle_guest::{Cx, Either, Result, Value, select};
//!
//! async fn service(cx: Cx, _args: Vec<Value>) -> Result<Value> {
//!     // The first request, or nil after one second.
//!     match select(cx.recv(), cx.sleep(Duration::from_secs(1))).await {
//!         Either::Left(msg) => {
//!             cx.send(msg.from, "reply", msg.payload)?;
//!             Ok(Value::from("answered"))
//!         }
//!         Either::Right(()) => Ok(Value::Nil),
//!     }
//! }
//!
//! spindle_guest::plugin!(service);
//! ```
//!
//! Receiving or sending a message with a short topic and a number, boolean or nil as payload
//! allocates nothing: a [`Message`]'s [`Topic`] keeps up to 16 bytes inline, and payloads up to
//! 64 bytes are encoded on the stack.
//!
//! A panic in the process is caught at the boundary: that process ends with an `INTERNAL`
//! error carrying the panic message, and nothing else is affected (build with the default
//! `panic = "unwind"`). The [`Cx`] is valid only inside the process's own future; keeping it
//! elsewhere and using it outside a step panics.

mod combinators;
mod cx;
mod error;
#[doc(hidden)]
pub mod plugin;
mod topic;
mod value;

pub use combinators::{Either, Join, Select, join, select};
pub use cx::{
    Completion, Cx, Event, EventKind, Message, Op, OpFuture, Pid, Recv, Sleep, Ties, Upgrade,
    YieldNow,
};
pub use error::{Error, ErrorKind, Result};
pub use spindle_abi as abi;
pub use topic::Topic;
pub use value::Value;

/// Exports `spindle_plugin_entry` for the process body `main`, an
/// `async fn(Cx, Vec<Value>) -> Result<Value>` (or any function returning such a future).
/// Use it once, in a `cdylib` crate.
#[macro_export]
macro_rules! plugin {
    ($main:path) => {
        const _: () = {
            fn __spindle_make(
                cx: $crate::Cx,
                args: ::std::vec::Vec<$crate::Value>,
            ) -> impl $crate::plugin::Body {
                $main(cx, args)
            }

            unsafe extern "C" fn __spindle_init(
                host: *const $crate::abi::SpindleHost,
                cx: *mut $crate::abi::SpindleCx,
                args: *const u8,
                args_len: usize,
                state: *mut *mut ::core::ffi::c_void,
            ) -> i32 {
                // SAFETY: forwarded as the host passed them.
                unsafe { $crate::plugin::init(host, cx, args, args_len, state, __spindle_make) }
            }

            unsafe extern "C" fn __spindle_step(
                state: *mut ::core::ffi::c_void,
                host: *const $crate::abi::SpindleHost,
                cx: *mut $crate::abi::SpindleCx,
            ) -> i32 {
                // SAFETY: forwarded as the host passed them; `state` is from `__spindle_init`.
                unsafe { $crate::plugin::step(state, host, cx, __spindle_make) }
            }

            unsafe extern "C" fn __spindle_drop(state: *mut ::core::ffi::c_void) {
                // SAFETY: forwarded as the host passed it; `state` is from `__spindle_init`.
                unsafe { $crate::plugin::drop(state, __spindle_make) }
            }

            static __SPINDLE_PLUGIN: $crate::abi::SpindlePlugin = $crate::abi::SpindlePlugin {
                abi_version: $crate::abi::ABI_VERSION,
                size: ::core::mem::size_of::<$crate::abi::SpindlePlugin>() as u32,
                init: __spindle_init,
                step: __spindle_step,
                drop: __spindle_drop,
            };

            /// The plugin's entry point (spindle.h).
            #[unsafe(no_mangle)]
            pub extern "C" fn spindle_plugin_entry() -> *const $crate::abi::SpindlePlugin {
                &__SPINDLE_PLUGIN
            }
        };
    };
}
