-- 0002: recordings of calls (REC-1..4) and the playback log (who listened to what, when).
-- A recording's id is `recording_id(call_id, started_at)` from the core: the same call
-- replayed twice is the same recording. Paths are relative to [recordings].dir.

CREATE TABLE recordings (
    id               TEXT    PRIMARY KEY,
    call_id          TEXT    NOT NULL,
    call_started_us  INTEGER NOT NULL,          -- the call's start (its identity with call_id)
    caller           TEXT    NOT NULL,
    callee           TEXT    NOT NULL,
    dialled          TEXT    NOT NULL,
    group_name       TEXT,                      -- the group whose `record = "always"` asked for it
    path             TEXT    NOT NULL,          -- YYYY/MM/DD/<id>.wav
    raw_path         TEXT,                      -- undecodable RTP kept beside it, if any
    -- recording (being written) | complete | repaired (fixed after a crash) | expired
    -- (file removed by retention; the row stays) | missing (file gone, found by verify)
    status           TEXT    NOT NULL,
    undecodable      TEXT,                      -- payload types that could not be decoded, "18,98"
    sample_rate      INTEGER,                   -- 8000 | 16000; NULL until the first audio
    channels         INTEGER NOT NULL DEFAULT 2,
    frames           INTEGER NOT NULL DEFAULT 0,
    duration_ms      INTEGER NOT NULL DEFAULT 0,
    bytes            INTEGER NOT NULL DEFAULT 0,
    sha256           TEXT,                      -- hex, of the whole finished file
    media_started_us INTEGER,                   -- packet time of the first frame
    ended_us         INTEGER,                   -- the call's end
    dtmf             TEXT    NOT NULL DEFAULT '',
    counters         TEXT,                      -- JSON MediaCounters
    retention_days   INTEGER NOT NULL,
    day              TEXT    NOT NULL,          -- of call_started_us in the site's zone
    month            TEXT    NOT NULL,
    UNIQUE (call_id, call_started_us)
) STRICT;

CREATE INDEX recordings_day ON recordings (day);
CREATE INDEX recordings_month_group ON recordings (month, group_name);
CREATE INDEX recordings_status ON recordings (status);

CREATE TABLE playback_log (
    id           INTEGER PRIMARY KEY,
    at_us        INTEGER NOT NULL,              -- wall-clock time of the access
    who          TEXT    NOT NULL,              -- API token name, or the CLI user
    recording_id TEXT    NOT NULL,
    action       TEXT    NOT NULL,              -- play | stream | export | sample
    via          TEXT    NOT NULL,              -- cli | api
    detail       TEXT    NOT NULL DEFAULT ''    -- e.g. the export path, the byte range
) STRICT;

CREATE INDEX playback_log_at ON playback_log (at_us);
CREATE INDEX playback_log_recording ON playback_log (recording_id, at_us);
