//! The host functions handed to plugins, and the per-call state `spindle_cx *` points at.
//!
//! Every function here is `extern "C"` and is entered from plugin code: nothing may unwind out
//! of it. Each body runs inside [`status`] / [`guard`], which catch a panic and turn it into
//! `E_INTERNAL` with a message for `last_error`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use spindle_abi::msgpack::{Sink, Writer};
use spindle_abi::*;
use spindle_runtime::{
    Completion, Cx, EntryId, Error, ErrorKind, EventKind, Op, Pid, Spawn, Tag, Ties, Value,
};

use crate::log::{Level, Logger};

/// What a process's code asked to end with, through `set_result`, `set_error`, `upgrade`.
#[derive(Debug, Default)]
pub(crate) enum Ending {
    /// Nothing asked.
    #[default]
    None,
    /// `set_result`.
    Result(Value),
    /// `set_error`.
    Error(Error),
    /// `upgrade`.
    Upgrade(Option<EntryId>, Vec<Value>),
}

/// The state behind `spindle_cx *` during one `init` or `step` call. It lives on the worker's
/// stack for the length of the call; borrowed data handed to the plugin points into it.
pub(crate) struct Call<'a> {
    pub(crate) cx: &'a Cx,
    log: &'a Logger,
    pub(crate) ending: Ending,
    /// The completion whose fields were handed out last (its topic and error message are
    /// borrowed by the plugin), and its value as MessagePack: in `scalar` when it is a nil,
    /// boolean, integer or float (no allocation), else in `value`.
    completion: Option<Completion>,
    value: Vec<u8>,
    scalar: Scalar,
    last_error: Option<String>,
    pid_text: String,
}

impl<'a> Call<'a> {
    pub(crate) fn new(cx: &'a Cx, log: &'a Logger) -> Call<'a> {
        Call {
            cx,
            log,
            ending: Ending::None,
            completion: None,
            value: Vec::new(),
            scalar: Scalar([0; 9], 0),
            last_error: None,
            pid_text: String::new(),
        }
    }

    /// The opaque pointer the plugin receives.
    pub(crate) fn as_cx(&mut self) -> *mut SpindleCx {
        (self as *mut Call<'a>).cast()
    }

    fn fail(&mut self, e: &Error) -> i32 {
        self.last_error = Some(e.message().to_owned());
        code_of(e.kind())
    }

    /// The live process `serial` names, or — for one that has ended — a pid with that serial,
    /// so that signals to it behave as they do for any dead process.
    fn pid(&self, serial: u64) -> Result<Pid, Error> {
        if serial == 0 {
            return Err(Error::new(ErrorKind::Invalid, "pid 0 names no process"));
        }
        if let Some(p) = self.cx.pid_from_serial(serial) {
            return Ok(p);
        }
        // Pids are never reused, so the serial alone identifies the process that ended; the
        // host part only matters for printing.
        format!("{{{}|{serial:#010x}}}", self.cx.host()).parse()
    }

    /// Hands `c` to the plugin through `out`, whose `size` [`check_out`] gave (checked before
    /// `c` was taken, so that a bad pointer loses nothing); its borrowed fields stay valid until
    /// the next completion is handed out or the call ends.
    fn hand_out(&mut self, tag: Tag, c: Completion, out: *mut SpindleCompletion, size: u32) {
        self.completion = Some(c);
        self.hand_out_kept(tag, out, size);
    }

    /// [`Call::hand_out`] of the completion already in `self.completion` (where the plugin
    /// borrows its topic from), described where it lies.
    fn hand_out_kept(&mut self, tag: Tag, out: *mut SpindleCompletion, size: u32) {
        let Some(c) = &self.completion else { return };
        self.value.clear();
        let mut fill = SpindleCompletion { size, tag: tag.get(), ..SpindleCompletion::new() };
        // Error messages live on the heap: their pointers stay valid when `c` moves.
        let error = |fill: &mut SpindleCompletion, e: &Error| {
            fill.error = code_of(e.kind());
            fill.error_message = e.message().as_ptr();
            fill.error_message_len = e.message().len();
        };
        let mut value = None;
        match c {
            Completion::Message(m) => {
                fill.kind = COMPLETION_MESSAGE;
                fill.from = m.from.serial();
                value = Some(&m.payload);
            }
            Completion::Event(e) => {
                fill.kind = COMPLETION_EVENT;
                fill.from = e.from.serial();
                fill.event = match e.kind {
                    EventKind::Exit => EVENT_EXIT,
                    EventKind::LinkDown => EVENT_LINK_DOWN,
                    EventKind::Cancel => EVENT_CANCEL,
                    EventKind::Outdated => EVENT_OUTDATED,
                };
                match &e.result {
                    Some(Ok(v)) => value = Some(v),
                    Some(Err(err)) => error(&mut fill, err),
                    None => value = e.reason.as_ref(),
                }
            }
            Completion::Timer => fill.kind = COMPLETION_TIMER,
            Completion::Exit(r) => {
                fill.kind = COMPLETION_EXIT;
                match r {
                    Ok(v) => value = Some(v),
                    Err(e) => error(&mut fill, e),
                }
            }
            Completion::Failed(e) => {
                fill.kind = COMPLETION_FAILED;
                error(&mut fill, e);
            }
        }
        if let Some(v) = value {
            let bytes = packed(v, &mut self.scalar, &mut self.value);
            fill.value = bytes.as_ptr();
            fill.value_len = bytes.len();
        }
        // A short topic is stored inline: its pointer is taken where it stays.
        if let Some(Completion::Message(m)) = &self.completion {
            fill.topic = m.topic.as_str().as_ptr();
            fill.topic_len = m.topic.len();
        }
        // SAFETY: `check_out` found it non-null and at least version 1's size; only
        // version 1's fields are written (`fill.size` keeps the guest's own size).
        unsafe { out.write(fill) };
    }
}

/// The guest's `spindle_completion.size`, checked: `out` must be non-null and at least this
/// ABI version's struct.
fn check_out(out: *mut SpindleCompletion) -> Result<u32, Error> {
    if out.is_null() {
        return Err(invalid("the completion pointer is NULL"));
    }
    // SAFETY: `out` is non-null and, by the contract, points at a writable spindle_completion
    // whose first field the guest set.
    let size = unsafe { (*out).size };
    let v1 = size_of::<SpindleCompletion>() as u32;
    if size < v1 {
        return Err(invalid(format!(
            "spindle_completion.size is {size}; ABI version {ABI_VERSION} needs {v1} (set it to \
             sizeof(spindle_completion))"
        )));
    }
    Ok(size)
}

/// `v` as MessagePack: in `scalar` when it is one (most payloads are; no allocation), else
/// appended to `heap`.
fn packed<'b>(v: &Value, scalar: &'b mut Scalar, heap: &'b mut Vec<u8>) -> &'b [u8] {
    match *v {
        Value::Nil => scalar.of(|w| w.nil()),
        Value::Bool(b) => scalar.of(|w| w.bool(b)),
        Value::Int(i) => scalar.of(|w| w.int(i)),
        Value::Float(x) => scalar.of(|w| w.float(x)),
        _ => {
            v.write_msgpack(heap);
            heap
        }
    }
}

/// The MessagePack bytes of one scalar (at most 9).
struct Scalar([u8; 9], usize);

impl Scalar {
    /// What `write` writes, in place of the previous scalar.
    fn of(&mut self, write: impl FnOnce(&mut Writer<'_, Scalar>)) -> &[u8] {
        self.1 = 0;
        write(&mut Writer(self));
        &self.0[..self.1]
    }
}

impl Sink for Scalar {
    fn put(&mut self, bytes: &[u8]) {
        self.0[self.1..self.1 + bytes.len()].copy_from_slice(bytes);
        self.1 += bytes.len();
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Invalid, msg)
}

/// The ABI's code for an error kind.
pub(crate) fn code_of(kind: ErrorKind) -> i32 {
    (E_UNKNOWN..=E_NOT_FOUND).find(|&c| error_name(c) == Some(kind.name())).unwrap_or(E_UNKNOWN)
}

/// The error kind of an ABI code (`UNKNOWN` for codes the ABI does not define).
pub(crate) fn kind_of(code: i32) -> ErrorKind {
    error_name(code).and_then(ErrorKind::from_name).unwrap_or(ErrorKind::Unknown)
}

/// Runs `f` on the call behind `cx`, catching panics; `fail` is returned for a null context or
/// a panic.
fn guard<R>(cx: *mut SpindleCx, fail: R, f: impl FnOnce(&mut Call<'_>) -> R) -> R {
    if cx.is_null() {
        return fail;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: a non-null `cx` is the pointer `Call::as_cx` gave the plugin for the init or
        // step call still running (the contract allows no other use), and the worker does not
        // touch the `Call` until the plugin returns: this is the only reference to it.
        let call = unsafe { &mut *cx.cast::<Call<'_>>() };
        f(call)
    }));
    r.unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        // SAFETY: as above; the reference inside the closure ended with the unwind.
        let call = unsafe { &mut *cx.cast::<Call<'_>>() };
        call.last_error = Some(format!("host function panicked: {msg}"));
        fail
    })
}

/// [`guard`] for functions that return a status code.
fn status(cx: *mut SpindleCx, f: impl FnOnce(&mut Call<'_>) -> Result<(), Error>) -> i32 {
    guard(cx, E_INTERNAL, |call| match f(call) {
        Ok(()) => OK,
        Err(e) => call.fail(&e),
    })
}

/// The byte string `(ptr, len)`.
///
/// # Safety
/// Unless `len` is 0, `ptr` must point at `len` readable bytes that stay unchanged while the
/// returned slice is used (the contract: arguments are valid for the call).
unsafe fn bytes<'b>(ptr: *const u8, len: usize) -> Result<&'b [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(invalid(format!("a NULL pointer with length {len}")));
    }
    // SAFETY: non-null, and the caller vouches for `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The UTF-8 string `(ptr, len)`, naming it `what` in errors.
///
/// # Safety
/// As for [`bytes`].
unsafe fn text<'b>(ptr: *const u8, len: usize, what: &str) -> Result<&'b str, Error> {
    // SAFETY: forwarded to the caller.
    let b = unsafe { bytes(ptr, len) }?;
    // Topics and names are mostly short and ASCII: checked in line, without the general
    // validator's call.
    if b.len() <= 16 && b.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(b) });
    }
    std::str::from_utf8(b).map_err(|_| invalid(format!("the {what} is not UTF-8")))
}

/// A payload: empty bytes are nil.
///
/// # Safety
/// As for [`bytes`].
unsafe fn payload(ptr: *const u8, len: usize) -> Result<Value, Error> {
    // SAFETY: forwarded to the caller.
    let b = unsafe { bytes(ptr, len) }?;
    if b.is_empty() { Ok(Value::Nil) } else { Value::from_msgpack(b) }
}

/// Spawn or upgrade arguments: a MessagePack array, or nothing.
///
/// # Safety
/// As for [`bytes`].
unsafe fn args(ptr: *const u8, len: usize) -> Result<Vec<Value>, Error> {
    // SAFETY: forwarded to the caller.
    match unsafe { payload(ptr, len) }? {
        Value::Nil => Ok(Vec::new()),
        Value::Array(a) => Ok(a),
        other => Err(invalid(format!("arguments must be a MessagePack array, got {other:?}"))),
    }
}

/// An entry id `namespace:name`.
///
/// # Safety
/// As for [`bytes`].
unsafe fn entry_id(ptr: *const u8, len: usize) -> Result<EntryId, Error> {
    // SAFETY: forwarded to the caller.
    unsafe { text(ptr, len, "entry id") }?.parse()
}

/// Writes `v` through the out pointer `out`.
///
/// # Safety
/// `out` must be null or valid for a write of `T`.
unsafe fn put<T>(out: *mut T, v: T) -> Result<(), Error> {
    if out.is_null() {
        return Err(invalid("an out pointer is NULL"));
    }
    // SAFETY: non-null, and the caller vouches for its validity.
    unsafe { out.write(v) };
    Ok(())
}

/// The spawn description of `spawn` and `exec`.
///
/// # Safety
/// As for [`bytes`], for each pair.
unsafe fn spawn_of(
    call: &Call<'_>,
    entry: (*const u8, usize),
    host: (*const u8, usize),
    a: (*const u8, usize),
) -> Result<Spawn, Error> {
    // SAFETY: forwarded to the caller, pair by pair.
    let (entry, host, a) = unsafe {
        (entry_id(entry.0, entry.1)?, text(host.0, host.1, "host name")?, args(a.0, a.1)?)
    };
    let host = if host.is_empty() { call.cx.host() } else { host };
    Ok(Spawn::entry(entry, host.to_owned()).args(a))
}

unsafe extern "C" fn pid(cx: *mut SpindleCx) -> u64 {
    guard(cx, 0, |call| call.cx.pid().serial())
}

unsafe extern "C" fn outstanding(cx: *mut SpindleCx) -> u64 {
    guard(cx, 0, |call| call.cx.outstanding() as u64)
}

unsafe extern "C" fn send(
    cx: *mut SpindleCx,
    to: u64,
    topic: *const u8,
    topic_len: usize,
    data: *const u8,
    data_len: usize,
) -> i32 {
    status(cx, |call| {
        if to == 0 {
            return Err(Error::new(ErrorKind::Invalid, "pid 0 names no process"));
        }
        // SAFETY: the contract: byte strings are valid for the call.
        let (topic, data) = unsafe { (text(topic, topic_len, "topic")?, bytes(data, data_len)?) };
        call.cx.send_serial_msgpack(to, topic, data)
    })
}

unsafe extern "C" fn send_to(
    cx: *mut SpindleCx,
    dest: *const u8,
    dest_len: usize,
    topic: *const u8,
    topic_len: usize,
    data: *const u8,
    data_len: usize,
) -> i32 {
    status(cx, |call| {
        // SAFETY: the contract: byte strings are valid for the call.
        let (dest, topic, data) = unsafe {
            (
                text(dest, dest_len, "destination")?,
                text(topic, topic_len, "topic")?,
                payload(data, data_len)?,
            )
        };
        call.cx.send(dest, topic, data)
    })
}

unsafe extern "C" fn spawn(
    cx: *mut SpindleCx,
    entry: *const u8,
    entry_len: usize,
    host: *const u8,
    host_len: usize,
    a: *const u8,
    a_len: usize,
    ties: u32,
    out: *mut u64,
) -> i32 {
    status(cx, |call| {
        // Checked before the child starts: a spawn that fails must have started nothing (a
        // linked child the plugin never learnt of could take it down).
        if out.is_null() {
            return Err(invalid("the pid pointer is NULL"));
        }
        // SAFETY: the contract: byte strings are valid for the call.
        let s = unsafe { spawn_of(call, (entry, entry_len), (host, host_len), (a, a_len)) }?;
        let ties = Ties { link: ties & TIE_LINK != 0, monitor: ties & TIE_MONITOR != 0 };
        let pid = call.cx.spawn(s, ties)?;
        // SAFETY: the contract: out pointers are valid for the call.
        unsafe { put(out, pid.serial()) }
    })
}

unsafe extern "C" fn link(cx: *mut SpindleCx, p: u64) -> i32 {
    status(cx, |call| call.cx.link(call.pid(p)?))
}

unsafe extern "C" fn unlink(cx: *mut SpindleCx, p: u64) -> i32 {
    status(cx, |call| {
        call.cx.unlink(call.pid(p)?);
        Ok(())
    })
}

unsafe extern "C" fn monitor(cx: *mut SpindleCx, p: u64) -> i32 {
    status(cx, |call| {
        call.cx.monitor(call.pid(p)?);
        Ok(())
    })
}

unsafe extern "C" fn unmonitor(cx: *mut SpindleCx, p: u64) -> i32 {
    status(cx, |call| {
        call.cx.unmonitor(call.pid(p)?);
        Ok(())
    })
}

unsafe extern "C" fn set_option(cx: *mut SpindleCx, option: u32, on: i32) -> i32 {
    status(cx, |call| match option {
        OPTION_TRAP_LINKS => {
            call.cx.set_trap_links(on != 0);
            Ok(())
        }
        OPTION_UPGRADABLE => {
            call.cx.set_upgradable(on != 0);
            Ok(())
        }
        other => Err(invalid(format!("unknown option {other}"))),
    })
}

unsafe extern "C" fn register_name(cx: *mut SpindleCx, name: *const u8, len: usize, p: u64) -> i32 {
    status(cx, |call| {
        // SAFETY: the contract: byte strings are valid for the call.
        let name = unsafe { text(name, len, "name") }?;
        let p = if p == 0 { None } else { Some(call.pid(p)?) };
        call.cx.register(name, p)
    })
}

unsafe extern "C" fn unregister_name(cx: *mut SpindleCx, name: *const u8, len: usize) -> i32 {
    status(cx, |call| {
        // SAFETY: the contract: byte strings are valid for the call.
        call.cx.unregister(unsafe { text(name, len, "name") }?)
    })
}

unsafe extern "C" fn lookup(cx: *mut SpindleCx, name: *const u8, len: usize, out: *mut u64) -> i32 {
    status(cx, |call| {
        // SAFETY: the contract: byte strings are valid for the call.
        let name = unsafe { text(name, len, "name") }?;
        let p = call.cx.lookup(name).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, format!("no process is registered as `{name}`"))
        })?;
        // SAFETY: the contract: out pointers are valid for the call.
        unsafe { put(out, p.serial()) }
    })
}

unsafe extern "C" fn cancel(cx: *mut SpindleCx, p: u64, reason: *const u8, len: usize) -> i32 {
    status(cx, |call| {
        // SAFETY: the contract: byte strings are valid for the call.
        let reason = if len == 0 { None } else { Some(unsafe { payload(reason, len) }?) };
        call.cx.cancel(call.pid(p)?, reason)
    })
}

unsafe extern "C" fn terminate(cx: *mut SpindleCx, p: u64) -> i32 {
    status(cx, |call| call.cx.terminate(call.pid(p)?))
}

unsafe extern "C" fn listen(cx: *mut SpindleCx, topic: *const u8, len: usize) -> i32 {
    // SAFETY: the contract: byte strings are valid for the call.
    status(cx, |call| call.cx.listen(unsafe { text(topic, len, "topic") }?))
}

unsafe extern "C" fn unlisten(cx: *mut SpindleCx, topic: *const u8, len: usize) -> i32 {
    // SAFETY: the contract: byte strings are valid for the call.
    status(cx, |call| call.cx.unlisten(unsafe { text(topic, len, "topic") }?))
}

/// Starts `op` and writes its tag to `out`.
///
/// # Safety
/// `out` as for [`put`].
unsafe fn start(call: &Call<'_>, op: Op, out: *mut u64) -> Result<(), Error> {
    if out.is_null() {
        return Err(invalid("the tag pointer is NULL"));
    }
    let tag = call.cx.start(op);
    // SAFETY: checked non-null; the caller vouches for its validity.
    unsafe { out.write(tag.get()) };
    Ok(())
}

unsafe extern "C" fn receive(
    cx: *mut SpindleCx,
    topic: *const u8,
    len: usize,
    out: *mut u64,
) -> i32 {
    status(cx, |call| {
        // SAFETY: the contract: byte strings and out pointers are valid for the call.
        unsafe {
            let topic = text(topic, len, "topic")?;
            let topic = (!topic.is_empty()).then(|| topic.to_owned());
            start(call, Op::Receive { topic }, out)
        }
    })
}

unsafe extern "C" fn receive_now(
    cx: *mut SpindleCx,
    topic: *const u8,
    len: usize,
    tag_out: *mut u64,
    out: *mut SpindleCompletion,
) -> i32 {
    guard(cx, E_INTERNAL, |call| {
        let r = (|| {
            // Both out pointers are checked before a message is taken, so that none is lost.
            if tag_out.is_null() {
                return Err(invalid("the tag pointer is NULL"));
            }
            let size = check_out(out)?;
            // SAFETY: the contract: byte strings are valid for the call.
            let topic = unsafe { text(topic, len, "topic") }?;
            let topic = (!topic.is_empty()).then(|| topic.to_owned());
            match call.cx.start_or_take(Op::Receive { topic }) {
                Ok(c) => {
                    // SAFETY: checked non-null; the caller vouches for its validity.
                    unsafe { tag_out.write(0) };
                    call.hand_out(Tag::from_raw(0), c, out, size);
                    Ok(OK)
                }
                Err(tag) => {
                    // SAFETY: as above.
                    unsafe { tag_out.write(tag.get()) };
                    Ok(NONE)
                }
            }
        })();
        r.unwrap_or_else(|e| call.fail(&e))
    })
}

unsafe extern "C" fn events(cx: *mut SpindleCx, out: *mut u64) -> i32 {
    // SAFETY: the contract: out pointers are valid for the call.
    status(cx, |call| unsafe { start(call, Op::Event, out) })
}

unsafe extern "C" fn timer(cx: *mut SpindleCx, nanos: u64, out: *mut u64) -> i32 {
    // SAFETY: the contract: out pointers are valid for the call.
    status(cx, |call| unsafe { start(call, Op::Sleep(Duration::from_nanos(nanos)), out) })
}

unsafe extern "C" fn exec(
    cx: *mut SpindleCx,
    entry: *const u8,
    entry_len: usize,
    host: *const u8,
    host_len: usize,
    a: *const u8,
    a_len: usize,
    out: *mut u64,
) -> i32 {
    status(cx, |call| {
        // SAFETY: the contract: byte strings and out pointers are valid for the call.
        unsafe {
            let s = spawn_of(call, (entry, entry_len), (host, host_len), (a, a_len))?;
            start(call, Op::Exec(s), out)
        }
    })
}

unsafe extern "C" fn next_completion(cx: *mut SpindleCx, out: *mut SpindleCompletion) -> i32 {
    guard(cx, E_INTERNAL, |call| {
        // The out pointer is checked before a completion is taken, so that none is lost.
        let size = match check_out(out) {
            Ok(size) => size,
            Err(e) => return call.fail(&e),
        };
        match call.cx.next_completion() {
            None => NONE,
            Some((tag, c)) => {
                call.hand_out(tag, c, out, size);
                OK
            }
        }
    })
}

unsafe extern "C" fn take_completion(
    cx: *mut SpindleCx,
    tag: u64,
    out: *mut SpindleCompletion,
) -> i32 {
    let tag = Tag::from_raw(tag);
    guard(cx, E_INTERNAL, |call| {
        // As in `next_completion`: nothing is taken for a bad out pointer.
        let size = match check_out(out) {
            Ok(size) => size,
            Err(e) => return call.fail(&e),
        };
        if !call.cx.take_completion_into(tag, &mut call.completion) {
            return NONE;
        }
        call.hand_out_kept(tag, out, size);
        OK
    })
}

unsafe extern "C" fn drop_op(cx: *mut SpindleCx, tag: u64) -> i32 {
    status(cx, |call| {
        call.cx.drop_op(Tag::from_raw(tag));
        Ok(())
    })
}

unsafe extern "C" fn set_result(cx: *mut SpindleCx, value: *const u8, len: usize) -> i32 {
    status(cx, |call| {
        // SAFETY: the contract: byte strings are valid for the call.
        call.ending = Ending::Result(unsafe { payload(value, len) }?);
        Ok(())
    })
}

unsafe extern "C" fn set_error(cx: *mut SpindleCx, code: i32, msg: *const u8, len: usize) -> i32 {
    status(cx, |call| {
        // SAFETY: the contract: byte strings are valid for the call.
        let msg = unsafe { bytes(msg, len) }?;
        let msg = String::from_utf8_lossy(msg);
        call.ending = Ending::Error(Error::new(kind_of(code), msg));
        Ok(())
    })
}

unsafe extern "C" fn upgrade(
    cx: *mut SpindleCx,
    entry: *const u8,
    entry_len: usize,
    a: *const u8,
    a_len: usize,
) -> i32 {
    status(cx, |call| {
        // SAFETY: the contract: byte strings are valid for the call.
        let (entry, a) = unsafe {
            let entry = if entry_len == 0 { None } else { Some(entry_id(entry, entry_len)?) };
            (entry, args(a, a_len)?)
        };
        call.ending = Ending::Upgrade(entry, a);
        Ok(())
    })
}

unsafe extern "C" fn last_error(cx: *mut SpindleCx, msg: *mut *const u8, len: *mut usize) -> i32 {
    guard(cx, E_INTERNAL, |call| {
        let Some(e) = &call.last_error else { return NONE };
        let (p, n) = (e.as_ptr(), e.len());
        // SAFETY: the contract: out pointers are valid for the call.
        match unsafe { put(msg, p).and_then(|()| put(len, n)) } {
            Ok(()) => OK,
            Err(_) => E_INVALID,
        }
    })
}

unsafe extern "C" fn log(cx: *mut SpindleCx, level: i32, msg: *const u8, len: usize) -> i32 {
    status(cx, |call| {
        // SAFETY: the contract: byte strings are valid for the call.
        let msg = String::from_utf8_lossy(unsafe { bytes(msg, len) }?);
        let level = Level::from_code(level).ok_or_else(|| invalid(format!("log level {level}")))?;
        (call.log)(call.cx.pid(), level, &msg);
        Ok(())
    })
}

unsafe extern "C" fn pid_text(
    cx: *mut SpindleCx,
    p: u64,
    out: *mut *const u8,
    len: *mut usize,
) -> i32 {
    status(cx, |call| {
        call.pid_text = call.pid(p)?.to_string();
        let (ptr, n) = (call.pid_text.as_ptr(), call.pid_text.len());
        // SAFETY: the contract: out pointers are valid for the call.
        unsafe { put(out, ptr).and_then(|()| put(len, n)) }
    })
}

/// The table every plugin receives.
pub(crate) static HOST: SpindleHost = SpindleHost {
    abi_version: ABI_VERSION,
    size: size_of::<SpindleHost>() as u32,
    pid,
    send,
    send_to,
    spawn,
    link,
    unlink,
    monitor,
    unmonitor,
    set_option,
    register_name,
    unregister_name,
    lookup,
    cancel,
    terminate,
    listen,
    unlisten,
    receive,
    events,
    timer,
    exec,
    next_completion,
    take_completion,
    drop_op,
    set_result,
    set_error,
    upgrade,
    last_error,
    log,
    pid_text,
    receive_now,
    outstanding,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_and_kinds_map_both_ways() {
        for kind in ErrorKind::ALL {
            assert_eq!(kind_of(code_of(kind)), kind);
        }
        assert_eq!(code_of(ErrorKind::NotFound), E_NOT_FOUND);
        assert_eq!(kind_of(12345), ErrorKind::Unknown);
    }

    #[test]
    fn values_are_packed_as_the_runtime_writes_them() {
        let (mut scalar, mut heap) = (Scalar([0; 9], 0), Vec::new());
        let values = [
            Value::Nil,
            Value::Bool(true),
            Value::Int(-1),
            Value::Int(1 << 40),
            Value::Int(i64::MIN),
            Value::Float(0.5),
            Value::from("text"),
            Value::Array(vec![Value::Int(1)]),
        ];
        for v in values {
            heap.clear();
            assert_eq!(packed(&v, &mut scalar, &mut heap), v.to_msgpack(), "{v:?}");
        }
    }

    /// A plugin's text is checked as UTF-8 whatever its length: short ASCII in line, the rest
    /// by the general validator; what is not UTF-8 is refused, naming what it was.
    #[test]
    fn text_from_a_plugin_must_be_utf8() {
        let check = |b: &[u8]| {
            // SAFETY: the slice is valid for the call.
            unsafe { text(b.as_ptr(), b.len(), "topic") }.map(str::to_owned)
        };
        for ok in [
            "",
            "token",
            "sixteen-bytes-ok",
            "a longer topic than sixteen bytes",
            "héllo",
            "ünïcödé-and-longer-than-16",
        ] {
            assert_eq!(check(ok.as_bytes()).as_deref(), Ok(ok));
        }
        for bad in [&b"\xff"[..], b"tok\x80n", b"a long topic that ends badly \xc3", b"\xc3("] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.message(), "the topic is not UTF-8", "{bad:?}");
        }
        // SAFETY: a null pointer is what is checked.
        assert!(unsafe { text(std::ptr::null(), 3, "topic") }.is_err());
    }
}
