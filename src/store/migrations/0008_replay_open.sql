-- 0008: calls a `replay` left open when its capture ended (stored as `capture-ended`), so
-- the next replay into the same database, of the files that follow, completes them
-- instead of leaving them cut (store::replay_open, cli::replay). One row per open call:
--   call_id, from_tag, started_us  the call's identity (as the engine saw it; from_tag
--                                  NULL when the INVITE had none)
--   files                          JSON [path]: the capture files holding its packets so
--                                  far, in time order (re-read from its start on resume)
--   capture_end_us                 the last packet time of the replay that left it open
-- A row is consumed (deleted) when a replay resumes it, or once a replay starts more than
-- the call timeout after it (such a call can never be continued).
CREATE TABLE replay_open (
    call_id        TEXT    NOT NULL,
    from_tag       TEXT,
    started_us     INTEGER NOT NULL,
    files          TEXT    NOT NULL,
    capture_end_us INTEGER NOT NULL
) STRICT;

CREATE INDEX replay_open_end ON replay_open (capture_end_us);
