-- The head: the newest seq, the newest commit time, and the store's id. Every writer locks
-- this one row (SELECT ... FOR UPDATE) in its transaction: writers are serialised, so seqs are
-- committed in order and no reader sees seq n + 1 without n.
CREATE TABLE {s}.head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL,
    last_time bigint NOT NULL,
    store_id text NOT NULL
);
INSERT INTO {s}.head (seq, last_time, store_id)
VALUES (0, 0, md5(random()::text || clock_timestamp()::text));

-- The log. `data` and `meta` are `json` (kept as text, byte for byte), not `jsonb`.
CREATE TABLE {s}.events (
    seq bigint PRIMARY KEY,
    id text NOT NULL,
    stream text NOT NULL,
    version bigint NOT NULL,
    type text NOT NULL,
    time bigint NOT NULL,
    data json NOT NULL,
    meta json NOT NULL,
    tags text[] NOT NULL,
    more boolean NOT NULL,
    key text,
    CONSTRAINT events_id_key UNIQUE (id),
    CONSTRAINT events_stream_version_key UNIQUE (stream, version)
);

-- Each stream's current version (deletion never lowers it).
CREATE TABLE {s}.streams (
    stream text PRIMARY KEY,
    version bigint NOT NULL
);

-- What is deleted of a stream: versions below `before`; a tombstone takes no more appends.
CREATE TABLE {s}.deletions (
    stream text PRIMARY KEY,
    before bigint NOT NULL,
    tombstone boolean NOT NULL
);

-- The newest snapshots of each stream (three kept).
CREATE TABLE {s}.snapshots (
    stream text NOT NULL,
    version bigint NOT NULL,
    time bigint NOT NULL,
    state text NOT NULL,
    PRIMARY KEY (stream, version)
);

-- Idempotency keys: the first seq of the append each was used for.
CREATE TABLE {s}.keys (
    key text PRIMARY KEY,
    first_seq bigint NOT NULL
);

-- The appender's one round trip: the requests of a group, checked and written one after the
-- other under the head lock, each checked before it writes. A request whose checks do not all
-- pass plainly (a key or an id already in the log, a tombstone, a version that does not match)
-- writes nothing and is answered 0: the caller decides it (retry, conflict, error) in a
-- transaction of its own. Returns, per request, its first seq (0: refused) followed by each of
-- its parts' new versions.
--
-- Requests: r_key. Parts, in order: p_req (request, from 1), p_stream, p_expected (-1 any,
-- -2 no stream, -3 exists, else the exact version), p_count. Events, in order: e_id, e_type,
-- e_data, e_meta, e_tags (an array literal of text, `{"a=1","b=2"}`).
CREATE FUNCTION {s}.append_batch(
    r_key text[],
    p_req integer[], p_stream text[], p_expected bigint[], p_count integer[],
    e_id text[], e_type text[], e_data text[], e_meta text[], e_tags text[]
) RETURNS bigint[] LANGUAGE plpgsql AS $fn$
DECLARE
    h bigint;
    h0 bigint;
    t bigint;
    nparts integer := coalesce(array_length(p_req, 1), 0);
    p integer := 1;
    e integer := 1;
    pp integer;
    ev integer;
    total integer;
    written integer;
    v bigint;
    ok boolean;
    versions bigint[];
    out bigint[] := '{}';
BEGIN
    SELECT seq, last_time INTO h, t FROM {s}.head FOR UPDATE;
    h0 := h;
    t := greatest(t, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    FOR r IN 1..coalesce(array_length(r_key, 1), 0) LOOP
        pp := p;
        total := 0;
        WHILE pp <= nparts AND p_req[pp] = r LOOP
            total := total + p_count[pp];
            pp := pp + 1;
        END LOOP;
        ok := NOT (r_key[r] IS NOT NULL AND EXISTS (SELECT 1 FROM {s}.keys WHERE key = r_key[r]))
            AND NOT EXISTS (SELECT 1 FROM {s}.events WHERE id = ANY (e_id[e:e + total - 1]));
        IF ok THEN
            FOR i IN p..pp - 1 LOOP
                v := coalesce((SELECT version FROM {s}.streams WHERE stream = p_stream[i]), 0);
                IF EXISTS (SELECT 1 FROM {s}.deletions WHERE stream = p_stream[i] AND tombstone)
                   OR NOT (p_expected[i] = -1 OR (p_expected[i] = -2 AND v = 0)
                           OR (p_expected[i] = -3 AND v > 0) OR p_expected[i] = v) THEN
                    ok := false;
                    EXIT;
                END IF;
            END LOOP;
        END IF;
        IF ok THEN
            written := 0;
            ev := e;
            versions := '{}';
            FOR i IN p..pp - 1 LOOP
                v := coalesce((SELECT version FROM {s}.streams WHERE stream = p_stream[i]), 0);
                INSERT INTO {s}.events (seq, id, stream, version, type, time, data, meta, tags, more, key)
                SELECT h + written + u.k, u.id, p_stream[i], v + u.k, u.type, t, u.data::json,
                       u.meta::json, u.tags::text[], written + u.k < total,
                       CASE WHEN written + u.k = 1 THEN r_key[r] END
                FROM unnest(e_id[ev:ev + p_count[i] - 1], e_type[ev:ev + p_count[i] - 1],
                            e_data[ev:ev + p_count[i] - 1], e_meta[ev:ev + p_count[i] - 1],
                            e_tags[ev:ev + p_count[i] - 1])
                     WITH ORDINALITY AS u(id, type, data, meta, tags, k);
                INSERT INTO {s}.streams AS s (stream, version) VALUES (p_stream[i], v + p_count[i])
                ON CONFLICT (stream) DO UPDATE SET version = excluded.version;
                versions := versions || (v + p_count[i]);
                written := written + p_count[i];
                ev := ev + p_count[i];
            END LOOP;
            IF r_key[r] IS NOT NULL THEN
                INSERT INTO {s}.keys (key, first_seq) VALUES (r_key[r], h + 1);
            END IF;
            out := out || (h + 1) || versions;
            h := h + total;
        ELSE
            out := out || 0::bigint || array_fill(0::bigint, ARRAY[pp - p]);
        END IF;
        p := pp;
        e := e + total;
    END LOOP;
    IF h > h0 THEN
        UPDATE {s}.head SET seq = h, last_time = t;
        PERFORM pg_notify('{n}', h::text);
    END IF;
    RETURN out;
END
$fn$;
