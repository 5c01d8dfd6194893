-- 0007: a call's identity is its Call-ID, the From tag of its first INVITE and its start
-- within store::writer::SAME_CALL_WINDOW_US (1 s), so the same call seen through two
-- clocks (live capture, HEP copy, tcpdump) is one row while two calls that share a
-- Call-ID (a B2BUA's legs, a reused or forged Call-ID) are two.
--   calls.from_tag              the From tag ('' is stored as NULL: no tag known)
--   violations.call_from_tag    the From tag of the call a violation is about
-- Rows stored before this migration have NULL: an unknown tag matches any tag, so a
-- replay of old traffic still completes its old row (and fills the tag in) instead of
-- adding a second one. The row key stays (call_id, started_us); two calls with the same
-- Call-ID and different tags that start in the very same microsecond are kept apart by
-- storing the later-written one a microsecond on. Lookups go through the (call_id,
-- started_us) indexes and check the tag on the few rows of that Call-ID; the index
-- below serves finding a call by Call-ID and tag.
ALTER TABLE calls ADD COLUMN from_tag TEXT;
ALTER TABLE violations ADD COLUMN call_from_tag TEXT;
CREATE INDEX calls_from_tag ON calls (call_id, from_tag);
