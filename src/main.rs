//! The `spindle` command.

use std::process::ExitCode;

/// Processes are allocated on one worker and often freed on another: mimalloc's per-thread
/// heaps with cross-thread free lists handle that without the lock contention of glibc's arenas.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HELP: &str = "\
spindle — run isolated lightweight processes

USAGE:
    spindle --version     print the version
    spindle --help        print this help

The runtime is a library today (crate `spindle-runtime`); see examples/embed for a Rust program
that embeds it. App folders and their commands arrive with the app loader.
";

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        None | Some("-h" | "--help" | "help") => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            println!("spindle {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("spindle: unknown command `{other}` (see `spindle --help`)");
            ExitCode::from(2)
        }
    }
}
