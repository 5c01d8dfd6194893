-- 0013: nothing changes in the central store. A site's SQLite gets its stats change log
-- (the site API's stats cache); the central store answers stats from its rollups (0012)
-- and has no such cache. The step is numbered here too, so the two stores keep one
-- migration history.
SELECT 1;
