//! The one trait every backend implements, and the vocabulary of a step.
//!
//! A process is a resumable state machine. The scheduler calls [`Process::step`]; the process
//! runs until it must wait and says why by returning a [`Step`]. Non-blocking operations (send,
//! spawn, link …) are direct calls on the [`Cx`](crate::Cx) and take effect before they return.
//! Blocking operations ([`Op`]) are *started* through the context and return a [`Tag`] at once;
//! their [`Completion`]s arrive in a later step. A process may have many operations outstanding
//! and wait for any or all of them.

use std::alloc::Layout;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Duration;

use crate::Cx;
use crate::error::Error;
use crate::pid::Pid;
use crate::records::{Bodies, Kind};
use crate::registry::EntryId;
use crate::topic::Topic;
use crate::value::Value;

/// A resumable state machine stepped by the scheduler.
///
/// The context is lent by shared reference: every operation takes `&self`, and a process that
/// needs the context later (a Rust future) keeps a clone of it.
pub trait Process: Send + 'static {
    /// Runs until the process must wait; completions of earlier operations are in `cx`.
    fn step(&mut self, cx: &Cx) -> Step;
}

/// A process's state machine as the runtime keeps it: a small one (a backend's process is
/// mostly a few handles) in a block of five words that the workers recycle in batches, a
/// larger one in a box of its own.
///
/// A process is often spawned on one worker and ended on another; a box of its own was then
/// freed on the second worker and went back to the first one's allocator the slow way, which
/// cost a native plugin's spawn-and-exit about a twelfth of its time.
pub struct ProcessBox {
    /// The process, in a block or in a box: which one follows from its size and alignment
    /// (see [`ProcessBox::fits_in_block`]), which the trait object knows.
    process: NonNull<dyn Process>,
    /// Holds a `dyn Process` as a box does (`Send`, not `Sync`).
    _holds: PhantomData<Box<dyn Process>>,
}

// SAFETY: a `ProcessBox` owns its process, which is `Send` (`Process: Send`), as a box would.
unsafe impl Send for ProcessBox {}

impl ProcessBox {
    /// Whether a `T` goes in a recycled block: at most five words, aligned to at most one.
    pub const fn fits_in_block<T>() -> bool {
        fits(Layout::new::<T>())
    }

    /// Keeps `process`: in a recycled block if it fits (see [`ProcessBox::fits_in_block`]),
    /// else boxed.
    #[inline]
    pub fn new<T: Process>(process: T) -> ProcessBox {
        let ptr = if ProcessBox::fits_in_block::<T>() {
            let ptr = crate::records::take::<Bodies>().cast::<T>();
            // SAFETY: a block is room for a `T` (checked above).
            unsafe { ptr.write(process) };
            ptr
        } else {
            NonNull::from(Box::leak(Box::new(process)))
        };
        ProcessBox { process: ptr, _holds: PhantomData }
    }

    /// The process.
    #[inline]
    pub fn get(&mut self) -> &mut dyn Process {
        // SAFETY: `process` is live until the drop (see `new`); the borrow of `self` is the
        // borrow of it.
        unsafe { self.process.as_mut() }
    }
}

/// Whether a value of `layout` goes in a body block.
const fn fits(layout: Layout) -> bool {
    layout.size() <= Bodies::LAYOUT.size() && layout.align() <= Bodies::LAYOUT.align()
}

impl Drop for ProcessBox {
    fn drop(&mut self) {
        let p = self.process.as_ptr();
        // SAFETY: `process` is live (see `new`) and dropped once, here; its memory is then
        // given back where `new` took it from, which its layout tells (a box of a zero-sized
        // `T` allocated nothing).
        unsafe {
            let layout = Layout::for_value(&*p);
            std::ptr::drop_in_place(p);
            if fits(layout) {
                crate::records::give::<Bodies>(self.process.cast());
            } else if layout.size() != 0 {
                std::alloc::dealloc(p.cast(), layout);
            }
        }
    }
}

impl fmt::Debug for ProcessBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProcessBox")
    }
}

/// Why a step ended.
#[derive(Debug)]
pub enum Step {
    /// Wake me when the operations I have outstanding complete: any one, or all of them.
    Wait(WaitFor),
    /// My time slice is spent; run me again after the others that are ready.
    Yield,
    /// I am done, with a value or an error.
    Exit(Result<Value, Error>),
    /// Replace my code with entry `entry` (`None`: my current entry, reloaded) started with
    /// `args`; keep my pid, mailbox, names, links and monitors.
    Upgrade {
        /// The entry to continue as; `None` reloads the current one.
        entry: Option<EntryId>,
        /// The new code's arguments.
        args: Vec<Value>,
    },
}

/// Which completions end a [`Step::Wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// The first completion of any outstanding operation (or a wake-up of the process's waker).
    Any,
    /// Only when no operation is outstanding any more.
    All,
}

/// A started blocking operation; its [`Completion`] carries the same tag.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub(crate) u64);

impl Tag {
    /// The tag's number, unique within its process.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The tag whose number is `n` (as returned by [`Tag::get`]), for backends that hand tags
    /// to guest code as plain integers. A number that names no operation of the process is
    /// harmless: dropping or taking it finds nothing.
    pub fn from_raw(n: u64) -> Tag {
        Tag(n)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.0)
    }
}

/// A blocking operation a process can start.
#[derive(Debug)]
pub enum Op {
    /// The next message of `topic` (a topic this process [listens](crate::Cx::listen) to), or of
    /// the inbox (`None`: every topic nobody listens to).
    Receive {
        /// The listened topic, or `None` for the inbox.
        topic: Option<String>,
    },
    /// The next event (EXIT, LINK_DOWN, CANCEL, OUTDATED).
    Event,
    /// Completes after the duration.
    Sleep(Duration),
    /// Spawn a process and complete with its result. The process is stopped (its result an
    /// error of kind `CANCELED`) when the operation is dropped or the process that started it
    /// ends or upgrades first: nobody else knows its pid.
    Exec(Spawn),
}

/// What a finished operation produced.
#[derive(Debug)]
pub enum Completion {
    /// A received message.
    Message(Message),
    /// A received event.
    Event(Event),
    /// A sleep ran out.
    Timer,
    /// An exec'd process ended, or an external operation (see
    /// [`Cx::start_external`](crate::Cx::start_external)) finished, with this result.
    Exit(Result<Value, Error>),
    /// The operation could not be carried out.
    Failed(Error),
}

/// A message: who sent it, under which topic, with what payload.
#[derive(Clone, Debug)]
pub struct Message {
    /// The sender (the process itself for messages sent from outside the runtime's processes).
    pub from: Pid,
    /// A non-empty topic that does not start with `@`.
    pub topic: Topic,
    /// The payload, owned by the receiver.
    pub payload: Value,
}

/// The kind of an [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A monitored process ended; `result` says how.
    Exit,
    /// A linked process ended abnormally and this process traps links; `result` holds its error.
    LinkDown,
    /// Somebody asked this process to stop; `reason` may say why.
    Cancel,
    /// This process's entry was reloaded and it is upgradable.
    Outdated,
}

impl EventKind {
    /// The kind's name as the Lua API spells it.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Exit => "EXIT",
            EventKind::LinkDown => "LINK_DOWN",
            EventKind::Cancel => "CANCEL",
            EventKind::Outdated => "OUTDATED",
        }
    }

    /// The kind named `name` ([`EventKind::name`]).
    pub fn from_name(name: &str) -> Option<EventKind> {
        [EventKind::Exit, EventKind::LinkDown, EventKind::Cancel, EventKind::Outdated]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// Something the runtime tells a process about another process or about itself.
#[derive(Clone, Debug)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The process it happened to (or that asked, for CANCEL).
    pub from: Pid,
    /// How the process ended (EXIT, LINK_DOWN).
    pub result: Option<Result<Value, Error>>,
    /// Why (CANCEL).
    pub reason: Option<Value>,
}

/// What to start: an entry from the registry or a ready-made process, on a host, with arguments.
pub struct Spawn {
    pub(crate) code: Code,
    /// Borrowed for the usual `&'static str` host names: spawning allocates no name.
    pub(crate) host: Cow<'static, str>,
    pub(crate) args: Vec<Value>,
}

pub(crate) enum Code {
    Entry(EntryId),
    Instance(ProcessBox),
}

// The builders are inlined so that a spawn request is built in place: a call each moved the
// request, and the arguments just put in it, through memory (read back wider than written).
impl Spawn {
    /// Start entry `entry` on host `host`.
    #[inline]
    pub fn entry(entry: EntryId, host: impl Into<Cow<'static, str>>) -> Spawn {
        Spawn { code: Code::Entry(entry), host: host.into(), args: Vec::new() }
    }

    /// Start `process` on host `host`.
    #[inline]
    pub fn process(process: impl Process, host: impl Into<Cow<'static, str>>) -> Spawn {
        Spawn {
            code: Code::Instance(ProcessBox::new(process)),
            host: host.into(),
            args: Vec::new(),
        }
    }

    /// Pass `args` to the entry's method.
    #[must_use]
    #[inline]
    pub fn args(mut self, args: Vec<Value>) -> Spawn {
        self.args = args;
        self
    }
}

impl fmt::Debug for Spawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = match &self.code {
            Code::Entry(id) => id.to_string(),
            Code::Instance(_) => "<process>".to_owned(),
        };
        f.debug_struct("Spawn").field("code", &code).field("host", &self.host).finish()
    }
}

/// How a spawned process is tied to its parent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ties {
    /// Linked both ways.
    pub link: bool,
    /// The parent receives the child's EXIT event.
    pub monitor: bool,
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts its drops; `N` words of ballast decide its size.
    struct Counter<const N: usize> {
        drops: Arc<AtomicUsize>,
        _ballast: [usize; N],
    }

    impl<const N: usize> Process for Counter<N> {
        fn step(&mut self, _: &Cx) -> Step {
            Step::Yield
        }
    }

    impl<const N: usize> Drop for Counter<N> {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Zero-sized, but aligned beyond a word: boxed without an allocation.
    #[repr(align(16))]
    struct Wide;

    impl Process for Wide {
        fn step(&mut self, _: &Cx) -> Step {
            Step::Yield
        }
    }

    fn boxed<const N: usize>() -> (ProcessBox, Arc<AtomicUsize>) {
        let drops = Arc::new(AtomicUsize::new(0));
        (ProcessBox::new(Counter::<N> { drops: Arc::clone(&drops), _ballast: [0; N] }), drops)
    }

    /// Up to five words a process goes in a recycled block, beyond that (or aligned beyond a
    /// word) in a box; moved around either way, it is dropped once, with its fields.
    #[test]
    fn processes_are_kept_and_dropped_once() {
        assert!(ProcessBox::fits_in_block::<Counter<4>>());
        assert!(!ProcessBox::fits_in_block::<Counter<5>>());
        assert!(!ProcessBox::fits_in_block::<Wide>());
        let (small, small_drops) = boxed::<4>();
        let (big, big_drops) = boxed::<5>();
        let moved = vec![small, big];
        for (b, drops) in moved.into_iter().zip([small_drops, big_drops]) {
            assert_eq!((drops.load(Ordering::SeqCst), Arc::strong_count(&drops)), (0, 2));
            drop(b);
            assert_eq!((drops.load(Ordering::SeqCst), Arc::strong_count(&drops)), (1, 1));
        }
        drop(ProcessBox::new(Wide));
    }
}
