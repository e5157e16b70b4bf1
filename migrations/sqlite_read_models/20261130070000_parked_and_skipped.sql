-- Poison events: a generation parked on an event it keeps failing on (its `stop` policy), and
-- the events generations skipped (their `skip` policy, or an operator), kept for operators.
CREATE TABLE projection_parked (
    domain     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    generation INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    stream     TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    error      TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (domain, name, generation)
);

CREATE TABLE projection_skipped (
    domain     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    generation INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    stream     TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    error      TEXT    NOT NULL,
    skipped_by TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (domain, name, generation, position)
);
