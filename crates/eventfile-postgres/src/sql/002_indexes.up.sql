-- (stream, version) and id are indexed by their constraints.
CREATE INDEX events_type ON {s}.events (type, seq);
CREATE INDEX events_time ON {s}.events (time);
CREATE INDEX events_tags ON {s}.events USING gin (tags);
CREATE INDEX events_correlation ON {s}.events ((meta ->> 'correlation_id'));
CREATE INDEX events_causation ON {s}.events ((meta ->> 'causation_id'));
CREATE INDEX events_actor ON {s}.events ((meta ->> 'actor'));
