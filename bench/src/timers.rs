//! `timers`: many processes sleeping at once.
//!
//! N processes each sleep 1000 ms (`cx.sleep`) and then send `done` to the parent. Reported:
//! wall time from the first spawn to the last `done`, and that time minus the 1000 ms sleep
//! (what spawning, timer handling and wake-ups add).

use std::time::{Duration, Instant};

use spindle_runtime::{Cx, Result, Value};

use crate::harness::{Bench, float, recv_n, report, spawn};

const N: usize = 100_000;
const SLEEP: Duration = Duration::from_millis(1000);

/// Runs the workload and prints `timers` and `timers_overshoot`.
pub fn run(b: &Bench) -> Result<()> {
    let n = b.size(N);
    let ms = float(&b.measure(move |cx| once(cx, n))?)?;
    let sleep_ms = SLEEP.as_millis();
    report(
        "timers",
        &format!("{ms:.1}"),
        "ms",
        &format!(
            "N={n} processes each cx.sleep({sleep_ms} ms) then send done; \
             first spawn to last done"
        ),
    );
    report(
        "timers_overshoot",
        &format!("{:.1}", ms - SLEEP.as_secs_f64() * 1e3),
        "ms",
        &format!("timers wall time minus {sleep_ms} ms"),
    );
    Ok(())
}

async fn once(cx: Cx, n: usize) -> Result<Value> {
    let parent = cx.pid();
    let t0 = Instant::now();
    for _ in 0..n {
        spawn(&cx, move |cx| async move {
            cx.sleep(SLEEP).await;
            cx.send(parent, "done", Value::Nil)?;
            Ok(Value::Nil)
        })?;
    }
    recv_n(&cx, "done", n).await;
    Ok(Value::Float(t0.elapsed().as_secs_f64() * 1e3))
}
