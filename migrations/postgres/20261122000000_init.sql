-- The PostgreSQL backend: one database (or one schema of it) shared by every Cairn host.
-- Times are microseconds since the Unix epoch (BIGINT), as on SQLite, so both backends answer alike.

-- The event store: every domain's streams in one global order. Appenders serialise on the one
-- row of `event_log_head` (SELECT ... FOR UPDATE) and take positions after it inside their
-- transaction, so positions commit in order: see store/postgres/mod.rs for the argument.
CREATE TABLE events (
    position    BIGINT PRIMARY KEY,
    domain      TEXT   NOT NULL,
    stream      TEXT   NOT NULL,
    version     BIGINT NOT NULL CHECK (version >= 1),
    event_type  TEXT   NOT NULL,
    data        TEXT   NOT NULL,
    metadata    TEXT   NOT NULL,
    recorded_at BIGINT NOT NULL,
    UNIQUE (domain, stream, version)
);
CREATE INDEX events_domain_position ON events (domain, position);

-- The last committed global position; its row lock is the appenders' turnstile.
CREATE TABLE event_log_head (
    id       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    position BIGINT  NOT NULL
);
INSERT INTO event_log_head (id, position) VALUES (TRUE, 0);

-- Responses remembered under a client's Idempotency-Key, written in the same transaction as the
-- events they describe (so a key holds across every host).
CREATE TABLE idempotency_keys (
    scope        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (scope, key)
);

-- The plugin registry: immutable, content-addressed versions (with their bytes, so a host that
-- lacks a component fetches it from here), the active version per domain, and the history.
CREATE TABLE plugin_versions (
    digest      TEXT   PRIMARY KEY,
    domain      TEXT   NOT NULL,
    version     TEXT   NOT NULL,
    component   BYTEA  NOT NULL,
    size        BIGINT NOT NULL,
    description TEXT   NOT NULL,
    uploaded_at BIGINT NOT NULL,
    wanted_at   BIGINT,  -- last time an activation asked every host to compile it
    UNIQUE (domain, version)
);

CREATE TABLE active_plugins (
    domain       TEXT   PRIMARY KEY,
    digest       TEXT   NOT NULL REFERENCES plugin_versions (digest),
    activated_at BIGINT NOT NULL
);

CREATE TABLE plugin_activations (
    id              BIGSERIAL PRIMARY KEY,
    domain          TEXT   NOT NULL,
    digest          TEXT   NOT NULL,
    previous_digest TEXT,
    action          TEXT   NOT NULL CHECK (action IN ('activate', 'rollback')),
    at              BIGINT NOT NULL
);
CREATE INDEX plugin_activations_by_domain ON plugin_activations (domain, id);

-- Which host has compiled which version. A host is live while it holds the lease `host:<id>`;
-- an activation waits (a bounded time) until every live host has the version compiled, so the
-- switch then takes effect everywhere at once.
CREATE TABLE host_plugins (
    host   TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (host, digest)
);

-- Asynchronous and delayed commands. A job runs under the idempotency key `async-<id>`, so a
-- job run twice (a crashed host's job taken again) is applied once.
CREATE TABLE command_queue (
    id             TEXT    PRIMARY KEY,
    domain         TEXT    NOT NULL,
    command        TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    correlation_id TEXT,
    state          TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'rejected', 'failed')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    not_before     BIGINT  NOT NULL,
    last_error     TEXT,
    result_status  INTEGER,
    result         TEXT,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);
CREATE INDEX command_queue_due ON command_queue (state, not_before);

-- Gateway calls enqueued by command handlers, written in the same transaction as the command's
-- events. `next_at` is also the claim lease (see store/outbox.rs).
CREATE TABLE gateway_outbox (
    id         TEXT    PRIMARY KEY,
    domain     TEXT    NOT NULL,
    service    TEXT    NOT NULL,
    request    TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    BIGINT  NOT NULL,
    last_error TEXT,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);
CREATE INDEX gateway_outbox_due ON gateway_outbox (state, next_at);
CREATE INDEX gateway_outbox_done ON gateway_outbox (state, updated_at);

-- Read models: documents per projection generation (`<domain>/<projection>/<generation>`), and
-- the generations with their checkpoints. A projector's writes and its checkpoint commit together.
CREATE TABLE documents (
    namespace  TEXT  COLLATE "C" NOT NULL,
    collection TEXT  COLLATE "C" NOT NULL,
    id         TEXT  COLLATE "C" NOT NULL,  -- byte order, as pages are sorted (and as on SQLite)
    body       JSONB NOT NULL,
    PRIMARY KEY (namespace, collection, id)
);

CREATE TABLE projection_generations (
    domain         TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    generation     BIGINT  NOT NULL,
    version        INTEGER NOT NULL,
    plugin_version TEXT    NOT NULL,
    role           TEXT    NOT NULL CHECK (role IN ('building', 'active', 'retired')),
    position       BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    PRIMARY KEY (domain, name, generation)
);

-- The last generation number given to each projection. Numbers are never reused, even after a
-- generation is dropped: a halted runner's late commit can then never land in a newer one.
CREATE TABLE projection_counters (
    domain TEXT   NOT NULL,
    name   TEXT   NOT NULL,
    last   BIGINT NOT NULL,
    PRIMARY KEY (domain, name)
);

-- Work that must run on exactly one host at a time (the projection runners): a lease renewed by
-- its holder, taken over by another host once it has expired. Times are the database's clock.
CREATE TABLE leases (
    name       TEXT        PRIMARY KEY,
    holder     TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
