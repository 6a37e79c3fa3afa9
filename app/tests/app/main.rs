//! Apps: the loader's errors, services under a controllable clock, reload.

mod common;
mod config;
mod reload;
mod services;
