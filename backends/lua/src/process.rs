//! A Lua process: a state table and coroutines in an island, stepped through the prelude.

use std::sync::Arc;

use mlua::{MultiValue, Table, Value as LuaValue};
use spindle_runtime::{Cx, EntryId, Error, ErrorKind, Process, Step, Value, WaitFor};

use crate::api::{Current, Stepping, push_completion};
use crate::convert::{to_lua, to_value};
use crate::island::{Island, Loaded};

/// What the first step needs to start the process.
pub(crate) struct Start {
    pub(crate) code: Loaded,
    pub(crate) args: Vec<Value>,
}

pub(crate) struct LuaProcess {
    island: Arc<Island>,
    entry: Arc<EntryId>,
    state: Option<Table>,
    start: Option<Start>,
    /// Memory attributed to this process: the growth of its Lua state during its steps.
    memory: usize,
    /// The most it may be attributed (bytes; 0: no budget).
    budget: usize,
}

impl LuaProcess {
    pub(crate) fn new(
        island: Arc<Island>,
        entry: Arc<EntryId>,
        start: Start,
        budget: usize,
    ) -> LuaProcess {
        LuaProcess { island, entry, state: None, start: Some(start), memory: 0, budget }
    }

    /// The first step: the prelude makes the process's state and runs its main coroutine.
    fn first_step(&mut self) -> mlua::Result<MultiValue> {
        let lua = &self.island.lua;
        let start =
            self.start.take().ok_or_else(|| mlua::Error::runtime("process started twice"))?;
        let mut args = MultiValue::with_capacity(3 + start.args.len());
        args.push_back(LuaValue::Function(start.code.chunk));
        args.push_back(LuaValue::String(start.code.method));
        args.push_back(LuaValue::Table(start.code.granted));
        for a in &start.args {
            args.push_back(to_lua(lua, a)?);
        }
        let mut out: MultiValue = self.island.start.call(args)?;
        match out.pop_front() {
            Some(LuaValue::Table(state)) => self.state = Some(state),
            _ => return Err(mlua::Error::runtime("the process scheduler returned no state")),
        }
        Ok(out)
    }

    /// A later step: the completions that came are handed over in order, the last one with
    /// the step itself.
    fn next_step(&self, state: &Table, cx: &Cx) -> mlua::Result<MultiValue> {
        let lua = &self.island.lua;
        let mut args = MultiValue::with_capacity(10);
        args.push_back(LuaValue::Table(state.clone()));
        if let Some(mut last) = cx.next_completion() {
            while let Some(next) = cx.next_completion() {
                let mut before = MultiValue::with_capacity(10);
                before.push_back(LuaValue::Table(state.clone()));
                push_completion(lua, Some(last.0), last.1, &mut before)?;
                self.island.deliver.call::<()>(before)?;
                last = next;
            }
            push_completion(lua, Some(last.0), last.1, &mut args)?;
        }
        self.island.step.call(args)
    }

    fn step_lua(&mut self, cx: &Cx) -> mlua::Result<Step> {
        let out = match &self.state {
            Some(state) => self.next_step(state, cx)?,
            None => self.first_step()?,
        };
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

/// Lua's own allocation failure, as a coroutine reports it.
fn is_out_of_memory(v: &LuaValue) -> bool {
    match v {
        LuaValue::Error(e) => matches!(**e, mlua::Error::MemoryError(_)),
        LuaValue::String(s) => s.as_bytes().starts_with(b"not enough memory"),
        _ => false,
    }
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
        let island = self.island.clone();
        let lua = &island.lua;
        let at_start = lua.used_memory();
        let left =
            if self.budget == 0 { usize::MAX } else { self.budget.saturating_sub(self.memory) };
        island.preempted.store(false, std::sync::atomic::Ordering::Relaxed);
        Current::enter(
            lua,
            Stepping {
                cx: cx.clone(),
                memory_at_start: at_start,
                memory_left: left,
                memory_before: self.memory,
                memory_raised: std::cell::Cell::new(false),
            },
        );
        let step = self.step_lua(cx);
        Current::leave(lua);
        // What the state grew (or shrank) by during the step is this process's doing: an
        // approximation in islands mode, where a collection in one process's step frees the
        // garbage of others. No process can hold more than the whole state, which keeps the
        // error of that approximation bounded by what is really live.
        let now = lua.used_memory();
        self.memory = (self.memory + now).saturating_sub(at_start).min(now);
        let over = self.budget != 0 && self.memory > self.budget;
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
