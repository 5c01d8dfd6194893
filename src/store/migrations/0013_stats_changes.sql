-- 0013: the log of what changed, by call start, for the API's stats cache (api::stats).
-- Every call or violation inserted, updated or deleted adds the start time it counts
-- under in stats (a call's start; a violation's call start, else its detection time:
-- the readers' range filters). A cached answer whose range no change falls in is still
-- right after a commit, so a question about a past day or month keeps its answer while
-- the site writes today's calls; before this, every commit emptied the cache.
--   seq         order of changes (AUTOINCREMENT: never reused, gapless but for pruning)
--   started_us  the start time the changed row counts under
-- Bounded: every 1,000th change deletes what is older than the last 100,000. A reader
-- whose last seen change was pruned away cannot tell what changed and empties its cache.
CREATE TABLE stats_changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    started_us INTEGER NOT NULL
) STRICT;

CREATE TRIGGER stats_changes_prune AFTER INSERT ON stats_changes
    WHEN NEW.seq % 1000 = 0
BEGIN
    DELETE FROM stats_changes WHERE seq <= NEW.seq - 100000;
END;

CREATE TRIGGER stats_calls_insert AFTER INSERT ON calls
BEGIN
    INSERT INTO stats_changes (started_us) VALUES (NEW.started_us);
END;
-- The writer stores a call's verdicts right after inserting it, in the same transaction:
-- a start already the log's last entry is not logged again.
CREATE TRIGGER stats_calls_update AFTER UPDATE ON calls
BEGIN
    INSERT INTO stats_changes (started_us) SELECT OLD.started_us
        WHERE OLD.started_us IS NOT (SELECT started_us FROM stats_changes ORDER BY seq DESC LIMIT 1);
    INSERT INTO stats_changes (started_us) SELECT NEW.started_us WHERE NEW.started_us <> OLD.started_us;
END;
CREATE TRIGGER stats_calls_delete AFTER DELETE ON calls
BEGIN
    INSERT INTO stats_changes (started_us) VALUES (OLD.started_us);
END;

CREATE TRIGGER stats_violations_insert AFTER INSERT ON violations
BEGIN
    INSERT INTO stats_changes (started_us) VALUES (coalesce(NEW.call_started_us, NEW.detected_us));
END;
CREATE TRIGGER stats_violations_update AFTER UPDATE ON violations
BEGIN
    INSERT INTO stats_changes (started_us) VALUES (coalesce(OLD.call_started_us, OLD.detected_us));
    INSERT INTO stats_changes (started_us)
        SELECT coalesce(NEW.call_started_us, NEW.detected_us)
        WHERE coalesce(NEW.call_started_us, NEW.detected_us) <> coalesce(OLD.call_started_us, OLD.detected_us);
END;
CREATE TRIGGER stats_violations_delete AFTER DELETE ON violations
BEGIN
    INSERT INTO stats_changes (started_us) VALUES (coalesce(OLD.call_started_us, OLD.detected_us));
END;
