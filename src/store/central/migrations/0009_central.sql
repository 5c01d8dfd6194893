-- The central store's schema (PostgreSQL), at the version SQLite's history had reached
-- when it was made (9): the same numbers from here on, one file per version in both.
-- Tables carry the sites' rows as the sites stored them (the same column names, INTEGER
-- as BIGINT), each with the `site` it came from, keyed by site and the row's identity
-- at its site, so a row forwarded twice (a crash between PostgreSQL's commit and the
-- site's bookkeeping) is written over, never doubled. Times are microseconds since the
-- Unix epoch; day/month are of the site's own zone, as the site judged them.

CREATE TABLE sites (
    name          TEXT   PRIMARY KEY,
    -- The site database that forwards under this name (its meta 'instance'): a second
    -- database claiming the same name is refused.
    instance      TEXT   NOT NULL,
    timezone      TEXT   NOT NULL,
    first_seen_us BIGINT NOT NULL,
    last_seen_us  BIGINT NOT NULL
);

CREATE TABLE calls (
    site                 TEXT   NOT NULL REFERENCES sites (name),
    call_id              TEXT   NOT NULL,
    started_us           BIGINT NOT NULL,
    caller               TEXT   NOT NULL,
    caller_display       TEXT,
    callee               TEXT   NOT NULL,
    dialled              TEXT   NOT NULL,
    number               TEXT   NOT NULL,
    direction            TEXT   NOT NULL,
    class                TEXT,
    group_name           TEXT,
    caller_ext           TEXT,
    callee_ext           TEXT,
    ringing_us           BIGINT,
    answered_us          BIGINT,
    ended_us             BIGINT NOT NULL,
    rings                BIGINT NOT NULL,
    ring_ms              BIGINT NOT NULL,
    talk_ms              BIGINT NOT NULL,
    answered             BIGINT NOT NULL,
    end_reason           TEXT   NOT NULL,
    sip_status           BIGINT,
    cost_fen             BIGINT,
    dtmf                 TEXT   NOT NULL,
    media_caller         TEXT   NOT NULL,
    media_callee         TEXT   NOT NULL,
    ladder               TEXT   NOT NULL,
    day                  TEXT   NOT NULL,
    month                TEXT   NOT NULL,
    answered_by          TEXT,
    transferred_to       TEXT,
    wait_ms              BIGINT NOT NULL DEFAULT 0,
    link                 TEXT,
    legs                 TEXT   NOT NULL DEFAULT '[]',
    ans_rule             TEXT,
    max_rings            BIGINT,
    within_max_rings     BIGINT,
    talk_rule            TEXT,
    talk_limit_s         BIGINT,
    personal             BIGINT,
    long_call            BIGINT,
    effective_min_talk_s BIGINT,
    effective            BIGINT,
    from_tag             TEXT,
    PRIMARY KEY (site, call_id, started_us)
);

CREATE INDEX calls_started ON calls (started_us);
CREATE INDEX calls_site_started ON calls (site, started_us);
CREATE INDEX calls_day ON calls (day);
CREATE INDEX calls_month ON calls (month);
CREATE INDEX calls_caller_ext ON calls (caller_ext, started_us);
CREATE INDEX calls_callee_ext ON calls (callee_ext, started_us);
CREATE INDEX calls_group ON calls (group_name, started_us);
CREATE INDEX calls_call_id ON calls (call_id);

CREATE TABLE violations (
    site            TEXT   NOT NULL REFERENCES sites (name),
    -- The row's id at its site (the site's own key; shown as the violation's id).
    id              BIGINT NOT NULL,
    natural_key     TEXT   NOT NULL,
    rule            TEXT   NOT NULL,
    kind            TEXT   NOT NULL,
    call_id         TEXT,
    call_started_us BIGINT,
    extension       TEXT   NOT NULL,
    number          TEXT   NOT NULL,
    detected_us     BIGINT NOT NULL,
    fine_fen        BIGINT,
    detail          TEXT   NOT NULL,
    day             TEXT   NOT NULL,
    month           TEXT   NOT NULL,
    call_from_tag   TEXT,
    PRIMARY KEY (site, natural_key)
);

CREATE INDEX violations_call ON violations (site, call_id, call_started_us);
CREATE INDEX violations_detected ON violations (detected_us);
CREATE INDEX violations_day ON violations (day);
CREATE INDEX violations_extension ON violations (extension, detected_us);

CREATE TABLE recordings (
    site             TEXT   NOT NULL REFERENCES sites (name),
    id               TEXT   NOT NULL,
    call_id          TEXT   NOT NULL,
    call_started_us  BIGINT NOT NULL,
    caller           TEXT   NOT NULL,
    callee           TEXT   NOT NULL,
    dialled          TEXT   NOT NULL,
    group_name       TEXT,
    path             TEXT   NOT NULL,
    raw_path         TEXT,
    status           TEXT   NOT NULL,
    undecodable      TEXT,
    sample_rate      BIGINT,
    channels         BIGINT NOT NULL DEFAULT 2,
    frames           BIGINT NOT NULL DEFAULT 0,
    duration_ms      BIGINT NOT NULL DEFAULT 0,
    bytes            BIGINT NOT NULL DEFAULT 0,
    sha256           TEXT,
    media_started_us BIGINT,
    ended_us         BIGINT,
    dtmf             TEXT   NOT NULL DEFAULT '',
    counters         TEXT,
    retention_days   BIGINT NOT NULL,
    day              TEXT   NOT NULL,
    month            TEXT   NOT NULL,
    PRIMARY KEY (site, id)
);

CREATE INDEX recordings_call ON recordings (site, call_id, call_started_us);
CREATE INDEX recordings_day ON recordings (day);
CREATE INDEX recordings_status ON recordings (status);

CREATE TABLE playback_log (
    site         TEXT   NOT NULL REFERENCES sites (name),
    -- The entry's id at its site, or NULL for a playback through the central API.
    id           BIGINT,
    at_us        BIGINT NOT NULL,
    who          TEXT   NOT NULL,
    recording_id TEXT   NOT NULL,
    action       TEXT   NOT NULL,
    via          TEXT   NOT NULL,
    detail       TEXT   NOT NULL DEFAULT ''
);

CREATE UNIQUE INDEX playback_log_site_id ON playback_log (site, id);
CREATE INDEX playback_log_at ON playback_log (at_us);
CREATE INDEX playback_log_recording ON playback_log (site, recording_id, at_us);
