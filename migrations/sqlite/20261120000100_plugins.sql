-- The plugin registry: immutable, content-addressed versions (the bytes too), the active version
-- of each domain, and the history of activations and rollbacks.
CREATE TABLE plugin_versions (
    digest      TEXT    PRIMARY KEY,
    domain      TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    component   BLOB    NOT NULL,
    size        INTEGER NOT NULL,
    description TEXT    NOT NULL CHECK (json_valid(description)),
    uploaded_at INTEGER NOT NULL,
    UNIQUE (domain, version)
) WITHOUT ROWID;

CREATE TABLE active_plugins (
    domain       TEXT    PRIMARY KEY,
    digest       TEXT    NOT NULL REFERENCES plugin_versions (digest),
    activated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE plugin_activations (
    id              INTEGER PRIMARY KEY,
    domain          TEXT    NOT NULL,
    digest          TEXT    NOT NULL,
    previous_digest TEXT,
    action          TEXT    NOT NULL CHECK (action IN ('activate', 'rollback')),
    at              INTEGER NOT NULL
);
CREATE INDEX plugin_activations_by_domain ON plugin_activations (domain, id);
