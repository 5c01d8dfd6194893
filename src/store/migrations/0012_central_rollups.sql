-- 0012: the central store's stats rollups and playback-log order (its migration 0012). Nothing changes in a
-- site's SQLite file — a site's own `stats` reads its calls through index 0004 — but the
-- step is numbered here too, so the two stores keep one migration history.
SELECT 1;
