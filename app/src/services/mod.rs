//! The runtime's own supervisor for `process.service` entries, like systemd for units.
//!
//! One supervisor process (on the small `spindle:system` host) starts the services in
//! dependency order, monitors each one, and restarts a failed one after an exponentially
//! growing, jittered delay (`lifecycle.restart`): the attempt counter resets once a run lasted
//! `stable_threshold`, and a service that fails `max_attempts` times in a row is reported and
//! left stopped, and so are the services that require it (directly or through others), while
//! everything else goes on. A service that returns normally has finished
//! and is not restarted. Stopping goes in reverse dependency order (a service once every
//! service that requires it has stopped; services that do not depend on each other at the
//! same time): CANCEL, wait `stop_timeout`, then terminate.
//!
//! All waiting is done with the runtime's timers, so a runtime on a
//! [`ManualClock`](spindle_runtime::ManualClock) drives restart timing in tests.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use spindle_runtime::{EntryId, Error, Pid, Result, Runtime, Spawn, Value};

use crate::config::{Lifecycle, RestartPolicy};

mod supervisor;

use supervisor::Supervisor;

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
    stop_budget: Duration,
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
        // Each service's stop_timeout and a second more, and a second for the supervisor.
        let stop_budget = plans
            .iter()
            .map(|p| p.lifecycle.stop_timeout + Duration::from_secs(1))
            .sum::<Duration>()
            + Duration::from_secs(1);
        let seed = rt.now().as_nanos() as u64 ^ 0x9e37_79b9_7f4a_7c15;
        let sup = Supervisor::new(plans, start, board.clone(), seed);
        let pid = rt.spawn(Spawn::process(sup, SYSTEM_HOST))?;
        Ok(Services { pid, board, stop_budget })
    }

    /// How long [`Services::stop`] may take when every service uses its `stop_timeout`: from
    /// the plans the supervisor runs (a reload of the config does not change them until the
    /// services are started again).
    pub fn stop_budget(&self) -> Duration {
        self.stop_budget
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

    /// Starts service `id` (and what it requires) if it is not running. A service that gave up
    /// on its restarts starts afresh, its attempts counted from zero.
    ///
    /// # Errors
    /// `NOT_FOUND` if the supervisor is gone.
    pub fn start_service(&self, rt: &Runtime, id: &EntryId) -> Result<()> {
        rt.send(self.pid, "start", Value::from(id.to_string()))
    }

    /// Stops every service in reverse dependency order (independent ones at the same time) and
    /// ends the supervisor; waits at most `timeout` for that.
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
