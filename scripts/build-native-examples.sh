#!/usr/bin/env bash
# Builds the native plugin examples next to their entry files:
#   examples/native-c/libservice_c.so       (cc -shared -fPIC, with abi/include)
#   examples/native-rust/libservice_rust.so (cargo, crate spindle-example-native-rust)
#   examples/native-go/libservice_go.so     (go build -buildmode=c-shared)
# Each is rebuilt only when its sources are newer than the library. Go comes from Debian's
# golang-go, installed here when `go` is missing (as root, or with sudo).
#
#   scripts/build-native-examples.sh [c] [rust] [go]     (default: all three)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
want="${*:-c rust go}"

# Whether $1 is missing or older than any file under the other arguments.
stale() {
    local out="$1"
    shift
    [ ! -e "$out" ] || [ -n "$(find "$@" -newer "$out" -type f -print -quit)" ]
}

log() { echo "build-native-examples: $*" >&2; }

if [[ " $want " == *" c "* ]]; then
    out=examples/native-c/libservice_c.so
    if stale "$out" examples/native-c/service.c abi/include; then
        log "cc $out"
        "${CC:-cc}" -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror -shared -fPIC \
            -I abi/include -o "$out" examples/native-c/service.c
    fi
fi

if [[ " $want " == *" rust "* ]]; then
    # Its own target directory: this script runs from inside `cargo test`, which holds the
    # workspace's build directory.
    out=examples/native-rust/libservice_rust.so
    dir="$target/native-examples"
    if stale "$out" examples/native-rust/src examples/native-rust/Cargo.toml abi/src abi/rust-guest/src; then
        log "cargo build $out"
        CARGO_TARGET_DIR="$dir" cargo build --release --quiet --locked -p spindle-example-native-rust
        cp "$dir/release/libspindle_example_native_rust.so" "$out"
    fi
fi

if [[ " $want " == *" go "* ]]; then
    if ! command -v go >/dev/null; then
        log "go is missing: installing Debian's golang-go"
        sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq golang-go >/dev/null
    fi
    out=examples/native-go/libservice_go.so
    if stale "$out" examples/native-go abi/go abi/include; then
        log "go build $out"
        (cd examples/native-go &&
            GOFLAGS="-mod=mod -buildvcs=false" GOPROXY=off go build -buildmode=c-shared \
                -o libservice_go.so .)
        rm -f examples/native-go/libservice_go.h
    fi
fi
