-- 0005: one call across a B2BUA's legs (track::link). A call's record is the call as the
-- caller lived it; these columns say how it was put together:
--   answered_by    the extension that picked up (NULL: nobody of ours, or not answered)
--   transferred_to the extension the call was last transferred to
--   wait_ms        time the caller spent in an IVR or queue before any phone rang
--   link           the evidence that linked its legs: header | session-id | hep | inferred
--                  (NULL: a call of one dialog)
--   legs           JSON [{call_id, from, to, started_us, answered_us, ended_us, sip_status, role}]
-- Rows stored before this migration were calls of one dialog each: they keep NULL/0 and
-- an empty list of legs ('[]'), which readers show as the call's own dialog.
ALTER TABLE calls ADD COLUMN answered_by TEXT;
ALTER TABLE calls ADD COLUMN transferred_to TEXT;
ALTER TABLE calls ADD COLUMN wait_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN link TEXT;
ALTER TABLE calls ADD COLUMN legs TEXT NOT NULL DEFAULT '[]';
