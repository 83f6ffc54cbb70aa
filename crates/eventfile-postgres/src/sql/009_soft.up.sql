-- Whether a stream's `before` was set by a soft deletion of the whole stream (a
-- `$stream-deleted` event), not a truncation: no snapshot below it stands for the stream
-- any more. Filled for the deletions already made from their `$lifecycle` events (a deletion
-- that set the same `before` as a truncation counts: `Deletion::merge`).
ALTER TABLE {s}.deletions ADD COLUMN soft boolean NOT NULL DEFAULT false;
UPDATE {s}.deletions d SET soft = true
    WHERE EXISTS (
        SELECT 1 FROM {s}.events e
        WHERE e.stream = '$lifecycle' AND e.type = '$stream-deleted'
          AND e.data->>'stream' = d.stream AND (e.data->>'before')::bigint = d.before);
