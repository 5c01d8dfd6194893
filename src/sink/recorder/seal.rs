//! Sealing finished recordings: fsync their files and folder, then store their rows
//! (status `complete`, hash, size). On its own thread, with its own database connection,
//! because an fsync costs about 10 ms on a plain disk: done on the writer thread it
//! stalled the appending of every other call's audio (measured: 200 calls ending took
//! 4.4 s of wall time for 1 s of CPU), and under live capture a stalled writer means a
//! full queue and audio replaced by counted silence.
//! Jobs are drained in batches: every file of the batch is fsynced, each folder once,
//! then the rows are written in one transaction. A crash before the commit leaves the row
//! `recording` over a complete file: the repair at the next start hashes it and marks it
//! `repaired`, so nothing is lost, only labelled more cautiously.
//! May use: `wav` (fsync helpers), `store::recordings`.

use super::wav;
use crate::store::recordings::{self as rows, Finished};
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender};

/// Jobs taken at once: one transaction, each folder fsynced once.
const BATCH: usize = 256;

/// A recording whose files are final, waiting to be made durable and stored.
pub(super) struct Sealed {
    pub fin: Finished,
    /// Absolute paths of its files (WAV, rtpdump).
    pub files: Vec<PathBuf>,
    /// The folder they are in.
    pub dir: PathBuf,
}

pub(super) enum SealMsg {
    Seal(Box<Sealed>),
    /// Answer once everything sent before is stored.
    Barrier(SyncSender<()>),
}

/// What the sealer could not do.
#[derive(Debug, Default)]
pub(super) struct SealSummary {
    pub sealed: u64,
    pub io_errors: u64,
    pub db_errors: u64,
    pub last_error: Option<String>,
}

impl SealSummary {
    fn error(&mut self, e: String, db: bool) {
        tracing::error!(error = %e, "recordings: sealing failed");
        if db {
            self.db_errors += 1;
        } else {
            self.io_errors += 1;
        }
        self.last_error = Some(e);
    }
}

/// Each folder holding a file of the batch, once. A recording with no file (status
/// `empty`: no audio ever came) names a day folder that may not exist: it is no folder
/// to sync (syncing it warned "No such file or directory" on the first empty call of a day).
fn folders_to_sync(jobs: &[Box<Sealed>]) -> BTreeSet<&PathBuf> {
    jobs.iter().filter(|j| !j.files.is_empty()).map(|j| &j.dir).collect()
}

pub(super) fn run(conn: Connection, rx: Receiver<SealMsg>) -> SealSummary {
    let mut summary = SealSummary::default();
    while let Ok(first) = rx.recv() {
        let mut jobs = Vec::new();
        let mut barriers = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                SealMsg::Seal(s) => jobs.push(s),
                SealMsg::Barrier(reply) => barriers.push(reply),
            }
            if jobs.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        seal_batch(&conn, &jobs, &mut summary);
        for reply in barriers {
            let _ = reply.send(());
        }
    }
    summary
}

fn seal_batch(conn: &Connection, jobs: &[Box<Sealed>], summary: &mut SealSummary) {
    if jobs.is_empty() {
        return;
    }
    for job in jobs {
        for f in &job.files {
            if let Err(e) = wav::sync_path(f) {
                summary.error(format!("recording {}: fsync {}: {e}", job.fin.id, f.display()), false);
            }
        }
    }
    for d in folders_to_sync(jobs) {
        // Only a power cut could lose the names; the data is synced.
        if let Err(e) = wav::sync_dir(d) {
            tracing::warn!(error = %e, dir = %d.display(), "cannot fsync the recordings folder");
        }
    }
    // A busy database is tried again, as the store's writer does: given up at once, a
    // finished recording stayed `recording` until the next start's repair (seen once in a
    // 30-minute soak, "database is locked" while the writer committed).
    let mut pause = RETRY_PAUSE;
    for attempt in 1..=RETRIES {
        match store_rows(conn, jobs) {
            Ok(()) => {
                summary.sealed += jobs.len() as u64;
                return;
            }
            Err(e) if attempt < RETRIES => {
                tracing::warn!(error = %e, attempt, recordings = jobs.len(), "storing finished recordings failed; retrying");
                std::thread::sleep(pause);
                pause = pause.saturating_mul(2);
            }
            Err(e) => summary.error(format!("storing {} finished recording(s): {e}", jobs.len()), true),
        }
    }
}

/// Tries of a batch's transaction, and the first pause between them (doubling).
const RETRIES: u32 = 6;
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

fn store_rows(conn: &Connection, jobs: &[Box<Sealed>]) -> rusqlite::Result<()> {
    // IMMEDIATE: take the write lock at once (waiting out the writer thread's batch with
    // the busy timeout) rather than fail on upgrading a read transaction.
    conn.execute_batch("BEGIN IMMEDIATE").and_then(|()| {
        let done =
            jobs.iter().try_for_each(|job| rows::finish(conn, &job.fin)).and_then(|()| conn.execute_batch("COMMIT"));
        if done.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        done
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(dir: &str, files: &[&str]) -> Box<Sealed> {
        Box::new(Sealed {
            fin: Finished::default(),
            files: files.iter().map(PathBuf::from).collect(),
            dir: PathBuf::from(dir),
        })
    }

    #[test]
    fn a_busy_database_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("r.db");
        let conn = rows::open_rw(&db).unwrap();
        // No waiting in SQLite itself: only the retries can get past the other writer.
        conn.busy_timeout(std::time::Duration::ZERO).unwrap();
        let other = Connection::open(&db).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(120));
            other.execute_batch("COMMIT").unwrap();
        });
        let mut summary = SealSummary::default();
        seal_batch(&conn, &[job("/nonexistent", &[])], &mut summary);
        holder.join().unwrap();
        assert_eq!((summary.sealed, summary.db_errors), (1, 0), "{:?}", summary.last_error);
    }

    #[test]
    fn only_folders_with_files_are_synced() {
        let jobs = vec![
            job("/r/2026/12/07", &[]),
            job("/r/2026/12/06", &["/r/2026/12/06/a.wav"]),
            job("/r/2026/12/06", &["/r/2026/12/06/b.wav"]),
        ];
        let dirs: Vec<_> = folders_to_sync(&jobs).into_iter().collect();
        assert_eq!(dirs, vec![&PathBuf::from("/r/2026/12/06")]);
    }
}
