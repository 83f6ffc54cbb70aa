DROP TABLE {s}.checkpoints;
