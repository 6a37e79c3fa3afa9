//! What one step costs a native plugin itself: a ring node's hop (take the token, send it on
//! with one less, start the next receive) against a stub host that does next to nothing; and
//! what a whole `spawn_exit` child costs it (init, its one step, drop).
//!
//! ```sh
//! bash scripts/build-native-examples.sh c rust
//! cargo run --release -p spindle-native --example step_cost [-- LIBRARY.so ... [STEPS]]
//! ```
//!
//! Without libraries it measures the C and Rust example services. Each figure is the best of
//! five runs of STEPS steps (default 2 000 000), in ns per step; the stub host's own share is
//! the same for every plugin, so the differences are the plugins'.

use std::cell::Cell;
use std::error::Error;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::time::Instant;

use spindle_abi::msgpack::{Sink, Writer};
use spindle_abi::*;

/// The tag of the one receive the stub host hands out.
const TAG: u64 = 7;
const TOPIC: &str = "token";

/// What the stub host keeps: the token it delivers next, its MessagePack bytes, and counts.
struct Stub {
    token: Cell<i64>,
    bytes: Cell<[u8; 9]>,
    len: Cell<usize>,
    /// Whether the next receive finds the ring's first message (the successor's pid) waiting.
    successor_waiting: Cell<bool>,
    sends: Cell<u64>,
}

thread_local! {
    static STUB: Stub = const {
        Stub {
            token: Cell::new(0),
            bytes: Cell::new([0; 9]),
            len: Cell::new(0),
            successor_waiting: Cell::new(true),
            sends: Cell::new(0),
        }
    };
}

/// A MessagePack integer, at most 9 bytes.
struct Int([u8; 9], usize);

impl Sink for Int {
    fn put(&mut self, bytes: &[u8]) {
        self.0[self.1..self.1 + bytes.len()].copy_from_slice(bytes);
        self.1 += bytes.len();
    }
}

/// Fills `out` with a message carrying `value`, its bytes kept in the stub until the next call.
///
/// # Safety
/// `out` is a valid completion the guest sized (all of version 1 at least).
unsafe fn deliver(out: *mut SpindleCompletion, topic: &'static str, value: i64) {
    STUB.with(|s| {
        let mut b = Int([0; 9], 0);
        Writer(&mut b).int(value);
        s.bytes.set(b.0);
        s.len.set(b.1);
        // SAFETY: the caller passes a valid completion.
        let c = unsafe { &mut *out };
        c.kind = COMPLETION_MESSAGE;
        c.tag = TAG;
        c.from = 2;
        c.error = 0;
        c.topic = topic.as_ptr();
        c.topic_len = topic.len();
        c.value = s.bytes.as_ptr().cast();
        c.value_len = s.len.get();
    });
}

unsafe extern "C" fn pid(_: *mut SpindleCx) -> u64 {
    1
}

unsafe extern "C" fn send(
    _: *mut SpindleCx,
    _: u64,
    _: *const u8,
    _: usize,
    _: *const u8,
    _: usize,
) -> i32 {
    STUB.with(|s| s.sends.set(s.sends.get() + 1));
    OK
}

unsafe extern "C" fn on_outstanding(_: *mut SpindleCx) -> u64 {
    0
}

unsafe extern "C" fn receive_now(
    _: *mut SpindleCx,
    _: *const u8,
    _: usize,
    tag: *mut u64,
    out: *mut SpindleCompletion,
) -> i32 {
    if STUB.with(|s| s.successor_waiting.replace(false)) {
        // SAFETY: the guest passes valid out pointers.
        unsafe {
            *tag = 0;
            deliver(out, "next", 3);
        }
        return OK;
    }
    // SAFETY: the guest passes a valid out pointer.
    unsafe { *tag = TAG };
    NONE
}

unsafe extern "C" fn take_completion(
    _: *mut SpindleCx,
    tag: u64,
    out: *mut SpindleCompletion,
) -> i32 {
    if tag != TAG {
        return NONE;
    }
    // The token never runs out.
    let token = STUB.with(|s| s.token.replace(s.token.get() + 1));
    // SAFETY: the guest passes a valid completion.
    unsafe { deliver(out, TOPIC, token) };
    OK
}

unsafe extern "C" fn receive(_: *mut SpindleCx, _: *const u8, _: usize, tag: *mut u64) -> i32 {
    // SAFETY: the guest passes a valid out pointer.
    unsafe { *tag = TAG };
    OK
}

// Everything else a ring node never calls: refused.

unsafe extern "C" fn on_pid(_: *mut SpindleCx, _: u64) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_text(_: *mut SpindleCx, _: *const u8, _: usize) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_text_out(_: *mut SpindleCx, _: *const u8, _: usize, _: *mut u64) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_code_text(_: *mut SpindleCx, _: i32, _: *const u8, _: usize) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_two_texts(
    _: *mut SpindleCx,
    _: *const u8,
    _: usize,
    _: *const u8,
    _: usize,
) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_three_texts(
    _: *mut SpindleCx,
    _: *const u8,
    _: usize,
    _: *const u8,
    _: usize,
    _: *const u8,
    _: usize,
) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_three_texts_out(
    _: *mut SpindleCx,
    _: *const u8,
    _: usize,
    _: *const u8,
    _: usize,
    _: *const u8,
    _: usize,
    _: *mut u64,
) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_spawn(
    _: *mut SpindleCx,
    _: *const u8,
    _: usize,
    _: *const u8,
    _: usize,
    _: *const u8,
    _: usize,
    _: u32,
    _: *mut u64,
) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_option(_: *mut SpindleCx, _: u32, _: i32) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_register(_: *mut SpindleCx, _: *const u8, _: usize, _: u64) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_cancel(_: *mut SpindleCx, _: u64, _: *const u8, _: usize) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_tag_out(_: *mut SpindleCx, _: *mut u64) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_timer(_: *mut SpindleCx, _: u64, _: *mut u64) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_next(_: *mut SpindleCx, _: *mut SpindleCompletion) -> i32 {
    NONE
}
unsafe extern "C" fn on_lent_text(_: *mut SpindleCx, _: *mut *const u8, _: *mut usize) -> i32 {
    E_UNAVAILABLE
}
unsafe extern "C" fn on_pid_text(
    _: *mut SpindleCx,
    _: u64,
    _: *mut *const u8,
    _: *mut usize,
) -> i32 {
    E_UNAVAILABLE
}

static HOST: SpindleHost = SpindleHost {
    abi_version: ABI_VERSION,
    size: size_of::<SpindleHost>() as u32,
    pid,
    send,
    send_to: on_three_texts,
    spawn: on_spawn,
    link: on_pid,
    unlink: on_pid,
    monitor: on_pid,
    unmonitor: on_pid,
    set_option: on_option,
    register_name: on_register,
    unregister_name: on_text,
    lookup: on_text_out,
    cancel: on_cancel,
    terminate: on_pid,
    listen: on_text,
    unlisten: on_text,
    receive,
    events: on_tag_out,
    timer: on_timer,
    exec: on_three_texts_out,
    next_completion: on_next,
    take_completion,
    drop_op: on_pid,
    set_result: on_text,
    set_error: on_code_text,
    upgrade: on_two_texts,
    last_error: on_lent_text,
    log: on_code_text,
    pid_text: on_pid_text,
    receive_now,
    outstanding: on_outstanding,
};

/// Loads the plugin in `path` and runs `f` with its table (the library stays loaded for it).
fn with_plugin<R>(
    path: &Path,
    f: impl FnOnce(&SpindlePlugin) -> Result<R, Box<dyn Error>>,
) -> Result<R, Box<dyn Error>> {
    // SAFETY: loading runs the library's initializers; the libraries measured are this
    // project's example services.
    let lib = unsafe { libloading::Library::new(path) }?;
    // SAFETY: the ABI's entry point has this signature (spindle.h).
    let entry = unsafe {
        lib.get::<unsafe extern "C" fn() -> *const SpindlePlugin>(PLUGIN_SYMBOL.as_bytes())
    }?;
    // SAFETY: a plugin returns a pointer to its static table, valid while `lib` is loaded.
    f(unsafe { &*entry() })
}

/// The example services' benchmark arguments: `[role, parent]`.
fn role_args(role: &str, parent: i64) -> Vec<u8> {
    let mut args = Vec::new();
    let mut w = Writer(&mut args);
    w.array(2);
    w.str(role);
    w.int(parent);
    args
}

/// The stub host never looks at its context.
fn stub_cx() -> *mut SpindleCx {
    std::ptr::dangling_mut::<SpindleCx>()
}

/// Best-of-five ns per step of `plugin` (from `path`) as a ring node.
fn measure(plugin: &SpindlePlugin, path: &Path, steps: u64) -> Result<f64, Box<dyn Error>> {
    let args = role_args("ring", 1);
    let cx = stub_cx();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        STUB.with(|s| {
            s.successor_waiting.set(true);
            s.sends.set(0);
        });
        let mut state: *mut c_void = std::ptr::null_mut();
        // SAFETY: the host table and arguments as `init` expects them; `state` is written.
        let rc = unsafe { (plugin.init)(&HOST, cx, args.as_ptr(), args.len(), &mut state) };
        if rc != OK {
            return Err(format!("{}: init returned {rc}", path.display()).into());
        }
        // The first step learns the successor and reports ready; each later one is a hop.
        // SAFETY: `state` from `init`, stepped on this thread only.
        unsafe { (plugin.step)(state, &HOST, cx) };
        let t0 = Instant::now();
        for _ in 0..steps {
            // SAFETY: as above.
            unsafe { (plugin.step)(state, &HOST, cx) };
        }
        best = best.min(t0.elapsed().as_nanos() as f64 / steps as f64);
        // SAFETY: `state` from `init`, dropped once.
        unsafe { (plugin.drop)(state) };
        let sends = STUB.with(|s| s.sends.get());
        if sends != steps + 1 {
            return Err(format!("{}: {sends} sends in {steps} steps", path.display()).into());
        }
    }
    Ok(best)
}

/// Best-of-five ns per process of `plugin` (from `path`) for a whole `spawn_exit` child: init
/// with `["done", parent]`, the one step (a send, then the end), drop.
fn measure_child(
    plugin: &SpindlePlugin,
    path: &Path,
    children: u64,
) -> Result<f64, Box<dyn Error>> {
    let args = role_args("done", 0x0123_4567);
    let cx = stub_cx();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        STUB.with(|s| s.sends.set(0));
        let t0 = Instant::now();
        for _ in 0..children {
            let mut state: *mut c_void = std::ptr::null_mut();
            // SAFETY: as in `measure`; each state is stepped and dropped once.
            let rc = unsafe {
                let rc = (plugin.init)(&HOST, cx, args.as_ptr(), args.len(), &mut state);
                if rc == OK {
                    let end = (plugin.step)(state, &HOST, cx);
                    (plugin.drop)(state);
                    end
                } else {
                    rc
                }
            };
            if rc != STEP_EXIT_OK {
                return Err(format!("{}: a child ended with {rc}", path.display()).into());
            }
        }
        best = best.min(t0.elapsed().as_nanos() as f64 / children as f64);
        let sends = STUB.with(|s| s.sends.get());
        if sends != children {
            return Err(
                format!("{}: {sends} sends from {children} children", path.display()).into()
            );
        }
    }
    Ok(best)
}

fn main() -> Result<(), Box<dyn Error>> {
    let (mut libs, mut steps) = (Vec::new(), 2_000_000);
    for arg in std::env::args().skip(1) {
        match arg.parse() {
            Ok(n) => steps = n,
            Err(_) => libs.push(PathBuf::from(arg)),
        }
    }
    if libs.is_empty() {
        let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        for lang in ["c", "rust"] {
            libs.push(examples.join(format!("native-{lang}/libservice_{lang}.so")));
        }
    }
    for lib in &libs {
        let (step, child) =
            with_plugin(lib, |p| Ok((measure(p, lib, steps)?, measure_child(p, lib, steps / 4)?)))?;
        println!("{step:7.1} ns/step  {}", lib.display());
        println!("{child:7.1} ns/child {}", lib.display());
    }
    Ok(())
}
