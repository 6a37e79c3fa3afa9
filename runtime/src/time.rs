//! The I/O driver: a small tokio runtime beside the workers that carries out waits that are
//! not process-to-process (timers now; terminal, file and network I/O later) and completes the
//! waiting process's operation.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime as Tokio};
use tokio::task::AbortHandle;

use crate::cell::ProcessCell;
use crate::error::{Error, ErrorKind, Result};
use crate::process::{Completion, Tag};
use crate::sync::{Mutex, lock};

pub(crate) struct Driver {
    tokio: Mutex<Option<Tokio>>,
    handle: Handle,
}

impl Driver {
    pub(crate) fn start() -> Result<Driver> {
        let tokio = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("spindle:io")
            .enable_time()
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Internal, format!("starting the I/O driver: {e}"))
            })?;
        Ok(Driver { handle: tokio.handle().clone(), tokio: Mutex::new(Some(tokio)) })
    }

    /// Completes operation `tag` of `cell` with [`Completion::Timer`] after `d`.
    pub(crate) fn sleep(&self, cell: Arc<ProcessCell>, tag: Tag, d: Duration) -> AbortHandle {
        self.handle
            .spawn(async move {
                tokio::time::sleep(d).await;
                cell.rt.complete(&cell, tag, Completion::Timer);
            })
            .abort_handle()
    }

    pub(crate) fn shutdown(&self) {
        if let Some(t) = lock(&self.tokio).take() {
            t.shutdown_background();
        }
    }
}
