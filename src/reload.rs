//! Config reload: on SIGHUP and when the config file changes (notify, watching the file's
//! folder so an editor's rename-on-save is seen, debounced here), read and validate the
//! file and hand the new `Config` to the driver thread, which applies it with
//! `Engine::set_config` (calls in progress keep the policy they started with).
//! May use: `settings::load_config`, notify. Invariants: only events that can change the
//! file's text trigger a read — a write, a rename onto it, a creation — never an open or
//! a read (the reload's own read of the file must not trigger the next reload: it did,
//! every 300 ms, forever); an invalid edit is logged with its file, line and key and
//! changes nothing (the last good config stays); an unchanged file is not re-applied;
//! sections that only take effect at
//! start (`[capture]`, `[store]`, `[recordings].dir`, `[api].listen`,
//! `[alerts].webhooks`) are applied to
//! nothing and a warning says a restart is needed.

use crate::settings::load_config;
use callwarden_core::config::Config;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

/// Quiet time after the last file event before the file is read (editors write in steps).
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// What a reload produced, for the driver (which counts both outcomes).
pub type ReloadResult = Result<Box<Config>, String>;

/// Re-reads one config file and passes on what changed.
pub struct Reloader {
    path: PathBuf,
    current: Mutex<Config>,
    /// Times the file was read by `reload` (whatever came of it).
    reads: std::sync::atomic::AtomicU64,
    apply: Box<dyn Fn(ReloadResult) + Send + Sync>,
}

/// What `Reloader::reload` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Unchanged,
    Invalid(String),
}

impl Reloader {
    /// `current` is the config running now; `apply` gets each new valid config (and each
    /// failure, so it can be counted).
    pub fn new(path: PathBuf, current: Config, apply: impl Fn(ReloadResult) + Send + Sync + 'static) -> Reloader {
        Reloader { path, current: Mutex::new(current), reads: Default::default(), apply: Box::new(apply) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times `reload` has read the file.
    pub fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Read, validate, compare, apply. `why` goes into the log ("SIGHUP", "file changed").
    pub fn reload(&self, why: &str) -> Outcome {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let new = match load_config(&self.path) {
            Ok(c) => c,
            Err(e) => {
                // Each line: file:line: key: message.
                let msg = format!("{e:#}");
                tracing::error!(trigger = why, error = %msg, "config reload failed; keeping the running config");
                (self.apply)(Err(msg.clone()));
                return Outcome::Invalid(msg);
            }
        };
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if *cur == new {
            tracing::info!(trigger = why, path = %self.path.display(), "config unchanged");
            return Outcome::Unchanged;
        }
        for section in restart_only_changes(&cur, &new) {
            tracing::warn!(section, "this part of the config takes effect only after a restart");
        }
        *cur = new.clone();
        drop(cur);
        tracing::info!(trigger = why, path = %self.path.display(), "config reloaded");
        (self.apply)(Ok(Box::new(new)));
        Outcome::Applied
    }

    /// Watch the file's folder; reload once the file has been written, renamed onto or
    /// created and then left alone for `DEBOUNCE`. The watcher (and its thread) stops
    /// when the returned value is dropped.
    pub fn watch(self: &Arc<Self>) -> anyhow::Result<RecommendedWatcher> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self.path.file_name().map(|n| n.to_os_string());
        let (tx, rx) = mpsc::channel::<()>();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                let ours = ev.paths.iter().any(|p| p.file_name().map(|n| n.to_os_string()) == name);
                if ours && changes_text(&ev.kind) {
                    let _ = tx.send(());
                }
            }
            Err(e) => tracing::warn!(error = %e, "config file watcher error"),
        })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        let me = Arc::clone(self);
        // Editors write in steps: wait for DEBOUNCE of quiet after the last change, then
        // read once. The thread ends when the watcher (the sender's owner) is dropped.
        std::thread::Builder::new().name("config-watch".into()).spawn(move || {
            while rx.recv().is_ok() {
                loop {
                    match rx.recv_timeout(DEBOUNCE) {
                        Ok(()) => continue,
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                me.reload("file changed");
            }
        })?;
        Ok(watcher)
    }
}

/// Can this event have changed the file's text: data written (`IN_MODIFY`, or the
/// `IN_CLOSE_WRITE` that ends a write), a rename onto it, a creation. Not an open, a
/// read, a close without writing, an attribute change or a removal (a rename or creation
/// follows when it is replaced).
fn changes_text(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

/// Sections that differ between two configs and are only read at start.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    if old.capture != new.capture {
        v.push("[capture]");
    }
    if old.store != new.store {
        v.push("[store]");
    }
    if old.recordings.dir != new.recordings.dir {
        v.push("[recordings].dir");
    }
    if old.api.listen != new.api.listen {
        v.push("[api].listen");
    }
    if old.alerts.webhooks != new.alerts.webhooks {
        v.push("[alerts].webhooks");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    fn reloader(path: &Path) -> (Arc<Reloader>, mpsc::Receiver<ReloadResult>) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let current = load_config(path).unwrap();
        let r = Reloader::new(path.to_path_buf(), current, move |res| {
            let _ = tx.lock().unwrap().send(res);
        });
        (Arc::new(r), rx)
    }

    #[test]
    fn valid_invalid_and_unchanged_edits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cw.toml");
        write(&path, "[limits]\nmax_rings = 3\n");
        let (r, rx) = reloader(&path);
        assert_eq!(r.reload("test"), Outcome::Unchanged);
        assert!(rx.try_recv().is_err());

        write(&path, "[limits]\nmax_rings = 5\n");
        assert_eq!(r.reload("test"), Outcome::Applied);
        assert_eq!(rx.try_recv().unwrap().unwrap().limits.max_rings, 5);

        write(&path, "[limits]\nmax_rings = \"many\"\n");
        match r.reload("test") {
            Outcome::Invalid(msg) => assert!(msg.contains("cw.toml:2") && msg.contains("max_rings"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert!(rx.try_recv().unwrap().is_err(), "the failure is passed on to be counted");

        // Back to the last good text: unchanged, since the bad edit was never applied.
        write(&path, "[limits]\nmax_rings = 5\n");
        assert_eq!(r.reload("test"), Outcome::Unchanged);
    }

    #[test]
    fn opening_and_reading_the_file_is_not_a_change() {
        use notify::event::{CreateKind, DataChange, MetadataKind, RenameMode};
        assert!(changes_text(&EventKind::Modify(ModifyKind::Data(DataChange::Any))));
        assert!(changes_text(&EventKind::Modify(ModifyKind::Name(RenameMode::To))));
        assert!(changes_text(&EventKind::Create(CreateKind::File)));
        assert!(changes_text(&EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(!changes_text(&EventKind::Access(AccessKind::Open(AccessMode::Any))));
        assert!(!changes_text(&EventKind::Access(AccessKind::Close(AccessMode::Read))));
        assert!(!changes_text(&EventKind::Access(AccessKind::Read)));
        assert!(!changes_text(&EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any))));
    }

    #[test]
    fn reading_the_watched_file_does_not_reload_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cw.toml");
        write(&path, "[limits]\nmax_rings = 3\n");
        let (r, rx) = reloader(&path);
        let _w = r.watch().unwrap();
        // What `cat`, `config check` and the reload itself do: open, read, close.
        for _ in 0..3 {
            std::fs::read_to_string(&path).unwrap();
        }
        assert_eq!(r.reload("SIGHUP"), Outcome::Unchanged);
        std::thread::sleep(DEBOUNCE * 4);
        assert_eq!(r.reads(), 1, "only SIGHUP's read: a read is not an edit, and the reload's own read no trigger");
        assert!(rx.try_recv().is_err());
        // A real edit is still seen, once.
        write(&path, "[limits]\nmax_rings = 6\n");
        let got = rx.recv_timeout(Duration::from_secs(10)).expect("reload after the write");
        assert_eq!(got.unwrap().limits.max_rings, 6);
        std::thread::sleep(DEBOUNCE * 4);
        assert_eq!(r.reads(), 2, "one write, one reload, no loop");
    }

    #[test]
    fn restart_only_sections_are_named() {
        let a = Config::default();
        let mut b = a.clone();
        b.capture.interfaces = vec!["eth0".into()];
        b.api.listen = "127.0.0.1:1".into();
        b.limits.max_rings = 9;
        assert_eq!(restart_only_changes(&a, &b), vec!["[capture]", "[api].listen"]);
    }

    #[test]
    fn watcher_sees_rename_on_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cw.toml");
        write(&path, "[limits]\nmax_rings = 3\n");
        let (r, rx) = reloader(&path);
        let _w = r.watch().unwrap();
        // An unrelated file in the same folder does nothing.
        write(&dir.path().join("other.txt"), "x");
        // Save the way editors do: write a temporary file, rename it over the config.
        let tmp = dir.path().join(".cw.toml.swp");
        write(&tmp, "[limits]\nmax_rings = 4\n");
        std::fs::rename(&tmp, &path).unwrap();
        let got = rx.recv_timeout(Duration::from_secs(10)).expect("reload after the rename");
        assert_eq!(got.unwrap().limits.max_rings, 4);
        assert!(rx.recv_timeout(DEBOUNCE * 3).is_err(), "one save, one reload");
    }
}
