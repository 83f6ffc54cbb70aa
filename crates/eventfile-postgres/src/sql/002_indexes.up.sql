-- (stream, version) and id are indexed by their constraints.
CREATE INDEX events_type ON {s}.events (type, seq);
-- Commit times never decrease along seq, so a BRIN index answers time ranges at almost no cost
-- per append.
CREATE INDEX events_time ON {s}.events USING brin (time);
CREATE INDEX events_tags ON {s}.events USING gin (tags);
-- Most events carry none of these keys: partial indexes cost those nothing.
CREATE INDEX events_correlation ON {s}.events ((meta ->> 'correlation_id'))
    WHERE (meta ->> 'correlation_id') IS NOT NULL;
CREATE INDEX events_causation ON {s}.events ((meta ->> 'causation_id'))
    WHERE (meta ->> 'causation_id') IS NOT NULL;
CREATE INDEX events_actor ON {s}.events ((meta ->> 'actor'))
    WHERE (meta ->> 'actor') IS NOT NULL;
