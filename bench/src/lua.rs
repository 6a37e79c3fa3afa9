//! The workloads with Lua processes (`bench/lua/bench.lua`), on a host of two workers with
//! the Lua backend's default settings (islands mode). Rows: `RESULT lua <bench> ...`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use spindle_lua::{LuaBackend, LuaConfig};
use spindle_runtime::{Entry, EntryId, HostConfig, Result, Runtime, Spawn, Value};

use crate::harness::{Bench, RUNS, SETTLE, WORKERS, failure, float, rss_bytes};

/// Set in the environment of the child process that measures idle Lua processes.
pub const IDLE_CHILD: &str = "SPINDLE_BENCH_LUA_IDLE";

const HOST: &str = "bench:lua";

fn print(bench: &str, value: &str, unit: &str, method: &str) {
    println!("RESULT lua {bench} {value} {unit} {method}");
}

struct LuaBench {
    rt: Runtime,
    backend: LuaBackend,
}

fn id(name: &str) -> EntryId {
    format!("bench:lua.{name}").parse().expect("a valid entry id")
}

impl LuaBench {
    fn start() -> Result<LuaBench> {
        let backend = LuaBackend::default();
        let rt = Runtime::builder()
            .host(HostConfig::new(HOST).workers(WORKERS))
            .backend(backend.clone())
            .build()?;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("lua");
        for f in [
            "child",
            "node",
            "pong",
            "idle",
            "busy",
            "run_spawn_exit",
            "run_ring",
            "run_ping_pong",
            "run_idle",
            "run_fairness",
        ] {
            let mut e = Entry::new(id(f), "process.lua");
            e.fields = Value::map([
                ("source", Value::from("file://bench.lua")),
                ("method", Value::from(f)),
            ]);
            e.base_dir = Some(dir.clone());
            rt.put_entry(e);
        }
        Ok(LuaBench { rt, backend })
    }

    fn run(&self, f: &str, args: Vec<Value>) -> Result<Value> {
        self.rt.exec(Spawn::entry(id(f), HOST).args(args))
    }

    fn best(&self, f: &str, args: Vec<Value>, max: bool) -> Result<f64> {
        let mut best: Option<f64> = None;
        for _ in 0..RUNS {
            let v = float(&self.run(f, args.clone())?)?;
            best = Some(match best {
                None => v,
                Some(b) if max => b.max(v),
                Some(b) => b.min(v),
            });
        }
        Ok(best.unwrap_or(f64::NAN))
    }

    fn wait_until_empty(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.rt.process_count() > 0 {
            if Instant::now() > deadline {
                return Err(failure("Lua processes still alive after 60 s"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

/// Idle memory of Lua processes, measured in a fresh process of the harness so that heap freed
/// by earlier workloads does not absorb the growth.
pub fn idle_memory(b: &Bench) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| failure(format!("the harness's path: {e}")))?;
    let n = b.size(100_000);
    let out = Command::new(&exe)
        .env(IDLE_CHILD, n.to_string())
        .output()
        .map_err(|e| failure(format!("starting the idle-memory child: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let bad = || {
        failure(format!(
            "the idle-memory child printed {text:?} (stderr: {})",
            String::from_utf8_lossy(&out.stderr)
        ))
    };
    let mut figures = text.split_whitespace().map(|f| f.parse::<f64>().map_err(|_| bad()));
    let per = figures.next().ok_or_else(bad)??;
    let heap = figures.next().ok_or_else(bad)??;
    print(
        "idle_memory",
        &format!("{per:.1}"),
        "bytes_per_process",
        &format!(
            "N={n} Lua processes blocked in process.inbox():receive(), islands mode, their \
             pids kept by the parent; OS VmRSS delta / N after {} ms settle, in a fresh process",
            SETTLE.as_millis()
        ),
    );
    print(
        "idle_memory_vm",
        &format!("{heap:.1}"),
        "bytes_per_process",
        "the same N processes: growth of the islands' Lua heaps / N (LuaStats::island_heap, \
         uncollected garbage included)",
    );
    Ok(())
}

/// The child side of [`idle_memory`]: spawns `n` idle Lua processes; prints bytes per process.
pub fn idle_child(n: &str) -> Result<()> {
    let n: usize = n.parse().map_err(|_| failure(format!("bad count {n}")))?;
    let b = LuaBench::start()?;
    // One process first, so that creating the islands and loading the chunk is not counted.
    b.run("run_ping_pong", vec![Value::Int(1)])?;
    let before = rss_bytes()?;
    let heap_before = b.backend.stats().island_heap;
    let (holder, _watch) =
        b.rt.spawn_watched(Spawn::entry(id("run_idle"), HOST).args(vec![Value::Int(n as i64)]))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while b.rt.lookup("lua_idle_ready").is_none() {
        if Instant::now() > deadline {
            return Err(failure("the idle Lua processes did not start in time"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(SETTLE);
    let after = rss_bytes()?;
    let heap = b.backend.stats().island_heap.saturating_sub(heap_before);
    b.rt.terminate(holder)?;
    let per = |bytes: u64| bytes as f64 / n as f64;
    println!("{:.1} {:.1}", per(after.saturating_sub(before)), per(heap as u64));
    Ok(())
}

/// spawn_exit, ring, ping_pong and fairness with Lua processes.
pub fn run(outer: &Bench) -> Result<()> {
    let b = LuaBench::start()?;
    let n = outer.size(200_000);
    let rate = b.best("run_spawn_exit", vec![Value::Int(n as i64)], true)?;
    print(
        "spawn_exit",
        &format!("{rate:.0}"),
        "per_s",
        &format!("N={n} Lua children each send done to the Lua parent and exit; best of 3"),
    );
    b.wait_until_empty()?;

    let rounds = outer.size(1000);
    let hops = 1000 * rounds;
    let rate = b.best("run_ring", vec![Value::Int(1000), Value::Int(hops as i64)], true)?;
    print(
        "ring",
        &format!("{rate:.0}"),
        "msgs_per_s",
        &format!(
            "R=1000 Lua processes, one token passed M={rounds} rounds ({hops} hops); setup \
             excluded; best of 3"
        ),
    );
    b.wait_until_empty()?;

    let k = outer.size(200_000);
    let us = b.best("run_ping_pong", vec![Value::Int(k as i64)], false)?;
    print(
        "ping_pong",
        &format!("{us:.3}"),
        "us_per_rtt",
        &format!("K={k} round trips between two Lua processes; mean; best of 3"),
    );
    b.wait_until_empty()?;

    let k = outer.size(2000);
    let r = b.run("run_fairness", vec![Value::Int(2), Value::Int(k as i64)])?;
    let mean = r.get("mean").and_then(Value::as_float).ok_or_else(|| failure("no mean"))?;
    let p99 = r.get("p99").and_then(Value::as_float).ok_or_else(|| failure("no p99"))?;
    let method = format!(
        "B=2 Lua busy loops (preempted after a time slice of {slice} µs); K={k} ping-pong round \
         trips between two other Lua processes",
        slice = LuaConfig::default().slice.as_micros()
    );
    print("fairness_rtt_mean", &format!("{mean:.3}"), "us_per_rtt", &format!("{method}; mean"));
    print("fairness_rtt_p99", &format!("{p99:.3}"), "us", &format!("{method}; 99th percentile"));
    b.wait_until_empty()
}
