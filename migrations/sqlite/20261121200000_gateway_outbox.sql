-- Gateway calls enqueued by command handlers, written in the same transaction as the command's
-- events and made by a worker after the commit. `next_at` is also the claim lease: a worker
-- pushes it forward when it takes a message, so a crashed worker's message is taken again.
CREATE TABLE gateway_outbox (
    id         TEXT    PRIMARY KEY,
    domain     TEXT    NOT NULL,
    service    TEXT    NOT NULL,
    request    TEXT    NOT NULL CHECK (json_valid(request)),
    state      TEXT    NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX gateway_outbox_due ON gateway_outbox (state, next_at);
