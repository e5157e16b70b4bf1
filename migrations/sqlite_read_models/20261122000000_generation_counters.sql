-- The last generation number given to each projection. Numbers are never reused, even after a
-- generation is dropped: a halted runner's late commit can then never land in a newer one.
CREATE TABLE projection_counters (
    domain TEXT    NOT NULL,
    name   TEXT    NOT NULL,
    last   INTEGER NOT NULL,
    PRIMARY KEY (domain, name)
) WITHOUT ROWID;
