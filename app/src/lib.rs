//! # spindle-app
//!
//! Spindle apps: a folder of entry files (`_index.toml` / `_index.yaml`) with processes, hosts,
//! services and policies, loaded and checked as a whole ([`config`]), run on a runtime with the
//! Lua and native backends ([`App`]), with services started, watched and restarted by the
//! runtime's own supervisor ([`services`]), and reloaded on change ([`watch`]).

#![warn(missing_docs)]

mod app;
pub mod config;
pub mod services;
pub mod watch;

pub use app::{App, DEFAULT_HOST, Options, Reload, TERMINAL_HOST, check, service_pid};
