//! The process's handle on the runtime: direct operations, and futures for blocking ones.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use spindle_abi::*;

use crate::error::{Error, ErrorKind, Result};
use crate::plugin::{Signal, check, in_step, signal, with_host, with_step};
use crate::topic::Topic;
use crate::value::{Packed, Value};

/// A process id, as the ABI carries it (a serial number, never reused).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Pid(pub u64);

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A received message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The sender.
    pub from: Pid,
    /// The topic.
    pub topic: Topic,
    /// The payload.
    pub payload: Value,
}

/// The kind of an [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A monitored process ended.
    Exit,
    /// A linked process failed and this process traps links.
    LinkDown,
    /// Somebody asked this process to stop.
    Cancel,
    /// This process's entry was reloaded.
    Outdated,
}

/// Something the runtime tells this process.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The process it is about (or that asked, for CANCEL).
    pub from: Pid,
    /// How the process ended (EXIT, LINK_DOWN).
    pub result: Option<Result<Value>>,
    /// Why (CANCEL).
    pub reason: Option<Value>,
}

/// What a finished operation produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// A received message.
    Message(Message),
    /// A received event.
    Event(Event),
    /// A timer ran out.
    Timer,
    /// An exec'd process ended.
    Exit(Result<Value>),
    /// The operation could not be carried out.
    Failed(Error),
}

/// A blocking operation (see [`Cx::op`]).
#[derive(Clone, Debug)]
pub enum Op {
    /// The next message of a listened topic, or of the inbox (`None`).
    Receive(Option<String>),
    /// The next event.
    Event,
    /// A timer.
    Sleep(Duration),
    /// Spawn entry `entry` with `args` on this host and complete with its result.
    Exec(String, Vec<Value>),
}

/// How a spawned process is tied to its parent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ties {
    /// Linked both ways.
    pub link: bool,
    /// The parent receives the child's EXIT event.
    pub monitor: bool,
}

/// The context of the running process. It is only usable while the process runs (inside its
/// `async fn`); it is `Copy`, and not `Send`.
#[derive(Clone, Copy)]
pub struct Cx {
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for Cx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cx")
    }
}

/// The `n` bytes at `p` the host lends until its next completion (read them at once); `None`
/// for none.
#[inline]
fn lent<'a>(p: *const u8, n: usize) -> Option<&'a [u8]> {
    // SAFETY: the host lends `n` readable bytes at `p` (NULL only with 0).
    (!p.is_null() && n > 0).then(|| unsafe { std::slice::from_raw_parts(p, n) })
}

#[inline]
fn decode(p: *const u8, n: usize) -> Value {
    // A `match`, not `map_or(Value::Nil, ..)`: that builds the default and drops it, a call
    // that keeps the decoded value on the stack.
    match lent(p, n) {
        Some(b) => crate::value::lent(b),
        None => Value::Nil,
    }
}

fn text(p: *const u8, n: usize) -> String {
    lent(p, n).map_or_else(String::new, |b| String::from_utf8_lossy(b).into_owned())
}

impl Message {
    #[inline]
    fn from_raw(c: &SpindleCompletion) -> Message {
        Message {
            from: Pid(c.from),
            topic: lent(c.topic, c.topic_len).map_or_else(Topic::default, Topic::lent),
            payload: decode(c.value, c.value_len),
        }
    }
}

impl Completion {
    fn from_raw(c: &SpindleCompletion) -> Completion {
        let err = || {
            Error::new(ErrorKind::from_code(c.error), text(c.error_message, c.error_message_len))
        };
        let result = || if c.error != 0 { Err(err()) } else { Ok(decode(c.value, c.value_len)) };
        match c.kind {
            COMPLETION_MESSAGE => Completion::Message(Message::from_raw(c)),
            COMPLETION_EVENT => {
                let kind = match c.event {
                    EVENT_EXIT => EventKind::Exit,
                    EVENT_LINK_DOWN => EventKind::LinkDown,
                    EVENT_CANCEL => EventKind::Cancel,
                    _ => EventKind::Outdated,
                };
                let (result, reason) = match kind {
                    EventKind::Exit | EventKind::LinkDown => (Some(result()), None),
                    EventKind::Cancel => {
                        (None, (c.value_len > 0).then(|| decode(c.value, c.value_len)))
                    }
                    EventKind::Outdated => (None, None),
                };
                Completion::Event(Event { kind, from: Pid(c.from), result, reason })
            }
            COMPLETION_TIMER => Completion::Timer,
            COMPLETION_EXIT => Completion::Exit(result()),
            _ => Completion::Failed(err()),
        }
    }
}

impl Cx {
    pub(crate) fn current() -> Cx {
        Cx { _not_send: PhantomData }
    }

    /// This process's pid.
    pub fn pid(&self) -> Pid {
        // SAFETY: a host function of the running step.
        Pid(with_host(|h, cx| unsafe { (h.pid)(cx) }))
    }

    /// Sends `payload` under `topic` to `to`. Sending to a process that ended is not an error.
    ///
    /// # Errors
    /// `INVALID` for a bad topic, `RATE_LIMITED` for a full mailbox.
    pub fn send(&self, to: Pid, topic: &str, payload: impl Into<Value>) -> Result<()> {
        let mut p = Packed::new();
        let b = p.owned(payload.into());
        // SAFETY: a host function of the running step; byte strings valid for the call.
        check(with_host(|h, cx| unsafe {
            (h.send)(cx, to.0, topic.as_ptr(), topic.len(), b.as_ptr(), b.len())
        }))
    }

    /// Sends to a registered name, or to a pid in text form (`{host|0x…}`).
    ///
    /// # Errors
    /// `NOT_FOUND` for a name nobody registered, and as for [`Cx::send`].
    pub fn send_to(&self, dest: &str, topic: &str, payload: impl Into<Value>) -> Result<()> {
        let mut p = Packed::new();
        let b = p.owned(payload.into());
        // SAFETY: a host function of the running step; byte strings valid for the call.
        check(with_host(|h, cx| unsafe {
            (h.send_to)(
                cx,
                dest.as_ptr(),
                dest.len(),
                topic.as_ptr(),
                topic.len(),
                b.as_ptr(),
                b.len(),
            )
        }))
    }

    /// Starts entry `entry` (`namespace:name`) on this process's host with `args`.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown entry, or the backend's error when the code cannot start.
    pub fn spawn(&self, entry: &str, args: Vec<Value>, ties: Ties) -> Result<Pid> {
        let mut p = Packed::new();
        let a = p.array(&args);
        let ties =
            if ties.link { TIE_LINK } else { 0 } | if ties.monitor { TIE_MONITOR } else { 0 };
        let mut pid = 0;
        // SAFETY: a host function of the running step; byte strings and out pointer valid.
        check(with_host(|h, cx| unsafe {
            (h.spawn)(
                cx,
                entry.as_ptr(),
                entry.len(),
                std::ptr::null(),
                0,
                a.as_ptr(),
                a.len(),
                ties,
                &mut pid,
            )
        }))?;
        Ok(Pid(pid))
    }

    /// Links this process and `pid` both ways.
    ///
    /// # Errors
    /// `NOT_FOUND` if `pid` is not alive.
    pub fn link(&self, pid: Pid) -> Result<()> {
        // SAFETY: a host function of the running step.
        check(with_host(|h, cx| unsafe { (h.link)(cx, pid.0) }))
    }

    /// Removes the link with `pid`.
    ///
    /// # Errors
    /// Only for a pid of 0.
    pub fn unlink(&self, pid: Pid) -> Result<()> {
        // SAFETY: a host function of the running step.
        check(with_host(|h, cx| unsafe { (h.unlink)(cx, pid.0) }))
    }

    /// Receives an EXIT event when `pid` ends.
    ///
    /// # Errors
    /// Only for a pid of 0.
    pub fn monitor(&self, pid: Pid) -> Result<()> {
        // SAFETY: a host function of the running step.
        check(with_host(|h, cx| unsafe { (h.monitor)(cx, pid.0) }))
    }

    /// Stops monitoring `pid`.
    ///
    /// # Errors
    /// Only for a pid of 0.
    pub fn unmonitor(&self, pid: Pid) -> Result<()> {
        // SAFETY: a host function of the running step.
        check(with_host(|h, cx| unsafe { (h.unmonitor)(cx, pid.0) }))
    }

    /// With `true`, a linked failure arrives as a LINK_DOWN event instead of ending this process.
    pub fn set_trap_links(&self, on: bool) {
        // SAFETY: a host function of the running step.
        let _ = with_host(|h, cx| unsafe { (h.set_option)(cx, OPTION_TRAP_LINKS, i32::from(on)) });
    }

    /// With `true`, this process receives OUTDATED when its entry is reloaded.
    pub fn set_upgradable(&self, on: bool) {
        // SAFETY: a host function of the running step.
        let _ = with_host(|h, cx| unsafe { (h.set_option)(cx, OPTION_UPGRADABLE, i32::from(on)) });
    }

    /// Registers `name` for this process.
    ///
    /// # Errors
    /// `ALREADY_EXISTS` if taken, `INVALID` for a bad name.
    pub fn register(&self, name: &str) -> Result<()> {
        // SAFETY: a host function of the running step; byte strings valid for the call.
        check(with_host(|h, cx| unsafe { (h.register_name)(cx, name.as_ptr(), name.len(), 0) }))
    }

    /// Removes the registration of `name`.
    ///
    /// # Errors
    /// `NOT_FOUND` if nobody is registered as `name`.
    pub fn unregister(&self, name: &str) -> Result<()> {
        // SAFETY: a host function of the running step; byte strings valid for the call.
        check(with_host(|h, cx| unsafe { (h.unregister_name)(cx, name.as_ptr(), name.len()) }))
    }

    /// The pid registered as `name`.
    pub fn lookup(&self, name: &str) -> Option<Pid> {
        let mut pid = 0;
        // SAFETY: a host function of the running step; byte strings and out pointer valid.
        let rc = with_host(|h, cx| unsafe { (h.lookup)(cx, name.as_ptr(), name.len(), &mut pid) });
        (rc == OK).then_some(Pid(pid))
    }

    /// Asks `pid` to stop: it receives a CANCEL event with `reason`.
    ///
    /// # Errors
    /// Only for a pid of 0.
    pub fn cancel(&self, pid: Pid, reason: Option<Value>) -> Result<()> {
        let mut p = Packed::new();
        let b = reason.as_ref().map_or(&[][..], |r| p.value(r));
        // SAFETY: a host function of the running step; byte strings valid for the call.
        check(with_host(|h, cx| unsafe { (h.cancel)(cx, pid.0, b.as_ptr(), b.len()) }))
    }

    /// Stops `pid` hard.
    ///
    /// # Errors
    /// Only for a pid of 0.
    pub fn terminate(&self, pid: Pid) -> Result<()> {
        // SAFETY: a host function of the running step.
        check(with_host(|h, cx| unsafe { (h.terminate)(cx, pid.0) }))
    }

    /// Routes messages of `topic` to their own queue ([`Cx::recv_topic`]).
    ///
    /// # Errors
    /// `INVALID` for a bad topic, `ALREADY_EXISTS` if listened to already.
    pub fn listen(&self, topic: &str) -> Result<()> {
        // SAFETY: a host function of the running step; byte strings valid for the call.
        check(with_host(|h, cx| unsafe { (h.listen)(cx, topic.as_ptr(), topic.len()) }))
    }

    /// Undoes [`Cx::listen`]: the topic's messages go to the inbox again, those already
    /// queued for it included.
    ///
    /// # Errors
    /// `NOT_FOUND` if the topic is not listened to.
    pub fn unlisten(&self, topic: &str) -> Result<()> {
        // SAFETY: a host function of the running step; byte strings valid for the call.
        check(with_host(|h, cx| unsafe { (h.unlisten)(cx, topic.as_ptr(), topic.len()) }))
    }

    /// Writes `message` to the runtime's log.
    pub fn log(&self, level: i32, message: &str) {
        // SAFETY: a host function of the running step; byte strings valid for the call.
        let _ = with_host(|h, cx| unsafe { (h.log)(cx, level, message.as_ptr(), message.len()) });
    }

    /// The text form of `pid` (`{host|0x…}`), as Lua processes see pids.
    ///
    /// # Errors
    /// Only for a pid of 0.
    pub fn pid_text(&self, pid: Pid) -> Result<String> {
        let (mut p, mut n) = (std::ptr::null(), 0);
        // SAFETY: a host function of the running step; out pointers valid.
        check(with_host(|h, cx| unsafe { (h.pid_text)(cx, pid.0, &mut p, &mut n) }))?;
        Ok(text(p, n))
    }

    /// Starts `op` when first polled; resolves to its completion.
    pub fn op(&self, op: Op) -> OpFuture {
        OpFuture { op, stage: Stage::Unstarted }
    }

    /// The next inbox message (topics nobody listens to).
    pub fn recv(&self) -> Recv {
        Recv(Receive { topic: "", stage: Stage::Unstarted })
    }

    /// The next message of a listened topic.
    ///
    /// # Errors
    /// `INVALID` if the topic is not listened to.
    pub async fn recv_topic(&self, topic: &str) -> Result<Message> {
        Receive { topic, stage: Stage::Unstarted }.await
    }

    /// The next event (EXIT, LINK_DOWN, CANCEL, OUTDATED).
    pub async fn event(&self) -> Event {
        match self.op(Op::Event).await {
            Completion::Event(e) => e,
            other => panic!("spindle-guest: an event receive completed with {other:?}"),
        }
    }

    /// Waits `d`.
    pub fn sleep(&self, d: Duration) -> Sleep {
        Sleep(self.op(Op::Sleep(d)))
    }

    /// Spawns entry `entry` with `args` and waits for its result.
    ///
    /// # Errors
    /// The spawn's error or the process's own.
    pub async fn exec(&self, entry: &str, args: Vec<Value>) -> Result<Value> {
        match self.op(Op::Exec(entry.to_owned(), args)).await {
            Completion::Exit(r) => r,
            Completion::Failed(e) => Err(e),
            other => Err(Error::new(ErrorKind::Internal, format!("exec completed with {other:?}"))),
        }
    }

    /// Gives the worker to the other ready processes, then continues.
    pub fn yield_now(&self) -> YieldNow {
        YieldNow { yielded: false }
    }

    /// Continues as entry `entry` (`None`: this entry, reloaded) with `args`, keeping pid,
    /// mailbox, names, links and monitors. Resolves only if the request itself is refused
    /// (a malformed entry id): then to that error.
    pub fn upgrade(&self, entry: Option<&str>, args: Vec<Value>) -> Upgrade {
        Upgrade { request: Some((entry.map(str::to_owned), args)) }
    }
}

/// Where an operation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Not started: it starts when first polled.
    Unstarted,
    /// Started under this tag, not completed yet.
    Waiting(u64),
    /// Completed (or failed to start); polling it again stays pending.
    Finished,
}

impl Stage {
    /// Abandons the operation if it is still waiting. Outside a step (the process is being
    /// dropped) the host drops every operation itself.
    fn abandon(&mut self) {
        if let Stage::Waiting(tag) = std::mem::replace(self, Stage::Finished)
            && in_step()
        {
            // SAFETY: a host function of the running step.
            let _ = with_host(|h, cx| unsafe { (h.drop_op)(cx, tag) });
        }
    }
}

/// The error of a failed host call `what` that returned `rc`.
#[cold]
fn failure(rc: i32, what: &str) -> Error {
    check(rc).err().unwrap_or_else(|| Error::msg(format!("{what} failed")))
}

/// Polls operation `tag` (counted as waited for if still pending): `Ready(OK)` with its
/// completion in `out`, or `Ready` with the host's error code.
#[inline]
fn take(tag: u64, out: &mut SpindleCompletion) -> Poll<i32> {
    with_step(|h, cx, c| {
        // SAFETY: a host function of the running step; `out` is a valid, sized completion.
        match unsafe { (h.take_completion)(cx, tag, out) } {
            NONE => {
                c.op_pending();
                Poll::Pending
            }
            rc => {
                c.progress();
                Poll::Ready(rc)
            }
        }
    })
}

/// Polls a receive of `topic` ("" for the inbox) at `stage`: `Ready(OK)` with the message in
/// `out`, or `Ready` with the host's error code. The completion is borrowed from the host
/// until its next host call: read it at once.
///
/// The first poll goes through the host's `receive_now`: a message already waiting comes
/// back at once, in the same call that would otherwise start the receive.
#[inline]
fn poll_receive(topic: &str, stage: &mut Stage, out: &mut SpindleCompletion) -> Poll<i32> {
    let tag = match *stage {
        Stage::Waiting(tag) => tag,
        Stage::Finished => return Poll::Pending,
        Stage::Unstarted => {
            let end = std::mem::offset_of!(SpindleHost, receive_now) + std::mem::size_of::<usize>();
            let mut tag = 0;
            let rc = with_step(|h, cx, c| {
                let rc = if SpindleHost::covers(h.size, end) {
                    // SAFETY: a host function of the running step, present in the host's table
                    // (its size covers it); topic, tag and the sized completion are valid.
                    unsafe { (h.receive_now)(cx, topic.as_ptr(), topic.len(), &mut tag, out) }
                } else {
                    // SAFETY: a host function of the running step; the topic and the out
                    // pointer are valid for the call.
                    unsafe { (h.receive)(cx, topic.as_ptr(), topic.len(), &mut tag) }
                };
                match rc {
                    NONE => c.op_pending(),
                    OK if tag != 0 => {}
                    _ => c.progress(),
                }
                rc
            });
            match rc {
                // Taken at once (only `receive_now` returns OK with a tag of 0).
                OK if tag == 0 => {
                    *stage = Stage::Finished;
                    return Poll::Ready(OK);
                }
                NONE => {
                    *stage = Stage::Waiting(tag);
                    return Poll::Pending;
                }
                OK => tag,
                rc => {
                    *stage = Stage::Finished;
                    return Poll::Ready(rc);
                }
            }
        }
    };
    let polled = take(tag, out);
    *stage = if polled.is_ready() { Stage::Finished } else { Stage::Waiting(tag) };
    polled
}

/// A started operation; see [`Cx::op`].
#[derive(Debug)]
#[must_use = "an operation starts when first polled"]
pub struct OpFuture {
    op: Op,
    stage: Stage,
}

fn start(op: &Op) -> Result<u64> {
    let mut tag = 0;
    let rc = with_host(|h, cx| match op {
        Op::Receive(topic) => {
            let t = topic.as_deref().unwrap_or("");
            // SAFETY: a host function of the running step; the topic and the out pointer are
            // valid for the call.
            unsafe { (h.receive)(cx, t.as_ptr(), t.len(), &mut tag) }
        }
        // SAFETY: a host function of the running step; the out pointer is valid.
        Op::Event => unsafe { (h.events)(cx, &mut tag) },
        Op::Sleep(d) => {
            let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            // SAFETY: a host function of the running step; the out pointer is valid.
            unsafe { (h.timer)(cx, nanos, &mut tag) }
        }
        Op::Exec(entry, args) => {
            let mut p = Packed::new();
            let a = p.array(args);
            let (e, no_host) = (entry.as_bytes(), std::ptr::null());
            // SAFETY: a host function of the running step; byte strings and the out pointer
            // are valid for the call (an empty host name may be NULL).
            unsafe { (h.exec)(cx, e.as_ptr(), e.len(), no_host, 0, a.as_ptr(), a.len(), &mut tag) }
        }
    });
    check(rc).map(|()| tag)
}

impl Future for OpFuture {
    type Output = Completion;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Completion> {
        let this = self.get_mut();
        let mut slot = Slot(SpindleCompletion::new());
        let c = &mut slot.0;
        let polled = match (&this.op, this.stage) {
            (Op::Receive(topic), _) => {
                poll_receive(topic.as_deref().unwrap_or(""), &mut this.stage, c)
            }
            (_, Stage::Finished) => return Poll::Pending,
            (op, Stage::Unstarted) => match start(op) {
                Ok(tag) => {
                    this.stage = Stage::Waiting(tag);
                    take(tag, c)
                }
                Err(e) => {
                    this.stage = Stage::Finished;
                    with_step(|_, _, c| c.progress());
                    return Poll::Ready(Completion::Failed(e));
                }
            },
            (_, Stage::Waiting(tag)) => take(tag, c),
        };
        let Poll::Ready(rc) = polled else { return Poll::Pending };
        this.stage = Stage::Finished;
        Poll::Ready(match rc {
            OK => Completion::from_raw(c),
            rc => Completion::Failed(failure(rc, "the operation")),
        })
    }
}

impl Drop for OpFuture {
    fn drop(&mut self) {
        self.stage.abandon();
    }
}

/// A completion for the host to fill in, on a cache line of its own. Wherever the caller's
/// frame happened to put it, its zeroing and the host's writes could straddle two lines and
/// stall every receive: a change elsewhere in a process's body (a smaller future) moved it and
/// cost the example's ring 6%.
#[repr(align(64))]
struct Slot(SpindleCompletion);

/// A receive of a topic (`""`: the inbox), started when first polled.
#[derive(Debug)]
struct Receive<'a> {
    topic: &'a str,
    stage: Stage,
}

/// Why a receive that ended with host code `rc` and completion `c` brought no message.
#[cold]
fn not_a_message(rc: i32, c: &SpindleCompletion) -> Error {
    if rc != OK {
        return failure(rc, "receive");
    }
    let other = Completion::from_raw(c);
    Error::new(ErrorKind::Internal, format!("receive completed with {other:?}"))
}

impl Future for Receive<'_> {
    type Output = Result<Message>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<Message>> {
        let this = self.get_mut();
        let mut slot = Slot(SpindleCompletion::new());
        let c = &mut slot.0;
        Poll::Ready(match ready!(poll_receive(this.topic, &mut this.stage, c)) {
            OK if c.kind == COMPLETION_MESSAGE => Ok(Message::from_raw(c)),
            rc => Err(not_a_message(rc, c)),
        })
    }
}

impl Drop for Receive<'_> {
    fn drop(&mut self) {
        self.stage.abandon();
    }
}

/// See [`Cx::recv`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Recv(Receive<'static>);

impl Future for Recv {
    type Output = Message;

    #[inline]
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Message> {
        // Built right here, not mapped from `Receive`'s result: moving the fresh message once
        // more would reload it wider than it was stored, which stalls.
        let inbox = &mut self.get_mut().0;
        let mut slot = Slot(SpindleCompletion::new());
        let c = &mut slot.0;
        Poll::Ready(match ready!(poll_receive(inbox.topic, &mut inbox.stage, c)) {
            OK if c.kind == COMPLETION_MESSAGE => Message::from_raw(c),
            rc => panic!("spindle-guest: {}", not_a_message(rc, c)),
        })
    }
}

/// See [`Cx::sleep`]: its timer operation itself (an `async fn` would keep a second copy).
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep(OpFuture);

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, t: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(t).map(|_| ())
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
        signal(Signal::Yield);
        Poll::Pending
    }
}

/// See [`Cx::upgrade`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Upgrade {
    request: Option<(Option<String>, Vec<Value>)>,
}

impl Future for Upgrade {
    type Output = Error;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Error> {
        let Some((entry, args)) = self.request.take() else { return Poll::Pending };
        let e = entry.unwrap_or_default();
        let mut p = Packed::new();
        let a = p.array(&args);
        // SAFETY: a host function of the running step; byte strings valid for the call.
        let rc =
            with_host(|h, cx| unsafe { (h.upgrade)(cx, e.as_ptr(), e.len(), a.as_ptr(), a.len()) });
        match check(rc) {
            Ok(()) => {
                signal(Signal::Upgrade);
                Poll::Pending
            }
            Err(e) => Poll::Ready(e),
        }
    }
}
