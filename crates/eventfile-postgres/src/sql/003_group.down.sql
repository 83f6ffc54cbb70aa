DROP FUNCTION {s}.append_group(text[], integer[], text[], bigint[], integer[], text[], text[], text[], text[], text[]);
