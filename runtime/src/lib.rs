//! # spindle-runtime
//!
//! Spindle runs code in isolated, lightweight **processes**: resumable state machines that
//! share nothing and talk only by messages. A work-stealing scheduler per **host** drives
//! thousands of them on a few threads; a process that waits costs no thread.
//!
//! Every language backend implements one trait, [`Process`]: the scheduler calls
//! [`Process::step`], and the process runs until it must wait, returning a [`Step`]. Processes
//! are tied together Erlang-style: links, monitors, `trap_links`, EXIT / LINK_DOWN / CANCEL
//! events, names, and upgrade of a live process's code that keeps its identity.
//!
//! Rust processes are `async` functions (see [`rust`]):
//!
//! ```
//! use spindle_runtime::{HostConfig, Runtime, Spawn, Ties, Value, rust::AsyncProcess};
//!
//! let rt = Runtime::builder().host(HostConfig::new("app:main").workers(2)).build()?;
//! let parent = AsyncProcess::new(|cx| async move {
//!     // A child that answers one request.
//!     let child = AsyncProcess::new(|cx| async move {
//!         let req = cx.recv().await;
//!         let n = req.payload.as_int().unwrap_or(0);
//!         cx.send(req.from, "reply", n + 1)?;
//!         Ok(Value::Nil)
//!     });
//!     let pid = cx.spawn(Spawn::process(child, "app:main"), Ties::default())?;
//!     cx.send(pid, "request", 41)?;
//!     Ok(cx.recv().await.payload)
//! });
//! assert_eq!(rt.exec(Spawn::process(parent, "app:main"))?, Value::Int(42));
//! # Ok::<(), spindle_runtime::Error>(())
//! ```
//!
//! A [`Backend`] turns registry [`Entry`]s (ids `namespace:name`) into cached prototypes and
//! prototypes into processes; the Rust backend (`process.rust`, [`rust::rust_entry`]) is
//! always installed.

#![warn(missing_docs)]

pub mod backend;
mod cell;
mod context;
mod error;
mod host;
mod lease;
mod mailbox;
mod msgpack;
mod pid;
mod process;
mod process_ref;
pub(crate) mod records;
pub mod registry;
mod runtime;
pub mod rust;
pub mod scheduler;
mod step;
mod stock;
mod sync;
mod table;
mod time;
mod topic;
mod value;

pub use backend::{Backend, Instance, Placement, Prototype};
pub use context::{Completer, Cx, Dest};
pub use error::{Error, ErrorKind, Result};
pub use host::{Host, HostConfig};
pub use lease::{Lease, LeaseCount, Leased};
pub use pid::{HostId, Pid};
pub use process::{
    Completion, Event, EventKind, Message, Op, Process, ProcessBox, Spawn, Step, Tag, Ties, WaitFor,
};
pub use registry::{Entry, EntryId};
pub use runtime::{ExitWatch, ProcessInfo, Runtime, RuntimeBuilder};
pub use time::{Clock, ManualClock};
pub use topic::Topic;
pub use value::Value;
