//! Prototypes (a loaded library) and processes (one plugin instance each).

use std::ffi::c_void;
use std::fmt;
use std::sync::Arc;

use spindle_abi::*;
use spindle_runtime::{
    Cx, Error, ErrorKind, Instance, Lease, LeaseCount, Leased, Placement, Process, ProcessBox,
    Prototype, Result, Step, Value, WaitFor,
};

use crate::host::{Call, Ending, HOST, kind_of};
use crate::library::Library;
use crate::log::Logger;

/// A loaded plugin library and where its processes log.
pub(crate) struct Plugin {
    pub(crate) lib: Arc<Library>,
    pub(crate) log: Logger,
    /// Its processes' references.
    pub(crate) leases: LeaseCount,
}

// SAFETY: its own count, used only by leases.
unsafe impl Leased for Plugin {
    fn lease_count(&self) -> &LeaseCount {
        &self.leases
    }
}

impl Plugin {
    fn table(&self) -> &SpindlePlugin {
        &self.lib.table
    }

    /// The error the plugin set, or one saying it set none.
    fn failure(&self, call: &mut Call<'_>, what: &str) -> Error {
        match std::mem::take(&mut call.ending) {
            Ending::Error(e) => e,
            _ => Error::new(
                ErrorKind::Unknown,
                format!("plugin {} {what} without set_error", self.lib.path.display()),
            ),
        }
    }

    fn init(&self, call: &mut Call<'_>, args: &[u8]) -> Result<*mut c_void> {
        let args: &[u8] = if args.is_empty() { &EMPTY_ARGS } else { args };
        let mut state = std::ptr::null_mut();
        // SAFETY: `init` comes from a table checked for this ABI version; the arguments are
        // valid for the call, `call` outlives it, and `state` is a valid out pointer.
        let rc = unsafe {
            (self.table().init)(&HOST, call.as_cx(), args.as_ptr(), args.len(), &mut state)
        };
        if rc == OK {
            return Ok(state);
        }
        let set = matches!(call.ending, Ending::Error(_));
        let e = self.failure(call, "init failed");
        // A plugin that returned an error code without set_error still says which kind.
        Err(if set || rc >= 0 { e } else { Error::new(kind_of(rc), e.message()) })
    }

    fn step(&self, call: &mut Call<'_>, state: *mut c_void) -> Step {
        // SAFETY: `step` comes from a table checked for this ABI version; `state` is what this
        // instance's `init` returned and is used by one thread at a time; `call` outlives the
        // call.
        let rc = unsafe { (self.table().step)(state, &HOST, call.as_cx()) };
        match rc {
            STEP_WAIT_ANY => Step::Wait(WaitFor::Any),
            STEP_WAIT_ALL => Step::Wait(WaitFor::All),
            STEP_YIELD => Step::Yield,
            STEP_EXIT_OK => Step::Exit(Ok(match std::mem::take(&mut call.ending) {
                Ending::Result(v) => v,
                _ => Value::Nil,
            })),
            STEP_EXIT_ERROR => Step::Exit(Err(self.failure(call, "exited with an error"))),
            STEP_UPGRADE => match std::mem::take(&mut call.ending) {
                Ending::Upgrade(entry, args) => Step::Upgrade { entry, args },
                _ => Step::Exit(Err(Error::new(
                    ErrorKind::Invalid,
                    format!(
                        "plugin {} returned SPINDLE_STEP_UPGRADE without calling upgrade",
                        self.lib.path.display()
                    ),
                ))),
            },
            other => Step::Exit(Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "plugin {} step returned {other}, which is not a SPINDLE_STEP_* code",
                    self.lib.path.display()
                ),
            ))),
        }
    }
}

/// A prototype: the plugin, shared by its processes.
pub(crate) struct NativePrototype(pub(crate) Arc<Plugin>);

impl fmt::Debug for NativePrototype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NativePrototype").field(&self.0.lib).finish()
    }
}

impl Prototype for NativePrototype {
    fn instantiate(&self, args: Vec<Value>, _: &Placement<'_>) -> Result<Instance> {
        let args = Args::encode(args);
        let process = NativeProcess { plugin: Lease::new(&self.0), phase: Phase::Fresh(args) };
        Ok(Instance { process: ProcessBox::new(process), strand: None })
    }
}

thread_local! {
    /// Where a spawning thread encodes arguments before keeping them (see [`Args`]).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Spawn arguments as MessagePack, encoded by the spawner and kept in place when short (most
/// are): the spawner frees the values it was given, and the worker that runs the process
/// (often another one) frees nothing the spawner allocated, which for a parent spawning in a
/// loop cost the children's worker a remote free per value.
enum Args {
    /// None: `init` gets a static `[]`.
    Empty,
    Inline(u8, [u8; Args::INLINE]),
    Heap(Box<[u8]>),
}

impl Args {
    /// Short enough that a fresh instance is no larger than a running one.
    const INLINE: usize = 22;
    /// The most a thread's encoding buffer keeps between spawns.
    const SCRATCH_KEPT: usize = 4096;

    fn encode(args: Vec<Value>) -> Args {
        if args.is_empty() {
            return Args::Empty;
        }
        let value = Value::Array(args);
        SCRATCH
            .try_with(|scratch| {
                let mut bytes = scratch.borrow_mut();
                bytes.clear();
                value.write_msgpack(&mut bytes);
                let args = Args::keep(&bytes);
                // A thread keeps a buffer the size of common arguments, not of the largest.
                if bytes.capacity() > Args::SCRATCH_KEPT {
                    *bytes = Vec::new();
                }
                args
            })
            .unwrap_or_else(|_| Args::keep(&value.to_msgpack()))
    }

    fn keep(bytes: &[u8]) -> Args {
        if bytes.len() <= Args::INLINE {
            let mut inline = [0; Args::INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Args::Inline(bytes.len() as u8, inline)
        } else {
            Args::Heap(bytes.into())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Args::Empty => &[],
            Args::Inline(len, bytes) => &bytes[..usize::from(*len)],
            Args::Heap(bytes) => bytes,
        }
    }
}

/// Where an instance is in its life.
enum Phase {
    /// Not initialized yet: the spawn arguments.
    Fresh(Args),
    /// Initialized: the plugin's state.
    Running(*mut c_void),
    /// Ended, or `init` failed: nothing to drop.
    Done,
}

/// One plugin instance, driven through the runtime's [`Process`] trait.
pub(crate) struct NativeProcess {
    /// Counted like an `Arc`, batched on workers: a parent spawning on one worker and its
    /// children ending on another do not move the count's line for every child.
    plugin: Lease<Plugin>,
    phase: Phase,
}

// A native process goes in a recycled block, with no allocation of its own (see `ProcessBox`).
const _: () = assert!(ProcessBox::fits_in_block::<NativeProcess>());

// SAFETY: the plugin's state is only ever used by one thread at a time (the runtime steps a
// process on at most one worker at once), and the ABI contract (spindle.h, THREADS) requires a
// plugin to accept its step on a different thread each time.
unsafe impl Send for NativeProcess {}

const EMPTY_ARGS: [u8; 1] = [0x90];

impl Process for NativeProcess {
    fn step(&mut self, cx: &Cx) -> Step {
        let plugin = &*self.plugin;
        let mut call = Call::new(cx, &plugin.log);
        let state = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Fresh(args) => match plugin.init(&mut call, args.bytes()) {
                Ok(state) => state,
                Err(e) => return Step::Exit(Err(e)),
            },
            Phase::Running(state) => state,
            Phase::Done => {
                let e = Error::new(ErrorKind::Internal, "native process stepped after it ended");
                return Step::Exit(Err(e));
            }
        };
        self.phase = Phase::Running(state);
        plugin.step(&mut call, state)
    }
}

impl Drop for NativeProcess {
    fn drop(&mut self) {
        if let Phase::Running(state) = std::mem::replace(&mut self.phase, Phase::Done) {
            // SAFETY: `state` came from this instance's successful `init` and is dropped once;
            // the library stays loaded while `self.plugin` holds it.
            unsafe { (self.plugin.table().drop)(state) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_encoded_in_place_when_short() {
        assert!(matches!(Args::encode(vec![]), Args::Empty));
        assert_eq!(Args::encode(vec![]).bytes(), b"");
        let short = vec![Value::from("done"), Value::Int(0x1234_5678)];
        let args = Args::encode(short.clone());
        assert!(matches!(args, Args::Inline(..)));
        assert_eq!(args.bytes(), Value::Array(short).to_msgpack());
        let long = vec![Value::from("x".repeat(40)), Value::Float(1.5)];
        let args = Args::encode(long.clone());
        assert!(matches!(args, Args::Heap(_)));
        assert_eq!(args.bytes(), Value::Array(long).to_msgpack());
        // Very long arguments are encoded whole, and the buffer they needed is not kept.
        let huge = vec![Value::from("y".repeat(100_000))];
        assert_eq!(Args::encode(huge.clone()).bytes(), Value::Array(huge).to_msgpack());
        assert!(SCRATCH.with(|s| s.borrow().capacity()) <= Args::SCRATCH_KEPT);
    }

    /// A fresh instance (arguments in place) is no larger than a running one needs to be: an
    /// idle process's record of its instance stays in its size class.
    #[test]
    fn an_instance_is_four_words() {
        assert!(size_of::<NativeProcess>() <= 32, "{}", size_of::<NativeProcess>());
    }
}
