-- `append_batch` stops at the first request it refuses. It used to answer that one 0 and go on
-- writing the requests after it; the caller then decided the refused one alone, after them, so
-- a later request could change its answer (a request expecting a stream that a later one
-- created passed instead of conflicting). Now the requests after a refusal get no answer and
-- write nothing, and the caller sends them again once the refused one is decided. Otherwise as
-- in migration 7.
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
                LEFT JOIN LATERAL (SELECT ev.version FROM {s}.events ev WHERE ev.stream = q.stream
                                   ORDER BY ev.version DESC LIMIT 1) st ON true
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
                LEFT JOIN LATERAL (SELECT ev.version FROM {s}.events ev WHERE ev.stream = q.stream
                                   ORDER BY ev.version DESC LIMIT 1) st ON true
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
            -- Refused: answered 0, and the requests after it are not attempted (no answer):
            -- the caller decides this one alone before it sends them again, so that each is
            -- judged after the ones before it, as `append_requests` promises.
            out := out || 0::bigint || array_fill(0::bigint, ARRAY[pp - p]);
            EXIT;
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
