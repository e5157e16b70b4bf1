-- Aggregate snapshots: a stream's folded state at a version, keyed by the digest of the component
-- that folded it (a state is only ever read back by that same code). Written in the transaction of
-- the events that produce its version, or ahead of an activation by a shadow replay; a snapshot
-- already stored under its key is left as it is (ON CONFLICT DO NOTHING).
-- The newest version at or below a bound is one seek on the primary key. `state` is TEXT, not
-- JSONB: the plugin's JSON text as it returned it, which may hold `\u0000` (JSONB refuses it).
CREATE TABLE snapshots (
    domain     TEXT   NOT NULL,
    stream     TEXT   NOT NULL,
    digest     TEXT   NOT NULL,
    version    BIGINT NOT NULL CHECK (version >= 1),
    state      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (domain, stream, digest, version)
);
