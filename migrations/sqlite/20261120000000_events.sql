-- The event store: every domain's streams in one global order.
-- `position` is the global position. On SQLite a single writer task assigns it in commit order,
-- so a reader of the global log never sees a later position before an earlier one commits.
CREATE TABLE events (
    position    INTEGER PRIMARY KEY,
    domain      TEXT    NOT NULL,
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    event_type  TEXT    NOT NULL,
    data        TEXT    NOT NULL CHECK (json_valid(data)),
    metadata    TEXT    NOT NULL CHECK (json_valid(metadata)),
    recorded_at INTEGER NOT NULL,
    UNIQUE (domain, stream, version)
);

-- Responses remembered under a client's Idempotency-Key, written in the same transaction as the
-- events they describe.
CREATE TABLE idempotency_keys (
    scope        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
