-- The lean twin of `append_batch` for the commonest group: one request, one stream (a lone
-- append). The same checks and writes in three statements (the lock, the checks, the write)
-- rather than the loop's dozen: a lone append is what the single-writer design makes every
-- caller wait for, so its server work is what its latency is made of.
--
-- A known id is looked for only when the caller named the ids (`check_ids`): ids the library
-- generated are fresh UUIDv7s, and a collision would still be refused by `events_id_key`
-- (the statement fails, nothing is written, and the appender decides the request alone).
-- Returns {first seq, the stream's new version}, or {0, 0} if the request was refused (a
-- known key or id, a tombstone, a version that does not match): it wrote nothing.
-- `OR REPLACE`: migration 6's down step is this same text, putting this version back.
CREATE OR REPLACE FUNCTION {s}.append_one(
    r_key text, p_stream text, p_expected bigint, check_ids boolean,
    e_id text[], e_type text[], e_data text[], e_meta text[], e_tags text[]
) RETURNS bigint[] LANGUAGE plpgsql
-- As in `append_batch`: every statement finds its rows by an index, whatever the table's size
-- when the connection first planned it.
SET enable_seqscan = off
AS $fn$
DECLARE
    h bigint;
    t bigint;
    v bigint;
    refused boolean;
    n integer := cardinality(e_id);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('eventfile {n}', 0));
    -- After the lock, in a new snapshot: the head and the stream as the last writer left them.
    SELECT hd.seq, hd.time, st.version,
           coalesce(d.tombstone, false)
           OR (r_key IS NOT NULL AND EXISTS (SELECT 1 FROM {s}.keys k WHERE k.key = r_key))
           OR (check_ids AND EXISTS (SELECT 1 FROM {s}.events ev WHERE ev.id = ANY (e_id)))
      INTO h, t, v, refused
      FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (SELECT ev.seq, ev.time FROM {s}.events ev ORDER BY ev.seq DESC LIMIT 1) hd
        ON true
      LEFT JOIN {s}.streams st ON st.stream = p_stream
      LEFT JOIN {s}.deletions d ON d.stream = p_stream;
    h := coalesce(h, 0);
    v := coalesce(v, 0);
    IF refused OR NOT (p_expected = -1 OR (p_expected = -2 AND v = 0)
                       OR (p_expected = -3 AND v > 0) OR p_expected = v) THEN
        RETURN ARRAY[0, 0]::bigint[];
    END IF;
    t := greatest(coalesce(t, 0), (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    WITH written AS (
        INSERT INTO {s}.events (seq, id, stream, version, type, time, data, meta, tags, more, key)
        SELECT h + u.k, u.id, p_stream, v + u.k, u.type, t, u.data::json, u.meta::json,
               u.tags::text[], u.k < n, CASE WHEN u.k = 1 THEN r_key END
        FROM unnest(e_id, e_type, e_data, e_meta, e_tags) WITH ORDINALITY AS u(id, type, data, meta, tags, k)
    )
    INSERT INTO {s}.streams (stream, version) VALUES (p_stream, v + n)
    ON CONFLICT (stream) DO UPDATE SET version = excluded.version;
    IF r_key IS NOT NULL THEN
        INSERT INTO {s}.keys (key, first_seq) VALUES (r_key, h + 1);
    END IF;
    PERFORM pg_notify('{n}', (h + n)::text);
    RETURN ARRAY[h + 1, v + n];
END
$fn$;
