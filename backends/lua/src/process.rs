//! A Lua process: a state table and coroutines in an island, stepped through the prelude.

use std::sync::Arc;

use mlua::{Function, MultiValue, Table, Value as LuaValue};
use spindle_runtime::{Completion, Cx, EntryId, Error, ErrorKind, Process, Step, Value, WaitFor};

use crate::api::Stepping;
use crate::convert::{to_lua, to_value};
use crate::island::Island;

/// What the first step needs to start the process.
pub(crate) struct Start {
    pub(crate) chunk: Function,
    pub(crate) method: String,
    pub(crate) granted: Vec<String>,
    pub(crate) args: Vec<Value>,
}

pub(crate) struct LuaProcess {
    island: Arc<Island>,
    entry: EntryId,
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
        entry: EntryId,
        start: Start,
        budget: usize,
    ) -> LuaProcess {
        LuaProcess { island, entry, state: None, start: Some(start), memory: 0, budget }
    }

    fn begin(&mut self) -> mlua::Result<Table> {
        if let Some(state) = &self.state {
            return Ok(state.clone());
        }
        let lua = &self.island.lua;
        let start =
            self.start.take().ok_or_else(|| mlua::Error::runtime("process started twice"))?;
        let granted = lua.create_table()?;
        for m in &start.granted {
            granted.raw_set(m.as_str(), true)?;
        }
        let args = lua.create_table_with_capacity(start.args.len(), 1)?;
        for (i, a) in start.args.iter().enumerate() {
            args.raw_set(i + 1, to_lua(lua, a)?)?;
        }
        args.raw_set("n", start.args.len())?;
        let state: Table =
            self.island.new_process.call((start.chunk, start.method, granted, args))?;
        self.state = Some(state.clone());
        Ok(state)
    }

    fn completions(&self, cx: &Cx) -> mlua::Result<Option<Table>> {
        let lua = &self.island.lua;
        let Some(first) = cx.next_completion() else { return Ok(None) };
        let list = lua.create_table()?;
        let mut pending = Some(first);
        let mut n = 0;
        while let Some((tag, c)) = pending.take().or_else(|| cx.next_completion()) {
            let t = lua.create_table()?;
            t.raw_set(1, tag.get() as i64)?;
            match c {
                Completion::Message(m) => {
                    t.raw_set(2, "msg")?;
                    t.raw_set(3, m.from.to_string())?;
                    t.raw_set(4, m.topic.as_str())?;
                    t.raw_set(5, to_lua(lua, &m.payload)?)?;
                }
                Completion::Event(e) => {
                    t.raw_set(2, "event")?;
                    t.raw_set(3, e.kind.name())?;
                    t.raw_set(4, e.from.to_string())?;
                    match &e.result {
                        Some(Ok(v)) => {
                            t.raw_set(5, true)?;
                            t.raw_set(6, to_lua(lua, v)?)?;
                        }
                        Some(Err(err)) => {
                            t.raw_set(5, false)?;
                            t.raw_set(6, err.kind().name())?;
                            t.raw_set(7, err.message())?;
                        }
                        None => {}
                    }
                    if let Some(r) = &e.reason {
                        t.raw_set(8, to_lua(lua, r)?)?;
                    }
                }
                Completion::Timer => t.raw_set(2, "timer")?,
                Completion::Exit(Ok(v)) => {
                    t.raw_set(2, "exit")?;
                    t.raw_set(3, true)?;
                    t.raw_set(4, to_lua(lua, &v)?)?;
                }
                Completion::Exit(Err(err)) => {
                    t.raw_set(2, "exit")?;
                    t.raw_set(3, false)?;
                    t.raw_set(4, err.kind().name())?;
                    t.raw_set(5, err.message())?;
                }
                Completion::Failed(err) => {
                    t.raw_set(2, "failed")?;
                    t.raw_set(3, err.kind().name())?;
                    t.raw_set(4, err.message())?;
                }
            }
            n += 1;
            list.raw_set(n, t)?;
        }
        Ok(Some(list))
    }

    fn step_lua(&mut self, cx: &Cx) -> mlua::Result<Step> {
        let state = self.begin()?;
        let comps = self.completions(cx)?;
        let out: MultiValue = self.island.step.call((state, comps))?;
        let mut out = out.into_iter();
        let status: String = match out.next() {
            Some(LuaValue::String(s)) => s.to_str()?.to_owned(),
            _ => return Err(mlua::Error::runtime("the process scheduler returned no status")),
        };
        Ok(match status.as_str() {
            "wait" => Step::Wait(WaitFor::Any),
            "yield" => Step::Yield,
            "exit" => {
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
            "upgrade" => {
                let id = out.next().unwrap_or(LuaValue::Nil);
                let args = out.next().unwrap_or(LuaValue::Nil);
                match upgrade_request(&id, &args) {
                    Ok((entry, args)) => Step::Upgrade { entry, args },
                    Err(e) => Step::Exit(Err(e)),
                }
            }
            other => return Err(mlua::Error::runtime(format!("unknown step status {other}"))),
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
        lua.set_app_data(Stepping {
            cx: cx.clone(),
            memory_at_start: at_start,
            memory_left: left,
            memory_before: self.memory,
            memory_raised: std::cell::Cell::new(false),
        });
        let step = self.step_lua(cx);
        lua.remove_app_data::<Stepping>();
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
        format!("{entry}: {} ({budget} bytes)", crate::island::MEMORY_BUDGET),
    )
}

/// A failure of the Lua machinery itself (not an error the process raised).
fn lua_failure(entry: &EntryId, e: mlua::Error, budget: usize) -> Error {
    match e {
        mlua::Error::MemoryError(m) if m == crate::island::MEMORY_BUDGET => {
            over_budget(entry, budget)
        }
        mlua::Error::MemoryError(m) => {
            Error::new(ErrorKind::RateLimited, format!("{entry}: out of memory: {m}"))
        }
        other => Error::new(ErrorKind::Internal, format!("{entry}: {other}")),
    }
}
