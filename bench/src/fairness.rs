//! `fairness`: message latency while CPU-bound processes occupy every worker.
//!
//! B busy processes loop on integer arithmetic and never receive; meanwhile a pinger does K
//! timed round trips with a ponger. Rust processes are cooperative (a step is never
//! preempted), so each busy loop calls `cx.yield_now().await` whenever about 1 ms of its time
//! slice has passed; Erlang preempts its busy loops after a reduction budget instead. The round
//! trips start once both busy loops run and have had 100 ms to spread over the workers (an idle
//! worker steals one), so that every worker is loaded. Mean and 99th percentile round trip in
//! microseconds. The busy processes are terminated afterwards.

use std::hint::black_box;
use std::time::{Duration, Instant};

use spindle_runtime::{Cx, Pid, Result, Value};

use crate::harness::{
    Bench, failure, float, kill_all, ponger, recv_n, recv_payload, report, spawn,
};

const B: usize = 2;
const K: usize = 2000;
/// How long a busy loop runs before it yields.
const SLICE: Duration = Duration::from_millis(1);
/// How long the busy loops run before the round trips start.
const SETTLE: Duration = Duration::from_millis(100);
/// Arithmetic steps between two looks at the clock.
const CHECK_EVERY: u32 = 1024;

/// Runs the workload and prints `fairness_rtt_mean` and `fairness_rtt_p99`.
pub fn run(b: &Bench) -> Result<()> {
    let k = b.size(K);
    let out = b.measure(move |cx| once(cx, k))?;
    let field = |name| out.get(name).ok_or_else(|| failure(format!("no {name} in {out:?}")));
    let (mean, p99) = (float(field("mean")?)?, float(field("p99")?)?);
    let method = format!(
        "B={B} cooperative busy loops (yield every ~{} ms), spread over {} workers; K={k} ping-pong \
         round trips between two other processes",
        SLICE.as_millis(),
        crate::harness::WORKERS
    );
    report("fairness_rtt_mean", &format!("{mean:.3}"), "us_per_rtt", &format!("{method}; mean"));
    report("fairness_rtt_p99", &format!("{p99:.3}"), "us", &format!("{method}; 99th percentile"));
    Ok(())
}

async fn once(cx: Cx, k: usize) -> Result<Value> {
    let parent = cx.pid();
    let mut others = (0..B as i64)
        .map(|i| spawn(&cx, move |cx| busy(cx, parent, i)))
        .collect::<Result<Vec<Pid>>>()?;
    // Start measuring only when every worker runs a busy loop: while this process sleeps, a
    // worker without one is idle and steals one from the other's queue.
    recv_n(&cx, "busy", B).await;
    cx.sleep(SETTLE).await;
    let pong = spawn(&cx, ponger)?;
    spawn(&cx, move |cx| async move {
        let mut rtts = Vec::with_capacity(k);
        for _ in 0..k {
            let t0 = Instant::now();
            cx.send(pong, "ping", Value::Nil)?;
            cx.recv().await;
            rtts.push(Value::Int(t0.elapsed().as_nanos() as i64));
        }
        cx.send(parent, "rtts", Value::Array(rtts))?;
        Ok(Value::Nil)
    })?;
    let rtts = recv_payload(&cx, "rtts").await;
    others.push(pong);
    kill_all(&cx, &others).await?;
    let mut ns: Vec<i64> =
        rtts.as_array().unwrap_or_default().iter().filter_map(Value::as_int).collect();
    if ns.is_empty() {
        return Err(failure("no round trips measured"));
    }
    ns.sort_unstable();
    let mean = ns.iter().sum::<i64>() as f64 / ns.len() as f64;
    let p99 = ns[(ns.len() * 99).div_ceil(100) - 1] as f64;
    Ok(Value::map([("mean", Value::Float(mean / 1e3)), ("p99", Value::Float(p99 / 1e3))]))
}

/// Tells the parent it runs, then spins on arithmetic forever, yielding after each time slice.
async fn busy(cx: Cx, parent: Pid, seed: i64) -> Result<Value> {
    cx.send(parent, "busy", Value::Nil)?;
    let mut x = seed;
    let mut slice = Instant::now();
    loop {
        for _ in 0..CHECK_EVERY {
            x = black_box((x * 75 + 74) % 65537);
        }
        if slice.elapsed() >= SLICE {
            cx.yield_now().await;
            slice = Instant::now();
        }
    }
}
