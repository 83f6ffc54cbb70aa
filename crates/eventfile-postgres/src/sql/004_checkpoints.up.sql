CREATE TABLE {s}.checkpoints (
    name     text   PRIMARY KEY,
    position bigint NOT NULL CHECK (position >= 0),
    error    text,
    time     bigint NOT NULL
);
