//! A process's mailbox: queued messages (inbox and listened topics), queued events, and the
//! bookkeeping of its outstanding operations.
//!
//! Everything here lives under the process's lock. A delivery either completes an outstanding
//! receive at once (the message moves into the completion queue) or waits in a queue; a
//! receive started later takes the oldest queued message first. So messages from one sender
//! reach the process in send order, whatever the mix of queued and direct deliveries.

use std::collections::VecDeque;

use crate::error::{Error, ErrorKind, Result};
use crate::pid::Pid;
use crate::process::{Completion, Event, Message, Tag, WaitFor};
use crate::time::TimerHandle;

/// A queued message with its place in the order the mailbox got its messages: when a listened
/// topic's queue joins the inbox (`unlisten`, an upgrade) the two interleave as they came, so
/// that a sender's messages stay in send order. Queued messages count up; messages put back in
/// front of their queues (received and returned) count down, each batch below the last, as
/// they are older than everything queued. Only a mailbox with topics needs the places, so the
/// counts live in [`Rare`]; until it exists every place is 0, and the inbox is numbered when
/// it is made.
pub(crate) struct Queued {
    pub(crate) at: i64,
    pub(crate) msg: Message,
}

#[derive(Default)]
pub(crate) struct Mailbox {
    inbox: Queue<Queued>,
    /// Listened topics and queued events: most processes never have either, so they live
    /// behind one pointer that is allocated on first use.
    rare: Option<Box<Rare>>,
    /// Messages waiting in `inbox` and `topics`, for the host's mailbox limit.
    queued: u32,
    pending: Pendings,
    /// Completions not yet taken, oldest first (rarely more than one or two).
    done: Done,
    next_tag: u64,
    /// `Some` while the process is parked in `Step::Wait`; whoever satisfies it takes it and
    /// queues the process.
    pub(crate) waiting: Option<WaitFor>,
    /// The process's waker was called (Rust processes awaiting foreign futures).
    pub(crate) notified: bool,
}

/// Completions not yet taken, oldest first. Rarely more than one, and none for most idle
/// processes: one pointer until the first completion, then one allocation that keeps the
/// oldest completion in place (a message handed to a waiting receive is written there, and
/// taken from there, without a second pointer to follow).
#[derive(Default)]
struct Done(Option<Box<DoneSlots>>);

/// `first` is `None` only when `more` is empty too.
#[derive(Default)]
struct DoneSlots {
    first: Option<(Tag, Completion)>,
    more: VecDeque<(Tag, Completion)>,
}

impl Done {
    /// Adds the completion of `tag`.
    #[inline(always)]
    fn push(&mut self, tag: Tag, c: Completion) {
        self.push_with(tag, || c);
    }

    /// [`Done::push`] of the completion `make` builds, built once its slot is known: built in
    /// the caller, it was staged on the stack and copied on from there, reading back wider
    /// than it had just been written (a store-forwarding stall on every message handed to a
    /// waiting receive).
    #[inline(always)]
    fn push_with(&mut self, tag: Tag, make: impl FnOnce() -> Completion) {
        let slots = match &mut self.0 {
            Some(slots) => slots,
            None => self.allocate(),
        };
        if slots.first.is_none() {
            slots.first = Some((tag, make()));
        } else {
            slots.more.push_back((tag, make()));
        }
    }

    #[cold]
    #[inline(never)]
    fn allocate(&mut self) -> &mut DoneSlots {
        self.0.insert(Box::default())
    }

    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|d| d.first.is_none())
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |d| usize::from(d.first.is_some()) + d.more.len())
    }

    fn take_first(&mut self) -> Option<(Tag, Completion)> {
        let d = self.0.as_mut()?;
        let first = d.first.take();
        d.first = d.more.pop_front();
        first
    }

    #[inline(always)]
    fn take(&mut self, tag: Tag) -> Option<Completion> {
        let d = self.0.as_mut()?;
        if d.first.as_ref().is_some_and(|(t, _)| *t == tag) {
            let (_, c) = d.first.take()?;
            d.first = d.more.pop_front();
            return Some(c);
        }
        let i = d.more.iter().position(|(t, _)| *t == tag)?;
        d.more.remove(i).map(|(_, c)| c)
    }

    /// [`Done::take`] into `slot`, dropping what it held: the completion moves once, from here
    /// to where the caller keeps it (through a return value it was copied twice more, and the
    /// second copy read the first back wider than it had been written, which stalls).
    #[inline(always)]
    fn take_into(&mut self, tag: Tag, slot: &mut Option<Completion>) -> bool {
        let Some(d) = self.0.as_mut() else { return false };
        if d.first.as_ref().is_some_and(|(t, _)| *t == tag) {
            *slot = d.first.take().map(|(_, c)| c);
            d.first = d.more.pop_front();
            return true;
        }
        let Some(i) = d.more.iter().position(|(t, _)| *t == tag) else { return false };
        *slot = d.more.remove(i).map(|(_, c)| c);
        true
    }

    /// The newest.
    fn pop(&mut self) -> Option<(Tag, Completion)> {
        let d = self.0.as_mut()?;
        d.more.pop_back().or_else(|| d.first.take())
    }
}

#[derive(Default)]
struct Rare {
    topics: Vec<(String, Queue<Queued>)>,
    events: VecDeque<Event>,
    /// The place of the next queued message (see [`Queued`]).
    arrivals: i64,
    /// The place of the last message put back in front.
    returned: i64,
}

struct Pending {
    tag: Tag,
    what: PendingOp,
}

/// Outstanding operations, oldest first. Most processes wait on one thing at a time (a
/// receive), so the oldest is kept in place and only the others go to a vector: a process
/// parked in a receive needs no allocation for it.
#[derive(Default)]
struct Pendings {
    /// The oldest; `None` only when `rest` is empty too.
    first: Option<Pending>,
    rest: Vec<Pending>,
}

impl Pendings {
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Adds operation `tag`, waiting for what `what` makes, made once its slot is known (see
    /// [`Done::push_with`]: a receive built on the stack first was copied into its slot whole,
    /// bytes its variant leaves unwritten included, which read back what earlier stores there
    /// were still writing: a stall on every receive that waits).
    #[inline(always)]
    fn push_with(&mut self, tag: Tag, what: impl FnOnce() -> PendingOp) {
        if self.first.is_none() {
            self.first = Some(Pending { tag, what: what() });
            return;
        }
        // A second one is rare: no room for four on first use.
        if self.rest.capacity() == 0 {
            self.rest.reserve_exact(1);
        }
        self.rest.push(Pending { tag, what: what() });
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Pending> {
        self.first.iter_mut().chain(self.rest.iter_mut())
    }

    /// Takes out the oldest operation that satisfies `f`.
    fn take_first(&mut self, mut f: impl FnMut(&Pending) -> bool) -> Option<Pending> {
        if self.first.as_ref().is_some_and(&mut f) {
            let next = (!self.rest.is_empty()).then(|| self.rest.remove(0));
            return std::mem::replace(&mut self.first, next);
        }
        let i = self.rest.iter().position(f)?;
        Some(self.rest.remove(i))
    }
}

impl IntoIterator for Pendings {
    type Item = Pending;
    type IntoIter = std::iter::Chain<std::option::IntoIter<Pending>, std::vec::IntoIter<Pending>>;
    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

/// What an outstanding operation waits for, and what to undo when it is dropped.
pub(crate) enum PendingOp {
    Receive(Option<String>),
    Event,
    Timer(TimerHandle),
    /// The process an `exec` runs, once spawned: it is stopped when the operation is dropped
    /// (nobody could take its result, nor stop it otherwise: its pid is not handed out).
    Exec(Option<Pid>),
    /// Completed by a [`Completer`](crate::Completer) from outside the runtime.
    External,
}

impl Mailbox {
    pub(crate) fn new_tag(&mut self) -> Tag {
        self.next_tag += 1;
        Tag(self.next_tag)
    }

    fn rare(&mut self) -> &mut Rare {
        if self.rare.is_none() {
            // From here on places count: the messages queued so far get theirs, in order.
            let mut arrivals = 0;
            for q in self.inbox.iter_mut() {
                q.at = arrivals;
                arrivals += 1;
            }
            self.rare = Some(Box::new(Rare { arrivals, ..Rare::default() }));
        }
        self.rare.as_mut().expect("made above")
    }

    /// The place of a message queued now (see [`Queued`]).
    fn arrival(&mut self) -> i64 {
        self.rare.as_mut().map_or(0, |r| {
            r.arrivals += 1;
            r.arrivals - 1
        })
    }

    /// The places of `n` messages put back in front now, the first of them first.
    fn returning(&mut self, n: usize) -> i64 {
        self.rare.as_mut().map_or(0, |r| {
            r.returned -= i64::try_from(n).unwrap_or(i64::MAX / 2);
            r.returned
        })
    }

    fn queue_for(&mut self, topic: Option<&str>) -> Option<&mut Queue<Queued>> {
        match topic {
            None => Some(&mut self.inbox),
            Some(t) => {
                let rare = self.rare.as_mut()?;
                rare.topics.iter_mut().find(|(name, _)| name == t).map(|(_, q)| q)
            }
        }
    }

    fn is_listened(&self, topic: &str) -> bool {
        self.rare.as_ref().is_some_and(|r| r.topics.iter().any(|(name, _)| name == topic))
    }

    /// Delivers `msg`: completes the oldest receive waiting for its topic, or queues it.
    /// Returns whether the process must be woken.
    ///
    /// This and the other per-message paths here are inlined into their callers: as calls,
    /// each passed the message or completion on through the stack, and reading back a value
    /// just written in pieces stalls on store forwarding (ring +12% on one worker).
    #[inline(always)]
    pub(crate) fn deliver(&mut self, msg: Message, limit: Option<usize>) -> Result<bool> {
        let listened = self.is_listened(&msg.topic);
        let waiting = self.pending.take_first(|p| match &p.what {
            PendingOp::Receive(Some(t)) => listened && t.as_str() == msg.topic.as_str(),
            PendingOp::Receive(None) => !listened,
            _ => false,
        });
        if let Some(Pending { tag, .. }) = waiting {
            self.done.push_with(tag, || Completion::Message(msg));
            return Ok(self.wake_check());
        }
        if let Some(limit) = limit
            && self.queued as usize >= limit
        {
            return Err(Error::new(
                ErrorKind::RateLimited,
                format!("mailbox is full ({limit} messages waiting)"),
            ));
        }
        let topic = if listened { Some(msg.topic.as_str()) } else { None };
        let topic = topic.map(str::to_owned);
        let at = self.arrival();
        if let Some(q) = self.queue_for(topic.as_deref()) {
            q.push_back(Queued { at, msg });
            self.queued += 1;
        }
        Ok(false)
    }

    /// Delivers `event` to the oldest waiting event receive, or queues it.
    pub(crate) fn deliver_event(&mut self, event: Event) -> bool {
        if let Some(Pending { tag, .. }) =
            self.pending.take_first(|p| matches!(p.what, PendingOp::Event))
        {
            self.done.push(tag, Completion::Event(event));
            self.wake_check()
        } else {
            self.rare().events.push_back(event);
            false
        }
    }

    /// Takes the oldest queued message of `topic` (the inbox for `None`) without waiting.
    pub(crate) fn try_receive(&mut self, topic: Option<&str>) -> Option<Message> {
        // Mostly nothing is queued: said by the count, before a pop whose empty result would
        // be copied out whole right after its tag was written (a store-forwarding stall).
        if self.queued == 0 {
            return None;
        }
        let q = self.queue_for(topic)?.pop_front()?;
        self.queued -= 1;
        Some(q.msg)
    }

    /// Takes the oldest chunk of the inbox if it is full and no longer written to (the inbox
    /// has more than one): a receiver that has fallen behind takes that many messages with one
    /// lock instead of one each. They leave the count; [`Mailbox::put_back_taken`] returns those
    /// not received.
    pub(crate) fn take_inbox_chunk(&mut self) -> Option<VecDeque<Queued>> {
        let chunk = self.inbox.take_front_chunk()?;
        self.queued -= chunk.len() as u32;
        Some(chunk)
    }

    /// Puts messages taken out of the inbox (and older than all in it) back in front of it.
    pub(crate) fn put_back_taken(&mut self, chunk: VecDeque<Queued>) {
        self.queued += chunk.len() as u32;
        self.inbox.push_front_chunk(chunk);
    }

    pub(crate) fn try_event(&mut self) -> Option<Event> {
        self.rare.as_mut()?.events.pop_front()
    }

    /// What a receive or event operation gets at once, if anything waits already.
    pub(crate) fn serve_now(&mut self, what: &PendingOp) -> Option<Completion> {
        match what {
            PendingOp::Receive(Some(t)) if !self.is_listened(t) => {
                Some(Completion::Failed(Error::invalid(format!(
                    "receive on topic `{t}` which this process does not listen to"
                ))))
            }
            PendingOp::Receive(topic) => {
                self.try_receive(topic.as_deref()).map(Completion::Message)
            }
            PendingOp::Event => self.try_event().map(Completion::Event),
            _ => None,
        }
    }

    /// Records a started operation; a receive that can be served at once completes now.
    /// Returns whether the process must be woken (a completion while it is armed, see `arm`).
    #[inline(always)]
    pub(crate) fn start(&mut self, tag: Tag, what: PendingOp) -> bool {
        match self.serve_now(&what) {
            Some(c) => {
                self.done.push(tag, c);
                self.wake_check()
            }
            None => {
                self.start_unserved(tag, || what);
                false
            }
        }
    }

    /// Notes `child` as the process exec operation `tag` runs, if the operation is still
    /// outstanding (the child may have ended and completed it already).
    pub(crate) fn set_exec_child(&mut self, tag: Tag, child: Pid) {
        if let Some(p) = self.pending.iter_mut().find(|p| p.tag == tag)
            && let PendingOp::Exec(c) = &mut p.what
        {
            *c = Some(child);
        }
    }

    /// [`Mailbox::start`] of an operation the caller found nothing waiting for under the same
    /// lock: it is only recorded. (Looked for again, the operation was held on the stack
    /// across the look and copied into its slot after, reading back wider than it had just
    /// been written: a store-forwarding stall on every receive that had to wait.)
    #[inline(always)]
    pub(crate) fn start_unserved(&mut self, tag: Tag, what: impl FnOnce() -> PendingOp) {
        self.pending.push_with(tag, what);
        self.arm();
    }

    /// Arms a wait-any ahead of time: the operation just started is outstanding and nothing is
    /// ready, so if the step ends with `Wait(Any)` the worker may park the process without
    /// taking the lock again. From here on, whatever makes the process ready goes through
    /// `wake_check`, finds `waiting` set and wakes it — while it still runs, that sets the state
    /// word's NOTIFIED bit, which the worker's `idle` transition sees (`step::run`).
    fn arm(&mut self) {
        if self.done.is_empty() && !self.notified && self.waiting != Some(WaitFor::All) {
            self.waiting = Some(WaitFor::Any);
            crate::step::armed();
        }
    }

    /// Completes operation `tag`; returns whether the process must be woken. A completion for
    /// an operation that was dropped meanwhile is discarded.
    pub(crate) fn complete(&mut self, tag: Tag, completion: Completion) -> bool {
        if self.pending.take_first(|p| p.tag == tag).is_none() {
            return false;
        }
        self.done.push(tag, completion);
        self.wake_check()
    }

    /// Whether a step that ended with `Wait(mode)` may run again right away.
    pub(crate) fn ready(&self, mode: WaitFor) -> bool {
        match mode {
            WaitFor::Any => !self.done.is_empty() || self.notified,
            WaitFor::All => self.pending.is_empty(),
        }
    }

    /// If the parked process's wait is now satisfied, un-parks it (the caller queues it).
    pub(crate) fn wake_check(&mut self) -> bool {
        match self.waiting {
            Some(mode) if self.ready(mode) => {
                self.waiting = None;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn next_completion(&mut self) -> Option<(Tag, Completion)> {
        self.done.take_first()
    }

    #[inline(always)]
    pub(crate) fn take_completion(&mut self, tag: Tag) -> Option<Completion> {
        self.done.take(tag)
    }

    #[inline(always)]
    pub(crate) fn take_completion_into(&mut self, tag: Tag, slot: &mut Option<Completion>) -> bool {
        self.done.take_into(tag, slot)
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued as usize
    }

    pub(crate) fn completed(&self) -> usize {
        self.done.len()
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Drops operation `tag`, whether outstanding or completed but not yet taken. A message or
    /// event it had already received goes back to the front of its queue, and to the next
    /// receive waiting there: nothing is lost, nor left waiting behind a receive. Returns what
    /// must be undone outside the lock, and whether the process must be woken.
    pub(crate) fn drop_op(&mut self, tag: Tag) -> (Option<PendingOp>, bool) {
        if let Some(p) = self.pending.take_first(|p| p.tag == tag) {
            return (Some(p.what), false);
        }
        let Some(c) = self.take_completion(tag) else { return (None, false) };
        let topic = match &c {
            Completion::Message(m) if self.is_listened(&m.topic) => Some(m.topic.to_string()),
            _ => None,
        };
        let message = matches!(c, Completion::Message(_));
        self.put_back(c);
        if message {
            self.serve_waiting(topic.as_deref());
        }
        (None, self.wake_check())
    }

    /// Hands the messages queued for `topic` (the inbox for `None`) to the receives waiting
    /// there, oldest first. Delivery never leaves a message queued while a receive waits; what
    /// reaches a queue otherwise (moved there by `unlisten`, put back by a dropped receive) is
    /// served here, or it waited behind a receive that was never woken.
    fn serve_waiting(&mut self, topic: Option<&str>) {
        let waits = |p: &Pending| match (&p.what, topic) {
            (PendingOp::Receive(None), None) => true,
            (PendingOp::Receive(Some(t)), Some(u)) => t == u,
            _ => false,
        };
        while self.queue_for(topic).is_some_and(|q| !q.is_empty()) {
            let Some(Pending { tag, .. }) = self.pending.take_first(waits) else { return };
            let Some(q) = self.queue_for(topic).and_then(Queue::pop_front) else { return };
            self.queued -= 1;
            self.done.push(tag, Completion::Message(q.msg));
        }
    }

    fn put_back(&mut self, c: Completion) {
        match c {
            Completion::Message(m) => {
                let topic = if self.is_listened(&m.topic) { Some(m.topic.clone()) } else { None };
                let at = self.returning(1);
                if let Some(q) = self.queue_for(topic.as_deref()) {
                    q.push_front(Queued { at, msg: m });
                    self.queued += 1;
                }
            }
            Completion::Event(e) => self.rare().events.push_front(e),
            _ => {}
        }
    }

    /// Puts `messages`, received and not handled, back in front of their queues (a listened
    /// topic's, else the inbox), the first of them first, as if they had never been received.
    /// A receive that has completed with a later message of the same queue takes the oldest
    /// instead, and its message goes back behind these; receives waiting take them too.
    /// Returns whether the process must be woken.
    pub(crate) fn unreceive(&mut self, messages: Vec<Message>) -> bool {
        let listened: Vec<String> = self
            .rare
            .as_ref()
            .map(|r| r.topics.iter().map(|(t, _)| t.clone()).collect())
            .unwrap_or_default();
        let key = |m: &Message| listened.iter().find(|t| **t == *m.topic).cloned();
        // Their places, below every queued one: theirs in their order, then those of the later
        // messages that completed receives give back for them.
        let base = self.returning(messages.len() + self.done.len());
        let mut swapped = base + i64::try_from(messages.len()).unwrap_or(0);
        // The messages, in order, per queue.
        let mut queues: Vec<(Option<String>, VecDeque<Queued>)> = Vec::new();
        for (at, msg) in (base..).zip(messages) {
            let k = key(&msg);
            let q = Queued { at, msg };
            match queues.iter_mut().find(|(k2, _)| *k2 == k) {
                Some((_, ms)) => ms.push_back(q),
                None => queues.push((k, VecDeque::from([q]))),
            }
        }
        for (k, mut ms) in queues {
            if let Some(d) = self.done.0.as_mut() {
                for (_, c) in d.first.iter_mut().chain(d.more.iter_mut()) {
                    if let Completion::Message(m) = c
                        && key(m) == k
                        && let Some(older) = ms.pop_front()
                    {
                        let later = std::mem::replace(m, older.msg);
                        ms.push_back(Queued { at: swapped, msg: later });
                        swapped += 1;
                    }
                }
            }
            let Some(q) = self.queue_for(k.as_deref()) else { continue };
            let n = u32::try_from(ms.len()).unwrap_or(u32::MAX);
            for m in ms.into_iter().rev() {
                q.push_front(m);
            }
            self.queued = self.queued.saturating_add(n);
            self.serve_waiting(k.as_deref());
        }
        self.wake_check()
    }

    /// [`Mailbox::unreceive`] for events: back in front of the event queue, the first of them
    /// first; an event receive that completed with a later event takes the oldest instead, and
    /// event receives waiting take them too. Returns whether the process must be woken.
    pub(crate) fn unreceive_events(&mut self, events: Vec<Event>) -> bool {
        let mut events: VecDeque<Event> = events.into();
        if let Some(d) = self.done.0.as_mut() {
            for (_, c) in d.first.iter_mut().chain(d.more.iter_mut()) {
                if let Completion::Event(e) = c
                    && let Some(older) = events.pop_front()
                {
                    events.push_back(std::mem::replace(e, older));
                }
            }
        }
        let queue = &mut self.rare().events;
        for e in events.into_iter().rev() {
            queue.push_front(e);
        }
        while self.rare.as_ref().is_some_and(|r| !r.events.is_empty()) {
            let Some(Pending { tag, .. }) =
                self.pending.take_first(|p| matches!(p.what, PendingOp::Event))
            else {
                break;
            };
            let Some(e) = self.try_event() else { break };
            self.done.push(tag, Completion::Event(e));
        }
        self.wake_check()
    }

    /// For an upgrade: every operation of the old code ends; received but untaken messages and
    /// events return to their queues in order. The old code's listened topics end with it (the
    /// new code could neither receive from them nor listen to them again): their messages go
    /// to the inbox, as with `unlisten`, each where it came among the inbox's own. Returns what
    /// must be undone outside the lock.
    pub(crate) fn reset_ops(&mut self) -> impl Iterator<Item = PendingOp> + use<> {
        while let Some((_, c)) = self.done.pop() {
            self.put_back(c);
        }
        if let Some(rare) = self.rare.as_mut() {
            for (_, q) in std::mem::take(&mut rare.topics) {
                self.inbox = merge(std::mem::take(&mut self.inbox), q);
            }
        }
        self.notified = false;
        std::mem::take(&mut self.pending).into_iter().map(|p| p.what)
    }

    /// For an exit: everything goes; returns what must be undone outside the lock.
    pub(crate) fn close(&mut self) -> impl Iterator<Item = PendingOp> + use<> {
        self.inbox = Queue::default();
        self.rare = None;
        self.done = Done::default();
        self.queued = 0;
        std::mem::take(&mut self.pending).into_iter().map(|p| p.what)
    }

    pub(crate) fn listen(&mut self, topic: &str) -> Result<()> {
        if self.is_listened(topic) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("topic `{topic}` is already listened to"),
            ));
        }
        self.rare();
        // Messages of this topic that wait in the inbox now belong to the topic, in order.
        let (moved, kept): (Queue<_>, Queue<_>) =
            std::mem::take(&mut self.inbox).into_iter().partition(|q| q.msg.topic == topic);
        self.inbox = kept;
        self.rare().topics.push((topic.to_owned(), moved));
        Ok(())
    }

    /// Stops listening to `topic`: its queued messages go back to the inbox (each where it came
    /// among the inbox's own, so that a sender's messages stay in send order), and receives
    /// waiting on it fail with `CANCELED`. Returns whether the process must be woken.
    pub(crate) fn unlisten(&mut self, topic: &str) -> Result<bool> {
        let not_listened = || Error::not_found(format!("topic `{topic}` is not listened to"));
        let rare = self.rare.as_mut().ok_or_else(not_listened)?;
        let i = rare.topics.iter().position(|(t, _)| t == topic).ok_or_else(not_listened)?;
        let (_, q) = rare.topics.remove(i);
        self.inbox = merge(std::mem::take(&mut self.inbox), q);
        let on_topic = |p: &Pending| matches!(&p.what, PendingOp::Receive(Some(t)) if t == topic);
        while let Some(Pending { tag, .. }) = self.pending.take_first(on_topic) {
            let err = Error::new(ErrorKind::Canceled, format!("topic `{topic}` closed"));
            self.done.push(tag, Completion::Failed(err));
        }
        // The topic's messages are the inbox's now: to the receives waiting there first.
        self.serve_waiting(None);
        Ok(self.wake_check())
    }
}

/// A FIFO of queued messages in chunks of at most `CHUNK`. A process that falls behind (a parent
/// spawning thousands of children that each report back) queues a great many messages; in one
/// `VecDeque` every doubling copied all of them, under the process's lock, into a fresh
/// allocation so large that the allocator maps it from the system (and returns it, so the next
/// burst pays the page faults again). In chunks a push never copies more than one chunk, and the
/// chunks are ordinary allocations the allocator keeps and reuses. A queue that never holds more
/// than a chunk is one `VecDeque` that grows as usual, so a few waiting messages cost no more.
pub(crate) struct Queue<T> {
    chunks: VecDeque<VecDeque<T>>,
}

impl<T> Default for Queue<T> {
    fn default() -> Queue<T> {
        Queue { chunks: VecDeque::new() }
    }
}

/// Messages per chunk: 64 of about 72 bytes, a 4.5 KB allocation.
const CHUNK: usize = 64;

impl<T> Queue<T> {
    pub(crate) fn push_back(&mut self, item: T) {
        match self.chunks.back_mut() {
            Some(last) if last.len() < CHUNK => last.push_back(item),
            _ => {
                // The first chunk starts small and grows; later ones are needed whole.
                let mut chunk = if self.chunks.is_empty() {
                    VecDeque::new()
                } else {
                    VecDeque::with_capacity(CHUNK)
                };
                chunk.push_back(item);
                self.chunks.push_back(chunk);
            }
        }
    }

    /// Puts `item` back in front (a received message returned by `drop_op`).
    pub(crate) fn push_front(&mut self, item: T) {
        match self.chunks.front_mut() {
            Some(first) => first.push_front(item),
            None => self.chunks.push_back(VecDeque::from([item])),
        }
    }

    /// The first chunk, if another one follows it (the last one is still filled).
    pub(crate) fn take_front_chunk(&mut self) -> Option<VecDeque<T>> {
        if self.chunks.len() > 1 { self.chunks.pop_front() } else { None }
    }

    /// Puts `chunk` in front (items taken with `take_front_chunk` and not used).
    pub(crate) fn push_front_chunk(&mut self, chunk: VecDeque<T>) {
        if !chunk.is_empty() {
            self.chunks.push_front(chunk);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.iter().all(VecDeque::is_empty)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.chunks.iter_mut().flatten()
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let first = self.chunks.front_mut()?;
        let item = first.pop_front();
        if first.is_empty() && self.chunks.len() > 1 {
            self.chunks.pop_front();
        }
        item
    }
}

/// The messages of `a` and `b` (each in the order the mailbox got them) in that order.
fn merge(a: Queue<Queued>, b: Queue<Queued>) -> Queue<Queued> {
    let mut out = Queue::default();
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
        let next = if y.at < x.at { b.next() } else { a.next() };
        out.extend(next);
    }
    out.extend(a);
    out.extend(b);
    out
}

impl<T> IntoIterator for Queue<T> {
    type Item = T;
    type IntoIter = std::iter::Flatten<std::collections::vec_deque::IntoIter<VecDeque<T>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.chunks.into_iter().flatten()
    }
}

impl<T> Extend<T> for Queue<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, items: I) {
        items.into_iter().for_each(|item| self.push_back(item));
    }
}

impl<T> FromIterator<T> for Queue<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Queue<T> {
        let mut q = Queue::default();
        q.extend(items);
        q
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::{CHUNK, Done, Mailbox, PendingOp, Pendings, Queue};
    use crate::pid::{HostId, Pid};
    use crate::process::{Completion, Message, Tag};
    use crate::topic::Topic;
    use crate::value::Value;

    #[test]
    fn completions_stay_oldest_first() {
        let mut d = Done::default();
        assert!(d.is_empty());
        for n in 1..=4 {
            d.push(Tag(n), Completion::Timer);
        }
        assert_eq!(d.len(), 4);
        assert!(d.take(Tag(3)).is_some());
        assert!(d.take(Tag(1)).is_some(), "the one in place, replaced by the next oldest");
        assert!(d.take(Tag(1)).is_none());
        d.push(Tag(5), Completion::Timer);
        assert_eq!(d.take_first().map(|(t, _)| t), Some(Tag(2)));
        assert_eq!(d.pop().map(|(t, _)| t), Some(Tag(5)), "pop takes the newest");
        assert_eq!(d.take_first().map(|(t, _)| t), Some(Tag(4)));
        assert!(d.is_empty() && d.take_first().is_none());
        d.push(Tag(6), Completion::Timer);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn pending_operations_stay_oldest_first() {
        let mut p = Pendings::default();
        for n in 1..=4 {
            p.push_with(Tag(n), || PendingOp::Exec(None));
        }
        let take = |p: &mut Pendings, n| p.take_first(|x| x.tag == Tag(n)).map(|x| x.tag);
        assert_eq!(take(&mut p, 3), Some(Tag(3)));
        assert_eq!(take(&mut p, 1), Some(Tag(1)), "the inline one, replaced by the next oldest");
        assert_eq!(take(&mut p, 1), None);
        p.push_with(Tag(5), || PendingOp::Exec(None));
        assert_eq!(p.len(), 3);
        let order: Vec<_> = p.into_iter().map(|x| x.tag).collect();
        assert_eq!(order, [Tag(2), Tag(4), Tag(5)]);
    }

    fn message(topic: &str, n: i64) -> Message {
        Message {
            from: Pid::fresh(HostId::intern("mailbox:test")),
            topic: Topic::new(topic),
            payload: Value::Int(n),
        }
    }

    fn inbox_order(m: &mut Mailbox) -> Vec<(String, i64)> {
        std::iter::from_fn(|| m.try_receive(None))
            .map(|m| (m.topic.to_string(), m.payload.as_int().unwrap()))
            .collect()
    }

    /// A listened topic's queued messages rejoin the inbox in the order they came among the
    /// inbox's own, on `unlisten` and on an upgrade (`reset_ops`), with more than a chunk of
    /// each.
    #[test]
    fn a_topic_rejoins_the_inbox_in_arrival_order() {
        for upgrade in [false, true] {
            let mut m = Mailbox::default();
            m.listen("t").unwrap();
            m.listen("u").unwrap();
            let topics = ["x", "t", "x", "u", "t"];
            let n = 3 * CHUNK;
            for i in 0..n {
                m.deliver(message(topics[i % topics.len()], i as i64), None).unwrap();
            }
            if upgrade {
                drop(m.reset_ops());
            } else {
                m.unlisten("t").unwrap();
                m.unlisten("u").unwrap();
            }
            let got = inbox_order(&mut m);
            let want: Vec<_> =
                (0..n).map(|i| (topics[i % topics.len()].to_owned(), i as i64)).collect();
            assert_eq!(got, want, "upgrade: {upgrade}");
        }
    }

    /// Messages put back in front of their queues (an upgrade gives back what the old code had
    /// not taken) stay in front of what was queued behind them when the queues are joined.
    #[test]
    fn put_back_messages_stay_in_front_when_queues_join() {
        let mut m = Mailbox::default();
        m.listen("t").unwrap();
        m.deliver(message("t", 2), None).unwrap();
        m.deliver(message("x", 3), None).unwrap();
        m.unreceive(vec![message("t", 0), message("x", 1)]);
        drop(m.reset_ops());
        let got: Vec<_> = inbox_order(&mut m).into_iter().map(|(_, n)| n).collect();
        assert_eq!(got, [0, 1, 2, 3]);
    }

    #[test]
    fn a_chunked_queue_keeps_fifo_order_across_chunks() {
        let mut q = Queue::default();
        let n = 3 * CHUNK + 5;
        q.extend(0..n);
        assert_eq!(q.chunks.len(), 4, "full chunks, then a partial one");
        for i in 0..CHUNK + 1 {
            assert_eq!(q.pop_front(), Some(i));
        }
        q.push_front(CHUNK);
        let rest: Vec<_> = q.into_iter().collect();
        assert_eq!(rest, (CHUNK..n).collect::<Vec<_>>());
    }

    #[test]
    fn an_emptied_queue_takes_pushes_again() {
        let mut q = Queue::default();
        q.push_back(1);
        assert_eq!(q.pop_front(), Some(1));
        assert_eq!(q.pop_front(), None);
        q.push_front(2);
        q.push_back(3);
        assert_eq!((q.pop_front(), q.pop_front(), q.pop_front()), (Some(2), Some(3), None));
    }
}
