-- 0003: prior approvals registered with `callwarden approve` (OUT-2), beside those in the
-- config. An approval lets `extension` dial numbers of `class` while the call's start (site
-- zone) is within [from, until]; `from`/`until` are 'YYYY-MM-DD' (inclusive) or RFC 3339.

CREATE TABLE approvals (
    id          INTEGER PRIMARY KEY,
    extension   TEXT    NOT NULL,
    class       TEXT    NOT NULL,
    valid_from  TEXT    NOT NULL,
    valid_until TEXT    NOT NULL,
    approver    TEXT    NOT NULL,
    note        TEXT    NOT NULL DEFAULT '',
    created_us  INTEGER NOT NULL,               -- wall-clock time it was registered
    revoked_us  INTEGER                         -- set by `approve --revoke`; NULL = in force
) STRICT;

CREATE INDEX approvals_extension ON approvals (extension);
