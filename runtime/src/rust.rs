//! Rust processes: `async` functions run as processes on the same scheduler.
//!
//! Rust's `async` already compiles to a resumable state machine, so a step is one poll of the
//! process's future. The futures returned by [`Cx::recv`], [`Cx::sleep`], [`Cx::exec`] … start
//! their operation on first poll and complete when the runtime delivers the completion; the
//! process is stepped again (polled) whenever any of its operations completes, so `join` and
//! `select` of several operations wait for all or any of them. A foreign future (a channel from
//! another crate) works too: its waker wakes the process.
//!
//! ```
//! use spindle_runtime::{HostConfig, Runtime, Spawn, Value, rust::AsyncProcess};
//!
//! let rt = Runtime::builder().host(HostConfig::new("app:main").workers(2)).build().unwrap();
//! let doubled = rt
//!     .exec(Spawn::process(
//!         AsyncProcess::new(|cx| async move {
//!             cx.sleep(std::time::Duration::from_millis(1)).await;
//!             Ok(Value::Int(21 * 2))
//!         }),
//!         "app:main",
//!     ))
//!     .unwrap();
//! assert_eq!(doubled, Value::Int(42));
//! ```

use std::cell::RefCell;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::backend::{Backend, Instance, Placement, Prototype};
use crate::context::Cx;
use crate::error::{Error, ErrorKind, Result};
use crate::process::{Completion, Event, Message, Op, Process, ProcessBox, Spawn, Step, Tag};
use crate::registry::{Entry, EntryId};
use crate::value::Value;

/// The future of a Rust process.
pub type ProcessFuture = Pin<Box<dyn Future<Output = Result<Value>> + Send + 'static>>;

/// The function behind a `process.rust` entry: called with the context and spawn arguments.
pub type EntryFn = Arc<dyn Fn(Cx, Vec<Value>) -> ProcessFuture + Send + Sync + 'static>;

/// The entry kind of Rust functions registered with [`rust_entry`].
pub const KIND: &str = "process.rust";

/// An entry of kind `process.rust` that runs `f`.
pub fn rust_entry<F, Fut>(id: EntryId, f: F) -> Entry
where
    F: Fn(Cx, Vec<Value>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value>> + Send + 'static,
{
    let f: EntryFn = Arc::new(move |cx, args| Box::pin(f(cx, args)));
    let mut entry = Entry::new(id, KIND);
    entry.attachment = Some(Arc::new(f));
    entry
}

/// A request the process's future makes of its step, through the running worker's thread.
enum Signal {
    Yield,
    Upgrade(Option<EntryId>, Vec<Value>),
}

thread_local! {
    static SIGNAL: RefCell<Option<Signal>> = const { RefCell::new(None) };
}

/// Takes the signal the running step left, if any. Mostly there is none: that case only reads
/// the tag (rewriting the whole slot each step stalled on store forwarding).
#[inline(always)]
fn take_signal() -> Option<Signal> {
    SIGNAL.with(|s| if s.borrow().is_none() { None } else { s.borrow_mut().take() })
}

enum Body {
    Start(Box<dyn FnOnce(Cx) -> ProcessFuture + Send>),
    Running(ProcessFuture),
    Finished,
}

/// A process whose body is an `async` function of its [`Cx`].
pub struct AsyncProcess {
    body: Body,
    waker: Option<Waker>,
}

impl AsyncProcess {
    /// A process running `f(cx)` to completion; its output is the process result.
    pub fn new<F, Fut>(f: F) -> AsyncProcess
    where
        F: FnOnce(Cx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        AsyncProcess { body: Body::Start(Box::new(move |cx| Box::pin(f(cx)))), waker: None }
    }
}

impl fmt::Debug for AsyncProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AsyncProcess")
    }
}

impl Process for AsyncProcess {
    fn step(&mut self, cx: &Cx) -> Step {
        if let Body::Start(_) = self.body {
            let Body::Start(start) = std::mem::replace(&mut self.body, Body::Finished) else {
                unreachable!("checked above")
            };
            self.body = Body::Running(start(cx.clone()));
        }
        let Body::Running(fut) = &mut self.body else {
            return Step::Exit(Err(Error::new(ErrorKind::Internal, "process stepped after exit")));
        };
        let waker = self.waker.get_or_insert_with(|| cx.cell.clone().into_waker());
        let mut task_cx = Context::from_waker(waker);
        drop(take_signal());
        match fut.as_mut().poll(&mut task_cx) {
            Poll::Ready(result) => {
                self.body = Body::Finished;
                Step::Exit(result)
            }
            Poll::Pending => match take_signal() {
                Some(Signal::Yield) => Step::Yield,
                Some(Signal::Upgrade(entry, args)) => Step::Upgrade { entry, args },
                None => Step::Wait(crate::process::WaitFor::Any),
            },
        }
    }
}

/// A started operation of a Rust process; resolves to its [`Completion`].
#[must_use = "an operation starts when first polled"]
pub struct OpFuture<'a> {
    cx: &'a Cx,
    op: Option<Op>,
    tag: Option<Tag>,
}

impl fmt::Debug for OpFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpFuture").field("op", &self.op).field("tag", &self.tag).finish()
    }
}

impl Future for OpFuture<'_> {
    type Output = Completion;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Completion> {
        let this = self.get_mut();
        if let Some(op) = this.op.take() {
            // Served at once, without an operation, when a message is already waiting.
            match this.cx.start_or_take(op) {
                Ok(c) => return Poll::Ready(c),
                Err(tag) => this.tag = Some(tag),
            }
        }
        let Some(tag) = this.tag else { return Poll::Pending };
        match this.cx.take_completion(tag) {
            Some(c) => {
                this.tag = None;
                Poll::Ready(c)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for OpFuture<'_> {
    fn drop(&mut self) {
        if let Some(tag) = self.tag.take() {
            self.cx.drop_op(tag);
        }
    }
}

fn mismatch(c: &Completion) -> Error {
    Error::new(ErrorKind::Internal, format!("unexpected completion {c:?}"))
}

impl Cx {
    /// Starts `op` when first polled and resolves to its completion.
    pub fn op(&self, op: Op) -> OpFuture<'_> {
        OpFuture { cx: self, op: Some(op), tag: None }
    }

    /// The next inbox message (topics nobody listens to).
    pub async fn recv(&self) -> Message {
        // A message already waiting comes straight out of the mailbox, not wrapped in a
        // completion (each wrapping moved it once more, read back just after it was written);
        // else the receive is started under the same lock.
        let tag = match self.cell.rt().receive_or_start(&self.cell) {
            Ok(m) => return m,
            Err(tag) => tag,
        };
        match (OpFuture { cx: self, op: None, tag: Some(tag) }).await {
            Completion::Message(m) => m,
            other => panic!("{}", mismatch(&other)),
        }
    }

    /// The next message of a topic this process [listens](Cx::listen) to.
    ///
    /// # Errors
    /// `INVALID` if the topic is not listened to; `CANCELED` if it is unlistened while waiting.
    pub async fn recv_topic(&self, topic: &str) -> Result<Message> {
        match self.op(Op::Receive { topic: Some(topic.to_owned()) }).await {
            Completion::Message(m) => Ok(m),
            Completion::Failed(e) => Err(e),
            other => Err(mismatch(&other)),
        }
    }

    /// The next event (EXIT, LINK_DOWN, CANCEL, OUTDATED).
    pub async fn event(&self) -> Event {
        match self.op(Op::Event).await {
            Completion::Event(e) => e,
            other => panic!("{}", mismatch(&other)),
        }
    }

    /// Waits `d`.
    pub async fn sleep(&self, d: Duration) {
        if let Completion::Failed(e) = self.op(Op::Sleep(d)).await {
            panic!("{e}");
        }
    }

    /// Spawns and waits for the result.
    ///
    /// # Errors
    /// The spawn's error, or the process's own error.
    pub async fn exec(&self, spawn: Spawn) -> Result<Value> {
        match self.op(Op::Exec(spawn)).await {
            Completion::Exit(r) => r,
            Completion::Failed(e) => Err(e),
            other => Err(mismatch(&other)),
        }
    }

    /// Starts an external operation (see [`Cx::start_external`]), hands its completer to
    /// `start` (which passes it to whatever does the work) and waits for the result.
    ///
    /// # Errors
    /// The error the operation completed with; `CANCELED` if the completer was dropped.
    pub async fn external(&self, start: impl FnOnce(crate::Completer)) -> Result<Value> {
        let (tag, completer) = self.start_external();
        start(completer);
        match (OpFuture { cx: self, op: None, tag: Some(tag) }).await {
            Completion::Exit(r) => r,
            Completion::Failed(e) => Err(e),
            other => Err(mismatch(&other)),
        }
    }

    /// Gives the worker to the other ready processes, then continues.
    pub fn yield_now(&self) -> YieldNow {
        YieldNow { yielded: false }
    }

    /// Continues as entry `entry` (`None`: the current entry, reloaded) with `args`, keeping pid,
    /// mailbox, names, links and monitors. Never resolves: on success the new code runs, on
    /// failure the process ends with the error.
    pub fn upgrade(&self, entry: Option<EntryId>, args: Vec<Value>) -> UpgradeFuture {
        UpgradeFuture { request: Some((entry, args)) }
    }
}

/// See [`Cx::yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        SIGNAL.with(|s| *s.borrow_mut() = Some(Signal::Yield));
        Poll::Pending
    }
}

/// See [`Cx::upgrade`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct UpgradeFuture {
    request: Option<(Option<EntryId>, Vec<Value>)>,
}

impl Future for UpgradeFuture {
    type Output = Infallible;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Infallible> {
        if let Some((entry, args)) = self.request.take() {
            SIGNAL.with(|s| *s.borrow_mut() = Some(Signal::Upgrade(entry, args)));
        }
        Poll::Pending
    }
}

/// The backend of `process.rust` entries.
#[derive(Debug)]
pub(crate) struct RustBackend;

struct RustPrototype(EntryFn);

impl Backend for RustBackend {
    fn kinds(&self) -> &[&str] {
        &[KIND]
    }

    fn prepare(&self, entry: &Entry) -> Result<Arc<dyn Prototype>> {
        let f =
            entry.attachment.as_ref().and_then(|a| a.downcast_ref::<EntryFn>()).ok_or_else(
                || Error::invalid("a process.rust entry needs a Rust function attached"),
            )?;
        Ok(Arc::new(RustPrototype(f.clone())))
    }
}

impl Prototype for RustPrototype {
    fn instantiate(&self, args: Vec<Value>, _: &Placement<'_>) -> Result<Instance> {
        let f = self.0.clone();
        Ok(Instance {
            process: ProcessBox::new(AsyncProcess::new(move |cx| f(cx, args))),
            strand: None,
        })
    }
}

/// Which of two futures finished first (see [`first`]).
#[derive(Debug, PartialEq, Eq)]
pub enum First<A, B> {
    /// The first future's output.
    Left(A),
    /// The second future's output.
    Right(B),
}

/// Waits for whichever of `a` and `b` completes first (wait-any) and drops the other; a
/// dropped operation is abandoned, and a message it had already received goes back to the
/// mailbox. When both are ready, `a` wins.
pub async fn first<A: Future, B: Future>(a: A, b: B) -> First<A::Output, B::Output> {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    std::future::poll_fn(move |t| {
        if let Poll::Ready(v) = a.as_mut().poll(t) {
            return Poll::Ready(First::Left(v));
        }
        b.as_mut().poll(t).map(First::Right)
    })
    .await
}

/// Waits for both `a` and `b` (wait-all) and returns both outputs.
pub async fn both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(move |t| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(t)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(t)
        {
            rb = Some(v);
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                (ra, rb) = (x, y);
                Poll::Pending
            }
        }
    })
    .await
}

// A Rust process goes in a recycled block, with no allocation of its own (its future has one).
const _: () = assert!(ProcessBox::fits_in_block::<AsyncProcess>());
