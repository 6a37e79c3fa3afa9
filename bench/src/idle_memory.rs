//! `idle_memory`: what a waiting process costs.
//!
//! The parent reads VmRSS, spawns N processes that each block in `cx.recv().await`, lets them
//! settle, reads VmRSS again and reports the difference per process. The figure includes the
//! parent's list of their pids (16 bytes each), as the Erlang side's list of pids does.
//! Afterwards the processes are terminated and the run waits until they are gone. It runs
//! before the other workloads: heap they freed stays with the allocator and would absorb the
//! growth measured here.

use spindle_runtime::{Cx, Result, Value};

use crate::harness::{Bench, SETTLE, float, report, rss_bytes, spawn};

const N: usize = 100_000;

/// Runs the workload and prints `idle_memory`.
pub fn run(b: &Bench) -> Result<()> {
    let n = b.size(N);
    let before = b.rt().process_count();
    let per_process = float(&b.measure(move |cx| once(cx, n))?)?;
    b.wait_for_process_count(before)?;
    report(
        "idle_memory",
        &format!("{per_process:.1}"),
        "bytes_per_process",
        &format!(
            "N={n} processes blocked in cx.recv().await; OS VmRSS delta / N \
             after {} ms settle",
            SETTLE.as_millis()
        ),
    );
    Ok(())
}

async fn once(cx: Cx, n: usize) -> Result<Value> {
    cx.sleep(SETTLE).await;
    let rss0 = rss_bytes()?;
    let mut pids = Vec::with_capacity(n);
    for _ in 0..n {
        pids.push(spawn(&cx, |cx| async move {
            cx.recv().await;
            Ok(Value::Nil)
        })?);
    }
    cx.sleep(SETTLE).await;
    let rss1 = rss_bytes()?;
    for p in pids {
        cx.terminate(p)?;
    }
    Ok(Value::Float((rss1 as f64 - rss0 as f64) / n as f64))
}
