-- 0012: stats rollups (SQLite 0012 is the same step, with nothing to change in a site's
-- file): the central store's `stats` over millions of calls reads these sums instead of
-- every call. Kept current by statement triggers on calls and violations — a batch the
-- forwarder upserts is summed once, set-based; an upsert that changes a row takes the old
-- row's part out and puts the new one in — so they are exactly the sums over the rows,
-- whatever order or how often the sites forward them.
--
-- stats_rollup: one row per site, day, group, direction, class and `ext`:
--   ext = ''   the calls themselves (stats by site, group, day, month);
--   ext = E    the calls with our extension E on them, counted as `stats --by ext` counts
--              them: missed, answered_incoming, within_max_rings and rings only where E
--              was called, cost_fen only where E called.
-- Groups and classes are keyed '' for none (a group or class is never named '').
-- talk_n/talk_sum/talk_max: the answered calls' talk (mean and max exact); h0..h27:
-- how many of them fall in each talk bucket, split at the milliseconds of the ARRAY in
-- cw_rollup_sql (h0 below the first bound, h27 at or above the last): `stats` estimates
-- p50/p90 from them and says so (`talk_ms.estimated`). The bounds are also in the daemon
-- (store::stats::TALK_BOUNDS_MS; a unit test keeps the two equal).
CREATE TABLE stats_rollup (
    site              TEXT   NOT NULL,
    day               TEXT   NOT NULL,
    month             TEXT   NOT NULL,
    group_key         TEXT   NOT NULL,
    direction         TEXT   NOT NULL,
    class_key         TEXT   NOT NULL,
    ext               TEXT   NOT NULL,
    calls             BIGINT NOT NULL DEFAULT 0,
    inbound           BIGINT NOT NULL DEFAULT 0,
    outbound          BIGINT NOT NULL DEFAULT 0,
    internal          BIGINT NOT NULL DEFAULT 0,
    answered          BIGINT NOT NULL DEFAULT 0,
    missed            BIGINT NOT NULL DEFAULT 0,
    answered_incoming BIGINT NOT NULL DEFAULT 0,
    within_max_rings  BIGINT NOT NULL DEFAULT 0,
    r0                BIGINT NOT NULL DEFAULT 0,
    r1                BIGINT NOT NULL DEFAULT 0,
    r2                BIGINT NOT NULL DEFAULT 0,
    r3                BIGINT NOT NULL DEFAULT 0,
    r4                BIGINT NOT NULL DEFAULT 0,
    r5                BIGINT NOT NULL DEFAULT 0,
    effective         BIGINT NOT NULL DEFAULT 0,
    long_calls        BIGINT NOT NULL DEFAULT 0,
    cost_fen          BIGINT NOT NULL DEFAULT 0,
    talk_n            BIGINT NOT NULL DEFAULT 0,
    talk_sum          BIGINT NOT NULL DEFAULT 0,
    h0                BIGINT NOT NULL DEFAULT 0,
    h1                BIGINT NOT NULL DEFAULT 0,
    h2                BIGINT NOT NULL DEFAULT 0,
    h3                BIGINT NOT NULL DEFAULT 0,
    h4                BIGINT NOT NULL DEFAULT 0,
    h5                BIGINT NOT NULL DEFAULT 0,
    h6                BIGINT NOT NULL DEFAULT 0,
    h7                BIGINT NOT NULL DEFAULT 0,
    h8                BIGINT NOT NULL DEFAULT 0,
    h9                BIGINT NOT NULL DEFAULT 0,
    h10               BIGINT NOT NULL DEFAULT 0,
    h11               BIGINT NOT NULL DEFAULT 0,
    h12               BIGINT NOT NULL DEFAULT 0,
    h13               BIGINT NOT NULL DEFAULT 0,
    h14               BIGINT NOT NULL DEFAULT 0,
    h15               BIGINT NOT NULL DEFAULT 0,
    h16               BIGINT NOT NULL DEFAULT 0,
    h17               BIGINT NOT NULL DEFAULT 0,
    h18               BIGINT NOT NULL DEFAULT 0,
    h19               BIGINT NOT NULL DEFAULT 0,
    h20               BIGINT NOT NULL DEFAULT 0,
    h21               BIGINT NOT NULL DEFAULT 0,
    h22               BIGINT NOT NULL DEFAULT 0,
    h23               BIGINT NOT NULL DEFAULT 0,
    h24               BIGINT NOT NULL DEFAULT 0,
    h25               BIGINT NOT NULL DEFAULT 0,
    h26               BIGINT NOT NULL DEFAULT 0,
    h27               BIGINT NOT NULL DEFAULT 0,
    talk_max          BIGINT,
    PRIMARY KEY (site, day, group_key, direction, class_key, ext)
);
CREATE INDEX stats_rollup_day ON stats_rollup (day);
CREATE INDEX stats_rollup_month ON stats_rollup (month);

-- violation_rollup: violations counted per site, day, rule, extension and the group and
-- class of their call as `calls` holds it now ('' for none, or while the call has not
-- arrived: a violation found at the INVITE is forwarded before its call ends). When a
-- call arrives, changes group or class, or goes, its violations move with it.
CREATE TABLE violation_rollup (
    site      TEXT   NOT NULL,
    day       TEXT   NOT NULL,
    month     TEXT   NOT NULL,
    rule      TEXT   NOT NULL,
    extension TEXT   NOT NULL,
    group_key TEXT   NOT NULL,
    class_key TEXT   NOT NULL,
    n         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (site, day, rule, extension, group_key, class_key)
);
CREATE INDEX violation_rollup_day ON violation_rollup (day);

-- A rollup's talk_max after a call's talk went down or the call went: recounted from the
-- calls of that rollup row (one site-day; calls_site_day serves it).
CREATE INDEX calls_site_day ON calls (site, day);

-- The statements that add the signed rows of `src` (calls' columns and s: +1 for a row
-- that came, -1 for one that went) to stats_rollup: each call's part in every rollup row
-- it counts in (the call itself, and each of our extensions on it, as
-- stats::Aggregator::add_call keys it), summed per rollup row; then (a second statement,
-- which sees the first one's sums) the longest talk of the rollup rows a call left is
-- recounted from the calls. Text, run by EXECUTE inside the trigger functions, where the
-- transition tables they name are visible.
CREATE FUNCTION cw_rollup_parts(src TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $f$
SELECT format($q$
    WITH parts AS (
        SELECT r.*, p.xt, p.called, p.pays,
            coalesce(r.group_name, '') AS group_key, coalesce(r.class, '') AS class_key,
            r.answered <> 0 AS ans, r.direction IN ('inbound', 'internal') AS incoming,
            least(greatest(r.rings, 0), 5) AS rg,
            CASE WHEN r.answered <> 0 THEN width_bucket(r.talk_ms, ARRAY[1000,2000,3000,5000,7000,10000,15000,20000,30000,45000,60000,90000,120000,150000,180000,240000,300000,420000,600000,900000,1200000,1800000,2700000,3600000,5400000,7200000,10800000]::bigint[]) END AS b
        FROM %1$s r
        CROSS JOIN LATERAL (VALUES ('', TRUE, TRUE),
            (r.caller_ext, r.callee_ext IS NOT DISTINCT FROM r.caller_ext, TRUE),
            (r.callee_ext, TRUE, FALSE)) AS p(xt, called, pays)
        WHERE p.xt IS NOT NULL AND (p.pays OR r.callee_ext IS DISTINCT FROM r.caller_ext)
    )
$q$, src)
$f$;

CREATE FUNCTION cw_rollup_sql(src TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $f$
SELECT cw_rollup_parts(src) || $q$
    INSERT INTO stats_rollup AS t (site, day, month, group_key, direction, class_key, ext,
        calls, inbound, outbound, internal, answered, missed, answered_incoming, within_max_rings, r0, r1, r2, r3, r4, r5, effective, long_calls, cost_fen, talk_n, talk_sum,
        h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17, h18, h19, h20, h21, h22, h23, h24, h25, h26, h27, talk_max)
    SELECT site, day, min(month), group_key, direction, class_key, xt,
        sum(s),
            coalesce(sum(s) FILTER (WHERE direction = 'inbound'), 0),
            coalesce(sum(s) FILTER (WHERE direction = 'outbound'), 0),
            coalesce(sum(s) FILTER (WHERE direction = 'internal'), 0),
            coalesce(sum(s) FILTER (WHERE ans), 0),
            coalesce(sum(s) FILTER (WHERE incoming AND called AND NOT ans AND end_reason IN ('cancelled', 'busy', 'rejected', 'no-answer', 'timeout')), 0),
            coalesce(sum(s) FILTER (WHERE incoming AND called AND ans), 0),
            coalesce(sum(s) FILTER (WHERE incoming AND called AND ans AND coalesce(within_max_rings, 0) <> 0), 0),
            coalesce(sum(s) FILTER (WHERE incoming AND called AND ans AND rg = 0), 0),
            coalesce(sum(s) FILTER (WHERE incoming AND called AND ans AND rg = 1), 0),
            coalesce(sum(s) FILTER (WHERE incoming AND called AND ans AND rg = 2), 0),
            coalesce(sum(s) FILTER (WHERE incoming AND called AND ans AND rg = 3), 0),
            coalesce(sum(s) FILTER (WHERE incoming AND called AND ans AND rg = 4), 0),
            coalesce(sum(s) FILTER (WHERE incoming AND called AND ans AND rg = 5), 0),
            coalesce(sum(s) FILTER (WHERE ans AND coalesce(effective, 0) <> 0), 0),
            coalesce(sum(s) FILTER (WHERE ans AND coalesce(long_call, 0) <> 0), 0),
            coalesce(sum(s * coalesce(cost_fen, 0)) FILTER (WHERE pays), 0),
            coalesce(sum(s) FILTER (WHERE ans), 0),
            coalesce(sum(s * talk_ms) FILTER (WHERE ans), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 0), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 1), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 2), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 3), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 4), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 5), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 6), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 7), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 8), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 9), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 10), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 11), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 12), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 13), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 14), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 15), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 16), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 17), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 18), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 19), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 20), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 21), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 22), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 23), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 24), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 25), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 26), 0),
            coalesce(sum(s) FILTER (WHERE ans AND b = 27), 0),
        max(talk_ms) FILTER (WHERE ans AND s > 0)
    FROM parts GROUP BY site, day, group_key, direction, class_key, xt
    ON CONFLICT (site, day, group_key, direction, class_key, ext) DO UPDATE SET
            calls = t.calls + excluded.calls,
            inbound = t.inbound + excluded.inbound,
            outbound = t.outbound + excluded.outbound,
            internal = t.internal + excluded.internal,
            answered = t.answered + excluded.answered,
            missed = t.missed + excluded.missed,
            answered_incoming = t.answered_incoming + excluded.answered_incoming,
            within_max_rings = t.within_max_rings + excluded.within_max_rings,
            r0 = t.r0 + excluded.r0,
            r1 = t.r1 + excluded.r1,
            r2 = t.r2 + excluded.r2,
            r3 = t.r3 + excluded.r3,
            r4 = t.r4 + excluded.r4,
            r5 = t.r5 + excluded.r5,
            effective = t.effective + excluded.effective,
            long_calls = t.long_calls + excluded.long_calls,
            cost_fen = t.cost_fen + excluded.cost_fen,
            talk_n = t.talk_n + excluded.talk_n,
            talk_sum = t.talk_sum + excluded.talk_sum,
            h0 = t.h0 + excluded.h0,
            h1 = t.h1 + excluded.h1,
            h2 = t.h2 + excluded.h2,
            h3 = t.h3 + excluded.h3,
            h4 = t.h4 + excluded.h4,
            h5 = t.h5 + excluded.h5,
            h6 = t.h6 + excluded.h6,
            h7 = t.h7 + excluded.h7,
            h8 = t.h8 + excluded.h8,
            h9 = t.h9 + excluded.h9,
            h10 = t.h10 + excluded.h10,
            h11 = t.h11 + excluded.h11,
            h12 = t.h12 + excluded.h12,
            h13 = t.h13 + excluded.h13,
            h14 = t.h14 + excluded.h14,
            h15 = t.h15 + excluded.h15,
            h16 = t.h16 + excluded.h16,
            h17 = t.h17 + excluded.h17,
            h18 = t.h18 + excluded.h18,
            h19 = t.h19 + excluded.h19,
            h20 = t.h20 + excluded.h20,
            h21 = t.h21 + excluded.h21,
            h22 = t.h22 + excluded.h22,
            h23 = t.h23 + excluded.h23,
            h24 = t.h24 + excluded.h24,
            h25 = t.h25 + excluded.h25,
            h26 = t.h26 + excluded.h26,
            h27 = t.h27 + excluded.h27,
        talk_max = greatest(t.talk_max, excluded.talk_max)
$q$
$f$;

CREATE FUNCTION cw_rollup_recount_sql(src TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $f$
SELECT cw_rollup_parts(src) || $q$
    UPDATE stats_rollup t SET talk_max = (
        SELECT max(c.talk_ms) FROM calls c
        WHERE c.site = t.site AND c.day = t.day AND coalesce(c.group_name, '') = t.group_key
          AND c.direction = t.direction AND coalesce(c.class, '') = t.class_key AND c.answered <> 0
          AND (t.ext = '' OR c.caller_ext = t.ext OR c.callee_ext = t.ext))
    FROM (SELECT DISTINCT site, day, group_key, direction, class_key, xt FROM parts WHERE s < 0 AND ans) AS gone
    WHERE (t.site, t.day, t.group_key, t.direction, t.class_key, t.ext)
        = (gone.site, gone.day, gone.group_key, gone.direction, gone.class_key, gone.xt)
$q$
$f$;

CREATE FUNCTION cw_calls_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE cw_rollup_sql('(SELECT n.*, 1::bigint AS s FROM new_rows n)');
    EXECUTE cw_violation_move_sql('(SELECT site, call_id, started_us, '''' AS old_g, '''' AS old_c,
        coalesce(group_name, '''') AS new_g, coalesce(class, '''') AS new_c FROM new_rows)');
    RETURN NULL;
END $$;

-- Only the rows whose counted columns changed (the forwarder writes a row again whole,
-- most often unchanged): the old part out, the new one in.
CREATE FUNCTION cw_calls_rollup_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    src TEXT := '(
        SELECT o.*, -1::bigint AS s FROM old_rows o LEFT JOIN new_rows n
            ON (n.site, n.call_id, n.started_us) = (o.site, o.call_id, o.started_us)
        WHERE n.site IS NULL OR ROW(o.day, o.month, o.group_name, o.direction, o.class, o.caller_ext, o.callee_ext, o.answered, o.end_reason, o.rings, o.talk_ms, o.cost_fen, o.within_max_rings, o.long_call, o.effective) IS DISTINCT FROM ROW(n.day, n.month, n.group_name, n.direction, n.class, n.caller_ext, n.callee_ext, n.answered, n.end_reason, n.rings, n.talk_ms, n.cost_fen, n.within_max_rings, n.long_call, n.effective)
        UNION ALL
        SELECT n.*, 1::bigint AS s FROM new_rows n LEFT JOIN old_rows o
            ON (n.site, n.call_id, n.started_us) = (o.site, o.call_id, o.started_us)
        WHERE o.site IS NULL OR ROW(o.day, o.month, o.group_name, o.direction, o.class, o.caller_ext, o.callee_ext, o.answered, o.end_reason, o.rings, o.talk_ms, o.cost_fen, o.within_max_rings, o.long_call, o.effective) IS DISTINCT FROM ROW(n.day, n.month, n.group_name, n.direction, n.class, n.caller_ext, n.callee_ext, n.answered, n.end_reason, n.rings, n.talk_ms, n.cost_fen, n.within_max_rings, n.long_call, n.effective))';
BEGIN
    EXECUTE cw_rollup_sql(src);
    EXECUTE cw_rollup_recount_sql(src);
    EXECUTE cw_violation_move_sql('(SELECT o.site, o.call_id, o.started_us,
        coalesce(o.group_name, '''') AS old_g, coalesce(o.class, '''') AS old_c,
        coalesce(n.group_name, '''') AS new_g, coalesce(n.class, '''') AS new_c
        FROM old_rows o JOIN new_rows n ON (n.site, n.call_id, n.started_us) = (o.site, o.call_id, o.started_us))');
    RETURN NULL;
END $$;

CREATE FUNCTION cw_calls_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE cw_rollup_sql('(SELECT o.*, -1::bigint AS s FROM old_rows o)');
    EXECUTE cw_rollup_recount_sql('(SELECT o.*, -1::bigint AS s FROM old_rows o)');
    EXECUTE cw_violation_move_sql('(SELECT site, call_id, started_us,
        coalesce(group_name, '''') AS old_g, coalesce(class, '''') AS old_c, '''' AS new_g, '''' AS new_c
        FROM old_rows)');
    RETURN NULL;
END $$;

CREATE TRIGGER calls_rollup_insert AFTER INSERT ON calls REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cw_calls_rollup_insert();
CREATE TRIGGER calls_rollup_update AFTER UPDATE ON calls REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cw_calls_rollup_update();
CREATE TRIGGER calls_rollup_delete AFTER DELETE ON calls REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cw_calls_rollup_delete();

-- Violations: counted per statement the same way.
CREATE FUNCTION cw_violation_rollup_sql(src TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $f$
SELECT format($q$
    INSERT INTO violation_rollup AS t (site, day, month, rule, extension, group_key, class_key, n)
    SELECT v.site, v.day, min(v.month), v.rule, v.extension, coalesce(c.group_name, ''), coalesce(c.class, ''), sum(v.s)
    FROM %1$s v LEFT JOIN calls c
        ON c.site = v.site AND c.call_id = v.call_id AND c.started_us = v.call_started_us
    GROUP BY v.site, v.day, v.rule, v.extension, coalesce(c.group_name, ''), coalesce(c.class, '')
    ON CONFLICT (site, day, rule, extension, group_key, class_key) DO UPDATE SET n = t.n + excluded.n
$q$, src)
$f$;

-- Calls whose group or class key changed (`moved`: site, call_id, started_us, the old and
-- the new keys): their violations' counts go from the old key to the new one.
CREATE FUNCTION cw_violation_move_sql(moved TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $f$
SELECT format($q$
    INSERT INTO violation_rollup AS t (site, day, month, rule, extension, group_key, class_key, n)
    SELECT v.site, v.day, min(v.month), v.rule, v.extension, k.g, k.c, sum(k.s)
    FROM %1$s m
    JOIN violations v ON v.site = m.site AND v.call_id = m.call_id AND v.call_started_us = m.started_us
    CROSS JOIN LATERAL (VALUES (m.old_g, m.old_c, -1::bigint), (m.new_g, m.new_c, 1::bigint)) AS k(g, c, s)
    WHERE (m.old_g, m.old_c) IS DISTINCT FROM (m.new_g, m.new_c)
    GROUP BY v.site, v.day, v.rule, v.extension, k.g, k.c
    ON CONFLICT (site, day, rule, extension, group_key, class_key) DO UPDATE SET n = t.n + excluded.n
$q$, moved)
$f$;

CREATE FUNCTION cw_violations_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE cw_violation_rollup_sql('(SELECT n.*, 1::bigint AS s FROM new_rows n)');
    RETURN NULL;
END $$;

CREATE FUNCTION cw_violations_rollup_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE cw_violation_rollup_sql('(
        SELECT o.*, -1::bigint AS s FROM old_rows o
        UNION ALL SELECT n.*, 1::bigint AS s FROM new_rows n)');
    RETURN NULL;
END $$;

CREATE FUNCTION cw_violations_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE cw_violation_rollup_sql('(SELECT o.*, -1::bigint AS s FROM old_rows o)');
    RETURN NULL;
END $$;

CREATE TRIGGER violations_rollup_insert AFTER INSERT ON violations REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cw_violations_rollup_insert();
CREATE TRIGGER violations_rollup_update AFTER UPDATE ON violations REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cw_violations_rollup_update();
CREATE TRIGGER violations_rollup_delete AFTER DELETE ON violations REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cw_violations_rollup_delete();

-- The rows already here (a store made before 0012), counted once.
DO $$ BEGIN
    EXECUTE cw_rollup_sql('(SELECT c.*, 1::bigint AS s FROM calls c)');
    EXECUTE cw_violation_rollup_sql('(SELECT v.*, 1::bigint AS s FROM violations v)');
END $$;

-- The central playback log's own order among lines of one time (the API pages newest
-- first by (at_us, seq)): site ids do not compare across sites, and a line logged through
-- the central API has none. The lines already here are numbered as they are stored.
ALTER TABLE playback_log ADD COLUMN seq BIGSERIAL;
CREATE UNIQUE INDEX playback_log_at_seq ON playback_log (at_us, seq);
