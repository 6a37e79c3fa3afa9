//! Spindle's benchmark harness: the workloads of `bench/erlang/spindle_bench.erl`, run with
//! Rust async processes on one host with two workers.
//!
//! Each figure is printed on stdout as one line,
//! `RESULT rust <bench> <value> <unit> <method...>`, with the same bench names and units as the
//! Erlang side; progress goes to stderr. `scripts/bench.sh` runs both sides and compares them.
//!
//! ```text
//! cargo run --release -p spindle-bench -- [--only NAME[,NAME...]] [--quick]
//! ```

mod fairness;
mod harness;
mod idle_memory;
mod lua;
mod native;
mod ping_pong;
mod ring;
mod spawn_exit;
mod timers;

use std::process::ExitCode;

/// Processes are allocated on one worker and often freed on another: mimalloc's per-thread
/// heaps with cross-thread free lists handle that without the lock contention of glibc's arenas.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use harness::{Bench, HOST, WORKERS, report};

type Workload = fn(&Bench) -> spindle_runtime::Result<()>;

/// Every workload, in the order they run. `idle_memory` goes first: memory that earlier
/// workloads freed stays with the allocator and would absorb the growth it measures.
const WORKLOADS: &[(&str, Workload)] = &[
    ("idle_memory", idle_memory::run),
    ("native_idle_memory", native::idle_memory),
    ("lua_idle_memory", lua::idle_memory),
    ("spawn_exit", spawn_exit::run),
    ("ring", ring::run),
    ("ping_pong", ping_pong::run),
    ("timers", timers::run),
    ("fairness", fairness::run),
    ("native", native::run),
    ("lua", lua::run),
];

const USAGE: &str = "\
usage: spindle-bench [--only NAME[,NAME...]] [--quick]

  --only NAMES  run only these workloads: spawn_exit, ring, ping_pong, idle_memory, timers,
                fairness, native_idle_memory, native (spawn_exit and ring of native plugins),
                lua_idle_memory, lua (spawn_exit, ring, ping_pong, fairness of Lua processes)
  --quick       every size 10x smaller (a smoke run; figures are not comparable)
";

/// The command line.
struct Args {
    only: Option<Vec<String>>,
    quick: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args { only: None, quick: false };
    while let Some(arg) = args.next() {
        let names = match arg.as_str() {
            "--quick" => {
                parsed.quick = true;
                continue;
            }
            "--only" => args.next().ok_or("--only needs a list of workload names")?,
            other => match other.strip_prefix("--only=") {
                Some(names) => names.to_owned(),
                None => return Err(format!("unknown argument `{other}`")),
            },
        };
        let names: Vec<String> =
            names.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if let Some(bad) = names.iter().find(|n| !WORKLOADS.iter().any(|(w, _)| w == n)) {
            return Err(format!("unknown workload `{bad}`"));
        }
        parsed.only.get_or_insert_with(Vec::new).extend(names);
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args = std::env::args().skip(1).collect::<Vec<_>>();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse_args(args.into_iter()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("spindle-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let bench = match Bench::start(args.quick) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("spindle-bench: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Ok(n) = std::env::var(lua::IDLE_CHILD) {
        return match lua::idle_child(&n) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("spindle-bench: Lua idle memory: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Ok(spec) = std::env::var(native::IDLE_CHILD) {
        return match native::idle_child(&bench, &spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("spindle-bench: native idle memory: {e}");
                ExitCode::FAILURE
            }
        };
    }
    report(
        "spindle_version",
        env!("CARGO_PKG_VERSION"),
        "-",
        &format!("spindle-runtime; Rust async processes on host {HOST} with {WORKERS} workers"),
    );
    for (name, run) in WORKLOADS {
        if args.only.as_ref().is_some_and(|only| !only.iter().any(|o| o == name)) {
            continue;
        }
        eprintln!("spindle-bench: {name}");
        if let Err(e) = run(&bench) {
            eprintln!("spindle-bench: {name} failed: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
