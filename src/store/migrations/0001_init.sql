-- 0001: calls and violations.
-- Times are integer microseconds since the Unix epoch (packet time); `day` ('YYYY-MM-DD')
-- and `month` ('YYYY-MM') are of the call's start in the site's zone; money is in fen.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE calls (
    id             INTEGER PRIMARY KEY,
    call_id        TEXT    NOT NULL,
    started_us     INTEGER NOT NULL,
    caller         TEXT    NOT NULL,
    caller_display TEXT,
    callee         TEXT    NOT NULL,
    dialled        TEXT    NOT NULL,
    number         TEXT    NOT NULL,
    direction      TEXT    NOT NULL,            -- inbound | outbound | internal | transit
    class          TEXT,                        -- NULL until classified
    group_name     TEXT,
    -- Our extensions on the call (caller when outbound/internal, callee when
    -- inbound/internal), for per-extension queries.
    caller_ext     TEXT,
    callee_ext     TEXT,
    ringing_us     INTEGER,
    answered_us    INTEGER,
    ended_us       INTEGER NOT NULL,
    rings          INTEGER NOT NULL,
    ring_ms        INTEGER NOT NULL,
    talk_ms        INTEGER NOT NULL,
    answered       INTEGER NOT NULL,            -- 0 | 1
    end_reason     TEXT    NOT NULL,
    sip_status     INTEGER,
    cost_fen       INTEGER,
    dtmf           TEXT    NOT NULL,
    media_caller   TEXT    NOT NULL,            -- JSON MediaStats, caller → callee
    media_callee   TEXT    NOT NULL,            -- JSON MediaStats, callee → caller
    ladder         TEXT    NOT NULL,            -- JSON [SipStep]
    day            TEXT    NOT NULL,
    month          TEXT    NOT NULL,
    UNIQUE (call_id, started_us)
) STRICT;

CREATE INDEX calls_started ON calls (started_us);
CREATE INDEX calls_day ON calls (day);
CREATE INDEX calls_month ON calls (month);
CREATE INDEX calls_caller_ext ON calls (caller_ext, started_us);
CREATE INDEX calls_callee_ext ON calls (callee_ext, started_us);
CREATE INDEX calls_group ON calls (group_name, started_us);

CREATE TABLE violations (
    id              INTEGER PRIMARY KEY,
    -- rule, kind, call (call_id + start) and extension, or for a violation about no call
    -- (per-day rules) rule, kind, extension and day: one offence is one row however often
    -- it is raised (at the INVITE, again with its fine at the end, again on a replay).
    natural_key     TEXT    NOT NULL UNIQUE,
    rule            TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    call_id         TEXT,
    call_started_us INTEGER,
    extension       TEXT    NOT NULL,
    number          TEXT    NOT NULL,
    detected_us     INTEGER NOT NULL,
    fine_fen        INTEGER,                    -- NULL = pending (depends on the charge)
    detail          TEXT    NOT NULL,
    day             TEXT    NOT NULL,
    month           TEXT    NOT NULL
) STRICT;

CREATE INDEX violations_call ON violations (call_id, call_started_us);
CREATE INDEX violations_detected ON violations (detected_us);
CREATE INDEX violations_day ON violations (day);
CREATE INDEX violations_extension ON violations (extension, detected_us);
