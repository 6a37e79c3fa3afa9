#!/usr/bin/env bash
# The project's test command: formatting, lints, every test, the loom models, and a smoke run of
# the benchmark harness. Needs only cargo (rustfmt and clippy come with the toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"

echo "== rustfmt"
cargo fmt --all --check

echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== native plugin examples (C, Rust, Go; installs Go when missing)"
bash scripts/build-native-examples.sh

echo "== the Go guest package's own tests"
(cd abi/go && GOFLAGS="-mod=mod -buildvcs=false" GOPROXY=off go test ./...)

echo "== tests"
cargo test --workspace --locked

echo "== loom models (state word, park protocol, table delivery, lease counts, the Lua time-slice watchdog's sleep)"
RUSTFLAGS="--cfg spindle_loom" CARGO_TARGET_DIR="$target/loom" \
    cargo test -p spindle-runtime -p spindle-lua --lib --release --locked loom

echo "== benchmark harness smoke run"
cargo run --release --locked -p spindle-bench -- --quick
