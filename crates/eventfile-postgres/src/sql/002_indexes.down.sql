DROP INDEX {s}.events_type;
DROP INDEX {s}.events_time;
DROP INDEX {s}.events_tags;
DROP INDEX {s}.events_correlation;
DROP INDEX {s}.events_causation;
DROP INDEX {s}.events_actor;
