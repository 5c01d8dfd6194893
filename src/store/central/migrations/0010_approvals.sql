-- 0010: approvals (OUT-2) made centrally for one site or all of them. Sites copy the ones
-- that concern them into their own `approvals` (SQLite 0010, keyed by `central_id`) on a
-- schedule. Rows are never deleted: a revoked approval keeps its row with `revoked_us`.
CREATE TABLE approvals (
    id          BIGSERIAL PRIMARY KEY,
    site        TEXT   REFERENCES sites (name),   -- NULL: every site
    extension   TEXT   NOT NULL,
    class       TEXT   NOT NULL,
    valid_from  TEXT   NOT NULL,
    valid_until TEXT   NOT NULL,
    approver    TEXT   NOT NULL,
    note        TEXT   NOT NULL DEFAULT '',
    created_us  BIGINT NOT NULL,
    revoked_us  BIGINT
);

CREATE INDEX approvals_site ON approvals (site);
