//! # spindle-abi
//!
//! The stable C ABI between Spindle and plugin processes: the `#[repr(C)]` types, signatures and
//! constants of `include/spindle.h`, one to one, and nothing else. The native backend
//! (`spindle-native`) loads shared libraries that export [`PLUGIN_SYMBOL`]; the Wasm backend
//! passes the same functions as module imports and exports. The contract itself — who owns
//! what, how long borrowed data lives, how later versions grow — is written in
//! `include/spindle.h`; the items here repeat it briefly.
//!
//! Payloads (message payloads, spawn arguments, results) cross as MessagePack bytes; the
//! [`msgpack`] module reads and writes that format without allocating, for hosts and guests
//! alike.
//!
//! A guest written by hand exports one function:
//!
//! ```
//! use core::ffi::c_void;
//! use spindle_abi::*;
//!
//! unsafe extern "C" fn init(
//!     _: *const SpindleHost, _: *mut SpindleCx, _: *const u8, _: usize, state: *mut *mut c_void,
//! ) -> i32 {
//!     // SAFETY: the host passes a valid out pointer (see `SpindlePlugin::init`).
//!     unsafe { *state = core::ptr::null_mut() };
//!     OK
//! }
//! unsafe extern "C" fn step(_: *mut c_void, _: *const SpindleHost, _: *mut SpindleCx) -> i32 {
//!     STEP_EXIT_OK // ends at once, with nil
//! }
//! unsafe extern "C" fn drop(_: *mut c_void) {}
//!
//! static PLUGIN: SpindlePlugin = SpindlePlugin {
//!     abi_version: ABI_VERSION,
//!     size: core::mem::size_of::<SpindlePlugin>() as u32,
//!     init,
//!     step,
//!     drop,
//! };
//!
//! // In a cdylib: #[unsafe(no_mangle)]
//! pub extern "C" fn spindle_plugin_entry() -> *const SpindlePlugin {
//!     &PLUGIN
//! }
//! # assert_eq!(unsafe { (*spindle_plugin_entry()).abi_version }, 1);
//! ```
//!
//! Rust guests normally use the `spindle-guest` crate instead, which turns an `async fn` into
//! the step function.

#![no_std]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod msgpack;

use core::ffi::c_void;
use core::marker::{PhantomData, PhantomPinned};

/// `text` (at most 16 bytes) as two words whose bytes, in memory order, are the text and then
/// zeros: how the host and the Rust guest SDK keep short topics inline. The words are built in
/// registers from loads within `text` (overlapping rather than running past its end), so a
/// value holding them is stored in whole words: copying the bytes into an array instead costs
/// a `memcpy` call, and moving the value then reloads its smaller, overlapping stores wider,
/// which cannot be forwarded from the store buffer.
///
/// ```
/// let w = spindle_abi::inline_text(b"token");
/// let bytes: [u8; 16] = unsafe { core::mem::transmute(w) };
/// assert_eq!(&bytes[..6], b"token\0");
/// ```
///
/// # Panics
/// If `text` is longer than 16 bytes.
#[inline]
pub fn inline_text(text: &[u8]) -> [u64; 2] {
    let n = text.len();
    let le64 = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let le32 = |b: &[u8]| u64::from(u32::from_le_bytes(b.try_into().unwrap_or_default()));
    // The bytes as a 128-bit little-endian number in two halves.
    let (lo, hi) = match n {
        0 => (0, 0),
        1..=3 => {
            let byte = |i: usize| u64::from(text[i]) << (8 * i);
            (byte(0) | byte(n / 2) | byte(n - 1), 0)
        }
        4..=7 => (le32(&text[..4]) | le32(&text[n - 4..]) << (8 * (n - 4)), 0),
        8 => (le64(text), 0),
        9..=16 => (le64(&text[..8]), le64(&text[n - 8..]) >> (8 * (16 - n))),
        _ => panic!("inline_text: {n} bytes is more than 16"),
    };
    [lo.to_le(), hi.to_le()]
}

/// The ABI version this crate describes. A host runs plugins whose `abi_version` equals its own.
pub const ABI_VERSION: u32 = 1;

/// The name of the one symbol a plugin library exports: `const spindle_plugin
/// *spindle_plugin_entry(void)`. The name never changes; the version lives in the table it returns.
pub const PLUGIN_SYMBOL: &str = "spindle_plugin_entry";

// Status codes of host functions and of `init`. Negative codes are error kinds; the host keeps
// a message for the last one (`SpindleHost::last_error`).

/// Success.
pub const OK: i32 = 0;
/// `next_completion` / `take_completion`: nothing has completed (yet). Not an error.
pub const NONE: i32 = 1;
/// A process, name, entry or host does not exist.
pub const E_NOT_FOUND: i32 = -1;
/// A name is already taken.
pub const E_ALREADY_EXISTS: i32 = -2;
/// An argument or payload is malformed.
pub const E_INVALID: i32 = -3;
/// A policy or the host's capabilities forbid the operation.
pub const E_PERMISSION_DENIED: i32 = -4;
/// The resource cannot serve now (a full host, a runtime shutting down).
pub const E_UNAVAILABLE: i32 = -5;
/// A bug or broken invariant (a panic caught at the boundary).
pub const E_INTERNAL: i32 = -6;
/// Canceled or terminated.
pub const E_CANCELED: i32 = -7;
/// A deadline passed.
pub const E_TIMEOUT: i32 = -8;
/// A limit was hit (a full mailbox).
pub const E_RATE_LIMITED: i32 = -9;
/// Anything else, typically an error raised by process code.
pub const E_UNKNOWN: i32 = -10;

// What a step returns.

/// Wake me when any of my outstanding operations completes.
pub const STEP_WAIT_ANY: i32 = 1;
/// Wake me when all of my outstanding operations have completed.
pub const STEP_WAIT_ALL: i32 = 2;
/// My time slice is spent; step me again after the others.
pub const STEP_YIELD: i32 = 3;
/// I am done; my result is what I passed to `set_result` (nil if nothing).
pub const STEP_EXIT_OK: i32 = 4;
/// I failed with what I passed to `set_error` (if nothing: `E_UNKNOWN`, with a message that
/// names the plugin and says it exited with an error without `set_error`).
pub const STEP_EXIT_ERROR: i32 = 5;
/// Replace my code with what I passed to `upgrade`, keeping pid, mailbox, names, links.
pub const STEP_UPGRADE: i32 = 6;

// Completion kinds (`SpindleCompletion::kind`).

/// A message: `from`, `topic`, `value` (the payload).
pub const COMPLETION_MESSAGE: i32 = 1;
/// An event: `event`, `from`, and `value` / `error` (its result or CANCEL reason).
pub const COMPLETION_EVENT: i32 = 2;
/// A timer ran out.
pub const COMPLETION_TIMER: i32 = 3;
/// An exec'd process ended: `value` on success, `error` otherwise.
pub const COMPLETION_EXIT: i32 = 4;
/// The operation could not be carried out: `error`.
pub const COMPLETION_FAILED: i32 = 5;

// Event kinds (`SpindleCompletion::event`).

/// A monitored process ended.
pub const EVENT_EXIT: i32 = 1;
/// A linked process failed and I trap links.
pub const EVENT_LINK_DOWN: i32 = 2;
/// Somebody asked me to stop.
pub const EVENT_CANCEL: i32 = 3;
/// My entry was reloaded and I am upgradable.
pub const EVENT_OUTDATED: i32 = 4;

// Spawn ties (`SpindleHost::spawn`'s `ties` bits).

/// Link the child both ways.
pub const TIE_LINK: u32 = 1;
/// Receive the child's EXIT event.
pub const TIE_MONITOR: u32 = 2;

// Options (`SpindleHost::set_option`).

/// Linked failures arrive as LINK_DOWN events instead of ending me.
pub const OPTION_TRAP_LINKS: u32 = 1;
/// I receive OUTDATED when my entry is reloaded.
pub const OPTION_UPGRADABLE: u32 = 2;

// Log levels (`SpindleHost::log`).

/// Something failed.
pub const LOG_ERROR: i32 = 1;
/// Something looks wrong.
pub const LOG_WARN: i32 = 2;
/// For the operator.
pub const LOG_INFO: i32 = 3;
/// For the developer.
pub const LOG_DEBUG: i32 = 4;

/// The step context: opaque, valid only during the `init` or `step` call it was passed to.
#[repr(C)]
#[derive(Debug)]
pub struct SpindleCx {
    _opaque: [u8; 0],
    _not_send: PhantomData<(*mut u8, PhantomPinned)>,
}

/// What a plugin library's [`PLUGIN_SYMBOL`] returns: a table with a static lifetime.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SpindlePlugin {
    /// The [`ABI_VERSION`] the plugin was built against.
    pub abi_version: u32,
    /// `sizeof(spindle_plugin)` as the plugin knows it (the growth rule: fields are only
    /// appended; a host reads only fields that fit within `size`).
    pub size: u32,
    /// Starts an instance: decodes `args` (a MessagePack array, the spawn arguments) and stores
    /// the instance's state in `*state`. Called once per process, before its first step, with
    /// the process's context. Returns [`OK`], or an error code after `set_error` (the process
    /// then ends with that error and `drop` is not called).
    pub init: unsafe extern "C" fn(
        host: *const SpindleHost,
        cx: *mut SpindleCx,
        args: *const u8,
        args_len: usize,
        state: *mut *mut c_void,
    ) -> i32,
    /// Runs the instance until it must wait; returns one of the `STEP_*` codes. May be called
    /// on a different thread each time, never on two threads at once for one instance.
    pub step: unsafe extern "C" fn(
        state: *mut c_void,
        host: *const SpindleHost,
        cx: *mut SpindleCx,
    ) -> i32,
    /// Frees the instance's state. Called once, when the process ends or upgrades (not after a
    /// failed `init`). No host function may be called from it.
    pub drop: unsafe extern "C" fn(state: *mut c_void),
}

/// A finished operation, filled in by `next_completion` / `take_completion`.
///
/// The guest sets `size` to `sizeof(spindle_completion)` before the call; the host writes only
/// fields that fit. Pointers are borrowed from the host and stay valid until the next
/// `next_completion` / `take_completion` call on the same context or the end of the step.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SpindleCompletion {
    /// Set by the guest: the size of this struct as it knows it.
    pub size: u32,
    /// One of the `COMPLETION_*` kinds.
    pub kind: i32,
    /// The tag of the operation that completed.
    pub tag: u64,
    /// Message: the sender. Event: the process it is about (or that asked, for CANCEL).
    pub from: u64,
    /// Event: one of the `EVENT_*` kinds; 0 otherwise.
    pub event: i32,
    /// 0, or the error code of a failed result (FAILED, EXIT with an error, an event whose
    /// process failed).
    pub error: i32,
    /// Message: its topic (UTF-8, not NUL-terminated).
    pub topic: *const u8,
    /// Length of `topic` in bytes.
    pub topic_len: usize,
    /// MessagePack: a message's payload, a successful result, a CANCEL reason; empty if none.
    pub value: *const u8,
    /// Length of `value` in bytes.
    pub value_len: usize,
    /// When `error` is set: the error message (UTF-8, not NUL-terminated).
    pub error_message: *const u8,
    /// Length of `error_message` in bytes.
    pub error_message_len: usize,
}

impl SpindleCompletion {
    /// An empty completion with `size` set, ready to be filled in.
    pub const fn new() -> SpindleCompletion {
        SpindleCompletion {
            size: core::mem::size_of::<SpindleCompletion>() as u32,
            kind: 0,
            tag: 0,
            from: 0,
            event: 0,
            error: 0,
            topic: core::ptr::null(),
            topic_len: 0,
            value: core::ptr::null(),
            value_len: 0,
            error_message: core::ptr::null(),
            error_message_len: 0,
        }
    }
}

impl Default for SpindleCompletion {
    fn default() -> Self {
        SpindleCompletion::new()
    }
}

/// The host functions, handed to `init` and `step`. Every function takes the context it was
/// called with; byte strings are a pointer and a length and are copied by the host before the
/// call returns. Functions returning `i32` return [`OK`] or an error code (`E_*`), whose
/// message `last_error` gives. Pids and tags are `u64`; pid 0 means "none" or "myself" where
/// documented.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SpindleHost {
    /// The host's [`ABI_VERSION`].
    pub abi_version: u32,
    /// `sizeof(spindle_host)` as the host knows it: later versions append functions, and a
    /// guest checks `size` before calling one that is newer than version 1.
    pub size: u32,

    /// My pid.
    pub pid: unsafe extern "C" fn(cx: *mut SpindleCx) -> u64,
    /// Sends `payload` (MessagePack; empty means nil) under `topic` to `to`. Sending to a
    /// process that has ended is not an error.
    pub send: unsafe extern "C" fn(
        cx: *mut SpindleCx,
        to: u64,
        topic: *const u8,
        topic_len: usize,
        payload: *const u8,
        payload_len: usize,
    ) -> i32,
    /// Like `send`, to a registered name or a pid in text form (`{host|0x…}`).
    pub send_to: unsafe extern "C" fn(
        cx: *mut SpindleCx,
        dest: *const u8,
        dest_len: usize,
        topic: *const u8,
        topic_len: usize,
        payload: *const u8,
        payload_len: usize,
    ) -> i32,
    /// Starts entry `entry` (`namespace:name`) on host `host` (empty: my host) with `args` (a
    /// MessagePack array; empty: none), tied by `ties` (`TIE_*` bits); its pid in `*pid`.
    pub spawn: unsafe extern "C" fn(
        cx: *mut SpindleCx,
        entry: *const u8,
        entry_len: usize,
        host: *const u8,
        host_len: usize,
        args: *const u8,
        args_len: usize,
        ties: u32,
        pid: *mut u64,
    ) -> i32,
    /// Links me and `pid` both ways.
    pub link: unsafe extern "C" fn(cx: *mut SpindleCx, pid: u64) -> i32,
    /// Removes the link with `pid`.
    pub unlink: unsafe extern "C" fn(cx: *mut SpindleCx, pid: u64) -> i32,
    /// I receive an EXIT event when `pid` ends (at once if it is not alive).
    pub monitor: unsafe extern "C" fn(cx: *mut SpindleCx, pid: u64) -> i32,
    /// Stops monitoring `pid`.
    pub unmonitor: unsafe extern "C" fn(cx: *mut SpindleCx, pid: u64) -> i32,
    /// Sets option `option` (`OPTION_*`) on (`on != 0`) or off.
    pub set_option: unsafe extern "C" fn(cx: *mut SpindleCx, option: u32, on: i32) -> i32,
    /// Registers `name` for `pid` (0: me).
    pub register_name:
        unsafe extern "C" fn(cx: *mut SpindleCx, name: *const u8, name_len: usize, pid: u64) -> i32,
    /// Removes the registration of `name`.
    pub unregister_name:
        unsafe extern "C" fn(cx: *mut SpindleCx, name: *const u8, name_len: usize) -> i32,
    /// The pid registered as `name`, in `*pid`; `E_NOT_FOUND` if none.
    pub lookup: unsafe extern "C" fn(
        cx: *mut SpindleCx,
        name: *const u8,
        name_len: usize,
        pid: *mut u64,
    ) -> i32,
    /// Asks `pid` to stop with an optional `reason` (MessagePack; empty: none).
    pub cancel: unsafe extern "C" fn(
        cx: *mut SpindleCx,
        pid: u64,
        reason: *const u8,
        reason_len: usize,
    ) -> i32,
    /// Stops `pid` hard.
    pub terminate: unsafe extern "C" fn(cx: *mut SpindleCx, pid: u64) -> i32,
    /// Routes messages of `topic` to their own queue (see `receive`).
    pub listen: unsafe extern "C" fn(cx: *mut SpindleCx, topic: *const u8, topic_len: usize) -> i32,
    /// Stops listening to `topic`.
    pub unlisten:
        unsafe extern "C" fn(cx: *mut SpindleCx, topic: *const u8, topic_len: usize) -> i32,
    /// Starts a receive of the next message of `topic` (empty: the inbox, every topic nobody
    /// listens to); its tag in `*tag`.
    pub receive: unsafe extern "C" fn(
        cx: *mut SpindleCx,
        topic: *const u8,
        topic_len: usize,
        tag: *mut u64,
    ) -> i32,
    /// Starts a receive of the next event; its tag in `*tag`.
    pub events: unsafe extern "C" fn(cx: *mut SpindleCx, tag: *mut u64) -> i32,
    /// Starts a timer of `nanos` nanoseconds; its tag in `*tag`.
    pub timer: unsafe extern "C" fn(cx: *mut SpindleCx, nanos: u64, tag: *mut u64) -> i32,
    /// Starts entry `entry` like `spawn` (no ties) and completes with its result; the tag in
    /// `*tag`. The process is stopped (`CANCELED`) if the operation is dropped, or the caller
    /// ends or upgrades, first.
    pub exec: unsafe extern "C" fn(
        cx: *mut SpindleCx,
        entry: *const u8,
        entry_len: usize,
        host: *const u8,
        host_len: usize,
        args: *const u8,
        args_len: usize,
        tag: *mut u64,
    ) -> i32,
    /// The oldest completion not yet taken, in `*out`; [`NONE`] if there is none.
    pub next_completion:
        unsafe extern "C" fn(cx: *mut SpindleCx, out: *mut SpindleCompletion) -> i32,
    /// The completion of operation `tag`, in `*out`; [`NONE`] if it has not completed.
    pub take_completion:
        unsafe extern "C" fn(cx: *mut SpindleCx, tag: u64, out: *mut SpindleCompletion) -> i32,
    /// Abandons operation `tag`; a message or event it already received goes back to its queue.
    pub drop_op: unsafe extern "C" fn(cx: *mut SpindleCx, tag: u64) -> i32,
    /// Sets the value (MessagePack) a later `STEP_EXIT_OK` ends with.
    pub set_result:
        unsafe extern "C" fn(cx: *mut SpindleCx, value: *const u8, value_len: usize) -> i32,
    /// Sets the error (`code`, an `E_*` kind, and a UTF-8 message) a later `STEP_EXIT_ERROR`
    /// or failed `init` ends with.
    pub set_error: unsafe extern "C" fn(
        cx: *mut SpindleCx,
        code: i32,
        message: *const u8,
        message_len: usize,
    ) -> i32,
    /// Sets what a later `STEP_UPGRADE` continues as: entry `entry` (empty: my current entry,
    /// reloaded) with `args` (a MessagePack array; empty: none).
    pub upgrade: unsafe extern "C" fn(
        cx: *mut SpindleCx,
        entry: *const u8,
        entry_len: usize,
        args: *const u8,
        args_len: usize,
    ) -> i32,
    /// The message of the last failed host call on this context, borrowed until the next
    /// failure or the end of the step; [`NONE`] if nothing failed.
    pub last_error:
        unsafe extern "C" fn(cx: *mut SpindleCx, message: *mut *const u8, len: *mut usize) -> i32,
    /// Writes `message` to the runtime's log at `level` (`LOG_*`), naming my pid.
    pub log: unsafe extern "C" fn(
        cx: *mut SpindleCx,
        level: i32,
        message: *const u8,
        message_len: usize,
    ) -> i32,
    /// The text form of `pid` (`{host|0x…}`, as Lua processes see pids), borrowed until the
    /// next `pid_text` call or the end of the step.
    pub pid_text: unsafe extern "C" fn(
        cx: *mut SpindleCx,
        pid: u64,
        text: *mut *const u8,
        len: *mut usize,
    ) -> i32,

    // Appended after version 1's first table: check that `size` covers a field before use.
    /// Like `receive`, but a message already waiting is taken at once: written to `*out`
    /// (borrowed, as from `take_completion`), `*tag` is 0, and the call returns [`OK`]. If none
    /// waits, the receive is started, its tag in `*tag`, and the call returns [`NONE`].
    pub receive_now: unsafe extern "C" fn(
        cx: *mut SpindleCx,
        topic: *const u8,
        topic_len: usize,
        tag: *mut u64,
        out: *mut SpindleCompletion,
    ) -> i32,
    /// How many of my operations are outstanding: started, not dropped, and not completed yet
    /// (what a wait-all waits for).
    pub outstanding: unsafe extern "C" fn(cx: *mut SpindleCx) -> u64,
}

impl SpindleHost {
    /// Whether a host table of `size` bytes has the field that ends at byte `end` (an
    /// `offset_of!` plus the field's size): the growth rule's check before calling a function
    /// appended after version 1.
    pub const fn covers(size: u32, end: usize) -> bool {
        size as usize >= end
    }
}

/// The type of [`PLUGIN_SYMBOL`].
pub type PluginFn = unsafe extern "C" fn() -> *const SpindlePlugin;

/// The name of an error code (`"NOT_FOUND"` for [`E_NOT_FOUND`] …), as the Lua API spells it.
pub fn error_name(code: i32) -> Option<&'static str> {
    Some(match code {
        E_NOT_FOUND => "NOT_FOUND",
        E_ALREADY_EXISTS => "ALREADY_EXISTS",
        E_INVALID => "INVALID",
        E_PERMISSION_DENIED => "PERMISSION_DENIED",
        E_UNAVAILABLE => "UNAVAILABLE",
        E_INTERNAL => "INTERNAL",
        E_CANCELED => "CANCELED",
        E_TIMEOUT => "TIMEOUT",
        E_RATE_LIMITED => "RATE_LIMITED",
        E_UNKNOWN => "UNKNOWN",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn inline_text_lays_out_every_length_in_memory_order() {
        let text = b"0123456789abcdef";
        for n in 0..=16 {
            let words = super::inline_text(&text[..n]);
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&words[0].to_ne_bytes());
            bytes[8..].copy_from_slice(&words[1].to_ne_bytes());
            assert_eq!(&bytes[..n], &text[..n], "length {n}");
            assert!(bytes[n..].iter().all(|&b| b == 0), "length {n}");
        }
    }
    use super::*;
    use core::mem::{offset_of, size_of};

    /// The layout is the contract: these numbers are what `spindle.h` gives a C compiler on a
    /// 64-bit target, and they never change within a major version.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn layout_matches_the_header() {
        assert_eq!(size_of::<SpindlePlugin>(), 32);
        assert_eq!(offset_of!(SpindlePlugin, init), 8);
        assert_eq!(size_of::<SpindleCompletion>(), 80);
        assert_eq!(offset_of!(SpindleCompletion, tag), 8);
        assert_eq!(offset_of!(SpindleCompletion, topic), 32);
        assert_eq!(offset_of!(SpindleCompletion, error_message_len), 72);
        assert_eq!(size_of::<SpindleHost>(), 8 + 31 * 8);
        assert_eq!(offset_of!(SpindleHost, pid), 8);
        assert_eq!(offset_of!(SpindleHost, pid_text), 8 + 28 * 8);
        assert_eq!(offset_of!(SpindleHost, receive_now), 8 + 29 * 8);
        assert_eq!(offset_of!(SpindleHost, outstanding), 8 + 30 * 8);
    }

    #[test]
    fn error_names() {
        assert_eq!(error_name(E_NOT_FOUND), Some("NOT_FOUND"));
        assert_eq!(error_name(E_UNKNOWN), Some("UNKNOWN"));
        assert_eq!(error_name(OK), None);
    }
}
