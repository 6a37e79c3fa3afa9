//! What every workload shares: the runtime and sizes, running a measuring process, small
//! process helpers, and the `RESULT` line format.

use std::future::Future;
use std::time::{Duration, Instant};

use spindle_runtime::rust::AsyncProcess;
use spindle_runtime::{Cx, Error, ErrorKind, HostConfig, Pid, Result, Runtime, Spawn, Ties, Value};

/// The one host every process of the benchmark runs on.
pub const HOST: &str = "bench:main";
/// Worker threads of that host (Erlang runs with `+S 2:2`).
pub const WORKERS: usize = 2;
/// Repetitions of the workloads reported as "best of 3".
pub const RUNS: usize = 3;
/// How long memory figures wait for the process to settle before reading VmRSS.
pub const SETTLE: Duration = Duration::from_millis(500);

/// The runtime under test and the size scale of this run.
#[derive(Debug)]
pub struct Bench {
    rt: Runtime,
    divisor: usize,
}

impl Bench {
    /// A runtime with one host of [`WORKERS`] workers; `quick` makes every size 10x smaller.
    pub fn start(quick: bool) -> Result<Bench> {
        let rt = Runtime::builder().host(HostConfig::new(HOST).workers(WORKERS)).build()?;
        Ok(Bench { rt, divisor: if quick { 10 } else { 1 } })
    }

    /// The runtime.
    pub fn rt(&self) -> &Runtime {
        &self.rt
    }

    /// `full` (the size the Erlang side uses), scaled down for a quick run.
    pub fn size(&self, full: usize) -> usize {
        (full / self.divisor).max(1)
    }

    /// Runs `f` as the measuring (parent) process and returns its result.
    pub fn measure<F, Fut>(&self, f: F) -> Result<Value>
    where
        F: FnOnce(Cx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        let (_, watch) = self.rt.spawn_watched(process(f))?;
        watch.wait()
    }

    /// Runs the measuring process `f` [`RUNS`] times; the largest (`Best::Max`) or smallest
    /// (`Best::Min`) of the floats it returns.
    pub fn best_of<F, Fut>(&self, best: Best, f: F) -> Result<f64>
    where
        F: Fn(Cx) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        let mut figures = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            figures.push(float(&self.measure(f.clone())?)?);
        }
        let pick = match best {
            Best::Max => f64::max,
            Best::Min => f64::min,
        };
        Ok(figures.into_iter().reduce(pick).unwrap_or(f64::NAN))
    }

    /// Blocks until at most `target` processes are alive (terminated processes end when a
    /// worker next picks them up).
    pub fn wait_for_process_count(&self, target: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.rt.process_count() > target {
            if Instant::now() > deadline {
                return Err(failure(format!(
                    "{} processes still alive after 60 s (expected {target})",
                    self.rt.process_count()
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

/// Which of several runs is reported.
#[derive(Clone, Copy, Debug)]
pub enum Best {
    /// The highest figure (rates).
    Max,
    /// The lowest figure (times).
    Min,
}

/// A Rust async process on [`HOST`].
pub fn process<F, Fut>(f: F) -> Spawn
where
    F: FnOnce(Cx) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value>> + Send + 'static,
{
    Spawn::process(AsyncProcess::new(f), HOST)
}

/// Spawns `f` as an untied child of `cx`.
pub fn spawn<F, Fut>(cx: &Cx, f: F) -> Result<Pid>
where
    F: FnOnce(Cx) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value>> + Send + 'static,
{
    cx.spawn(process(f), Ties::default())
}

/// Receives `n` messages of topic `topic` (messages of other topics are dropped).
pub async fn recv_n(cx: &Cx, topic: &str, n: usize) {
    let mut got = 0;
    while got < n {
        if cx.recv().await.topic == topic {
            got += 1;
        }
    }
}

/// Receives the next message of topic `topic` and returns its payload.
pub async fn recv_payload(cx: &Cx, topic: &str) -> Value {
    loop {
        let m = cx.recv().await;
        if m.topic == topic {
            return m.payload;
        }
    }
}

/// Terminates `pids` and waits until every one of them has ended (as Erlang's
/// `monitor` + `exit(P, kill)` + `'DOWN'`).
pub async fn kill_all(cx: &Cx, pids: &[Pid]) -> Result<()> {
    for &p in pids {
        cx.monitor(p);
        cx.terminate(p)?;
    }
    for _ in pids {
        cx.event().await;
    }
    Ok(())
}

/// Answers every message with `pong` to its sender, forever.
pub async fn ponger(cx: Cx) -> Result<Value> {
    loop {
        let m = cx.recv().await;
        cx.send(m.from, "pong", Value::Nil)?;
    }
}

/// The process's resident set size (VmRSS in /proc/self/status), in bytes.
pub fn rss_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| failure(format!("reading /proc/self/status: {e}")))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| failure("no VmRSS line in /proc/self/status"))
}

/// The float in `v`.
pub fn float(v: &Value) -> Result<f64> {
    v.as_float().ok_or_else(|| failure(format!("expected a float, got {v:?}")))
}

/// A benchmark failure.
pub fn failure(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Internal, msg)
}

/// Prints one result line: `RESULT rust <bench> <value> <unit> <method...>`.
pub fn report(bench: &str, value: &str, unit: &str, method: &str) {
    println!("RESULT rust {bench} {value} {unit} {method}");
}
