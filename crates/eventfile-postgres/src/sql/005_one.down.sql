DROP FUNCTION {s}.append_one(text, text, bigint, boolean, text[], text[], text[], text[], text[]);
