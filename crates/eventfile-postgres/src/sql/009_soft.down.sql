ALTER TABLE {s}.deletions DROP COLUMN soft;
