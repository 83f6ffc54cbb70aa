-- The store's identity. The head is no row: it is the newest seq in `events`. Writers are
-- serialised by a transaction-scoped advisory lock (see `append_batch`), which writes nothing,
-- where a head row locked and updated by every append would cost two more row versions, WAL
-- records and dead tuples per commit.
CREATE TABLE {s}.store (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    store_id text NOT NULL
);
INSERT INTO {s}.store (store_id) VALUES (md5(random()::text || clock_timestamp()::text));

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

-- The lock every writer of the schema takes first, in its transaction: appends, deletions,
-- snapshots and imports are serialised, so seqs are committed in order.
CREATE FUNCTION {s}.lock_writers() RETURNS void LANGUAGE sql AS $fn$
    SELECT pg_advisory_xact_lock(hashtextextended('eventfile {n}', 0))
$fn$;
