//! The runtime: hosts, the process table, names, entries, backends — and the operations that
//! act across processes (spawn, send, link, monitor, signals, exit).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use spindle_abi::msgpack::Token;

use crate::backend::{Backend, Instance, Placement, Prototypes};
use crate::cell::{Inner, ProcessCell, Watcher, remove_first};
use crate::context::Dest;
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Host, HostConfig};
use crate::lease::Lease;
use crate::mailbox::{PendingOp, Queued};
use crate::pid::{HostId, Pid};
use crate::process::{Code, Completion, Event, EventKind, Message, Op, Spawn, Tag, Ties};
use crate::process_ref::ProcessRef;
use crate::registry::{Entries, Entry, EntryId, Names};
use crate::rust::RustBackend;
use crate::scheduler::Strand;
use crate::sync::lock;
use crate::table::Table;
use crate::time::{Clock, Driver};
use crate::topic::Topic;
use crate::value::Value;

/// What every process and every handle of one runtime shares.
///
/// Aligned to a cache line so that its reference counts (which every process's spawn and end
/// change) have a line of their own, apart from the fields every operation reads.
#[repr(align(64))]
pub(crate) struct Shared {
    hosts: RwLock<HashMap<String, Arc<Host>>>,
    pub(crate) table: Table,
    pub(crate) names: Names,
    pub(crate) entries: Entries,
    backends: RwLock<HashMap<String, Arc<dyn Backend>>>,
    pub(crate) prototypes: Prototypes,
    pub(crate) driver: Driver,
    /// The sender of messages and signals that come from outside any process.
    outside: Pid,
    stopped: AtomicBool,
}

/// A payload to send: a value, or [`Msgpack`] bytes.
pub(crate) trait Payload {
    /// The value, made where it is asked for (a value decoded in a call and returned from it
    /// was read back wider than it had been written), and checked: `INVALID` for one that no
    /// process could take (see [`Value::check_portable`]).
    fn into_value(self) -> Result<Value>;
}

impl Payload for Value {
    #[inline(always)]
    fn into_value(self) -> Result<Value> {
        self.check_portable("payload")?;
        Ok(self)
    }
}

/// A payload as MessagePack bytes that are not one scalar (empty bytes and scalars go as
/// [`Scalar`]), checked as it is decoded.
struct Msgpack<'a>(&'a [u8]);

impl Payload for Msgpack<'_> {
    fn into_value(self) -> Result<Value> {
        crate::msgpack::from_msgpack_any(self.0)
    }
}

/// A payload known to be a scalar (a token [`spindle_abi::msgpack::scalar`] gave).
struct Scalar(Token<'static>);

impl Payload for Scalar {
    #[inline(always)]
    fn into_value(self) -> Result<Value> {
        Ok(match self.0 {
            Token::Bool(b) => Value::Bool(b),
            Token::Int(i) => Value::Int(i),
            Token::Float(x) => Value::Float(x),
            _ => Value::Nil,
        })
    }
}

/// A topic must be non-empty and must not start with `@` (reserved).
pub(crate) fn check_topic(topic: &str) -> Result<()> {
    if topic.is_empty() || topic.starts_with('@') {
        return Err(Error::invalid(format!(
            "topic `{topic}` is invalid (expected a non-empty string not starting with `@`)"
        )));
    }
    Ok(())
}

/// Undoes what an abandoned operation holds outside the process lock: a timer is cancelled,
/// the process an `exec` runs is stopped.
pub(crate) fn undo(rt: &Shared, op: PendingOp) {
    match op {
        PendingOp::Timer(h) => h.cancel(),
        PendingOp::Exec(Some(child)) => {
            if let Some(cell) = rt.table.get(child) {
                let err = Error::new(
                    ErrorKind::Canceled,
                    "the process that ran it with exec no longer waits for its result",
                );
                kill(&cell, err);
            }
        }
        _ => {}
    }
}

impl Shared {
    pub(crate) fn host(&self, name: &str) -> Result<Arc<Host>> {
        self.hosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("host `{name}` does not exist")))
    }

    fn resolve(&self, dest: &Dest) -> Result<Option<ProcessRef>> {
        match dest {
            Dest::Pid(pid) => Ok(self.table.get(*pid)),
            Dest::Name(name) => {
                let pid = self.names.lookup(name).ok_or_else(|| {
                    Error::not_found(format!("no process is registered as `{name}`"))
                })?;
                Ok(self.table.get(pid))
            }
        }
    }

    /// The prototype of entry `id` at its current version, built on first use, and the
    /// registry's copy of the id if `id` is another (see `EntryId::shared`).
    pub(crate) fn prototype(
        &self,
        id: &EntryId,
    ) -> Result<(Arc<dyn crate::Prototype>, Option<EntryId>)> {
        if let Some(built) = self.entries.built(id) {
            return Ok(built);
        }
        let entry = self
            .entries
            .get(id)
            .ok_or_else(|| Error::not_found(format!("entry {id} does not exist")))?;
        let shared = id.shared(&entry.id);
        if let Some(p) = entry.prototype.get() {
            return Ok((p.clone(), shared));
        }
        let backend = self
            .backends
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&entry.kind)
            .cloned()
            .ok_or_else(|| {
                Error::not_found(format!("entry {id}: no backend runs kind `{}`", entry.kind))
            })?;
        let proto = self.prototypes.get_or_prepare(&entry, &*backend)?;
        Ok((entry.prototype.get_or_init(|| proto).clone(), shared))
    }

    /// Builds an instance of entry `id` (its current version) for `host`; also the id the
    /// process keeps (the registry's copy, see `EntryId::shared`).
    pub(crate) fn instantiate(
        &self,
        id: EntryId,
        args: Vec<Value>,
        host: &Host,
        strand: Option<&Arc<Strand>>,
    ) -> Result<(Instance, EntryId)> {
        let (proto, shared) = self.prototype(&id)?;
        let inst = proto.instantiate(args, &Placement { host, strand })?;
        Ok((inst, shared.unwrap_or(id)))
    }

    pub(crate) fn spawn(
        self: &Arc<Self>,
        parent: Option<&ProcessRef>,
        spawn: Spawn,
        ties: Ties,
        watcher: Option<Watcher>,
    ) -> Result<Pid> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(Error::new(ErrorKind::Unavailable, "the runtime is shutting down"));
        }
        spawn.args.iter().try_for_each(|a| a.check_portable("spawn argument"))?;
        // Most spawns go to the parent's own host: no map lookup for those.
        let host = match parent {
            Some(p) if p.host.name() == spawn.host => p.host.clone(),
            _ => Lease::from_arc(self.host(&spawn.host)?),
        };
        if !host.live.try_add(&host.sched) {
            let max = host.config.max_processes.unwrap_or_default();
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("host `{}` is full ({max} processes)", host.name()),
            ));
        }
        let (body, strand, entry) = match spawn.code {
            Code::Entry(id) => match self.instantiate(id, spawn.args, &host, None) {
                Ok((inst, id)) => (inst.process, inst.strand, Some(id)),
                Err(e) => {
                    host.live.remove(&host.sched);
                    return Err(e);
                }
            },
            Code::Instance(p) => (p, None, None),
        };
        let pid = Pid::fresh(host.id);
        let mut inner = Inner { entry, ..Inner::default() };
        if let Some(parent) = parent {
            if ties.link {
                inner.rel().links.push(parent.pid);
                lock(&parent.inner).rel().links.push(pid);
            }
            if ties.monitor {
                inner.rel().watchers.push(Watcher::Monitor(parent.pid));
                lock(&parent.inner).rel().monitoring.push(pid);
            }
        }
        if let Some(w) = watcher {
            inner.rel().watchers.push(w);
        }
        if let Some(s) = &strand {
            s.joined();
        }
        let (cell, listed) = ProcessRef::new_pair(ProcessCell::new(pid, host, strand, body, inner));
        self.table.insert(listed);
        // Its first step where its strand's memory is, for one (see `Strand::push_new`).
        cell.enqueue_owned();
        Ok(pid)
    }

    pub(crate) fn send(&self, from: Pid, dest: &Dest, topic: &str, payload: Value) -> Result<()> {
        let serial = match dest {
            Dest::Pid(pid) => pid.serial(),
            Dest::Name(name) => self
                .names
                .lookup(name)
                .ok_or_else(|| Error::not_found(format!("no process is registered as `{name}`")))?
                .serial(),
        };
        self.send_serial(from, serial, topic, payload)
    }

    /// [`Shared::send_serial`] from process `sender`: a message to the process it last sent to
    /// goes straight to that one's record, without the table (pids are never reused, so the
    /// record either is that process's or tells that it ended).
    pub(crate) fn send_from(
        &self,
        sender: &ProcessCell,
        serial: u64,
        topic: &str,
        payload: Value,
    ) -> Result<()> {
        self.send_from_with(sender, serial, topic, payload)
    }

    /// [`Shared::send_from`] of a payload given as MessagePack bytes (empty bytes are nil).
    pub(crate) fn send_from_msgpack(
        &self,
        sender: &ProcessCell,
        serial: u64,
        topic: &str,
        payload: &[u8],
    ) -> Result<()> {
        // A scalar (most payloads) goes its own way, built in registers where the message is:
        // merged with the general decoder's result, it was staged on the stack and read back
        // wider than it had been written (a store-forwarding stall per message).
        match payload {
            [] => self.send_from_with(sender, serial, topic, Scalar(Token::Nil)),
            _ => match spindle_abi::msgpack::scalar(payload) {
                Some(t) => self.send_from_with(sender, serial, topic, Scalar(t)),
                None => self.send_from_with(sender, serial, topic, Msgpack(payload)),
            },
        }
    }

    /// [`Shared::send_from`] of `payload`, decoded (if it is bytes) where the message is built:
    /// a payload decoded by the caller and handed on was read back wider than the decoder had
    /// just written it, one store-forwarding stall per move.
    #[inline(always)]
    fn send_from_with(
        &self,
        sender: &ProcessCell,
        serial: u64,
        topic: &str,
        payload: impl Payload,
    ) -> Result<()> {
        let Some(slot) = sender.last_dest() else {
            return self.send_serial(sender.pid, serial, topic, payload);
        };
        check_topic(topic)?;
        let msg =
            Message { from: sender.pid, topic: Topic::new(topic), payload: payload.into_value()? };
        if let Some(dest) = slot.get(serial) {
            let wake = deliver(dest, &mut lock(&dest.inner), msg)?;
            if wake == Some(true)
                && let Some(dest) = slot.new_ref()
            {
                dest.wake_owned();
            }
            return Ok(());
        }
        let (again, old) = slot.again(serial);
        drop(old);
        let delivered = self.table.lock_serial(serial, |cell, inner| {
            let wake = deliver(cell, inner, msg)?;
            Ok(wake.filter(|&w| w || again).map(|w| (cell.to_ref(), w)))
        });
        if let Some((dest, wake)) = delivered.transpose()?.flatten() {
            if again {
                if wake {
                    dest.wake();
                }
                drop(slot.remember(dest));
            } else {
                dest.wake_owned();
            }
        }
        Ok(())
    }

    /// Sends to the process with serial `serial` (pids are never reused, so the serial alone
    /// names it); a process that has ended drops the message.
    pub(crate) fn send_serial(
        &self,
        from: Pid,
        serial: u64,
        topic: &str,
        payload: impl Payload,
    ) -> Result<()> {
        check_topic(topic)?;
        let msg = Message { from, topic: Topic::new(topic), payload: payload.into_value()? };
        // Delivered under the receiver's lock, reached through the table without a reference
        // of its own: one is taken only to queue a receiver that must wake.
        let delivered = self.table.lock_serial(serial, |cell, inner| {
            Ok(deliver(cell, inner, msg)?.filter(|&w| w).map(|_| cell.to_ref()))
        });
        if let Some(cell) = delivered.transpose()?.flatten() {
            cell.wake_owned();
        }
        Ok(())
    }

    /// Delivers an event to `pid`, if it is alive.
    pub(crate) fn post_event(&self, pid: Pid, event: Event) {
        if let Some(cell) = self.table.get(pid) {
            cell.with(|i| ((), !i.exited && i.mailbox.deliver_event(event)));
        }
    }

    /// Completes operation `tag` of `cell`.
    pub(crate) fn complete(&self, cell: &ProcessRef, tag: Tag, c: Completion) {
        cell.with(|i| ((), !i.exited && i.mailbox.complete(tag, c)));
    }

    pub(crate) fn start_op(&self, cell: &ProcessRef, op: Op) -> Tag {
        match self.start_or_take(cell, op, false) {
            Err(tag) => tag,
            Ok(_) => unreachable!("start_or_take(.., false) always starts"),
        }
    }

    /// Starts `op`; with `take_ready`, a receive that finds a message waiting returns it at once
    /// instead of starting anything (one lock round trip for the common case).
    pub(crate) fn start_or_take(
        &self,
        cell: &ProcessRef,
        op: Op,
        take_ready: bool,
    ) -> Result<Completion, Tag> {
        if take_ready && matches!(op, Op::Receive { topic: None }) {
            return self.receive_or_start(cell).map(Completion::Message);
        }
        let mut inner = lock(&cell.inner);
        let (tag, wake) = match op {
            Op::Receive { topic } => {
                // Taken messages are older than any in the inbox: a receive started now must
                // find them there.
                cell.put_back_taken(&mut inner);
                let what = PendingOp::Receive(topic);
                if take_ready && let Some(c) = inner.mailbox.serve_now(&what) {
                    return Ok(c);
                }
                let tag = inner.mailbox.new_tag();
                (tag, inner.mailbox.start(tag, what))
            }
            Op::Event => {
                let what = PendingOp::Event;
                if take_ready && let Some(c) = inner.mailbox.serve_now(&what) {
                    return Ok(c);
                }
                let tag = inner.mailbox.new_tag();
                (tag, inner.mailbox.start(tag, what))
            }
            Op::Sleep(d) => {
                let tag = inner.mailbox.new_tag();
                // Registered under the lock before the timer can fire and complete it.
                let h = self.driver.sleep(cell.clone(), tag, d);
                if h.is_due() {
                    let wake = inner.mailbox.start(tag, PendingOp::Timer(h));
                    drop(inner);
                    self.complete(cell, tag, Completion::Timer);
                    if wake {
                        cell.wake();
                    }
                    return Err(tag);
                }
                (tag, inner.mailbox.start(tag, PendingOp::Timer(h)))
            }
            Op::Exec(spawn) => {
                let tag = inner.mailbox.new_tag();
                let wake = inner.mailbox.start(tag, PendingOp::Exec(None));
                drop(inner);
                let watcher = Watcher::Exec(cell.pid, tag);
                match cell.rt().spawn(Some(cell), spawn, Ties::default(), Some(watcher)) {
                    Ok(child) => lock(&cell.inner).mailbox.set_exec_child(tag, child),
                    Err(e) => self.complete(cell, tag, Completion::Failed(e)),
                }
                if wake {
                    cell.wake();
                }
                return Err(tag);
            }
        };
        drop(inner);
        if wake {
            cell.wake();
        }
        Err(tag)
    }

    /// The oldest message waiting in `cell`'s inbox, or, if there is none, the tag of a
    /// receive started for the next one (one lock either way): what `start_or_take` does for an
    /// inbox receive, with the message handed over as it is.
    ///
    /// A running process that has fallen behind its inbox (more than one chunk of it waits)
    /// takes a whole chunk under the lock and receives the rest of it from its record
    /// ([`ProcessCell::taken`]) without the lock: a parent collecting the replies of many
    /// children no longer takes the lock, and the line it is on, back from the senders for
    /// every message. Not on a host with a mailbox limit, whose count must stay exact.
    pub(crate) fn receive_or_start(&self, cell: &ProcessRef) -> Result<Message, Tag> {
        let mut taken = cell.taken();
        if let Some(q) = taken.as_mut().and_then(|t| t.as_mut()).and_then(|t| t.pop_front()) {
            return Ok(q.msg);
        }
        let mut inner = lock(&cell.inner);
        if let Some(slot) = taken.filter(|_| cell.host.config.mailbox_limit.is_none())
            && let Some(mut chunk) = inner.mailbox.take_inbox_chunk()
            && let Some(Queued { msg: m, .. }) = chunk.pop_front()
        {
            drop(inner);
            match slot {
                Some(b) => **b = chunk,
                None => *slot = Some(Box::new(chunk)),
            }
            return Ok(m);
        }
        if let Some(m) = inner.mailbox.try_receive(None) {
            return Ok(m);
        }
        // Nothing waits (looked for just above): the receive is only recorded.
        let tag = inner.mailbox.new_tag();
        inner.mailbox.start_unserved(tag, || PendingOp::Receive(None));
        Err(tag)
    }

    pub(crate) fn link(&self, me: &ProcessRef, other: Pid) -> Result<()> {
        if other == me.pid {
            return Err(Error::invalid(format!("process {other} cannot link to itself")));
        }
        let gone = || Error::not_found(format!("process {other} is not alive"));
        let cell = self.table.get(other).ok_or_else(gone)?;
        // My side first: `notify_exit` tells only a peer that still holds the link (so that an
        // unlink has the last word), and an exit of `other` from here on finds it on both sides.
        let new = {
            let mut mine = lock(&me.inner);
            let new = !mine.links().contains(&other);
            if new {
                mine.rel().links.push(other);
            }
            new
        };
        let linked = {
            let mut o = lock(&cell.inner);
            !o.exited && {
                if !o.links().contains(&me.pid) {
                    o.rel().links.push(me.pid);
                }
                true
            }
        };
        if !linked {
            if new && let Some(r) = lock(&me.inner).rel_mut() {
                r.links.retain(|p| *p != other);
            }
            return Err(gone());
        }
        Ok(())
    }

    pub(crate) fn unlink(&self, me: &ProcessRef, other: Pid) {
        if let Some(r) = lock(&me.inner).rel_mut() {
            r.links.retain(|p| *p != other);
        }
        if let Some(cell) = self.table.get(other)
            && let Some(r) = lock(&cell.inner).rel_mut()
        {
            r.links.retain(|p| *p != me.pid);
        }
    }

    pub(crate) fn monitor(&self, me: &ProcessRef, target: Pid) {
        // My side first, as for `link`: the EXIT comes only to a process that still monitors
        // when the target's exit is told (an unmonitor has the last word).
        lock(&me.inner).rel().monitoring.push(target);
        let added = self.table.get(target).is_some_and(|cell| {
            let mut t = lock(&cell.inner);
            !t.exited && {
                t.rel().watchers.push(Watcher::Monitor(me.pid));
                true
            }
        });
        if !added {
            if let Some(r) = lock(&me.inner).rel_mut() {
                remove_first(&mut r.monitoring, |p| *p == target);
            }
            let err = Error::not_found(format!("process {target} is not alive"));
            self.post_event(
                me.pid,
                Event { kind: EventKind::Exit, from: target, result: Some(Err(err)), reason: None },
            );
        }
    }

    pub(crate) fn unmonitor(&self, me: &ProcessRef, target: Pid) {
        if let Some(r) = lock(&me.inner).rel_mut() {
            remove_first(&mut r.monitoring, |p| *p == target);
        }
        self.drop_monitor(me.pid, target);
    }

    /// Removes one monitor of `watcher` on `target`.
    pub(crate) fn drop_monitor(&self, watcher: Pid, target: Pid) {
        if let Some(cell) = self.table.get(target)
            && let Some(r) = lock(&cell.inner).rel_mut()
        {
            remove_first(&mut r.watchers, |w| matches!(w, Watcher::Monitor(p) if *p == watcher));
        }
    }

    pub(crate) fn register(&self, name: &str, pid: Pid) -> Result<()> {
        if name.is_empty() || name.starts_with('{') || name.starts_with('@') {
            return Err(Error::invalid(format!(
                "name `{name}` is invalid (expected a non-empty name not starting with `{{` or `@`)"
            )));
        }
        let gone = || Error::not_found(format!("process {pid} is not alive"));
        let cell = self.table.get(pid).ok_or_else(gone)?;
        let mut inner = lock(&cell.inner);
        if inner.exited {
            return Err(gone());
        }
        self.names.insert(name, pid)?;
        inner.rel().names.push(name.to_owned());
        Ok(())
    }

    pub(crate) fn unregister(&self, name: &str) -> Result<()> {
        let pid = self
            .names
            .lookup(name)
            .ok_or_else(|| Error::not_found(format!("no process is registered as `{name}`")))?;
        if let Some(cell) = self.table.get(pid)
            && let Some(r) = lock(&cell.inner).rel_mut()
        {
            r.names.retain(|n| n != name);
        }
        self.names.remove(name, pid);
        Ok(())
    }

    pub(crate) fn cancel(&self, from: Pid, dest: &Dest, reason: Option<Value>) -> Result<()> {
        if let Some(cell) = self.resolve(dest)? {
            let event = Event { kind: EventKind::Cancel, from, result: None, reason };
            cell.with(|i| ((), !i.exited && i.mailbox.deliver_event(event)));
        }
        Ok(())
    }

    pub(crate) fn terminate(&self, from: Pid, dest: &Dest) -> Result<()> {
        if let Some(cell) = self.resolve(dest)? {
            let err = Error::new(ErrorKind::Canceled, format!("terminated by {from}"));
            kill(&cell, err);
        }
        Ok(())
    }

    /// Tells the processes tied to `pid` that it ended with `result`. Called once per process,
    /// after it left the table.
    pub(crate) fn notify_exit(
        &self,
        pid: Pid,
        result: &Result<Value, Error>,
        links: Vec<Pid>,
        watchers: Vec<Watcher>,
    ) {
        // Links first: whoever hears of the exit through a monitor or a watch then sees the
        // links already gone.
        for l in links {
            let Some(cell) = self.table.get(l) else { continue };
            let mut inner = lock(&cell.inner);
            // A peer that unlinked since this process took its links hears nothing.
            let linked = inner.rel_mut().is_some_and(|r| {
                let n = r.links.len();
                r.links.retain(|p| *p != pid);
                r.links.len() != n
            });
            if !linked {
                continue;
            }
            let Err(err) = result else { continue };
            if inner.exited {
                continue;
            }
            if inner.trap_links {
                let event = Event {
                    kind: EventKind::LinkDown,
                    from: pid,
                    result: Some(Err(err.clone())),
                    reason: None,
                };
                let wake = inner.mailbox.deliver_event(event);
                drop(inner);
                if wake {
                    cell.wake();
                }
            } else {
                drop(inner);
                let e = Error::new(
                    err.kind(),
                    format!("linked process {pid} failed: {}", err.message()),
                );
                kill(&cell, e);
            }
        }
        for w in watchers {
            match w {
                Watcher::Monitor(p) => {
                    let Some(cell) = self.table.get(p) else { continue };
                    let event = Event {
                        kind: EventKind::Exit,
                        from: pid,
                        result: Some(result.clone()),
                        reason: None,
                    };
                    // Only to a process that still monitors it: one that unmonitored since
                    // this process took its watchers hears nothing.
                    cell.with(|i| {
                        let monitoring = i
                            .rel_mut()
                            .is_some_and(|r| remove_first(&mut r.monitoring, |p| *p == pid));
                        ((), monitoring && !i.exited && i.mailbox.deliver_event(event))
                    });
                }
                Watcher::Exec(p, tag) => {
                    if let Some(cell) = self.table.get(p) {
                        self.complete(&cell, tag, Completion::Exit(result.clone()));
                    }
                }
                Watcher::External(tx) => {
                    let _ = tx.send(result.clone());
                }
            }
        }
    }
}

/// Delivers `msg` to `cell`, whose lock gives `inner`: `None` if the process has ended (the
/// message is dropped), else whether it must be woken.
#[inline(always)]
fn deliver(cell: &ProcessCell, inner: &mut Inner, msg: Message) -> Result<Option<bool>> {
    if inner.exited {
        return Ok(None);
    }
    let limit = cell.host.config.mailbox_limit;
    inner.mailbox.deliver(msg, limit).map(Some).map_err(|e| e.context(cell.pid))
}

/// Ends `cell` before its next step with `err` (the first kill wins).
fn kill(cell: &ProcessRef, err: Error) {
    cell.with(|i| {
        if i.exited || i.kill_pending() {
            return ((), false);
        }
        i.rel().kill = Some(err);
        // Under the lock: a step that sees the flag finds the error there.
        cell.killed.store(true, Ordering::Release);
        i.mailbox.waiting = None;
        ((), true)
    });
}

/// A Spindle runtime: hosts with their schedulers, and the processes on them.
///
/// Dropping it (or calling [`Runtime::shutdown`]) stops every worker and ends every process.
pub struct Runtime {
    shared: Arc<Shared>,
}

/// Builds a [`Runtime`].
#[derive(Default)]
pub struct RuntimeBuilder {
    hosts: Vec<HostConfig>,
    backends: Vec<Arc<dyn Backend>>,
    clock: Clock,
}

impl fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeBuilder").field("hosts", &self.hosts).finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// Adds a host.
    #[must_use]
    pub fn host(mut self, config: HostConfig) -> RuntimeBuilder {
        self.hosts.push(config);
        self
    }

    /// Adds a backend (the Rust backend for `process.rust` entries is always there).
    #[must_use]
    pub fn backend(mut self, backend: impl Backend) -> RuntimeBuilder {
        self.backends.push(Arc::new(backend));
        self
    }

    /// Runs the runtime on `clock` (default: the real clock). With a [`ManualClock`](crate::ManualClock)
    /// timers fire only when the clock is advanced.
    #[must_use]
    pub fn clock(mut self, clock: impl Into<Clock>) -> RuntimeBuilder {
        self.clock = clock.into();
        self
    }

    /// Starts the runtime: its I/O driver and every host's workers.
    ///
    /// # Errors
    /// `ALREADY_EXISTS` for two hosts of one name; `INTERNAL` if the I/O driver cannot start.
    pub fn build(self) -> Result<Runtime> {
        let shared = Arc::new(Shared {
            hosts: RwLock::new(HashMap::new()),
            table: Table::new(),
            names: Names::default(),
            entries: Entries::default(),
            backends: RwLock::new(HashMap::new()),
            prototypes: Prototypes::default(),
            driver: Driver::start(self.clock)?,
            outside: Pid::fresh(HostId::intern("runtime")),
            stopped: AtomicBool::new(false),
        });
        let rt = Runtime { shared };
        rt.add_backend(Arc::new(RustBackend));
        for b in self.backends {
            rt.add_backend(b);
        }
        for h in self.hosts {
            rt.add_host(h)?;
        }
        Ok(rt)
    }
}

impl Runtime {
    /// A builder.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Starts another host.
    ///
    /// # Errors
    /// `ALREADY_EXISTS` if a host of that name runs; `UNAVAILABLE` after [`Runtime::shutdown`].
    pub fn add_host(&self, config: HostConfig) -> Result<Arc<Host>> {
        let mut hosts = self.shared.hosts.write().unwrap_or_else(|e| e.into_inner());
        if hosts.contains_key(&config.name) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("host `{}` already exists", config.name),
            ));
        }
        // A host added after shutdown would never be cleared from the map, and host and
        // runtime would keep each other alive.
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(Error::new(ErrorKind::Unavailable, "the runtime is shutting down"));
        }
        let host = Host::start(config, self.shared.clone());
        hosts.insert(host.name().to_owned(), host.clone());
        Ok(host)
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<Arc<Host>> {
        self.shared.host(name).ok()
    }

    /// Adds a backend for its entry kinds (replacing one for the same kinds).
    pub fn add_backend(&self, backend: Arc<dyn Backend>) {
        let mut map = self.shared.backends.write().unwrap_or_else(|e| e.into_inner());
        for kind in backend.kinds() {
            map.insert((*kind).to_owned(), backend.clone());
        }
    }

    /// Puts `entry` into the registry (a new version if its id exists) and returns it.
    pub fn put_entry(&self, entry: Entry) -> Arc<Entry> {
        self.shared.entries.put(entry)
    }

    /// The current version of entry `id`.
    pub fn entry(&self, id: &EntryId) -> Option<Arc<Entry>> {
        self.shared.entries.get(id)
    }

    /// Builds (or finds cached) the prototype of entry `id`: compiles or loads its code without
    /// starting anything, so that a bad entry is found before it is spawned.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown entry or kind; the backend's error for code that does not
    /// compile or load.
    pub fn prepare(&self, id: &EntryId) -> Result<()> {
        self.shared.prototype(id).map(|_| ())
    }

    /// Removes entry `id` from the registry; running processes keep their code.
    pub fn remove_entry(&self, id: &EntryId) -> Option<Arc<Entry>> {
        self.shared.entries.remove(id)
    }

    /// Every entry id, sorted.
    pub fn entry_ids(&self) -> Vec<EntryId> {
        self.shared.entries.ids()
    }

    /// How many prototypes the cache holds.
    pub fn cached_prototypes(&self) -> usize {
        self.shared.prototypes.len()
    }

    /// Starts a process with no parent.
    ///
    /// # Errors
    /// As [`Cx::spawn`](crate::Cx::spawn).
    pub fn spawn(&self, spawn: Spawn) -> Result<Pid> {
        self.shared.spawn(None, spawn, Ties::default(), None)
    }

    /// Starts a process and returns a handle that receives its result.
    ///
    /// # Errors
    /// As [`Cx::spawn`](crate::Cx::spawn).
    pub fn spawn_watched(&self, spawn: Spawn) -> Result<(Pid, ExitWatch)> {
        let (tx, rx) = mpsc::channel();
        let pid = self.shared.spawn(None, spawn, Ties::default(), Some(Watcher::External(tx)))?;
        Ok((pid, ExitWatch { rx }))
    }

    /// Starts a process and blocks the calling thread until it ends; returns its result.
    ///
    /// # Errors
    /// As [`Cx::spawn`](crate::Cx::spawn), or the process's own error.
    pub fn exec(&self, spawn: Spawn) -> Result<Value> {
        self.spawn_watched(spawn)?.1.wait()
    }

    /// A handle that receives `pid`'s result (at once, `NOT_FOUND`, if it is not alive).
    pub fn watch(&self, pid: Pid) -> ExitWatch {
        let (tx, rx) = mpsc::channel();
        let mut tx = Some(tx);
        if let Some(cell) = self.shared.table.get(pid) {
            let mut inner = lock(&cell.inner);
            if !inner.exited {
                inner.rel().watchers.push(Watcher::External(tx.take().expect("sender")));
            }
        }
        if let Some(tx) = tx {
            let _ = tx.send(Err(Error::not_found(format!("process {pid} is not alive"))));
        }
        ExitWatch { rx }
    }

    /// Sends a message from outside the runtime's processes.
    ///
    /// # Errors
    /// As [`Cx::send`](crate::Cx::send).
    pub fn send(
        &self,
        dest: impl Into<Dest>,
        topic: &str,
        payload: impl Into<Value>,
    ) -> Result<()> {
        self.shared.send(self.shared.outside, &dest.into(), topic, payload.into())
    }

    /// Asks `dest` to stop (CANCEL event).
    ///
    /// # Errors
    /// `NOT_FOUND` for a name nobody registered.
    pub fn cancel(&self, dest: impl Into<Dest>, reason: Option<Value>) -> Result<()> {
        self.shared.cancel(self.shared.outside, &dest.into(), reason)
    }

    /// Stops `dest` hard.
    ///
    /// # Errors
    /// `NOT_FOUND` for a name nobody registered.
    pub fn terminate(&self, dest: impl Into<Dest>) -> Result<()> {
        self.shared.terminate(self.shared.outside, &dest.into())
    }

    /// The pid registered as `name`.
    pub fn lookup(&self, name: &str) -> Option<Pid> {
        self.shared.names.lookup(name)
    }

    /// Whether `pid` is alive.
    pub fn is_alive(&self, pid: Pid) -> bool {
        self.shared.table.get(pid).is_some()
    }

    /// What the runtime knows of live process `pid` (as Erlang's `process_info`).
    pub fn info(&self, pid: Pid) -> Option<ProcessInfo> {
        let cell = self.shared.table.get(pid)?;
        let i = lock(&cell.inner);
        if i.exited {
            return None;
        }
        Some(ProcessInfo {
            pid,
            host: cell.host.name().to_owned(),
            entry: i.entry.clone(),
            links: i.links().to_vec(),
            monitored_by: i
                .watchers()
                .iter()
                .filter_map(|w| if let Watcher::Monitor(p) = w { Some(*p) } else { None })
                .collect(),
            monitoring: i.monitoring().to_vec(),
            names: i.names().to_vec(),
            queued_messages: i.mailbox.queued(),
            outstanding: i.mailbox.outstanding(),
            completed: i.mailbox.completed(),
            waiting: i.mailbox.waiting.is_some(),
            trap_links: i.trap_links,
        })
    }

    /// The time since the runtime started, on its clock.
    pub fn now(&self) -> Duration {
        self.shared.driver.now()
    }

    /// Live processes on every host.
    pub fn process_count(&self) -> usize {
        self.shared.table.len()
    }

    /// Sends OUTDATED to every upgradable process running entry `id`; returns how many.
    pub fn notify_outdated(&self, id: &EntryId) -> usize {
        let mut n = 0;
        for cell in self.shared.table.snapshot() {
            let event =
                Event { kind: EventKind::Outdated, from: cell.pid, result: None, reason: None };
            let told = cell.with(|i| {
                if i.exited || !i.upgradable || i.entry.as_ref() != Some(id) {
                    return (false, false);
                }
                (true, i.mailbox.deliver_event(event))
            });
            n += usize::from(told);
        }
        n
    }

    /// Stops every host's workers and ends every process (their bodies are dropped; no EXIT
    /// events are sent). Also done on drop.
    pub fn shutdown(&self) {
        if self.shared.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let hosts: Vec<_> =
            self.shared.hosts.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        for h in &hosts {
            h.sched.shutdown();
        }
        for cell in self.shared.table.drain() {
            // SAFETY: every worker of every host has stopped, so no step holds the body.
            let body = unsafe { cell.body() }.take();
            // SAFETY: as above. (Two processes that last sent to each other hold each other's
            // records: this breaks that cycle.)
            drop(unsafe { cell.forget_dest() });
            let ops = {
                let mut i = lock(&cell.inner);
                i.exited = true;
                i.take_relations();
                i.mailbox.close()
            };
            ops.into_iter().for_each(|op| undo(&self.shared, op));
            if let Some(s) = &cell.strand {
                s.clear();
            }
            drop(body);
        }
        self.shared.driver.shutdown();
        self.shared.hosts.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").field("processes", &self.process_count()).finish_non_exhaustive()
    }
}

/// A snapshot of one live process (see [`Runtime::info`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: Pid,
    /// The host it runs on.
    pub host: String,
    /// The entry it runs, if started from one.
    pub entry: Option<EntryId>,
    /// The processes it is linked to.
    pub links: Vec<Pid>,
    /// The processes that monitor it.
    pub monitored_by: Vec<Pid>,
    /// The processes it monitors.
    pub monitoring: Vec<Pid>,
    /// Its registered names.
    pub names: Vec<String>,
    /// Messages waiting in its inbox and topic queues.
    pub queued_messages: usize,
    /// Its outstanding operations.
    pub outstanding: usize,
    /// Completed operations whose completion it has not taken yet.
    pub completed: usize,
    /// Whether it is parked in a wait (or has armed one).
    pub waiting: bool,
    /// Whether it traps links.
    pub trap_links: bool,
}

/// Receives the result of one process (see [`Runtime::spawn_watched`], [`Runtime::watch`]).
#[derive(Debug)]
pub struct ExitWatch {
    rx: mpsc::Receiver<Result<Value, Error>>,
}

impl ExitWatch {
    /// Blocks until the process ends; returns its result.
    ///
    /// # Errors
    /// The process's error, or `UNAVAILABLE` if the runtime shut down first.
    pub fn wait(self) -> Result<Value> {
        self.rx.recv().unwrap_or_else(|_| Err(shut_down()))
    }

    /// Blocks up to `timeout`; `None` if the process still runs.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<Value>> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => Some(r),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(shut_down())),
        }
    }
}

fn shut_down() -> Error {
    Error::new(ErrorKind::Unavailable, "the runtime shut down before the process ended")
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;
    use crate::rust::rust_entry;

    /// A process spawned with an entry id parsed for the spawn (as a Lua spawn does) keeps the
    /// registry's copy, shared by every process of the entry, not one of its own.
    #[test]
    fn a_process_keeps_the_registrys_copy_of_its_entry_id() {
        let rt = Runtime::builder().host(HostConfig::new("ids:h")).build().unwrap();
        let registered =
            rt.put_entry(rust_entry("ids:idle".parse().unwrap(), |cx, _| async move {
                cx.recv().await;
                Ok(Value::Nil)
            }));
        for _ in 0..3 {
            let fresh: EntryId = "ids:idle".parse().unwrap();
            let pid = rt.spawn(Spawn::entry(fresh, "ids:h")).unwrap();
            let cell = rt.shared.table.get(pid).expect("alive");
            let kept = lock(&cell.inner).entry.clone().expect("started from an entry");
            assert!(kept.shared(&registered.id).is_none(), "a copy of its own");
            rt.terminate(pid).unwrap();
        }
    }
}
