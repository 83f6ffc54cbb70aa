-- The lean append `NOTIFY`s only while some store listens: a listening store holds the
-- schema's listeners' advisory lock shared, for as long as it listens (see `listen.rs`). A
-- `NOTIFY` no one listens for still costs its commit a lock, a queue entry and a signal to
-- every listening backend of the server, and each listening store's thread a wake-up.
-- Otherwise as in migration 5.
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
    -- Only while some store listens (holds the listeners' lock shared): the lock, taken here
    -- exclusively when no one holds it, is kept to the commit, so a store that starts
    -- listening meanwhile waits for this commit and then reads the head.
    IF NOT pg_try_advisory_xact_lock(hashtextextended('eventfile listeners {n}', 0)) THEN
        PERFORM pg_notify('{n}', (h + n)::text);
    END IF;
    RETURN ARRAY[h + 1, v + n];
END
$fn$;
