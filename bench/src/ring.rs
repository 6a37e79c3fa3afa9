//! `ring`: message throughput when every hop wakes a different process.
//!
//! R processes form a ring; one token carrying the number of hops left goes round it M times
//! (R*M hops). The node that receives it at zero tells the parent. Building the ring (spawning,
//! telling each node its successor, waiting until all are ready) is not timed. Hops per
//! second, best of 3.

use std::time::Instant;

use spindle_runtime::{Cx, Pid, Result, Value};

use crate::harness::{Bench, Best, failure, kill_all, recv_n, report, spawn};

const R: usize = 1000;
const M: usize = 1000;

/// Runs the workload and prints `ring`.
pub fn run(b: &Bench) -> Result<()> {
    let rounds = b.size(M);
    let hops = (R * rounds) as i64;
    let best = b.best_of(Best::Max, move |cx| once(cx, R, hops))?;
    report(
        "ring",
        &format!("{best:.0}"),
        "msgs_per_s",
        &format!(
            "R={R} processes, one token passed M={rounds} rounds ({hops} hops); \
             setup excluded; best of 3"
        ),
    );
    Ok(())
}

async fn once(cx: Cx, size: usize, hops: i64) -> Result<Value> {
    let parent = cx.pid();
    let nodes =
        (0..size).map(|_| spawn(&cx, move |cx| node(cx, parent))).collect::<Result<Vec<Pid>>>()?;
    for (i, &n) in nodes.iter().enumerate() {
        // A payload cannot hold a pid: it travels as its text.
        cx.send(n, "next", nodes[(i + 1) % size].to_string())?;
    }
    recv_n(&cx, "ready", size).await;
    let t0 = Instant::now();
    cx.send(nodes[0], "token", hops)?;
    recv_n(&cx, "ring_done", 1).await;
    let rate = hops as f64 / t0.elapsed().as_secs_f64();
    kill_all(&cx, &nodes).await?;
    Ok(Value::Float(rate))
}

/// One ring node: learns its successor, then forwards the token with one hop less.
async fn node(cx: Cx, parent: Pid) -> Result<Value> {
    let m = cx.recv().await;
    let next: Pid = m.payload.as_str().unwrap_or_default().parse()?;
    cx.send(parent, "ready", Value::Nil)?;
    loop {
        let m = cx.recv().await;
        match m.payload.as_int() {
            Some(0) => cx.send(parent, "ring_done", Value::Nil)?,
            Some(left) => cx.send(next, "token", left - 1)?,
            None => return Err(failure(format!("ring node got {:?}", m.payload))),
        }
    }
}
