-- 0009: the queue of rows to forward to the company's central PostgreSQL ([store]
-- central, store::central). Triggers add the rowid of every inserted or updated call,
-- violation, recording and playback-log row, in commit order, while the meta key
-- 'forward' is 'on' (set when a central store is configured; a site alone queues
-- nothing). The forwarder ships the rows' current content in batches and deletes the
-- queue entries only after PostgreSQL committed them, so a crash between the two ships
-- a batch twice, which the central upserts absorb (no loss, no duplicate).
--   seq        order of commits (AUTOINCREMENT: never reused, even after a delete)
--   tbl        calls | violations | recordings | playback_log
--   row_id     the row's rowid in that table
--   queued_us  wall-clock time it was queued (the backlog's oldest age)
CREATE TABLE forward_queue (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl       TEXT    NOT NULL,
    row_id    INTEGER NOT NULL,
    queued_us INTEGER NOT NULL
) STRICT;

CREATE TRIGGER forward_calls_insert AFTER INSERT ON calls
    WHEN (SELECT value FROM meta WHERE key = 'forward') = 'on'
BEGIN
    INSERT INTO forward_queue (tbl, row_id, queued_us)
    VALUES ('calls', NEW.rowid, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
END;
CREATE TRIGGER forward_calls_update AFTER UPDATE ON calls
    WHEN (SELECT value FROM meta WHERE key = 'forward') = 'on'
BEGIN
    INSERT INTO forward_queue (tbl, row_id, queued_us)
    VALUES ('calls', NEW.rowid, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
END;
CREATE TRIGGER forward_violations_insert AFTER INSERT ON violations
    WHEN (SELECT value FROM meta WHERE key = 'forward') = 'on'
BEGIN
    INSERT INTO forward_queue (tbl, row_id, queued_us)
    VALUES ('violations', NEW.rowid, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
END;
CREATE TRIGGER forward_violations_update AFTER UPDATE ON violations
    WHEN (SELECT value FROM meta WHERE key = 'forward') = 'on'
BEGIN
    INSERT INTO forward_queue (tbl, row_id, queued_us)
    VALUES ('violations', NEW.rowid, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
END;
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
CREATE TRIGGER forward_playback_insert AFTER INSERT ON playback_log
    WHEN (SELECT value FROM meta WHERE key = 'forward') = 'on'
BEGIN
    INSERT INTO forward_queue (tbl, row_id, queued_us)
    VALUES ('playback_log', NEW.rowid, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
END;
