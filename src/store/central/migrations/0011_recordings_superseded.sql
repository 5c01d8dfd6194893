-- 0011: a recording superseded by a later, whole one of the same call (SQLite 0011): the
-- sites forward the column with their recordings. NULL: the call's recording.
ALTER TABLE recordings ADD COLUMN superseded_by TEXT;
