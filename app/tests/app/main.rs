//! Apps: the loader's errors, services under a controllable clock, reload.

mod config;
mod fixtures;
mod reload;
mod services;
