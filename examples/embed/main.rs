//! Embeds the Spindle runtime in a Rust program: a service that spawns workers, sends them
//! jobs, and restarts the one that crashes — Erlang-style supervision with async Rust processes.
//!
//! Run: `cargo run --release --example embed`

use std::time::Duration;

use spindle_runtime::rust::{AsyncProcess, First, first, rust_entry};
use spindle_runtime::{Error, ErrorKind, EventKind, HostConfig, Runtime, Spawn, Ties, Value};

const HOST: &str = "app:processes";

fn main() -> Result<(), Error> {
    let rt = Runtime::builder().host(HostConfig::new(HOST)).build()?;

    // A worker entry: squares numbers; crashes on 13, to show supervision.
    rt.put_entry(rust_entry("app.workers:square".parse()?, |cx, args| async move {
        let name = args.first().cloned().unwrap_or_default();
        loop {
            let job = cx.recv().await;
            let n = job.payload.as_int().unwrap_or(0);
            if n == 13 {
                return Err(Error::new(ErrorKind::Unknown, format!("{name} refuses to square 13")));
            }
            cx.sleep(Duration::from_millis(5)).await; // pretend to work
            cx.send(job.from, "result", Value::Array(vec![name.clone(), (n * n).into()]))?;
        }
    }));

    // The supervisor: starts three monitored workers, hands out jobs round-robin, restarts a
    // worker that crashes and gives its job to the replacement.
    let supervisor = AsyncProcess::new(|cx| async move {
        let worker = "app.workers:square".parse::<spindle_runtime::EntryId>()?;
        let start = |i: usize| {
            let args = vec![Value::from(format!("worker-{i}"))];
            cx.spawn(
                Spawn::entry(worker.clone(), HOST).args(args),
                Ties { link: false, monitor: true },
            )
        };
        let mut workers = vec![start(0)?, start(1)?, start(2)?];
        println!("supervisor {} started workers {:?}", cx.pid(), workers);

        let jobs: Vec<i64> = (1..=15).collect();
        for (i, n) in jobs.iter().enumerate() {
            cx.send(workers[i % 3], "job", *n)?;
        }
        let mut done = 0;
        let mut restarts = 0;
        let mut total = 0;
        while done < jobs.len() - 1 {
            // Results come as messages, crashes as EXIT events: wait for either.
            match first(cx.recv(), cx.event()).await {
                First::Left(m) => {
                    let v = m.payload.as_array().map(<[Value]>::to_vec).unwrap_or_default();
                    println!("  {} squared a number: {}", v[0], v[1]);
                    total += v[1].as_int().unwrap_or(0);
                    done += 1;
                }
                First::Right(e) => {
                    if e.kind == EventKind::Exit
                        && let Some(Err(err)) = e.result
                    {
                        let slot = workers.iter().position(|p| *p == e.from).unwrap_or(0);
                        println!("  {} crashed ({}); restarting it", e.from, err.message());
                        workers[slot] = start(slot)?;
                        restarts += 1;
                    }
                }
            }
        }
        Ok(Value::Array(vec![total.into(), restarts.into()]))
    });

    let result = rt.exec(Spawn::process(supervisor, HOST))?;
    println!("all jobs done: sum of squares (without 13) and restarts = {result:?}");
    Ok(())
}
