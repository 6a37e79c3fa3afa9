#!/usr/bin/env bash
# Spindle vs Erlang/OTP: runs the same actor workloads on both, one after the other, and
# prints a markdown table of the results.
#
#   scripts/bench.sh [ARGS...]     ARGS go to the Rust harness (e.g. --quick, --only ring)
#
# The Erlang side (bench/erlang/run.sh, two schedulers) runs first, then the Rust side
# (`cargo run --release -p spindle-bench`, one host with two workers); never both at once.
# The raw `RESULT` lines of both are kept in target/bench-results.txt.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
results="target/bench-results.txt"

# The runtime version measured.
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- runtime/src runtime/Cargo.toml 2>/dev/null; then
    commit="$commit, with uncommitted changes to the runtime"
fi

# Build first so that compiling never overlaps a measurement (the native rows' plugins too).
cargo build --release -q -p spindle-bench
bash scripts/build-native-examples.sh c rust

# The machine's load when the measurements start (other work on it skews every figure).
load="$(cut -d' ' -f1-3 /proc/loadavg)"
date="$(date -u '+%Y-%m-%d %H:%M UTC')"

echo "bench.sh: running the Erlang/OTP side" >&2
erlang="$(bash bench/erlang/run.sh)"
echo "bench.sh: running the Rust side" >&2
rust="$(cargo run --release -q -p spindle-bench -- "$@")"

mkdir -p target
printf '%s\n%s\n' "$erlang" "$rust" | grep '^RESULT ' >"$results"

cpu="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
machine="$(nproc) CPUs ($cpu), $(uname -sr), load average before the run $load, $date"
python3 "$root/scripts/bench_table.py" "$results" "$machine" "$commit"
echo "bench.sh: raw results in $results" >&2
