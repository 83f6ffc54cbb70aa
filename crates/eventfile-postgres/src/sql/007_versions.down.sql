-- Back to the functions of migrations 1, 3 and 6, which read and write every stream's version
-- in `streams`; the versions lone appends did not write are refilled from the log first.
UPDATE {s}.streams st SET version = v.version
    FROM (SELECT ev.stream, max(ev.version) AS version FROM {s}.events ev GROUP BY ev.stream) v
    WHERE v.stream = st.stream;

-- The appender's one round trip: the requests of a group, checked and written one after the
-- other under the writers' lock, each checked before it writes. A request whose checks do not
-- all pass plainly (a key or an id already in the log, a tombstone, a version that does not
-- match) writes nothing and is answered 0: the caller decides it (retry, conflict, error) in a
-- transaction of its own. Returns, per request, its first seq (0: refused) followed by each of
-- its parts' new versions.
--
-- Requests: r_key. Parts, in order: p_req (request, from 1), p_stream, p_expected (-1 any,
-- -2 no stream, -3 exists, else the exact version), p_count. Events, in order: e_id, e_type,
-- e_data, e_meta, e_tags (an array literal of text, `{"a=1","b=2"}`).
CREATE OR REPLACE FUNCTION {s}.append_batch(
    r_key text[],
    p_req integer[], p_stream text[], p_expected bigint[], p_count integer[],
    e_id text[], e_type text[], e_data text[], e_meta text[], e_tags text[]
) RETURNS bigint[] LANGUAGE plpgsql
-- Every statement here finds its rows by an index. Plans are cached per connection, made when
-- the tables may still be nearly empty: a sequential scan chosen then would grow with the log
-- (measured: a 100-event append went from 4 to 12 ms over 1,200 events).
SET enable_seqscan = off
AS $fn$
DECLARE
    h bigint;
    h0 bigint;
    t bigint;
    nparts integer := coalesce(array_length(p_req, 1), 0);
    p integer := 1;
    e integer := 1;
    pp integer;
    total integer;
    ok boolean;
    versions bigint[];
    out bigint[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('eventfile {n}', 0));
    SELECT ev.seq, ev.time INTO h, t FROM {s}.events ev ORDER BY ev.seq DESC LIMIT 1;
    h := coalesce(h, 0);
    h0 := h;
    t := greatest(coalesce(t, 0), (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    FOR r IN 1..coalesce(array_length(r_key, 1), 0) LOOP
        pp := p;
        total := 0;
        WHILE pp <= nparts AND p_req[pp] = r LOOP
            total := total + p_count[pp];
            pp := pp + 1;
        END LOOP;
        ok := NOT EXISTS (SELECT 1 FROM {s}.keys k WHERE k.key = r_key[r])
            AND NOT EXISTS (SELECT 1 FROM {s}.events ev WHERE ev.id = ANY (e_id[e:e + total - 1]))
            AND NOT EXISTS (
                SELECT 1 FROM unnest(p_stream[p:pp - 1], p_expected[p:pp - 1]) AS q(stream, expected)
                LEFT JOIN {s}.streams st ON st.stream = q.stream
                LEFT JOIN {s}.deletions d ON d.stream = q.stream
                WHERE coalesce(d.tombstone, false)
                   OR NOT (q.expected = -1
                           OR (q.expected = -2 AND coalesce(st.version, 0) = 0)
                           OR (q.expected = -3 AND coalesce(st.version, 0) > 0)
                           OR q.expected = coalesce(st.version, 0)));
        IF ok THEN
            WITH q AS (
                SELECT q.i, q.stream, q.cnt, coalesce(st.version, 0) AS v,
                       sum(q.cnt) OVER (ORDER BY q.i) - q.cnt AS done
                FROM unnest(p_stream[p:pp - 1], p_count[p:pp - 1]) WITH ORDINALITY AS q(stream, cnt, i)
                LEFT JOIN {s}.streams st ON st.stream = q.stream
            ), written AS (
                INSERT INTO {s}.events (seq, id, stream, version, type, time, data, meta, tags, more, key)
                SELECT h + u.k, u.id, q.stream, q.v + (u.k - q.done), u.type, t, u.data::json,
                       u.meta::json, u.tags::text[], u.k < total,
                       CASE WHEN u.k = 1 THEN r_key[r] END
                FROM unnest(e_id[e:e + total - 1], e_type[e:e + total - 1], e_data[e:e + total - 1],
                            e_meta[e:e + total - 1], e_tags[e:e + total - 1])
                     WITH ORDINALITY AS u(id, type, data, meta, tags, k)
                JOIN q ON u.k > q.done AND u.k <= q.done + q.cnt
            ), versioned AS (
                INSERT INTO {s}.streams AS st (stream, version) SELECT q.stream, q.v + q.cnt FROM q
                ON CONFLICT (stream) DO UPDATE SET version = excluded.version
            ), keyed AS (
                INSERT INTO {s}.keys (key, first_seq) SELECT r_key[r], h + 1 WHERE r_key[r] IS NOT NULL
            )
            SELECT array_agg(q.v + q.cnt ORDER BY q.i) INTO versions FROM q;
            out := out || (h + 1) || versions;
            h := h + total;
        ELSE
            out := out || 0::bigint || array_fill(0::bigint, ARRAY[pp - p]);
        END IF;
        p := pp;
        e := e + total;
    END LOOP;
    IF h > h0 THEN
        PERFORM pg_notify('{n}', h::text);
    END IF;
    RETURN out;
END
$fn$;

-- The set-based twin of `append_batch` for a group whose requests touch no common stream,
-- key or event id (the appender checks that): every request is checked and written by the
-- same two statements, whatever the group's size, rather than two statements per request.
-- Same parameters and result as `append_batch`; a request refused writes nothing and does not
-- move the seqs of the others.
CREATE OR REPLACE FUNCTION {s}.append_group(
    r_key text[],
    p_req integer[], p_stream text[], p_expected bigint[], p_count integer[],
    e_id text[], e_type text[], e_data text[], e_meta text[], e_tags text[]
) RETURNS bigint[] LANGUAGE plpgsql
-- Every statement here finds its rows by an index. Plans are cached per connection, made when
-- the tables may still be nearly empty: a sequential scan chosen then would grow with the log
-- (measured: a 100-event append went from 4 to 12 ms over 1,200 events).
SET enable_seqscan = off
AS $fn$
DECLARE
    h bigint;
    t bigint;
    new_head bigint;
    out bigint[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('eventfile {n}', 0));
    SELECT ev.seq, ev.time INTO h, t FROM {s}.events ev ORDER BY ev.seq DESC LIMIT 1;
    h := coalesce(h, 0);
    t := greatest(coalesce(t, 0), (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    WITH parts AS (
        SELECT p.i AS part, p.req, p.stream, p.expected, p.cnt,
               coalesce(st.version, 0) AS v, coalesce(d.tombstone, false) AS tomb
        FROM unnest(p_req, p_stream, p_expected, p_count) WITH ORDINALITY AS p(req, stream, expected, cnt, i)
        LEFT JOIN {s}.streams st ON st.stream = p.stream
        LEFT JOIN {s}.deletions d ON d.stream = p.stream
    ), bad AS (
        SELECT p.req FROM parts p
        WHERE p.tomb OR NOT (p.expected = -1 OR (p.expected = -2 AND p.v = 0)
                             OR (p.expected = -3 AND p.v > 0) OR p.expected = p.v)
        UNION
        SELECT r.req FROM unnest(r_key) WITH ORDINALITY AS r(key, req)
        JOIN {s}.keys k ON k.key = r.key
        UNION
        SELECT p.req FROM {s}.events ev
        JOIN unnest(e_id) WITH ORDINALITY AS e(id, k) ON ev.id = e.id
        JOIN (SELECT p.req, sum(p.cnt) OVER (ORDER BY p.i) - p.cnt AS ev_from, p.cnt
              FROM unnest(p_req, p_count) WITH ORDINALITY AS p(req, cnt, i)) p
          ON e.k > p.ev_from AND e.k <= p.ev_from + p.cnt
    )
    SELECT array_agg(x) INTO out FROM (
        SELECT r.req FROM generate_series(1, coalesce(array_length(r_key, 1), 0)) AS r(req)
        WHERE r.req NOT IN (SELECT req FROM bad)
    ) AS y(x);
    -- `out` now holds the requests that passed; write them.
    WITH parts AS (
        SELECT p.i AS part, p.req, p.stream, p.cnt, coalesce(st.version, 0) AS v,
               sum(p.cnt) OVER (ORDER BY p.i) - p.cnt AS ev_from
        FROM unnest(p_req, p_stream, p_count) WITH ORDINALITY AS p(req, stream, cnt, i)
        LEFT JOIN {s}.streams st ON st.stream = p.stream
    ), reqs AS (
        SELECT q.req, r_key[q.req] AS key, q.total, q.ev_from, q.req = ANY (coalesce(out, '{}')) AS ok
        FROM (SELECT parts.req, sum(parts.cnt) AS total, min(parts.ev_from) AS ev_from
              FROM parts GROUP BY parts.req) q
    ), placed AS (
        SELECT reqs.*, h + coalesce(sum(reqs.total) FILTER (WHERE reqs.ok)
                                    OVER (ORDER BY reqs.req ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                       AS before
        FROM reqs
    ), written AS (
        INSERT INTO {s}.events (seq, id, stream, version, type, time, data, meta, tags, more, key)
        SELECT pl.before + (u.k - pl.ev_from), u.id, pa.stream, pa.v + (u.k - pa.ev_from), u.type, t,
               u.data::json, u.meta::json, u.tags::text[], u.k - pl.ev_from < pl.total,
               CASE WHEN u.k - pl.ev_from = 1 THEN pl.key END
        FROM unnest(e_id, e_type, e_data, e_meta, e_tags) WITH ORDINALITY AS u(id, type, data, meta, tags, k)
        JOIN parts pa ON u.k > pa.ev_from AND u.k <= pa.ev_from + pa.cnt
        JOIN placed pl ON pl.req = pa.req AND pl.ok
    ), versioned AS (
        INSERT INTO {s}.streams AS st (stream, version)
        SELECT pa.stream, pa.v + pa.cnt FROM parts pa JOIN placed pl ON pl.req = pa.req AND pl.ok
        ON CONFLICT (stream) DO UPDATE SET version = excluded.version
    ), keyed AS (
        INSERT INTO {s}.keys (key, first_seq)
        SELECT pl.key, pl.before + 1 FROM placed pl WHERE pl.ok AND pl.key IS NOT NULL
    )
    SELECT (SELECT array_agg(x.val ORDER BY x.req, x.ord) FROM (
                SELECT pl.req, 0 AS ord, CASE WHEN pl.ok THEN pl.before + 1 ELSE 0 END AS val FROM placed pl
                UNION ALL
                SELECT pa.req, pa.part, CASE WHEN pl.ok THEN pa.v + pa.cnt ELSE 0 END
                FROM parts pa JOIN placed pl ON pl.req = pa.req) x),
           h + coalesce((SELECT sum(pl.total) FROM placed pl WHERE pl.ok), 0)
    INTO out, new_head;
    IF new_head > h THEN
        PERFORM pg_notify('{n}', new_head::text);
    END IF;
    RETURN out;
END
$fn$;

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
