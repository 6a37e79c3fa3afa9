//! The step context: what a process can do, addressed as itself.
//!
//! Non-blocking operations act at once. Blocking ones are started with [`Cx::start`] and
//! return a [`Tag`]; their completions are taken with [`Cx::next_completion`] or
//! [`Cx::take_completion`] in a later step.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::pid::Pid;
use crate::process::{Completion, Event, Message, Op, Spawn, Tag, Ties};
use crate::process_ref::ProcessRef;
use crate::registry::EntryId;
use crate::sync::lock;
use crate::value::Value;

/// Where a message or a signal goes: a pid or a registered name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// A process by pid.
    Pid(Pid),
    /// A process by its registered name.
    Name(String),
}

impl From<Pid> for Dest {
    fn from(p: Pid) -> Dest {
        Dest::Pid(p)
    }
}

impl From<&Pid> for Dest {
    fn from(p: &Pid) -> Dest {
        Dest::Pid(*p)
    }
}

impl From<&str> for Dest {
    /// A string that prints like a pid (`{host|0x…}`) is that pid; anything else is a name.
    fn from(s: &str) -> Dest {
        match s.parse::<Pid>() {
            Ok(p) if s.starts_with('{') => Dest::Pid(p),
            _ => Dest::Name(s.to_owned()),
        }
    }
}

impl From<String> for Dest {
    fn from(s: String) -> Dest {
        Dest::from(s.as_str())
    }
}

/// A process's handle on the runtime, valid for the process's whole life. Cloning is cheap.
#[derive(Clone)]
pub struct Cx {
    pub(crate) cell: ProcessRef,
}

impl fmt::Debug for Cx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cx").field("pid", &self.cell.pid).finish()
    }
}

impl Cx {
    /// This process's pid.
    pub fn pid(&self) -> Pid {
        self.cell.pid
    }

    /// The name of the host this process runs on.
    pub fn host(&self) -> &str {
        self.cell.host.name()
    }

    /// The settings of the host this process runs on (its module grants, whether it is a
    /// terminal host).
    pub fn host_config(&self) -> &crate::HostConfig {
        self.cell.host.config()
    }

    /// The entry this process runs, if it was started from one.
    pub fn entry(&self) -> Option<EntryId> {
        lock(&self.cell.inner).entry.clone()
    }

    /// Sends `payload` under `topic` to `dest`. Sending to a process that has ended is not an
    /// error (the message is dropped, as in Erlang).
    ///
    /// # Errors
    /// `INVALID` for a bad topic, `NOT_FOUND` for a name nobody registered, `RATE_LIMITED` when
    /// the receiver's mailbox is full.
    pub fn send(
        &self,
        dest: impl Into<Dest>,
        topic: &str,
        payload: impl Into<Value>,
    ) -> Result<()> {
        match dest.into() {
            Dest::Pid(pid) => {
                self.cell.rt().send_from(&self.cell, pid.serial(), topic, payload.into())
            }
            dest => self.cell.rt().send(self.cell.pid, &dest, topic, payload.into()),
        }
    }

    /// Starts a process; `ties` link it to this one and/or make this one receive its EXIT.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown host or entry, `UNAVAILABLE` when the host is full, or the
    /// backend's error when the code cannot start.
    pub fn spawn(&self, spawn: Spawn, ties: Ties) -> Result<Pid> {
        self.cell.rt().spawn(Some(&self.cell), spawn, ties, None)
    }

    /// Links this process and `pid` both ways.
    ///
    /// # Errors
    /// `NOT_FOUND` if `pid` is not alive; `INVALID` for the process itself.
    pub fn link(&self, pid: Pid) -> Result<()> {
        self.cell.rt().link(&self.cell, pid)
    }

    /// Removes the link with `pid` (if any).
    pub fn unlink(&self, pid: Pid) {
        self.cell.rt().unlink(&self.cell, pid);
    }

    /// Receive an EXIT event when `pid` ends (at once, with a `NOT_FOUND` error, if it is not
    /// alive).
    pub fn monitor(&self, pid: Pid) {
        self.cell.rt().monitor(&self.cell, pid);
    }

    /// Stops monitoring `pid`.
    pub fn unmonitor(&self, pid: Pid) {
        self.cell.rt().unmonitor(&self.cell, pid);
    }

    /// Registers `name` for `pid` (this process when `None`); released when that process ends.
    ///
    /// # Errors
    /// `ALREADY_EXISTS` if taken, `INVALID` for a bad name, `NOT_FOUND` if `pid` is not alive.
    pub fn register(&self, name: &str, pid: Option<Pid>) -> Result<()> {
        self.cell.rt().register(name, pid.unwrap_or(self.cell.pid))
    }

    /// The pid registered as `name`.
    pub fn lookup(&self, name: &str) -> Option<Pid> {
        self.cell.rt().names.lookup(name)
    }

    /// Removes the registration of `name`.
    ///
    /// # Errors
    /// `NOT_FOUND` if nobody is registered as `name`.
    pub fn unregister(&self, name: &str) -> Result<()> {
        self.cell.rt().unregister(name)
    }

    /// Asks `dest` to stop: it receives a CANCEL event and decides.
    ///
    /// # Errors
    /// `NOT_FOUND` for a name nobody registered.
    pub fn cancel(&self, dest: impl Into<Dest>, reason: Option<Value>) -> Result<()> {
        self.cell.rt().cancel(self.cell.pid, &dest.into(), reason)
    }

    /// Stops `dest` hard: it ends before its next step with a `CANCELED` error.
    ///
    /// # Errors
    /// `NOT_FOUND` for a name nobody registered.
    pub fn terminate(&self, dest: impl Into<Dest>) -> Result<()> {
        self.cell.rt().terminate(self.cell.pid, &dest.into())
    }

    /// With `true`, a linked process's abnormal exit arrives as a LINK_DOWN event instead of
    /// ending this process too.
    pub fn set_trap_links(&self, on: bool) {
        lock(&self.cell.inner).trap_links = on;
    }

    /// Whether links are trapped.
    pub fn trap_links(&self) -> bool {
        lock(&self.cell.inner).trap_links
    }

    /// With `true`, this process receives OUTDATED when its entry is reloaded.
    pub fn set_upgradable(&self, on: bool) {
        lock(&self.cell.inner).upgradable = on;
    }

    /// Whether this process asked for OUTDATED events.
    pub fn upgradable(&self) -> bool {
        lock(&self.cell.inner).upgradable
    }

    /// Routes messages of `topic` to their own queue (received with `Op::Receive { topic }`);
    /// messages of it already in the inbox move there, in order.
    ///
    /// # Errors
    /// `INVALID` for a bad topic, `ALREADY_EXISTS` if already listened to.
    pub fn listen(&self, topic: &str) -> Result<()> {
        crate::runtime::check_topic(topic)?;
        let mut inner = lock(&self.cell.inner);
        self.cell.put_back_taken(&mut inner);
        inner.mailbox.listen(topic)
    }

    /// Stops listening to `topic`; its waiting messages go back to the inbox, each where it came
    /// among the inbox's own.
    ///
    /// # Errors
    /// `NOT_FOUND` if `topic` is not listened to.
    pub fn unlisten(&self, topic: &str) -> Result<()> {
        let cell = &self.cell;
        let mut inner = lock(&cell.inner);
        cell.put_back_taken(&mut inner);
        let wake = inner.mailbox.unlisten(topic)?;
        drop(inner);
        if wake {
            cell.wake();
        }
        Ok(())
    }

    /// Starts a blocking operation; its completion carries the returned tag.
    pub fn start(&self, op: Op) -> Tag {
        self.cell.rt().start_op(&self.cell, op)
    }

    /// Like [`Cx::start`], but an operation that can complete at once (a receive that finds a
    /// message waiting) returns its completion instead of a tag.
    pub fn start_or_take(&self, op: Op) -> std::result::Result<Completion, Tag> {
        self.cell.rt().start_or_take(&self.cell, op, true)
    }

    /// Starts an operation that something outside the runtime carries out (a thread reading
    /// the terminal, a callback of a foreign library): the returned [`Completer`] completes it
    /// with [`Completion::Exit`], from any thread. A completer dropped without completing
    /// completes the operation with `CANCELED`.
    pub fn start_external(&self) -> (Tag, Completer) {
        let cell = &self.cell;
        let mut inner = lock(&cell.inner);
        let tag = inner.mailbox.new_tag();
        let wake = inner.mailbox.start(tag, crate::mailbox::PendingOp::External);
        drop(inner);
        if wake {
            cell.wake();
        }
        (tag, Completer { cell: Some(cell.clone()), tag })
    }

    /// The time since the runtime started, on the runtime's [`Clock`](crate::Clock).
    pub fn now(&self) -> Duration {
        self.cell.rt().driver.now()
    }

    /// Takes the oldest waiting message of `topic` (the inbox for `None`) without blocking.
    pub fn try_receive(&self, topic: Option<&str>) -> Option<Message> {
        let mut inner = lock(&self.cell.inner);
        self.cell.put_back_taken(&mut inner);
        inner.mailbox.try_receive(topic)
    }

    /// Takes the oldest waiting event without blocking.
    pub fn try_event(&self) -> Option<Event> {
        lock(&self.cell.inner).mailbox.try_event()
    }

    /// The oldest completion not yet taken.
    pub fn next_completion(&self) -> Option<(Tag, Completion)> {
        lock(&self.cell.inner).mailbox.next_completion()
    }

    /// The completion of operation `tag`, if it has completed.
    pub fn take_completion(&self, tag: Tag) -> Option<Completion> {
        lock(&self.cell.inner).mailbox.take_completion(tag)
    }

    /// [`Cx::take_completion`] into `slot`, for a caller that keeps the completion in place
    /// (what `slot` held is dropped, and only when operation `tag` has completed): it moves
    /// once, from the mailbox to `slot`. Returns whether it had completed.
    pub fn take_completion_into(&self, tag: Tag, slot: &mut Option<Completion>) -> bool {
        lock(&self.cell.inner).mailbox.take_completion_into(tag, slot)
    }

    /// Puts `messages`, which this process received and did not handle, back in front of its
    /// mailbox, the first of them first, as if they had never been received: for a backend
    /// whose process gives up messages it took (its code is upgraded while they wait inside it).
    pub fn put_back(&self, messages: Vec<Message>) {
        if messages.is_empty() {
            return;
        }
        let mut inner = lock(&self.cell.inner);
        // Those taken out of the inbox after these go back behind them.
        self.cell.put_back_taken(&mut inner);
        let wake = inner.mailbox.unreceive(messages);
        drop(inner);
        if wake {
            self.cell.wake();
        }
    }

    /// [`Cx::put_back`] for events this process received and did not handle.
    pub fn put_back_events(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let wake = lock(&self.cell.inner).mailbox.unreceive_events(events);
        if wake {
            self.cell.wake();
        }
    }

    /// Abandons operation `tag`. A message or event it already received goes back to its queue.
    pub fn drop_op(&self, tag: Tag) {
        let mut inner = lock(&self.cell.inner);
        // A message the operation received goes back in front of the inbox: so must those
        // taken out of it after that one.
        self.cell.put_back_taken(&mut inner);
        let (undo, wake) = inner.mailbox.drop_op(tag);
        drop(inner);
        if wake {
            self.cell.wake();
        }
        if let Some(op) = undo {
            crate::runtime::undo(self.cell.rt(), op);
        }
    }

    /// How many operations are outstanding.
    pub fn outstanding(&self) -> usize {
        lock(&self.cell.inner).mailbox.outstanding()
    }

    /// Sends `payload` under `topic` to the process whose serial number is `serial` (see
    /// [`Pid::serial`]), for interfaces that carry pids as plain integers: one lookup, where
    /// [`Cx::pid_from_serial`] and [`Cx::send`] take two. A process that has ended drops the
    /// message, as with [`Cx::send`].
    ///
    /// # Errors
    /// As for [`Cx::send`].
    pub fn send_serial(&self, serial: u64, topic: &str, payload: impl Into<Value>) -> Result<()> {
        self.cell.rt().send_from(&self.cell, serial, topic, payload.into())
    }

    /// [`Cx::send_serial`] of a payload given as MessagePack bytes (empty bytes are nil), for
    /// backends whose processes hand over encoded values: decoded where the message is built.
    ///
    /// # Errors
    /// As for [`Cx::send`], and `INVALID` when the bytes are not one MessagePack value (see
    /// [`Value::from_msgpack`]).
    pub fn send_serial_msgpack(&self, serial: u64, topic: &str, payload: &[u8]) -> Result<()> {
        self.cell.rt().send_from_msgpack(&self.cell, serial, topic, payload)
    }

    /// The pid of the live process whose serial number is `serial` (see [`Pid::serial`]); for
    /// interfaces that carry pids as plain integers.
    pub fn pid_from_serial(&self, serial: u64) -> Option<Pid> {
        self.cell.rt().table.pid_of(serial)
    }

    /// Whether `pid` is alive.
    pub fn is_alive(&self, pid: Pid) -> bool {
        self.cell.rt().table.get(pid).is_some()
    }
}

impl From<&Cx> for Dest {
    fn from(cx: &Cx) -> Dest {
        Dest::Pid(cx.pid())
    }
}

/// Completes one external operation (see [`Cx::start_external`]). `Send`: hand it to the
/// thread that does the work.
pub struct Completer {
    cell: Option<ProcessRef>,
    tag: Tag,
}

impl Completer {
    /// Completes the operation with `result`. Nothing happens if the process has ended or has
    /// dropped the operation.
    pub fn complete(mut self, result: Result<Value>) {
        if let Some(cell) = self.cell.take() {
            cell.rt().complete(&cell, self.tag, Completion::Exit(result));
        }
    }

    /// The operation's tag.
    pub fn tag(&self) -> Tag {
        self.tag
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            let err = Error::new(ErrorKind::Canceled, "the operation was abandoned");
            cell.rt().complete(&cell, self.tag, Completion::Exit(Err(err)));
        }
    }
}

impl fmt::Debug for Completer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completer").field("tag", &self.tag).finish_non_exhaustive()
    }
}
