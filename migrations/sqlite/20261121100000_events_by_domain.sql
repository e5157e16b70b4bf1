-- Projection runners read one domain's events in global order from a checkpoint.
CREATE INDEX events_domain_position ON events (domain, position);
