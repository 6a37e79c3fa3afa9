#!/usr/bin/env bash
# Ensure an Erlang/OTP runtime and compiler are available (Debian).
#
# Debian's `erlang-base` package alone provides erl, erlc and escript plus
# the kernel, stdlib and compiler applications, which is all the benchmark
# needs. Idempotent: does nothing when erl and erlc are already on PATH.
# Progress goes to stderr so that run.sh's stdout holds only RESULT lines.
set -euo pipefail

if command -v erl >/dev/null 2>&1 && command -v erlc >/dev/null 2>&1; then
    exit 0
fi

echo "install.sh: erl/erlc not found, installing Debian package erlang-base" >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq erlang-base; } >&2; then
    echo "install.sh: ERROR: installing erlang-base failed" >&2
    exit 1
fi

for tool in erl erlc; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install.sh: ERROR: '$tool' still missing after installing erlang-base" >&2
        exit 1
    fi
done
echo "install.sh: Erlang installed" >&2
