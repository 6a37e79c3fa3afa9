//! A Lua process: a state table and coroutines in an island, stepped through the prelude.

use std::cell::Cell;
use std::ffi::c_int;
use std::sync::Arc;

use mlua::{MultiValue, Value as LuaValue, ffi};
use spindle_runtime::{
    Cx, EntryId, Error, ErrorKind, Event, EventKind, Message, Pid, Process, Step, Tag, Topic,
    Value, WaitFor,
};

use crate::api::Current;
use crate::convert::to_value;
use crate::island::{Code, Island};
use crate::stack::{push_completion, push_value};

/// What the first step needs to start the process.
pub(crate) struct Start {
    pub(crate) code: Code,
    pub(crate) args: Vec<Value>,
}

pub(crate) struct LuaProcess {
    island: Arc<Island>,
    entry: EntryId,
    /// The prelude's state table of the process, as a reference in the island's registry.
    state: Option<c_int>,
    /// Boxed: a process holds it until its first step only.
    start: Option<Box<Start>>,
    /// Memory attributed to this process: the growth of its Lua state during its steps.
    memory: usize,
    /// The most it may be attributed (bytes; 0: no budget).
    budget: usize,
}

impl LuaProcess {
    pub(crate) fn new(
        island: Arc<Island>,
        entry: EntryId,
        start: Start,
        budget: usize,
    ) -> LuaProcess {
        LuaProcess { island, entry, state: None, start: Some(Box::new(start)), memory: 0, budget }
    }

    /// The first step, entered with Lua's C API like the later ones: the prelude's
    /// `start(chunk, method, granted, ...)` makes the process's state table `P`, kept as a
    /// reference in the registry, and runs its main coroutine; it returns `P` and then what a
    /// step returns (see [`finish_step`]).
    fn first_step(&mut self, fast: &Cell<Fast>) -> mlua::Result<MultiValue> {
        let start =
            self.start.take().ok_or_else(|| mlua::Error::runtime("process started twice"))?;
        let island = &*self.island;
        let Code::Loaded(code) = start.code else {
            return Err(mlua::Error::runtime("the process's code was not loaded"));
        };
        let nargs = c_int::try_from(start.args.len())
            .ok()
            .filter(|n| *n < c_int::MAX - 8)
            .ok_or_else(|| mlua::Error::runtime("too many arguments"))?;
        let mut state = None;
        // SAFETY: `protected` runs the closure in protected mode on the main thread, with
        // room asked for the function, its three code values and the arguments (`push_value`
        // asks for what nesting needs). A Lua error raised in it skips its frame, which holds
        // only references.
        let out = unsafe {
            island.protected(|s| {
                island.unrefs.free(s);
                ffi::luaL_checkstack(s, nargs + 4, std::ptr::null());
                for r in [island.start, code.chunk, code.method, code.granted] {
                    ffi::lua_rawgeti(s, ffi::LUA_REGISTRYINDEX, ffi::lua_Integer::from(r));
                }
                for a in &start.args {
                    push_value(s, a);
                }
                ffi::lua_call(s, 3 + nargs, ffi::LUA_MULTRET);
                if ffi::lua_type(s, 1) != ffi::LUA_TTABLE {
                    return;
                }
                // `P` into the registry; what the step returned stays.
                ffi::lua_pushvalue(s, 1);
                state = Some(ffi::luaL_ref(s, ffi::LUA_REGISTRYINDEX));
                ffi::lua_remove(s, 1);
                finish_step(s, fast);
            })?
        };
        self.state = Some(
            state.ok_or_else(|| mlua::Error::runtime("the process scheduler returned no state"))?,
        );
        Ok(out)
    }

    /// A later step, entered with Lua's C API: the completions that came are handed over in
    /// order (`deliver(P, tag, ...)`), the last one with the step itself (`step(P, tag, ...)`).
    /// A step that ends waiting or yielding returns no values (`Fast` says which); one that
    /// ends otherwise returns what the prelude's `step` returned.
    fn next_step(&self, state: c_int, cx: &Cx, fast: &Cell<Fast>) -> mlua::Result<MultiValue> {
        let island = &*self.island;
        let cur = island.current();
        let (step, deliver) = (island.step, island.deliver);
        // SAFETY: `protected` runs the closure in protected mode on the main thread, with room
        // for LUA_MINSTACK values (a completion takes at most eight, plus the function, `P` and
        // the tag). A Lua error raised in it skips its frame: the frame holds only references
        // and `Copy` values, the completions wait in `Current`'s cells.
        unsafe {
            island.protected(|s| {
                island.unrefs.free(s);
                let mut tag = take_next(cur, cx);
                while let Some(t) = tag {
                    // The completion of `t` moves to `pushing`, the next one to `pending`.
                    cur.pushing.set(cur.pending.take().map(|(_, c)| c));
                    let next = take_next(cur, cx);
                    let f = if next.is_some() { deliver } else { step };
                    ffi::lua_rawgeti(s, ffi::LUA_REGISTRYINDEX, ffi::lua_Integer::from(f));
                    ffi::lua_rawgeti(s, ffi::LUA_REGISTRYINDEX, ffi::lua_Integer::from(state));
                    ffi::lua_pushinteger(s, t.get() as ffi::lua_Integer);
                    let n = match cur.pushing_ref() {
                        Some(c) => push_completion(s, c),
                        None => 0,
                    };
                    cur.pushing.take();
                    if next.is_none() {
                        ffi::lua_call(s, 2 + n, ffi::LUA_MULTRET);
                        return finish_step(s, fast);
                    }
                    ffi::lua_call(s, 2 + n, 0);
                    tag = next;
                }
                ffi::lua_rawgeti(s, ffi::LUA_REGISTRYINDEX, ffi::lua_Integer::from(step));
                ffi::lua_rawgeti(s, ffi::LUA_REGISTRYINDEX, ffi::lua_Integer::from(state));
                ffi::lua_call(s, 1, ffi::LUA_MULTRET);
                finish_step(s, fast);
            })
        }
    }

    fn step_lua(&mut self, cx: &Cx) -> mlua::Result<Step> {
        let fast = Cell::new(Fast::No);
        let out = match self.state {
            Some(state) => self.next_step(state, cx, &fast)?,
            None => self.first_step(&fast)?,
        };
        match fast.take() {
            Fast::Wait => return Ok(Step::Wait(WaitFor::Any)),
            Fast::Yield => return Ok(Step::Yield),
            Fast::Exit(r) => {
                let entry = &self.entry;
                let r = r.map_err(|e| e.context(format!("the return value of {entry}")));
                return Ok(Step::Exit(r));
            }
            Fast::No => {}
        }
        let mut out = out.into_iter();
        let status = match out.next() {
            Some(LuaValue::String(s)) => s,
            _ => return Err(mlua::Error::runtime("the process scheduler returned no status")),
        };
        Ok(match &*status.as_bytes() {
            b"wait" => Step::Wait(WaitFor::Any),
            b"yield" => Step::Yield,
            b"exit" => {
                let ok = matches!(out.next(), Some(LuaValue::Boolean(true)));
                let v = out.next().unwrap_or(LuaValue::Nil);
                if ok {
                    Step::Exit(
                        to_value(&v)
                            .map_err(|e| e.context(format!("the return value of {}", self.entry))),
                    )
                } else if is_out_of_memory(&v) {
                    Step::Exit(Err(Error::new(
                        ErrorKind::RateLimited,
                        format!("{}: out of memory", self.entry),
                    )))
                } else {
                    Step::Exit(Err(self.describe(v)))
                }
            }
            b"upgrade" => {
                let id = out.next().unwrap_or(LuaValue::Nil);
                let args = out.next().unwrap_or(LuaValue::Nil);
                // What the old code had been handed and not received goes back to the mailbox.
                let (messages, events) = untaken(&out.next().unwrap_or(LuaValue::Nil));
                cx.put_back(messages);
                cx.put_back_events(events);
                match upgrade_request(&id, &args) {
                    Ok((entry, args)) => Step::Upgrade { entry, args },
                    Err(e) => Step::Exit(Err(e)),
                }
            }
            other => {
                let other = String::from_utf8_lossy(other);
                return Err(mlua::Error::runtime(format!("unknown step status {other}")));
            }
        })
    }

    fn describe(&self, e: LuaValue) -> Error {
        match self.island.describe_error.call::<(String, String)>(e) {
            Ok((kind, message)) => {
                Error::new(ErrorKind::from_name(&kind).unwrap_or(ErrorKind::Unknown), message)
            }
            Err(e) => Error::new(ErrorKind::Unknown, e.to_string()),
        }
    }
}

/// How a step entered with the C API ended, if it needs no more than that.
#[derive(Default)]
enum Fast {
    #[default]
    No,
    Wait,
    Yield,
    /// The process returned: its value (copied off the stack), or why it cannot be copied.
    Exit(Result<Value, Error>),
}

/// The next completion of the step: parked in `cur.pending`; returns its tag.
fn take_next(cur: &Current, cx: &Cx) -> Option<Tag> {
    let (tag, c) = cx.next_completion()?;
    cur.pending.set(Some((tag, c)));
    Some(tag)
}

/// After the prelude's `step` returned (its values alone on the stack): a plain `"wait"` or
/// `"yield"`, or a return (`"exit", true, value`), is noted in `fast` and popped; anything else
/// (an error, an upgrade) stays for [`Island::protected`] to return.
///
/// # Safety
/// `s` is the state the step ran in, inside `protected`'s closure.
unsafe fn finish_step(s: *mut ffi::lua_State, fast: &Cell<Fast>) {
    // SAFETY: the caller's contract; the closure's frame held nothing else on the stack, and
    // `value_at` raises nothing.
    unsafe {
        match (ffi::lua_gettop(s), crate::stack::str_at(s, 1)) {
            (1, Some(b"wait")) => fast.set(Fast::Wait),
            // A preempted step's `leave(P, "yield")` passes two nils on.
            (1..=3, Some(b"yield")) => fast.set(Fast::Yield),
            (3, Some(b"exit"))
                if ffi::lua_type(s, 2) == ffi::LUA_TBOOLEAN && ffi::lua_toboolean(s, 2) != 0 =>
            {
                fast.set(Fast::Exit(crate::stack::value_at(s, 3)));
            }
            _ => return,
        }
        ffi::lua_settop(s, 0);
    }
}

impl Drop for LuaProcess {
    /// Lets go of the state table's reference, which the island's next step frees: the drop
    /// may happen on any thread (see [`crate::island::Unrefs`]).
    fn drop(&mut self) {
        if let Some(r) = self.state.take() {
            self.island.unrefs.push(&[r]);
        }
    }
}

/// Lua's own allocation failure, as a coroutine reports it.
fn is_out_of_memory(v: &LuaValue) -> bool {
    match v {
        LuaValue::Error(e) => matches!(**e, mlua::Error::MemoryError(_)),
        LuaValue::String(s) => s.as_bytes().starts_with(b"not enough memory"),
        _ => false,
    }
}

/// The prelude's list of messages and events the process was handed and did not receive
/// (`untaken`): a message is a table `{from, topic, data}`, `from` as a `Message` keeps it (the
/// pid's bits or text); an event is its completion's values `{kind, from, ok, value_or_kind,
/// message, reason}` marked `event`.
fn untaken(list: &LuaValue) -> (Vec<Message>, Vec<Event>) {
    let (mut messages, mut events, mut unreadable) = (Vec::new(), Vec::new(), 0);
    let LuaValue::Table(list) = list else { return (messages, events) };
    let pid = |v: LuaValue| -> Option<Pid> {
        match v {
            LuaValue::Integer(bits) => crate::stack::sender_pid(bits),
            LuaValue::String(s) => s.to_str().ok()?.parse().ok(),
            _ => None,
        }
    };
    let text = |v: LuaValue| -> Option<String> {
        match v {
            LuaValue::String(s) => Some(s.to_str().ok()?.to_owned()),
            _ => None,
        }
    };
    let message = |m: &mlua::Table| -> Option<Message> {
        let from = pid(m.raw_get(1).ok()?)?;
        let topic = Topic::from(text(m.raw_get(2).ok()?)?);
        let payload = to_value(&m.raw_get::<LuaValue>(3).ok()?).ok()?;
        Some(Message { from, topic, payload })
    };
    let event = |e: &mlua::Table| -> Option<Event> {
        let kind = EventKind::from_name(&text(e.raw_get(1).ok()?)?)?;
        let from = pid(e.raw_get(2).ok()?)?;
        let result = match e.raw_get::<LuaValue>(3).ok()? {
            LuaValue::Nil => None,
            LuaValue::Boolean(true) => Some(Ok(to_value(&e.raw_get::<LuaValue>(4).ok()?).ok()?)),
            LuaValue::Boolean(false) => {
                let kind = text(e.raw_get(4).ok()?)?;
                let message = text(e.raw_get(5).ok()?).unwrap_or_default();
                let kind = ErrorKind::from_name(&kind).unwrap_or(ErrorKind::Unknown);
                Some(Err(Error::new(kind, message)))
            }
            _ => return None,
        };
        let reason = match e.raw_get::<LuaValue>(6).ok()? {
            LuaValue::Nil => None,
            r => Some(to_value(&r).ok()?),
        };
        Some(Event { kind, from, result, reason })
    };
    for item in list.sequence_values::<LuaValue>() {
        let Ok(LuaValue::Table(t)) = item else {
            unreadable += 1;
            continue;
        };
        if matches!(t.raw_get::<LuaValue>("event"), Ok(LuaValue::Boolean(true))) {
            match event(&t) {
                Some(e) => events.push(e),
                None => unreadable += 1,
            }
        } else {
            match message(&t) {
                Some(m) => messages.push(m),
                None => unreadable += 1,
            }
        }
    }
    if unreadable > 0 {
        tracing::error!(
            lost = unreadable,
            "messages or events an upgrade gave back were unreadable"
        );
    }
    (messages, events)
}

fn upgrade_request(id: &LuaValue, args: &LuaValue) -> Result<(Option<EntryId>, Vec<Value>), Error> {
    let entry = match id {
        LuaValue::Nil => None,
        LuaValue::String(s) => Some(
            s.to_str()
                .map_err(|_| Error::new(ErrorKind::Invalid, "entry id is not text"))?
                .parse()?,
        ),
        _ => {
            return Err(Error::new(
                ErrorKind::Invalid,
                "process.upgrade: entry must be a string or nil",
            ));
        }
    };
    let mut values = Vec::new();
    if let LuaValue::Table(t) = args {
        let n: i64 = t.raw_get("n").unwrap_or(0);
        for i in 1..=n {
            let v: LuaValue = t.raw_get(i).unwrap_or(LuaValue::Nil);
            values.push(to_value(&v).map_err(|e| e.context("process.upgrade arguments"))?);
        }
    }
    Ok((entry, values))
}

impl Process for LuaProcess {
    fn step(&mut self, cx: &Cx) -> Step {
        // SAFETY: `self` holds the island for the whole step and nothing in it replaces
        // `self.island` (borrowed through a pointer so that the step can borrow `self`
        // mutably: no reference count taken and given back per step).
        let island: &Island = unsafe { &*Arc::as_ptr(&self.island) };
        // The entry's code, if this is the first process of its version on the island: loaded
        // before the step's memory is counted (it is the island's, not the process's).
        if let Some(start) = self.start.as_mut()
            && let Code::Load { compiled, granted, loads } = &start.code
        {
            match island.load(compiled, granted, loads) {
                Ok(l) => start.code = Code::Loaded(l),
                Err(e) => return Step::Exit(Err(lua_failure(&self.entry, e, self.budget))),
            }
        }
        let at_start = island.used_memory();
        let left =
            if self.budget == 0 { usize::MAX } else { self.budget.saturating_sub(self.memory) };
        let _timed = island.slice.map(crate::slice::begin);
        let in_step = island.current().enter(cx, at_start, left, self.memory);
        let step = self.step_lua(cx);
        drop(in_step);
        // What the state grew (or shrank) by during the step is this process's doing: an
        // approximation in islands mode, where a collection in one process's step frees the
        // garbage of others. No process can hold more than the whole state, which keeps the
        // error of that approximation bounded by what is really live.
        let now = island.used_memory();
        self.memory = (self.memory + now).saturating_sub(at_start).min(now);
        let over = self.budget != 0 && self.memory > self.budget;
        if matches!(step, Ok(Step::Yield)) {
            island.preemptions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match step {
            Ok(_) if over => Step::Exit(Err(over_budget(&self.entry, self.budget))),
            Ok(step) => step,
            Err(e) => Step::Exit(Err(lua_failure(&self.entry, e, self.budget))),
        }
    }
}

fn over_budget(entry: &EntryId, budget: usize) -> Error {
    Error::new(
        ErrorKind::RateLimited,
        format!("{entry}: {} ({budget} bytes)", crate::preempt::MEMORY_BUDGET),
    )
}

/// A failure of the Lua machinery itself (not an error the process raised).
fn lua_failure(entry: &EntryId, e: mlua::Error, budget: usize) -> Error {
    match e {
        mlua::Error::MemoryError(m) if m == crate::preempt::MEMORY_BUDGET => {
            over_budget(entry, budget)
        }
        mlua::Error::MemoryError(m) => {
            Error::new(ErrorKind::RateLimited, format!("{entry}: out of memory: {m}"))
        }
        other => Error::new(ErrorKind::Internal, format!("{entry}: {other}")),
    }
}
