-- 0010: approvals made centrally (the central store's `approvals`, `callwarden approve
-- --store postgres://...`) reach every site: the forwarder copies those for this site (or
-- for every site) into this table on a schedule, so the site keeps judging with its
-- last copy while the central store is unreachable.
--   central_id   the approval's id in the central store; NULL for one made here
ALTER TABLE approvals ADD COLUMN central_id INTEGER;
CREATE UNIQUE INDEX approvals_central_id ON approvals (central_id) WHERE central_id IS NOT NULL;
