-- Back to the functions of migrations 1, 3 and 6, which read and write every stream's version
-- in `streams`; the versions lone appends did not write are refilled from the log first. The
-- functions themselves are those migrations' own texts, which `migrate.rs` runs after this and
-- after migration 3's down step: both drop a function those texts create without `OR REPLACE`.
UPDATE {s}.streams st SET version = v.version
    FROM (SELECT ev.stream, max(ev.version) AS version FROM {s}.events ev GROUP BY ev.stream) v
    WHERE v.stream = st.stream;
DROP FUNCTION {s}.append_batch(text[], integer[], text[], bigint[], integer[], text[], text[], text[], text[], text[]);
