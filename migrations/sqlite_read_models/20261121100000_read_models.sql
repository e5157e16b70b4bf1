-- Read models (read-models.db, beside cairn.db): documents per projection generation, and the
-- generations with their checkpoints. A projector's document writes and its checkpoint update
-- commit in one transaction.
CREATE TABLE documents (
    namespace  TEXT NOT NULL,  -- <domain>/<projection>/<generation>
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       TEXT NOT NULL CHECK (json_valid(body)),
    PRIMARY KEY (namespace, collection, id)
) WITHOUT ROWID;

CREATE TABLE projection_generations (
    domain         TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    generation     INTEGER NOT NULL,
    version        INTEGER NOT NULL,  -- the projection version it is built with
    plugin_version TEXT    NOT NULL,  -- the plugin version that runs it
    role           TEXT    NOT NULL CHECK (role IN ('building', 'active', 'retired')),
    position       INTEGER NOT NULL,  -- checkpoint: every event of the domain at or below it is applied
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (domain, name, generation)
);
