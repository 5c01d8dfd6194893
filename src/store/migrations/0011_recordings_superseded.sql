-- 0011: a recording superseded by a later one of the same call. A call cut by the end of
-- one replay's capture (`capture-ended`) and completed by a later replay (which re-reads
-- the earlier files from its start) is recorded again, whole, under a new id; the partial
-- recording stays — its file on disk, its row with the file's SHA-256, listed and checked
-- by `recordings verify` like any other — and names the recording that supersedes it:
--   superseded_by   NULL for the call's recording; else the id of the whole one
-- A call has at most one recording not superseded (the unique index below replaces the
-- table's UNIQUE (call_id, call_started_us), which SQLite can only drop by rebuilding the
-- table: same columns and rows, same indexes).

CREATE TABLE recordings_0011 (
    id               TEXT    PRIMARY KEY,
    call_id          TEXT    NOT NULL,
    call_started_us  INTEGER NOT NULL,
    caller           TEXT    NOT NULL,
    callee           TEXT    NOT NULL,
    dialled          TEXT    NOT NULL,
    group_name       TEXT,
    path             TEXT    NOT NULL,
    raw_path         TEXT,
    status           TEXT    NOT NULL,
    undecodable      TEXT,
    sample_rate      INTEGER,
    channels         INTEGER NOT NULL DEFAULT 2,
    frames           INTEGER NOT NULL DEFAULT 0,
    duration_ms      INTEGER NOT NULL DEFAULT 0,
    bytes            INTEGER NOT NULL DEFAULT 0,
    sha256           TEXT,
    media_started_us INTEGER,
    ended_us         INTEGER,
    dtmf             TEXT    NOT NULL DEFAULT '',
    counters         TEXT,
    retention_days   INTEGER NOT NULL,
    day              TEXT    NOT NULL,
    month            TEXT    NOT NULL,
    superseded_by    TEXT
) STRICT;

INSERT INTO recordings_0011 (id, call_id, call_started_us, caller, callee, dialled, group_name, path, raw_path,
        status, undecodable, sample_rate, channels, frames, duration_ms, bytes, sha256, media_started_us, ended_us,
        dtmf, counters, retention_days, day, month)
    SELECT id, call_id, call_started_us, caller, callee, dialled, group_name, path, raw_path, status, undecodable,
        sample_rate, channels, frames, duration_ms, bytes, sha256, media_started_us, ended_us, dtmf, counters,
        retention_days, day, month
    FROM recordings;

DROP TABLE recordings;
ALTER TABLE recordings_0011 RENAME TO recordings;

CREATE INDEX recordings_day ON recordings (day);
CREATE INDEX recordings_month_group ON recordings (month, group_name);
CREATE INDEX recordings_status ON recordings (status);
CREATE UNIQUE INDEX recordings_call ON recordings (call_id, call_started_us) WHERE superseded_by IS NULL;

-- The rebuild dropped the triggers that queue recordings for the central store (0009)
-- and gave the rows new rowids: the triggers come back, and while forwarding is on every
-- recording is queued again under its rowid now (the central upsert makes that harmless).
DELETE FROM forward_queue WHERE tbl = 'recordings';
INSERT INTO forward_queue (tbl, row_id, queued_us)
    SELECT 'recordings', rowid, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER) FROM recordings
    WHERE (SELECT value FROM meta WHERE key = 'forward') = 'on';
CREATE TRIGGER forward_recordings_insert AFTER INSERT ON recordings
    WHEN (SELECT value FROM meta WHERE key = 'forward') = 'on'
BEGIN
    INSERT INTO forward_queue (tbl, row_id, queued_us)
    VALUES ('recordings', NEW.rowid, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
END;
CREATE TRIGGER forward_recordings_update AFTER UPDATE ON recordings
    WHEN (SELECT value FROM meta WHERE key = 'forward') = 'on'
BEGIN
    INSERT INTO forward_queue (tbl, row_id, queued_us)
    VALUES ('recordings', NEW.rowid, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
END;
