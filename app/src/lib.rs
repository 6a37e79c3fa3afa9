//! # spindle-app
//!
//! Spindle apps: a folder of entry files (`_index.toml` / `_index.yaml`) with processes, hosts,
//! services and policies, loaded and checked as a whole ([`config`]), run on a runtime with the
//! Lua and native backends ([`App`]), with services started, watched and restarted by the
//! runtime's own supervisor ([`services`]), and reloaded on change ([`watch`]).
//!
//! The `spindle` command is built on it; a Rust program can do the same:
//!
//! ```
//! use spindle_app::{App, DEFAULT_HOST, Options, config};
//! use spindle_runtime::{Spawn, Value};
//!
//! # let dir = std::env::temp_dir().join(format!("spindle-app-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! std::fs::write(
//!     dir.join("hello.lua"),
//!     "return { main = function(name) return 'hello, ' .. name end }",
//! )?;
//! std::fs::write(
//!     dir.join("_index.toml"),
//!     r#"
//! namespace = "demo"
//!
//! [[entries]]
//! name = "hello"
//! kind = "process.lua"
//! source = "file://hello.lua"
//! "#,
//! )?;
//! // Every problem in the entry files would be reported here, with file, entry and field.
//! let app = App::new(config::load(&dir)?, Options::default())?;
//! let hello = Spawn::entry("demo:hello".parse()?, DEFAULT_HOST).args(vec!["world".into()]);
//! assert_eq!(app.runtime().exec(hello)?, Value::from("hello, world"));
//! // Services would be started with `app.start_services()`; this stops them and the runtime.
//! app.shutdown();
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod app;
pub mod config;
pub mod services;
pub mod watch;

pub use app::{App, DEFAULT_HOST, Options, Reload, TERMINAL_HOST, check, compile, service_pid};
