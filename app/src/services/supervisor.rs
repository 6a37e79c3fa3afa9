//! The supervisor process: one state machine that starts, watches, restarts and stops the
//! services, and reports what it does on the board the [`Services`](super::Services) handle
//! reads.

use std::collections::HashMap;
use std::time::Duration;

use spindle_runtime::{
    Completion, Cx, EntryId, Error, Event, EventKind, Op, Pid, Process, Spawn, Step, Tag, Ties,
    Value, WaitFor,
};

use super::{
    Board, SUPERVISOR_NAME, ServiceEvent, ServicePlan, ServiceState, ServiceStatus, Shared, backoff,
};
use crate::config::RestartPolicy;

struct Slot {
    plan: ServicePlan,
    run: Option<Run>,
    /// Asked to stop: the timer of its stop timeout (fired: terminated).
    stop: Option<Tag>,
}

struct Run {
    pid: Pid,
    since: Duration,
}

enum Timer {
    Restart(usize),
    StopTimeout(usize),
}

pub(super) struct Supervisor {
    plans: Vec<Slot>,
    to_start: Vec<EntryId>,
    board: Shared,
    timers: HashMap<Tag, Timer>,
    event_op: Option<Tag>,
    inbox_op: Option<Tag>,
    /// Services to stop once no running service requires them (see `continue_stops`).
    to_stop: Vec<usize>,
    /// Every service is being stopped; the supervisor ends once they have.
    shutting_down: bool,
    rng: u64,
    started: bool,
}

impl Supervisor {
    pub(super) fn new(
        plans: Vec<ServicePlan>,
        to_start: Vec<EntryId>,
        board: Shared,
        seed: u64,
    ) -> Supervisor {
        Supervisor {
            plans: plans.into_iter().map(|plan| Slot { plan, run: None, stop: None }).collect(),
            to_start,
            board,
            timers: HashMap::new(),
            event_op: None,
            inbox_op: None,
            to_stop: Vec::new(),
            shutting_down: false,
            rng: seed | 1,
            started: false,
        }
    }

    fn record(&self, f: impl FnOnce(&mut Board)) {
        let (lock, cv) = &*self.board;
        f(&mut lock.lock().unwrap_or_else(|e| e.into_inner()));
        cv.notify_all();
    }

    fn set_state(&self, i: usize, f: impl FnOnce(&mut ServiceStatus)) {
        let id = &self.plans[i].plan.id;
        self.record(|b| {
            if let Some(s) = b.status.get_mut(id) {
                f(s);
            }
        });
    }

    fn index(&self, id: &EntryId) -> Option<usize> {
        self.plans.iter().position(|s| s.plan.id == *id)
    }

    /// Starts service `i` after what it requires.
    fn start_with_requirements(&mut self, cx: &Cx, i: usize) {
        let mut seen = vec![false; self.plans.len()];
        self.start_after_requirements(cx, i, &mut seen);
    }

    /// [`Supervisor::start_with_requirements`], visiting each service once: walked again
    /// through every path that leads to it, a service that many others require (directly and
    /// through each other) took exponential time.
    fn start_after_requirements(&mut self, cx: &Cx, i: usize, seen: &mut [bool]) {
        if std::mem::replace(&mut seen[i], true) {
            return;
        }
        for r in self.plans[i].plan.lifecycle.requires.clone() {
            if let Some(j) = self.index(&r) {
                self.start_after_requirements(cx, j, seen);
            }
        }
        match self.status_of(i) {
            ServiceState::Idle | ServiceState::Stopped | ServiceState::Finished => {
                self.spawn(cx, i)
            }
            // It gave up on its restarts; asked to start again (itself or by a service that
            // requires it), it starts afresh, its attempts counted from zero.
            ServiceState::Failed => {
                self.set_state(i, |s| s.attempts = 0);
                self.spawn(cx, i);
            }
            ServiceState::Running | ServiceState::Restarting | ServiceState::Stopping => {}
        }
    }

    fn status_of(&self, i: usize) -> ServiceState {
        let b = self.board.0.lock().unwrap_or_else(|e| e.into_inner());
        b.status.get(&self.plans[i].plan.id).map_or(ServiceState::Idle, |s| s.state)
    }

    fn spawn(&mut self, cx: &Cx, i: usize) {
        let plan = &self.plans[i].plan;
        let spawn = Spawn::entry(plan.process.clone(), plan.host.clone()).args(plan.args.clone());
        match cx.spawn(spawn, Ties { link: false, monitor: true }) {
            Ok(pid) => {
                let now = cx.now();
                tracing::info!(service = %plan.id, %pid, "service started");
                let id = plan.id.clone();
                self.plans[i].run = Some(Run { pid, since: now });
                self.record(|b| {
                    if let Some(s) = b.status.get_mut(&id) {
                        s.state = ServiceState::Running;
                        s.pid = Some(pid);
                        s.starts += 1;
                    }
                    b.history.push(ServiceEvent::Started { id, pid, at: now });
                });
            }
            Err(e) => self.failed(cx, i, &e, Duration::ZERO),
        }
    }

    /// Service `i` failed after running for `ran`: schedule its restart or give up.
    fn failed(&mut self, cx: &Cx, i: usize, err: &Error, ran: Duration) {
        let plan = self.plans[i].plan.clone();
        let now = cx.now();
        let text = err.to_string();
        tracing::warn!(service = %plan.id, error = %text, "service failed");
        let policy = &plan.lifecycle.restart;
        let stable = ran >= plan.lifecycle.stable_threshold;
        let mut attempts = 0;
        self.record(|b| {
            if let Some(s) = b.status.get_mut(&plan.id) {
                if stable {
                    s.attempts = 0;
                }
                s.attempts += 1;
                s.pid = None;
                s.last_error = Some(text.clone());
                attempts = s.attempts;
            }
            b.history.push(ServiceEvent::Failed { id: plan.id.clone(), error: text, at: now });
        });
        if self.shutting_down || self.to_stop.contains(&i) {
            self.set_state(i, |s| s.state = ServiceState::Stopped);
            return;
        }
        if policy.max_attempts != 0 && attempts > policy.max_attempts {
            tracing::error!(
                service = %plan.id,
                attempts = attempts - 1,
                "service gave up: it failed more often than its restart policy allows"
            );
            self.record(|b| {
                if let Some(s) = b.status.get_mut(&plan.id) {
                    s.state = ServiceState::Failed;
                    s.attempts -= 1;
                }
                b.history
                    .push(ServiceEvent::GaveUp { id: plan.id.clone(), attempts: attempts - 1 });
            });
            self.stop_dependents(cx, i);
            return;
        }
        let delay = self.jittered(policy, backoff(policy, attempts));
        tracing::info!(service = %plan.id, attempt = attempts, ?delay, "service restarts");
        let tag = cx.start(Op::Sleep(delay));
        self.timers.insert(tag, Timer::Restart(i));
        self.record(|b| {
            if let Some(s) = b.status.get_mut(&plan.id) {
                s.state = ServiceState::Restarting;
                s.restart_delay = Some(delay);
            }
            b.history.push(ServiceEvent::RestartScheduled {
                id: plan.id.clone(),
                attempt: attempts,
                delay,
            });
        });
    }

    fn jittered(&mut self, policy: &RestartPolicy, d: Duration) -> Duration {
        if policy.jitter == 0.0 {
            return d;
        }
        // xorshift64: enough to spread restarts apart.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let u = (self.rng >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        let secs = d.as_secs_f64() * (1.0 + policy.jitter * u);
        Duration::from_secs_f64(secs.clamp(0.0, policy.max_delay.as_secs_f64()))
    }

    fn on_exit(&mut self, cx: &Cx, ev: &Event) {
        let Some(i) =
            self.plans.iter().position(|s| s.run.as_ref().is_some_and(|r| r.pid == ev.from))
        else {
            return;
        };
        let run = self.plans[i].run.take().expect("found by its run");
        let ran = cx.now().saturating_sub(run.since);
        if let Some(tag) = self.plans[i].stop.take() {
            let terminated = self.timers.remove(&tag).is_none();
            cx.drop_op(tag);
            let id = self.plans[i].plan.id.clone();
            tracing::info!(service = %id, terminated, "service stopped");
            self.record(|b| {
                if let Some(s) = b.status.get_mut(&id) {
                    s.state = ServiceState::Stopped;
                    s.pid = None;
                }
                b.history.push(ServiceEvent::Stopped { id, terminated });
            });
            return;
        }
        match &ev.result {
            Some(Err(e)) => self.failed(cx, i, e, ran),
            _ => {
                let id = self.plans[i].plan.id.clone();
                tracing::info!(service = %id, "service finished");
                self.record(|b| {
                    if let Some(s) = b.status.get_mut(&id) {
                        s.state = ServiceState::Finished;
                        s.pid = None;
                    }
                    b.history.push(ServiceEvent::Finished { id });
                });
            }
        }
    }

    fn begin_stop(&mut self, cx: &Cx) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        // Pending restarts are called off.
        for (tag, t) in std::mem::take(&mut self.timers) {
            if let Timer::Restart(i) = t {
                cx.drop_op(tag);
                self.set_state(i, |s| s.state = ServiceState::Stopped);
            } else {
                self.timers.insert(tag, t);
            }
        }
        self.to_stop = (0..self.plans.len()).collect();
    }

    /// Service `i` gave up: the services that require it, directly or through others, are
    /// stopped (as `Requires=` does in systemd), in reverse dependency order; any restart they
    /// had pending is called off. They stay stopped until started again.
    fn stop_dependents(&mut self, cx: &Cx, i: usize) {
        let mut dependents = vec![i];
        let mut k = 0;
        while k < dependents.len() {
            let id = self.plans[dependents[k]].plan.id.clone();
            for (j, slot) in self.plans.iter().enumerate() {
                if slot.plan.lifecycle.requires.contains(&id) && !dependents.contains(&j) {
                    dependents.push(j);
                }
            }
            k += 1;
        }
        let gave_up = self.plans[i].plan.id.clone();
        for &j in &dependents[1..] {
            let restart = self
                .timers
                .iter()
                .find(|(_, t)| matches!(t, Timer::Restart(r) if *r == j))
                .map(|(tag, _)| *tag);
            if let Some(tag) = restart {
                self.timers.remove(&tag);
                cx.drop_op(tag);
                self.set_state(j, |s| s.state = ServiceState::Stopped);
            }
            if self.plans[j].run.is_some() && !self.to_stop.contains(&j) {
                let id = &self.plans[j].plan.id;
                tracing::warn!(service = %id, requires = %gave_up, "stopping a service: what it requires gave up");
                self.to_stop.push(j);
            }
        }
    }

    /// Whether running service `i` must wait before it is stopped: a service that requires it
    /// still runs (not yet stopped, or stopping).
    fn required_by_a_running_one(&self, i: usize) -> bool {
        let id = &self.plans[i].plan.id;
        self.plans.iter().enumerate().any(|(j, slot)| {
            j != i && slot.run.is_some() && slot.plan.lifecycle.requires.contains(id)
        })
    }

    /// Moves the stops along: every service to stop that no running service requires is asked
    /// to (CANCEL, then terminated after its stop timeout), so services stop in reverse
    /// dependency order and independent ones at the same time. Returns true when the
    /// supervisor is shutting down and every service has stopped.
    fn continue_stops(&mut self, cx: &Cx) -> bool {
        let mut waiting = std::mem::take(&mut self.to_stop);
        waiting.retain(|&i| self.plans[i].run.is_some() && self.plans[i].stop.is_none());
        let (mut ready, mut blocked): (Vec<usize>, Vec<usize>) =
            waiting.into_iter().partition(|&i| !self.required_by_a_running_one(i));
        let none_stopping = self.plans.iter().all(|p| p.stop.is_none());
        if ready.is_empty() && none_stopping && !blocked.is_empty() {
            // Requirements in a cycle: nothing would ever go first.
            ready = std::mem::take(&mut blocked);
        }
        for i in ready {
            self.stop_one(cx, i);
        }
        self.to_stop = blocked;
        self.shutting_down && self.to_stop.is_empty() && self.plans.iter().all(|p| p.stop.is_none())
    }

    /// Asks running service `i` to stop: CANCEL, and a timer for its stop timeout.
    fn stop_one(&mut self, cx: &Cx, i: usize) {
        let Some(run) = &self.plans[i].run else { return };
        let pid = run.pid;
        let plan = &self.plans[i].plan;
        tracing::info!(service = %plan.id, "stopping service");
        let id = plan.id.clone();
        let timeout = plan.lifecycle.stop_timeout;
        self.record(|b| {
            if let Some(s) = b.status.get_mut(&id) {
                s.state = ServiceState::Stopping;
            }
            b.history.push(ServiceEvent::Stopping { id });
        });
        let _ = cx.cancel(pid, Some(Value::from("shutdown")));
        let tag = cx.start(Op::Sleep(timeout));
        self.timers.insert(tag, Timer::StopTimeout(i));
        self.plans[i].stop = Some(tag);
    }
}

impl Process for Supervisor {
    fn step(&mut self, cx: &Cx) -> Step {
        if !self.started {
            self.started = true;
            let _ = cx.register(SUPERVISOR_NAME, None);
            for id in std::mem::take(&mut self.to_start) {
                if let Some(i) = self.index(&id) {
                    self.start_with_requirements(cx, i);
                }
            }
        }
        while let Some((tag, c)) = cx.next_completion() {
            if Some(tag) == self.event_op {
                self.event_op = None;
            }
            if Some(tag) == self.inbox_op {
                self.inbox_op = None;
            }
            match c {
                Completion::Event(ev) => match ev.kind {
                    EventKind::Exit => self.on_exit(cx, &ev),
                    EventKind::Cancel => self.begin_stop(cx),
                    _ => {}
                },
                Completion::Message(m) => match m.topic.as_str() {
                    "stop" => self.begin_stop(cx),
                    "start" if !self.shutting_down => {
                        let id = m.payload.as_str().and_then(|s| s.parse::<EntryId>().ok());
                        if let Some(i) = id.and_then(|id| self.index(&id)) {
                            self.start_with_requirements(cx, i);
                        }
                    }
                    _ => {}
                },
                Completion::Timer => match self.timers.remove(&tag) {
                    Some(Timer::Restart(i)) if !self.shutting_down => self.spawn(cx, i),
                    Some(Timer::StopTimeout(i)) => {
                        if let Some(run) = &self.plans[i].run {
                            let id = &self.plans[i].plan.id;
                            tracing::warn!(service = %id, "service did not stop in time; terminating it");
                            let _ = cx.terminate(run.pid);
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        if self.continue_stops(cx) {
            return Step::Exit(Ok(Value::Nil));
        }
        if self.event_op.is_none() {
            self.event_op = Some(cx.start(Op::Event));
        }
        if self.inbox_op.is_none() {
            self.inbox_op = Some(cx.start(Op::Receive { topic: None }));
        }
        Step::Wait(WaitFor::Any)
    }
}
