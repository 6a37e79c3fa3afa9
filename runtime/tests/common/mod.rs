//! Shared helpers for the runtime's integration tests.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::future::Future;
use std::time::Duration;

use spindle_runtime::rust::AsyncProcess;
use spindle_runtime::{Cx, HostConfig, Pid, Result, Runtime, Spawn, Value};

pub const HOST: &str = "test:main";
/// Generous: only reached when a test is already failing.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn runtime() -> Runtime {
    runtime_with(HostConfig::new(HOST).workers(2))
}

pub fn runtime_with(host: HostConfig) -> Runtime {
    Runtime::builder().host(host).build().expect("runtime starts")
}

pub fn proc<F, Fut>(f: F) -> Spawn
where
    F: FnOnce(Cx) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value>> + Send + 'static,
{
    Spawn::process(AsyncProcess::new(f), HOST)
}

/// Runs `f` as a process and returns its result (fails the test after `PATIENCE`).
pub fn exec<F, Fut>(rt: &Runtime, f: F) -> Result<Value>
where
    F: FnOnce(Cx) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value>> + Send + 'static,
{
    let (_, watch) = rt.spawn_watched(proc(f)).expect("spawn");
    watch.wait_timeout(PATIENCE).expect("process did not finish in time")
}

pub fn spawn<F, Fut>(rt: &Runtime, f: F) -> Pid
where
    F: FnOnce(Cx) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value>> + Send + 'static,
{
    rt.spawn(proc(f)).expect("spawn")
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
