//! The runtime's own supervisor for `process.service` entries, like systemd for units.
//!
//! One supervisor process (on the small `spindle:system` host) starts the services in
//! dependency order, monitors each one, and restarts a failed one after an exponentially
//! growing, jittered delay (`lifecycle.restart`): the attempt counter resets once a run lasted
//! `stable_threshold`, and a service that fails `max_attempts` times in a row is reported and
//! left stopped while everything else goes on. A service that returns normally has finished
//! and is not restarted. Stopping goes in reverse dependency order: CANCEL, wait
//! `stop_timeout`, then terminate.
//!
//! All waiting is done with the runtime's timers, so a runtime on a
//! [`ManualClock`](spindle_runtime::ManualClock) drives restart timing in tests.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use spindle_runtime::{
    Completion, Cx, EntryId, Error, Event, EventKind, Op, Pid, Process, Result, Runtime, Spawn,
    Step, Tag, Ties, Value, WaitFor,
};

use crate::config::{Lifecycle, RestartPolicy};

/// The host the supervisor runs on.
pub const SYSTEM_HOST: &str = "spindle:system";
/// The name the supervisor registers.
pub const SUPERVISOR_NAME: &str = "spindle.services";

/// A service as the supervisor runs it.
#[derive(Clone, Debug)]
pub struct ServicePlan {
    /// The service's id.
    pub id: EntryId,
    /// The process entry it runs.
    pub process: EntryId,
    /// The host it runs on.
    pub host: String,
    /// The arguments of the process's method.
    pub args: Vec<Value>,
    /// Start, stop and restart settings.
    pub lifecycle: Lifecycle,
}

/// Where a service is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceState {
    /// Not started (not auto-started and not required by a started service).
    Idle,
    /// Its process runs.
    Running,
    /// It failed and waits for its restart.
    Restarting,
    /// It failed more often in a row than `max_attempts` allows; it stays stopped.
    Failed,
    /// Its process returned normally; it is not restarted.
    Finished,
    /// Asked to stop, waiting for its process to end.
    Stopping,
    /// Stopped by the supervisor.
    Stopped,
}

/// A snapshot of one service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceStatus {
    /// Where it is.
    pub state: ServiceState,
    /// Its current process.
    pub pid: Option<Pid>,
    /// How often its process was started.
    pub starts: u32,
    /// Failures since its last stable run.
    pub attempts: u32,
    /// The delay before the pending (or last) restart.
    pub restart_delay: Option<Duration>,
    /// The last failure.
    pub last_error: Option<String>,
}

/// Something the supervisor did, in order (see [`Services::history`]).
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceEvent {
    /// A service's process started.
    Started {
        /// The service.
        id: EntryId,
        /// Its new process.
        pid: Pid,
        /// When, on the runtime's clock.
        at: Duration,
    },
    /// A service's process failed (or could not be started).
    Failed {
        /// The service.
        id: EntryId,
        /// The error.
        error: String,
        /// When.
        at: Duration,
    },
    /// A restart was scheduled.
    RestartScheduled {
        /// The service.
        id: EntryId,
        /// The failure count it is for (1 for the first restart after a stable run).
        attempt: u32,
        /// The delay before it.
        delay: Duration,
    },
    /// A service exhausted its attempts.
    GaveUp {
        /// The service.
        id: EntryId,
        /// The failures in a row.
        attempts: u32,
    },
    /// A service's process returned normally.
    Finished {
        /// The service.
        id: EntryId,
    },
    /// A service was asked to stop (CANCEL sent).
    Stopping {
        /// The service.
        id: EntryId,
    },
    /// A service's process ended after a stop; `terminated` if it had to be killed.
    Stopped {
        /// The service.
        id: EntryId,
        /// Whether `stop_timeout` ran out and the process was terminated.
        terminated: bool,
    },
}

#[derive(Default)]
struct Board {
    status: HashMap<EntryId, ServiceStatus>,
    history: Vec<ServiceEvent>,
}

type Shared = Arc<(Mutex<Board>, Condvar)>;

/// The handle on a running supervisor.
#[derive(Clone)]
pub struct Services {
    pid: Pid,
    board: Shared,
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services").field("pid", &self.pid).finish_non_exhaustive()
    }
}

impl Services {
    /// Starts the supervisor on `rt` (which must have the [`SYSTEM_HOST`]) with `plans` in
    /// start order; it starts the services in `start` (and what they require) at once.
    ///
    /// # Errors
    /// When the supervisor process cannot be spawned.
    pub fn start(rt: &Runtime, plans: Vec<ServicePlan>, start: Vec<EntryId>) -> Result<Services> {
        let board: Shared = Arc::default();
        {
            let mut b = board.0.lock().unwrap_or_else(|e| e.into_inner());
            for p in &plans {
                b.status.insert(
                    p.id.clone(),
                    ServiceStatus {
                        state: ServiceState::Idle,
                        pid: None,
                        starts: 0,
                        attempts: 0,
                        restart_delay: None,
                        last_error: None,
                    },
                );
            }
        }
        let seed = rt.now().as_nanos() as u64 ^ 0x9e37_79b9_7f4a_7c15;
        let sup = Supervisor {
            plans: plans.into_iter().map(|plan| Slot { plan, run: None }).collect(),
            to_start: start,
            board: board.clone(),
            timers: HashMap::new(),
            event_op: None,
            inbox_op: None,
            stopping: None,
            rng: seed | 1,
            started: false,
        };
        let pid = rt.spawn(Spawn::process(sup, SYSTEM_HOST))?;
        Ok(Services { pid, board })
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The status of service `id`.
    pub fn status(&self, id: &EntryId) -> Option<ServiceStatus> {
        self.board.0.lock().unwrap_or_else(|e| e.into_inner()).status.get(id).cloned()
    }

    /// What the supervisor has done so far, in order.
    pub fn history(&self) -> Vec<ServiceEvent> {
        self.board.0.lock().unwrap_or_else(|e| e.into_inner()).history.clone()
    }

    /// Waits until `ready` holds for the history (or `timeout` passes); returns whether it held.
    /// `ready` runs under the board's lock: it must not call back into this handle.
    pub fn wait_until(&self, timeout: Duration, ready: impl Fn(&[ServiceEvent]) -> bool) -> bool {
        let (lock, cv) = &*self.board;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |b| !ready(&b.history))
            .unwrap_or_else(|e| e.into_inner());
        ready(&guard.history)
    }

    /// Starts service `id` (and what it requires) if it is not running.
    ///
    /// # Errors
    /// `NOT_FOUND` if the supervisor is gone.
    pub fn start_service(&self, rt: &Runtime, id: &EntryId) -> Result<()> {
        rt.send(self.pid, "start", Value::from(id.to_string()))
    }

    /// Stops every service in reverse dependency order and ends the supervisor; waits at
    /// most `timeout` for that.
    ///
    /// # Errors
    /// `TIMEOUT` if the services did not stop in time.
    pub fn stop(&self, rt: &Runtime, timeout: Duration) -> Result<()> {
        let watch = rt.watch(self.pid);
        if rt.send(self.pid, "stop", Value::Nil).is_err() {
            return Ok(());
        }
        match watch.wait_timeout(timeout) {
            Some(r) => r.map(|_| ()),
            None => Err(Error::new(
                spindle_runtime::ErrorKind::Timeout,
                format!("the services did not stop within {timeout:?}"),
            )),
        }
    }
}

/// The delay before restart number `attempt` (1-based), before jitter.
pub fn backoff(policy: &RestartPolicy, attempt: u32) -> Duration {
    let exp = policy.backoff_factor.powi(attempt.saturating_sub(1).min(1000) as i32);
    let secs = (policy.initial_delay.as_secs_f64() * exp).min(policy.max_delay.as_secs_f64());
    Duration::from_secs_f64(secs)
}

struct Slot {
    plan: ServicePlan,
    run: Option<Run>,
}

struct Run {
    pid: Pid,
    since: Duration,
}

enum Timer {
    Restart(usize),
    StopTimeout(usize),
}

struct Stopping {
    /// Services still to stop, the next one last.
    queue: Vec<usize>,
    /// The one being stopped and its timeout timer.
    current: Option<(usize, Tag)>,
}

struct Supervisor {
    plans: Vec<Slot>,
    to_start: Vec<EntryId>,
    board: Shared,
    timers: HashMap<Tag, Timer>,
    event_op: Option<Tag>,
    inbox_op: Option<Tag>,
    stopping: Option<Stopping>,
    rng: u64,
    started: bool,
}

impl Supervisor {
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
    fn start_with_requirements(&mut self, cx: &Cx, i: usize, depth: usize) {
        if depth > self.plans.len() {
            return;
        }
        for r in self.plans[i].plan.lifecycle.requires.clone() {
            if let Some(j) = self.index(&r) {
                self.start_with_requirements(cx, j, depth + 1);
            }
        }
        let state = self.status_of(i);
        if matches!(state, ServiceState::Idle | ServiceState::Stopped | ServiceState::Finished) {
            self.spawn(cx, i);
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
        if self.stopping.is_some() {
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
        if let Some(stop) = &mut self.stopping
            && stop.current.is_some_and(|(j, _)| j == i)
        {
            let (_, tag) = stop.current.take().expect("checked");
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
        if self.stopping.is_some() {
            return;
        }
        // Pending restarts are called off.
        for (tag, t) in std::mem::take(&mut self.timers) {
            cx.drop_op(tag);
            if let Timer::Restart(i) = t {
                self.set_state(i, |s| s.state = ServiceState::Stopped);
            }
        }
        // Stop in reverse start order: popping from the end of the start order list.
        let queue: Vec<usize> = (0..self.plans.len()).collect();
        self.stopping = Some(Stopping { queue, current: None });
    }

    /// Moves the stop along; returns true when every service has stopped.
    fn continue_stop(&mut self, cx: &Cx) -> bool {
        loop {
            let Some(stop) = &mut self.stopping else { return false };
            if stop.current.is_some() {
                return false;
            }
            let Some(i) = stop.queue.pop() else { return true };
            let Some(run) = &self.plans[i].run else { continue };
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
            if let Some(stop) = &mut self.stopping {
                stop.current = Some((i, tag));
            }
        }
    }
}

impl Process for Supervisor {
    fn step(&mut self, cx: &Cx) -> Step {
        if !self.started {
            self.started = true;
            let _ = cx.register(SUPERVISOR_NAME, None);
            for id in std::mem::take(&mut self.to_start) {
                if let Some(i) = self.index(&id) {
                    self.start_with_requirements(cx, i, 0);
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
                    "start" if self.stopping.is_none() => {
                        let id = m.payload.as_str().and_then(|s| s.parse::<EntryId>().ok());
                        if let Some(i) = id.and_then(|id| self.index(&id)) {
                            self.start_with_requirements(cx, i, 0);
                        }
                    }
                    _ => {}
                },
                Completion::Timer => match self.timers.remove(&tag) {
                    Some(Timer::Restart(i)) if self.stopping.is_none() => self.spawn(cx, i),
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
        if self.stopping.is_some() && self.continue_stop(cx) {
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
