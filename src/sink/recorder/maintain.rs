//! Upkeep of the recordings folder against the database: the repair of recordings left
//! half-written by a crash (`repair_unfinished`), retention (`expire`), the integrity
//! check (`verify`), and the hash check before a file is handed out (`check_file`,
//! `check_hash`).
//! All take an open read-write connection and the folder; times come from the caller
//! (the wall clock at the edge), so tests can choose them.
//! Invariants: a file is only deleted by retention, and only a file a row points to; a
//! file that is not a WAV written by us is never rewritten; `repair_unfinished` must
//! only run while no other process records into the folder (the caller holds the
//! folder's exclusive lock, see `lock`).

use super::layout;
use super::rtpdump;
use super::wav::{self, RepairError};
use super::writer::{raw_files_of, RawFile};
use super::Retention;
use crate::store::recordings::{self as rows, Finished, RecordingRow, RecordingStatus, StoredRecording};
use callwarden_core::track::Leg;
use callwarden_core::Ts;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::BTreeSet;
use std::io;
use std::path::Path;

/// What the repair at start did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// Recordings whose files were fixed and hashed (status `repaired`).
    pub repaired: Vec<String>,
    /// Recordings whose WAV should exist and does not (status `missing`).
    pub missing: Vec<String>,
    /// Recordings that had no media yet when the process stopped (status `empty`).
    pub empty: Vec<String>,
    /// Recordings that could not be repaired (left `recording`), with why.
    pub failed: Vec<(String, String)>,
}

impl RepairReport {
    pub fn is_empty(&self) -> bool {
        self.repaired.is_empty() && self.missing.is_empty() && self.empty.is_empty() && self.failed.is_empty()
    }
}

/// The folder of a row's files (its path's parent, `YYYY/MM/DD`).
fn day_dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// Repair every recording still in status `recording`: the process that wrote it is gone.
pub fn repair_unfinished(conn: &Connection, dir: &Path) -> anyhow::Result<RepairReport> {
    let mut report = RepairReport::default();
    for row in rows::stored(conn, &[RecordingStatus::Recording])? {
        match repair_one(conn, dir, &row) {
            Ok(Some(status)) => {
                let list = match status {
                    RecordingStatus::Repaired => &mut report.repaired,
                    RecordingStatus::Missing => &mut report.missing,
                    _ => &mut report.empty,
                };
                list.push(row.id.clone());
                tracing::warn!(id = %row.id, %status, "recording left unfinished by a crash");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(id = %row.id, error = %e, "cannot repair recording");
                report.failed.push((row.id.clone(), e.to_string()));
            }
        }
    }
    Ok(report)
}

#[derive(Debug, thiserror::Error)]
enum RepairOneError {
    #[error("{path}: {source}")]
    Wav { path: String, source: RepairError },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

fn repair_one(conn: &Connection, dir: &Path, row: &StoredRecording) -> Result<Option<RecordingStatus>, RepairOneError> {
    let io_err = |path: &str| {
        let path = path.to_string();
        move |source| RepairOneError::Io { path, source }
    };
    let day = day_dir_of(&row.path);
    let mut raw_files = Vec::new();
    for leg in [Leg::CallerToCallee, Leg::CalleeToCaller] {
        let rel = layout::raw_path(day, &row.id, leg);
        let path = dir.join(&rel);
        if !path.exists() {
            continue;
        }
        let (packets, _cut) = rtpdump::repair(&path).map_err(io_err(&rel))?;
        let (sha256, bytes) = wav::sha256_file(&path).map_err(io_err(&rel))?;
        raw_files.push(RawFile { path: rel, sha256, packets, bytes });
    }
    let wav_path = dir.join(&row.path);
    let mut fin = Finished {
        id: row.id.clone(),
        raw_paths: raw_files.iter().map(|r| r.path.clone()).collect(),
        ..Finished::default()
    };
    let mut repaired = serde_json::json!({});
    if wav_path.exists() {
        let r = wav::repair(&wav_path, row.sample_rate.unwrap_or(8000))
            .map_err(|source| RepairOneError::Wav { path: row.path.clone(), source })?;
        let (sha, bytes) = wav::sha256_file(&wav_path).map_err(io_err(&row.path))?;
        fin.sample_rate = Some(r.sample_rate);
        fin.frames = r.frames;
        fin.bytes = bytes;
        fin.sha256 = Some(sha);
        repaired = serde_json::json!({
            "header_frames": r.header_frames,
            "frames": r.frames,
            "cut_bytes": r.cut_bytes,
        });
        fin.status = Some(RecordingStatus::Repaired);
    } else if !raw_files.is_empty() {
        fin.status = Some(RecordingStatus::Repaired);
    } else if row.sample_rate.is_some() {
        // Audio had started: the file was there and is gone.
        rows::set_status(conn, &row.id, RecordingStatus::Missing)?;
        return Ok(Some(RecordingStatus::Missing));
    } else {
        fin.status = Some(RecordingStatus::Empty);
    }
    fin.counters = Some(
        serde_json::json!({
            "recorder": { "repaired": repaired, "closed_before_end": true, "raw_files": raw_files },
        })
        .to_string(),
    );
    if let Some(d) = wav_path.parent() {
        let _ = wav::sync_dir(d);
    }
    rows::finish(conn, &fin)?;
    Ok(fin.status)
}

/// What retention did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExpireReport {
    pub expired: Vec<String>,
    pub files_deleted: u64,
    pub failed: Vec<(String, String)>,
}

/// Delete the files of recordings older than their retention at `now` (the group's
/// `retention_days` in the current config, else `[recordings].retention_days`; 0 keeps
/// forever); their rows stay, with status `expired`.
pub fn expire(conn: &Connection, dir: &Path, retention: &Retention, now: Ts) -> anyhow::Result<ExpireReport> {
    let mut report = ExpireReport::default();
    // `empty` rows have no files and keep saying that the call had no media.
    let candidates = rows::stored(
        conn,
        &[RecordingStatus::Complete, RecordingStatus::Repaired, RecordingStatus::Incomplete, RecordingStatus::Missing],
    )?;
    for row in candidates {
        let days = retention.days_for(row.group.as_deref());
        if days == 0 {
            continue;
        }
        let keep_until = row.call_started_us.saturating_add(i64::from(days) * 86_400_000_000);
        if now.as_micros() < keep_until {
            continue;
        }
        let mut paths = vec![row.path.clone()];
        paths.extend(row.raw_paths.iter().cloned());
        let mut failed = None;
        for rel in &paths {
            match std::fs::remove_file(dir.join(rel)) {
                Ok(()) => report.files_deleted += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => failed = Some(format!("{rel}: {e}")),
            }
        }
        match failed {
            // The row stays as it is, so the next run tries again.
            Some(e) => {
                tracing::error!(id = %row.id, error = %e, "cannot delete an expired recording");
                report.failed.push((row.id, e));
            }
            None => {
                rows::set_status(conn, &row.id, RecordingStatus::Expired)?;
                report.expired.push(row.id);
            }
        }
    }
    Ok(report)
}

/// One file that is not what the database says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileProblem {
    pub id: String,
    pub path: String,
    pub expected_sha256: Option<String>,
    /// The file's hash now (changed files only).
    pub actual_sha256: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Files re-hashed, and of those, the ones that match.
    pub checked: u64,
    pub ok: u64,
    pub changed: Vec<FileProblem>,
    pub missing: Vec<FileProblem>,
    /// Files in the folder that no recording accounts for.
    pub unexpected: Vec<String>,
    /// Recordings being written by another process now (not checked).
    pub in_progress: Vec<String>,
    /// Finished recordings whose call has no record: the process was killed during the
    /// call, the recording was repaired at the next start, the call was never stored.
    /// Their files are checked like the others; they do not make the report unclean
    /// (nothing was changed or lost after the fact), but they are evidence without a call.
    pub without_call: Vec<String>,
}

impl VerifyReport {
    pub fn clean(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.unexpected.is_empty()
    }
}

/// Re-hash every file of every `complete`/`repaired` recording and compare with the
/// stored SHA-256; list files that are gone (their rows become `missing`) and files in
/// the folder no row accounts for. Rows already `missing` are listed again: the evidence
/// is still gone.
pub fn verify(conn: &Connection, dir: &Path) -> anyhow::Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for row in rows::stored(conn, &[])? {
        let Some(status) = row.status else { continue };
        match status {
            RecordingStatus::Recording => {
                // Written by a running recorder: its files are accounted for, not checked.
                expected.insert(row.path.clone());
                for leg in [Leg::CallerToCallee, Leg::CalleeToCaller] {
                    expected.insert(layout::raw_path(day_dir_of(&row.path), &row.id, leg));
                }
                report.in_progress.push(row.id.clone());
            }
            RecordingStatus::Missing => report.missing.push(FileProblem {
                id: row.id.clone(),
                path: row.path.clone(),
                expected_sha256: row.sha256.clone(),
                actual_sha256: None,
            }),
            RecordingStatus::Complete | RecordingStatus::Repaired | RecordingStatus::Incomplete => {
                let mut files: Vec<(String, Option<String>)> = Vec::new();
                if row.sample_rate.is_some() {
                    files.push((row.path.clone(), row.sha256.clone()));
                }
                let raws = raw_files_of(row.counters.as_deref());
                for rel in &row.raw_paths {
                    let sha = raws.iter().find(|r| &r.path == rel).map(|r| r.sha256.clone());
                    files.push((rel.clone(), sha));
                }
                let mut gone = false;
                for (rel, want) in files {
                    expected.insert(rel.clone());
                    let path = dir.join(&rel);
                    match wav::sha256_file(&path) {
                        Ok((got, _)) => {
                            report.checked += 1;
                            if want.as_deref() == Some(got.as_str()) {
                                report.ok += 1;
                            } else {
                                report.changed.push(FileProblem {
                                    id: row.id.clone(),
                                    path: rel,
                                    expected_sha256: want,
                                    actual_sha256: Some(got),
                                });
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            gone = true;
                            report.missing.push(FileProblem {
                                id: row.id.clone(),
                                path: rel,
                                expected_sha256: want,
                                actual_sha256: None,
                            });
                        }
                        Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
                    }
                }
                if gone {
                    rows::set_status(conn, &row.id, RecordingStatus::Missing)?;
                }
            }
            RecordingStatus::Expired | RecordingStatus::Empty => {}
        }
    }
    report.unexpected = layout::walk(dir)?.into_iter().filter(|f| !expected.contains(f)).collect();
    report.without_call = rows::without_call(conn)?;
    Ok(report)
}

/// Whether a recording's WAV may be handed out as evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileCheck {
    /// The file is there and hashes to the stored SHA-256.
    Ok { bytes: u64 },
    /// The file is there and does not: it was changed after it was finished.
    Changed { expected: String, actual: String },
    /// The file should be there and is not.
    Missing,
    /// There is no finished file to hand out (status recording, expired, empty; or no
    /// audio was decoded).
    NoFile { status: String },
}

/// Re-hash a recording's WAV and compare it with its row.
pub fn check_file(dir: &Path, row: &RecordingRow) -> io::Result<FileCheck> {
    let status = RecordingStatus::parse(&row.status);
    let (Some(expected), Some(true)) = (row.sha256.as_ref(), status.map(RecordingStatus::has_files)) else {
        return Ok(if status == Some(RecordingStatus::Missing) {
            FileCheck::Missing
        } else {
            FileCheck::NoFile { status: row.status.clone() }
        });
    };
    check_hash(&row.file(dir), expected)
}

/// Re-hash the file at `path` and compare it with `expected`, the SHA-256 stored when it
/// was sealed (`Ok`, `Changed` or `Missing`). The HTTP API calls it on the path it serves.
pub fn check_hash(path: &Path, expected: &str) -> io::Result<FileCheck> {
    match wav::sha256_file(path) {
        Ok((actual, bytes)) if actual == expected => Ok(FileCheck::Ok { bytes }),
        Ok((actual, _)) => Ok(FileCheck::Changed { expected: expected.to_string(), actual }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(FileCheck::Missing),
        Err(e) => Err(e),
    }
}
