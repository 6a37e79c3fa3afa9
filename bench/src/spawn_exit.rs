//! `spawn_exit`: how fast processes are born, run and die.
//!
//! The parent spawns N children in a loop; each child sends `done` to the parent and exits.
//! The clock runs from the first spawn until the parent has received all N messages, so it
//! covers creating, scheduling, running and ending every child. Children per second, best of 3.

use std::time::Instant;

use spindle_runtime::{Cx, Result, Value};

use crate::harness::{Bench, Best, recv_n, report, spawn};

const N: usize = 200_000;

/// Runs the workload and prints `spawn_exit`.
pub fn run(b: &Bench) -> Result<()> {
    let n = b.size(N);
    let best = b.best_of(Best::Max, move |cx| once(cx, n))?;
    report(
        "spawn_exit",
        &format!("{best:.0}"),
        "per_s",
        &format!("N={n} children each send done to the parent and exit; best of 3"),
    );
    Ok(())
}

async fn once(cx: Cx, n: usize) -> Result<Value> {
    let parent = cx.pid();
    let t0 = Instant::now();
    for _ in 0..n {
        spawn(&cx, move |cx| async move {
            cx.send(parent, "done", Value::Nil)?;
            Ok(Value::Nil)
        })?;
    }
    recv_n(&cx, "done", n).await;
    Ok(Value::Float(n as f64 / t0.elapsed().as_secs_f64()))
}
