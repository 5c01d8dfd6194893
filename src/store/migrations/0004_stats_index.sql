-- 0004: a covering index for `stats` over a period (the API's /api/stats?month=, the CLI's
-- `stats --month`): every column the stats query reads, after started_us, so a month of
-- calls is read from the index alone, in order, without a lookup in the table per call
-- (issue 7's benchmark: a month of a 1,000,000-call database).
CREATE INDEX calls_stats_cover ON calls (
    started_us, direction, caller_ext, callee_ext, group_name, day, month, answered, end_reason, rings, talk_ms,
    cost_fen, number
);
