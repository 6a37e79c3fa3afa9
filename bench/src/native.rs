//! Native plugin processes (`process.native`): the Rust-guest and C example services
//! (`examples/native-rust`, `examples/native-c`) in the same workloads as the Rust rows.
//!
//! The measuring parent is a Rust process, as in the Rust rows; the children are native
//! processes spawned from their entry (`Spawn::entry`, through the prototype cache) with a
//! role argument the example services understand (`["done", parent]`, `["ring", parent]`).
//! Idle memory is measured with the services themselves blocked in a receive, each in a fresh
//! OS process (a child of the harness), so memory freed by earlier workloads cannot absorb the
//! growth. Rows are `RESULT native-rust …` and `RESULT native-c …`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use spindle_native::NativeBackend;
use spindle_runtime::{Cx, Entry, EntryId, Pid, Result, Spawn, Ties, Value};

use crate::harness::{Bench, Best, HOST, SETTLE, failure, float, kill_all, recv_n, rss_bytes};

/// The plugins measured: (system name in the RESULT lines, language of the example).
pub const SYSTEMS: [(&str, &str); 2] = [("native-rust", "rust"), ("native-c", "c")];

/// The environment variable that makes the harness measure one native idle-memory figure and
/// exit (set for the child process `idle_memory` starts).
pub const IDLE_CHILD: &str = "SPINDLE_BENCH_NATIVE_IDLE";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn entry_id(lang: &str) -> EntryId {
    format!("bench:service.{lang}").parse().expect("a valid entry id")
}

/// Builds the example plugins (if stale) and installs the native backend with their entries.
fn install(b: &Bench) -> Result<()> {
    let status = Command::new("bash")
        .arg(root().join("scripts/build-native-examples.sh"))
        .args(["c", "rust"])
        .status()
        .map_err(|e| failure(format!("running scripts/build-native-examples.sh: {e}")))?;
    if !status.success() {
        return Err(failure("scripts/build-native-examples.sh failed"));
    }
    b.rt().add_backend(Arc::new(NativeBackend::new()));
    for (_, lang) in SYSTEMS {
        let mut e = Entry::new(entry_id(lang), spindle_native::KIND);
        e.fields = Value::map([("library", Value::from(format!("file://libservice_{lang}.so")))]);
        e.base_dir = Some(root().join(format!("examples/native-{lang}")));
        b.rt().put_entry(e);
    }
    Ok(())
}

fn report(system: &str, bench: &str, value: &str, unit: &str, method: &str) {
    println!("RESULT {system} {bench} {value} {unit} {method}");
}

fn child(id: &EntryId, role: &str, parent: Pid) -> Spawn {
    let args = vec![Value::from(role), Value::Int(parent.serial() as i64)];
    Spawn::entry(id.clone(), HOST).args(args)
}

/// Runs `spawn_exit` and `ring` for both plugins and prints their rows.
pub fn run(b: &Bench) -> Result<()> {
    install(b)?;
    for (system, lang) in SYSTEMS {
        let n = b.size(200_000);
        let best = b.best_of(Best::Max, move |cx| spawn_exit(cx, lang, n))?;
        report(
            system,
            "spawn_exit",
            &format!("{best:.0}"),
            "per_s",
            &format!(
                "N={n} {lang} plugin children (spawned from their entry) each send done to the \
                 Rust parent and exit; best of 3"
            ),
        );
        let (size, rounds) = (1000, b.size(1000));
        let hops = (size * rounds) as i64;
        let best = b.best_of(Best::Max, move |cx| ring(cx, lang, size, hops))?;
        report(
            system,
            "ring",
            &format!("{best:.0}"),
            "msgs_per_s",
            &format!(
                "R={size} {lang} plugin processes, one token passed M={rounds} rounds ({hops} \
                 hops, a MessagePack integer each); setup excluded; best of 3"
            ),
        );
    }
    Ok(())
}

async fn spawn_exit(cx: Cx, lang: &'static str, n: usize) -> Result<Value> {
    let parent = cx.pid();
    let id = entry_id(lang);
    let t0 = Instant::now();
    for _ in 0..n {
        cx.spawn(child(&id, "done", parent), Ties::default())?;
    }
    recv_n(&cx, "done", n).await;
    Ok(Value::Float(n as f64 / t0.elapsed().as_secs_f64()))
}

async fn ring(cx: Cx, lang: &'static str, size: usize, hops: i64) -> Result<Value> {
    let parent = cx.pid();
    let id = entry_id(lang);
    let nodes = (0..size)
        .map(|_| cx.spawn(child(&id, "ring", parent), Ties::default()))
        .collect::<Result<Vec<Pid>>>()?;
    for (i, &n) in nodes.iter().enumerate() {
        cx.send(n, "next", nodes[(i + 1) % size].serial() as i64)?;
    }
    recv_n(&cx, "ready", size).await;
    let t0 = Instant::now();
    cx.send(nodes[0], "token", hops)?;
    recv_n(&cx, "ring_done", 1).await;
    let rate = hops as f64 / t0.elapsed().as_secs_f64();
    kill_all(&cx, &nodes).await?;
    Ok(Value::Float(rate))
}

/// Runs `idle_memory` for both plugins, each in a fresh child process of the harness, and
/// prints their rows.
pub fn idle_memory(b: &Bench) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| failure(format!("the harness's path: {e}")))?;
    let n = b.size(100_000);
    for (system, lang) in SYSTEMS {
        let out = Command::new(&exe)
            .env(IDLE_CHILD, format!("{lang}:{n}"))
            .output()
            .map_err(|e| failure(format!("starting the idle-memory child: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let per_process: f64 = text.trim().parse().map_err(|_| {
            failure(format!(
                "the idle-memory child printed {text:?} (stderr: {})",
                String::from_utf8_lossy(&out.stderr)
            ))
        })?;
        report(
            system,
            "idle_memory",
            &format!("{per_process:.1}"),
            "bytes_per_process",
            &format!(
                "N={n} {lang} plugin services blocked in a receive (their own state included); \
                 OS VmRSS delta / N after {} ms settle, in a fresh process",
                SETTLE.as_millis()
            ),
        );
    }
    Ok(())
}

/// The child side of [`idle_memory`]: `spec` is `LANG:N`; prints bytes per process.
pub fn idle_child(b: &Bench, spec: &str) -> Result<()> {
    let (lang, n) = spec.split_once(':').ok_or_else(|| failure(format!("bad spec {spec}")))?;
    let n: usize = n.parse().map_err(|_| failure(format!("bad count in {spec}")))?;
    install(b)?;
    let lang: &'static str = if lang == "c" { "c" } else { "rust" };
    // One service first, so that loading the library is not counted.
    b.rt().exec(Spawn::entry(entry_id(lang), HOST).args(vec!["done".into(), Value::Int(0)])).ok();
    let per_process = float(&b.measure(move |cx| async move {
        cx.sleep(SETTLE).await;
        let rss0 = rss_bytes()?;
        let mut pids = Vec::with_capacity(n);
        for _ in 0..n {
            pids.push(cx.spawn(Spawn::entry(entry_id(lang), HOST), Ties::default())?);
        }
        cx.sleep(SETTLE).await;
        let rss1 = rss_bytes()?;
        for p in pids {
            cx.terminate(p)?;
        }
        Ok(Value::Float((rss1 as f64 - rss0 as f64) / n as f64))
    })?)?;
    println!("{per_process}");
    Ok(())
}
