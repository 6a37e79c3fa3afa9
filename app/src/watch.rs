//! `--watch`: a thread that polls the app's files and reloads the app when one changes.
//!
//! Polling (a content fingerprint of every index file and code file, a few times a second)
//! needs no platform support and notices edits, new files and deletions alike. A change that
//! does not load (a syntax error, a bad field) is reported and the running app keeps its last
//! good version.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::app::{App, Reload};
use crate::config;

/// A running watcher; dropping it stops it.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// Watches `app`'s folder every `interval`; `on_reload` hears of every reload applied.
    pub fn start(
        app: Arc<App>,
        interval: Duration,
        on_reload: impl Fn(&Reload) + Send + 'static,
    ) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("spindle:watch".into())
            .spawn(move || {
                let root = app.config().root;
                let mut last = snapshot(&app);
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    let now = snapshot(&app);
                    if now == last {
                        continue;
                    }
                    last = now;
                    // Loaded and compiled: code that does not compile is kept out like a bad
                    // index file (applied, it replaced the good version of its entry).
                    match config::load(&root)
                        .and_then(|new| crate::app::compile(&new).map(|()| new))
                    {
                        Ok(new) => {
                            let report = app.reload(new);
                            // Files of new entries are watched from now on.
                            last = snapshot(&app);
                            log_reload(&report);
                            on_reload(&report);
                        }
                        Err(errors) => {
                            tracing::error!(
                                "not reloaded, the app keeps running as it was:\n{errors}"
                            );
                        }
                    }
                }
            })
            .expect("spawning the watch thread");
        Watcher { stop, thread: Some(thread) }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn log_reload(r: &Reload) {
    let list = |ids: &[spindle_runtime::EntryId]| {
        ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    };
    if !r.changed.is_empty() {
        tracing::info!(notified = r.notified, "reloaded: {}", list(&r.changed));
    }
    if !r.added.is_empty() {
        tracing::info!("added: {}", list(&r.added));
    }
    if !r.removed.is_empty() {
        tracing::info!("removed: {}", list(&r.removed));
    }
    if !r.need_restart.is_empty() {
        tracing::warn!("changed, takes effect on the next start: {}", list(&r.need_restart));
    }
}

/// Fingerprints of the app's index files (all of them, new ones too) and code files.
fn snapshot(app: &App) -> BTreeMap<PathBuf, u64> {
    let config = app.config();
    let mut files = config::index_files(&config.root);
    files.extend(config.watched_files());
    files
        .into_iter()
        .map(|p| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::fs::read(&p).ok().hash(&mut h);
            (p, h.finish())
        })
        .collect()
}
