#!/usr/bin/env bash
# Build and run the Erlang/OTP side of the Spindle comparison benchmark.
# stdout: only `RESULT erlang ...` lines (see spindle_bench.erl for the format).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/_build"

bash "$here/install.sh"

mkdir -p "$build"
erlc -o "$build" "$here/spindle_bench.erl"

# +S 2:2   exactly two schedulers, both online (same as the Rust harness)
# +P       raise the process limit above the default 262144 for headroom
export ERL_CRASH_DUMP="$build/erl_crash.dump"
exec erl +S 2:2 +P 1048576 -noshell -pa "$build" -eval 'spindle_bench:main([])'
