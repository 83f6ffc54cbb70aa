DROP FUNCTION {s}.append_batch(text[], integer[], text[], bigint[], integer[], text[], text[], text[], text[], text[]);
DROP FUNCTION {s}.lock_writers();
DROP TABLE {s}.keys;
DROP TABLE {s}.snapshots;
DROP TABLE {s}.deletions;
DROP TABLE {s}.streams;
DROP TABLE {s}.events;
DROP TABLE {s}.store;
