//! The native backend's integration tests, one binary (building the example plugins is the slow
//! part, done once): each module is one feature, driven from Rust processes.
//!
//! Every test runs the same protocol against each example plugin (C, Rust, Go; see
//! `examples/native-*`), built by `scripts/build-native-examples.sh` on first use.

mod calls;
mod common;
mod load_errors;
mod lua;
mod messaging;
mod misbehaving;
mod panics;
mod supervision;
mod upgrade;
mod waits;
