//! The process's handle on the runtime: direct operations, and futures for blocking ones.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use spindle_abi::*;

use crate::error::{Error, ErrorKind, Result};
use crate::plugin::{Signal, check, in_step, signal, with_host};
use crate::value::Value;

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
    pub topic: String,
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

fn bytes(v: &Value) -> Vec<u8> {
    v.to_msgpack()
}

fn args_bytes(args: &[Value]) -> Vec<u8> {
    if args.is_empty() { Vec::new() } else { crate::value::array_to_msgpack(args) }
}

fn decode(p: *const u8, n: usize) -> Value {
    if p.is_null() || n == 0 {
        return Value::Nil;
    }
    // SAFETY: the host lends `n` bytes at `p` until the next completion; copied at once.
    let b = unsafe { std::slice::from_raw_parts(p, n) };
    // The host only hands out values it encoded itself.
    Value::from_msgpack(b).unwrap_or(Value::Nil)
}

fn text(p: *const u8, n: usize) -> String {
    if p.is_null() || n == 0 {
        return String::new();
    }
    // SAFETY: as for `decode`.
    String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(p, n) }).into_owned()
}

impl Completion {
    fn from_raw(c: &SpindleCompletion) -> Completion {
        let err = || {
            Error::new(ErrorKind::from_code(c.error), text(c.error_message, c.error_message_len))
        };
        let result = || if c.error != 0 { Err(err()) } else { Ok(decode(c.value, c.value_len)) };
        match c.kind {
            COMPLETION_MESSAGE => Completion::Message(Message {
                from: Pid(c.from),
                topic: text(c.topic, c.topic_len),
                payload: decode(c.value, c.value_len),
            }),
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
        let b = bytes(&payload.into());
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
        let b = bytes(&payload.into());
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
        let a = args_bytes(&args);
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
        let b = reason.as_ref().map(bytes).unwrap_or_default();
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
        OpFuture { op: Some(op), tag: None }
    }

    /// The next inbox message (topics nobody listens to).
    pub async fn recv(&self) -> Message {
        match self.op(Op::Receive(None)).await {
            Completion::Message(m) => m,
            other => panic!("spindle-guest: a receive completed with {other:?}"),
        }
    }

    /// The next message of a listened topic.
    ///
    /// # Errors
    /// `INVALID` if the topic is not listened to.
    pub async fn recv_topic(&self, topic: &str) -> Result<Message> {
        match self.op(Op::Receive(Some(topic.to_owned()))).await {
            Completion::Message(m) => Ok(m),
            Completion::Failed(e) => Err(e),
            other => {
                Err(Error::new(ErrorKind::Internal, format!("receive completed with {other:?}")))
            }
        }
    }

    /// The next event (EXIT, LINK_DOWN, CANCEL, OUTDATED).
    pub async fn event(&self) -> Event {
        match self.op(Op::Event).await {
            Completion::Event(e) => e,
            other => panic!("spindle-guest: an event receive completed with {other:?}"),
        }
    }

    /// Waits `d`.
    pub async fn sleep(&self, d: Duration) {
        self.op(Op::Sleep(d)).await;
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

/// A started operation; see [`Cx::op`].
#[derive(Debug)]
#[must_use = "an operation starts when first polled"]
pub struct OpFuture {
    op: Option<Op>,
    tag: Option<u64>,
}

/// A receive through the host's `receive_now` (a message waiting comes back at once, else the
/// started receive's tag); `None` if the host's table is older than that function.
fn receive_now(topic: &str) -> Option<Result<std::result::Result<Completion, u64>>> {
    let end = std::mem::offset_of!(SpindleHost, receive_now) + std::mem::size_of::<usize>();
    let mut tag = 0;
    let mut c = SpindleCompletion::new();
    let rc = with_host(|h, cx| {
        if !SpindleHost::covers(h.size, end) {
            return None;
        }
        // SAFETY: a host function of the running step, present in the host's table (its size
        // covers it); the topic, the tag and the sized completion are valid for the call.
        Some(unsafe { (h.receive_now)(cx, topic.as_ptr(), topic.len(), &mut tag, &mut c) })
    })?;
    Some(match rc {
        OK => Ok(Ok(Completion::from_raw(&c))),
        NONE => Ok(Err(tag)),
        other => Err(check(other).err().unwrap_or_else(|| Error::msg("receive_now failed"))),
    })
}

fn start(op: Op) -> Result<u64> {
    let mut tag = 0;
    let rc = with_host(|h, cx| match &op {
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
            let a = args_bytes(args);
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
        if let Some(op) = this.op.take() {
            if let Op::Receive(topic) = &op
                && let Some(now) = receive_now(topic.as_deref().unwrap_or(""))
            {
                return match now {
                    Ok(Ok(c)) => Poll::Ready(c),
                    // Started: nothing was waiting, so there is nothing to take yet.
                    Ok(Err(tag)) => {
                        this.tag = Some(tag);
                        Poll::Pending
                    }
                    Err(e) => Poll::Ready(Completion::Failed(e)),
                };
            }
            match start(op) {
                Ok(tag) => this.tag = Some(tag),
                Err(e) => return Poll::Ready(Completion::Failed(e)),
            }
        }
        let Some(tag) = this.tag else { return Poll::Pending };
        let mut c = SpindleCompletion::new();
        // SAFETY: a host function of the running step; `c` is a valid, sized completion.
        let rc = with_host(|h, cx| unsafe { (h.take_completion)(cx, tag, &mut c) });
        match rc {
            OK => {
                this.tag = None;
                Poll::Ready(Completion::from_raw(&c))
            }
            NONE => Poll::Pending,
            other => {
                this.tag = None;
                Poll::Ready(Completion::Failed(
                    check(other).err().unwrap_or_else(|| Error::msg("take_completion failed")),
                ))
            }
        }
    }
}

impl Drop for OpFuture {
    fn drop(&mut self) {
        // Outside a step (the process is being dropped) the host drops every operation itself.
        if let Some(tag) = self.tag.take()
            && in_step()
        {
            // SAFETY: a host function of the running step.
            let _ = with_host(|h, cx| unsafe { (h.drop_op)(cx, tag) });
        }
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
        let a = args_bytes(&args);
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
