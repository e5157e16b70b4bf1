-- Asynchronous and delayed commands. A job runs under the idempotency key `async-<id>`, so a
-- crash between committing its events and recording its outcome cannot apply it twice: the rerun
-- finds the stored answer.
CREATE TABLE command_queue (
    id             TEXT    PRIMARY KEY,
    domain         TEXT    NOT NULL,
    command        TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    correlation_id TEXT,
    state          TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'rejected', 'failed')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    not_before     INTEGER NOT NULL,
    last_error     TEXT,
    result_status  INTEGER,
    result         TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX command_queue_due ON command_queue (state, not_before);
