//! The `spindle` command: run an app folder, run one process on the terminal, check an app.

mod cli;

use std::process::ExitCode;

/// Processes are allocated on one worker and often freed on another: mimalloc's per-thread
/// heaps with cross-thread free lists handle that without the lock contention of glibc's arenas.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main(std::env::args().skip(1).collect())
}
