-- 0012: stats rollups (SQLite 0012 is the same step, with nothing to change in a site's
-- file): the central store's `stats` over millions of calls reads these sums instead of
-- every call. Kept current at insert by triggers on calls and violations (an upsert of a
-- changed row takes the old row's part out and puts the new one in), so they are exactly
-- the sums over the rows, whatever order or how often the sites forward them.
--
-- stats_rollup: one row per site, day, group, direction, class and `ext`:
--   ext = ''   the calls themselves (stats by site, group, day, month);
--   ext = E    the calls with our extension E on them, counted as `stats --by ext` counts
--              them: missed, answered_incoming, within_max_rings and rings only where E
--              was called, cost_fen only where E called.
-- Groups and classes are keyed '' for none (a group or class is never named '').
-- talk_n/talk_sum/talk_max: the answered calls' talk (mean and max exact); h0..h27:
-- how many of them fall in each talk bucket, split at the milliseconds of CW_TALK_BOUNDS
-- (h0 below the first bound, h27 at or above the last): `stats` estimates p50/p90 from
-- them and says so (`talk_ms.estimated`). The bounds are also in the daemon
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

-- violation_rollup: violations counted per site, day, rule and extension (stats by
-- extension, day, month or site; by group the violations are read, joined to their call).
CREATE TABLE violation_rollup (
    site      TEXT   NOT NULL,
    day       TEXT   NOT NULL,
    month     TEXT   NOT NULL,
    rule      TEXT   NOT NULL,
    extension TEXT   NOT NULL,
    n         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (site, day, rule, extension)
);
CREATE INDEX violation_rollup_day ON violation_rollup (day);

-- A rollup's talk_max after a call's talk went down or the call went: recounted from the
-- calls of that rollup row (one site-day; calls_site_day serves it).
CREATE INDEX calls_site_day ON calls (site, day);

CREATE FUNCTION cw_rollup_add(r calls, s BIGINT, e TEXT, called BOOLEAN, pays BOOLEAN)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    incoming BOOLEAN := r.direction IN ('inbound', 'internal');
    ans      BOOLEAN := r.answered <> 0;
    inc_ans  BOOLEAN := incoming AND called AND r.answered <> 0;
    b        INT     := CASE WHEN r.answered <> 0 THEN width_bucket(r.talk_ms, ARRAY[1000,2000,3000,5000,7000,10000,15000,20000,30000,45000,60000,90000,120000,150000,180000,240000,300000,420000,600000,900000,1200000,1800000,2700000,3600000,5400000,7200000,10800000]::bigint[]) ELSE -1 END;
    rg       BIGINT  := LEAST(greatest(r.rings, 0), 5);
    gk       TEXT    := coalesce(r.group_name, '');
    ck       TEXT    := coalesce(r.class, '');
    cur_max  BIGINT;
BEGIN
    INSERT INTO stats_rollup AS t (site, day, month, group_key, direction, class_key, ext,
        calls, inbound, outbound, internal, answered, missed, answered_incoming, within_max_rings, r0, r1, r2, r3, r4, r5, effective, long_calls, cost_fen, talk_n, talk_sum,
        h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17, h18, h19, h20, h21, h22, h23, h24, h25, h26, h27, talk_max)
    VALUES (r.site, r.day, r.month, gk, r.direction, ck, e,
        s,
        CASE WHEN r.direction = 'inbound' THEN s ELSE 0 END,
        CASE WHEN r.direction = 'outbound' THEN s ELSE 0 END,
        CASE WHEN r.direction = 'internal' THEN s ELSE 0 END,
        CASE WHEN ans THEN s ELSE 0 END,
        CASE WHEN incoming AND called AND NOT ans
             AND r.end_reason IN ('cancelled', 'busy', 'rejected', 'no-answer', 'timeout') THEN s ELSE 0 END,
        CASE WHEN inc_ans THEN s ELSE 0 END,
        CASE WHEN inc_ans AND coalesce(r.within_max_rings, 0) <> 0 THEN s ELSE 0 END,
        CASE WHEN inc_ans AND rg = 0 THEN s ELSE 0 END, CASE WHEN inc_ans AND rg = 1 THEN s ELSE 0 END, CASE WHEN inc_ans AND rg = 2 THEN s ELSE 0 END, CASE WHEN inc_ans AND rg = 3 THEN s ELSE 0 END, CASE WHEN inc_ans AND rg = 4 THEN s ELSE 0 END, CASE WHEN inc_ans AND rg = 5 THEN s ELSE 0 END,
        CASE WHEN ans AND coalesce(r.effective, 0) <> 0 THEN s ELSE 0 END,
        CASE WHEN ans AND coalesce(r.long_call, 0) <> 0 THEN s ELSE 0 END,
        CASE WHEN pays THEN s * coalesce(r.cost_fen, 0) ELSE 0 END,
        CASE WHEN ans THEN s ELSE 0 END,
        CASE WHEN ans THEN s * r.talk_ms ELSE 0 END,
        CASE WHEN b = 0 THEN s ELSE 0 END, CASE WHEN b = 1 THEN s ELSE 0 END, CASE WHEN b = 2 THEN s ELSE 0 END, CASE WHEN b = 3 THEN s ELSE 0 END, CASE WHEN b = 4 THEN s ELSE 0 END, CASE WHEN b = 5 THEN s ELSE 0 END, CASE WHEN b = 6 THEN s ELSE 0 END, CASE WHEN b = 7 THEN s ELSE 0 END, CASE WHEN b = 8 THEN s ELSE 0 END, CASE WHEN b = 9 THEN s ELSE 0 END, CASE WHEN b = 10 THEN s ELSE 0 END, CASE WHEN b = 11 THEN s ELSE 0 END, CASE WHEN b = 12 THEN s ELSE 0 END, CASE WHEN b = 13 THEN s ELSE 0 END, CASE WHEN b = 14 THEN s ELSE 0 END, CASE WHEN b = 15 THEN s ELSE 0 END, CASE WHEN b = 16 THEN s ELSE 0 END, CASE WHEN b = 17 THEN s ELSE 0 END, CASE WHEN b = 18 THEN s ELSE 0 END, CASE WHEN b = 19 THEN s ELSE 0 END, CASE WHEN b = 20 THEN s ELSE 0 END, CASE WHEN b = 21 THEN s ELSE 0 END, CASE WHEN b = 22 THEN s ELSE 0 END, CASE WHEN b = 23 THEN s ELSE 0 END, CASE WHEN b = 24 THEN s ELSE 0 END, CASE WHEN b = 25 THEN s ELSE 0 END, CASE WHEN b = 26 THEN s ELSE 0 END, CASE WHEN b = 27 THEN s ELSE 0 END,
        CASE WHEN ans AND s > 0 THEN r.talk_ms END)
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
        talk_max = CASE WHEN s > 0 THEN greatest(t.talk_max, excluded.talk_max) ELSE t.talk_max END
    RETURNING t.talk_max INTO cur_max;
    -- Taken out: the largest talk may have gone with it; recount it from the calls left.
    IF s < 0 AND ans AND r.talk_ms >= coalesce(cur_max, r.talk_ms) THEN
        UPDATE stats_rollup SET talk_max = (
            SELECT max(c.talk_ms) FROM calls c
            WHERE c.site = r.site AND c.day = r.day AND coalesce(c.group_name, '') = gk
              AND c.direction = r.direction AND coalesce(c.class, '') = ck AND c.answered <> 0
              AND (e = '' OR c.caller_ext = e OR c.callee_ext = e))
        WHERE site = r.site AND day = r.day AND group_key = gk AND direction = r.direction
          AND class_key = ck AND ext = e;
    END IF;
END $$;

-- A call's part in every rollup row it counts in: the call itself, and each of our
-- extensions on it (stats::Aggregator::add_call's keys).
CREATE FUNCTION cw_rollup_call(r calls, s BIGINT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cw_rollup_add(r, s, '', TRUE, TRUE);
    IF r.caller_ext IS NOT NULL THEN
        PERFORM cw_rollup_add(r, s, r.caller_ext, r.callee_ext IS NOT DISTINCT FROM r.caller_ext, TRUE);
    END IF;
    IF r.callee_ext IS NOT NULL AND r.callee_ext IS DISTINCT FROM r.caller_ext THEN
        PERFORM cw_rollup_add(r, s, r.callee_ext, TRUE, FALSE);
    END IF;
END $$;

CREATE FUNCTION cw_calls_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND ROW(OLD.day, OLD.month, OLD.group_name, OLD.direction, OLD.class,
            OLD.caller_ext, OLD.callee_ext, OLD.answered, OLD.end_reason, OLD.rings, OLD.talk_ms,
            OLD.cost_fen, OLD.within_max_rings, OLD.long_call, OLD.effective)
        IS NOT DISTINCT FROM ROW(NEW.day, NEW.month, NEW.group_name, NEW.direction, NEW.class,
            NEW.caller_ext, NEW.callee_ext, NEW.answered, NEW.end_reason, NEW.rings, NEW.talk_ms,
            NEW.cost_fen, NEW.within_max_rings, NEW.long_call, NEW.effective) THEN
        RETURN NULL;  -- nothing stats counts has changed
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM cw_rollup_call(OLD, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM cw_rollup_call(NEW, 1);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER calls_rollup AFTER INSERT OR UPDATE OR DELETE ON calls
    FOR EACH ROW EXECUTE FUNCTION cw_calls_rollup();

CREATE FUNCTION cw_violations_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (OLD.day, OLD.rule, OLD.extension) IS NOT DISTINCT FROM (NEW.day, NEW.rule, NEW.extension) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE violation_rollup SET n = n - 1
        WHERE site = OLD.site AND day = OLD.day AND rule = OLD.rule AND extension = OLD.extension;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO violation_rollup AS t (site, day, month, rule, extension, n)
        VALUES (NEW.site, NEW.day, NEW.month, NEW.rule, NEW.extension, 1)
        ON CONFLICT (site, day, rule, extension) DO UPDATE SET n = t.n + 1;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER violations_rollup AFTER INSERT OR UPDATE OR DELETE ON violations
    FOR EACH ROW EXECUTE FUNCTION cw_violations_rollup();

-- The rows already here (a store made before 0012) counted once.
SELECT cw_rollup_call(c, 1) FROM calls c;
INSERT INTO violation_rollup (site, day, month, rule, extension, n)
    SELECT site, day, min(month), rule, extension, count(*) FROM violations GROUP BY site, day, rule, extension;
