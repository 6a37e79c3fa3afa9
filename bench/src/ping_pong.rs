//! `ping_pong`: the latency of one message exchange.
//!
//! A pinger sends `ping` to a ponger and waits for its `pong`, K times in a row, timing the
//! whole series itself. Mean round-trip time in microseconds, best of 3.

use std::time::Instant;

use spindle_runtime::{Cx, Result, Value};

use crate::harness::{Bench, Best, float, kill_all, ponger, recv_payload, report, spawn};

const K: usize = 200_000;

/// Runs the workload and prints `ping_pong`.
pub fn run(b: &Bench) -> Result<()> {
    let k = b.size(K);
    let best = b.best_of(Best::Min, move |cx| once(cx, k))?;
    report(
        "ping_pong",
        &format!("{best:.3}"),
        "us_per_rtt",
        &format!("K={k} round trips between two processes; mean; best of 3"),
    );
    Ok(())
}

async fn once(cx: Cx, k: usize) -> Result<Value> {
    let parent = cx.pid();
    let pong = spawn(&cx, ponger)?;
    spawn(&cx, move |cx| async move {
        let t0 = Instant::now();
        for _ in 0..k {
            cx.send(pong, "ping", Value::Nil)?;
            cx.recv().await;
        }
        cx.send(parent, "ping_pong_us", t0.elapsed().as_secs_f64() * 1e6)?;
        Ok(Value::Nil)
    })?;
    let us = float(&recv_payload(&cx, "ping_pong_us").await)?;
    kill_all(&cx, &[pong]).await?;
    Ok(Value::Float(us / k as f64))
}
