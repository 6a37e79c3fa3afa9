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
                // A change is applied once it has held for a poll: a file caught half written
                // (an index file that parses all the same, with entries missing) waits.
                let mut seen: Option<Snapshot> = None;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    let now = snapshot(&app);
                    if now == last {
                        seen = None;
                        continue;
                    }
                    if seen.as_ref() != Some(&now) {
                        seen = Some(now);
                        continue;
                    }
                    seen = None;
                    last = now.clone();
                    // Loaded and compiled: code that does not compile is kept out like a bad
                    // index file (applied, it replaced the good version of its entry).
                    match config::load(&root)
                        .and_then(|new| crate::app::compile(&new).map(|()| new))
                    {
                        Ok(new) => {
                            let report = app.reload(new);
                            // Files of new entries are watched from now on; a file changed
                            // while this version loaded keeps its old fingerprint, so that
                            // the next poll loads it.
                            last = after_reload(&now, snapshot(&app));
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

/// A fingerprint of every watched file.
type Snapshot = BTreeMap<PathBuf, u64>;

/// What the watcher compares with after a reload of the files as they were in `loaded`: the
/// files of the new version as they are now (`after`, new ones included), except those that
/// changed since `loaded` was taken, which keep their fingerprint of then (taken as they are
/// now, an edit made while the reload ran was never loaded).
fn after_reload(loaded: &Snapshot, mut after: Snapshot) -> Snapshot {
    for (path, print) in loaded {
        if let Some(now) = after.get_mut(path) {
            *now = *print;
        }
    }
    after
}

/// Fingerprints of the app's index files (all of them, new ones too) and code files.
fn snapshot(app: &App) -> Snapshot {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file edited while a reload ran is loaded at the next poll; files new in the version
    /// are watched from then on, as they are.
    #[test]
    fn an_edit_made_during_a_reload_is_not_absorbed() {
        let p = |s: &str| PathBuf::from(s);
        let loaded: Snapshot = [(p("_index.toml"), 1), (p("a.lua"), 10)].into();
        let after: Snapshot = [(p("_index.toml"), 1), (p("a.lua"), 11), (p("b.lua"), 20)].into();
        let last = after_reload(&loaded, after.clone());
        assert_eq!(last, [(p("_index.toml"), 1), (p("a.lua"), 10), (p("b.lua"), 20)].into());
        assert_ne!(last, after, "the next poll sees a.lua as changed");
    }
}
