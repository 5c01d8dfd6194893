-- 0006: what policy decided about each call at its end, with the limits it applied, so a
-- figure read later never depends on the config of the day it is read (track::Judged):
--   ans_rule, max_rings, within_max_rings     ANS-1/2 of an answered call that rang one of
--                                             ours: the rule (by where its limit came
--                                             from), the limit, answered within it (0/1)
--   talk_rule, talk_limit_s, personal,        DUR-1/2/3 of an answered call with one of
--   long_call                                 ours on it: the rule, the limit (s), the
--                                             other party personal (0/1), talk over it
--   effective_min_talk_s, effective           STA-1: the minimum applied, and whether the
--                                             answered call was effective (0/1)
-- NULL: the rule did not apply to the call. Rows stored before this migration get these
-- columns from the store's backfill (store::backfill), run once by the first writer that
-- opens the database with a config: the `pending` mark below says it has not run yet.
ALTER TABLE calls ADD COLUMN ans_rule TEXT;
ALTER TABLE calls ADD COLUMN max_rings INTEGER;
ALTER TABLE calls ADD COLUMN within_max_rings INTEGER;
ALTER TABLE calls ADD COLUMN talk_rule TEXT;
ALTER TABLE calls ADD COLUMN talk_limit_s INTEGER;
ALTER TABLE calls ADD COLUMN personal INTEGER;
ALTER TABLE calls ADD COLUMN long_call INTEGER;
ALTER TABLE calls ADD COLUMN effective_min_talk_s INTEGER;
ALTER TABLE calls ADD COLUMN effective INTEGER;
INSERT INTO meta (key, value) SELECT 'verdicts_backfill', 'pending' WHERE EXISTS (SELECT 1 FROM calls)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
