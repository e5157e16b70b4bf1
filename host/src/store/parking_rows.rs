//! What the parked- and skipped-event stores of both read-model backends share: the SQL where
//! the dialects agree (SQLite takes PostgreSQL's `$n` placeholders) and how a row becomes a
//! [`FailedEvent`], a parked generation or a [`SkippedEvent`].

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::read_models::{FailedEvent, GenerationId, SkippedEvent};

/// Parked events of the generations that still exist.
pub(crate) const PARKED: &str = "SELECT p.domain, p.name, p.generation, p.position, p.stream, p.event_type, p.error, p.at \
     FROM projection_parked p JOIN projection_generations g \
     ON g.domain = p.domain AND g.name = p.name AND g.generation = p.generation \
     ORDER BY p.domain, p.name, p.generation";

/// Skipped events of one projection (`$1` domain, `$2` name), oldest first, at most `$3`.
pub(crate) const SKIPPED: &str = "SELECT generation, position, stream, event_type, error, at, skipped_by FROM projection_skipped \
     WHERE domain = $1 AND name = $2 ORDER BY at, generation, position LIMIT $3";

/// Drops the parked event of one generation (`$1` domain, `$2` name, `$3` generation).
pub(crate) const UNPARK: &str = "DELETE FROM projection_parked WHERE domain = $1 AND name = $2 AND generation = $3";

/// The failed event in the five columns from `from` (position, stream, type, error, at).
pub(crate) fn failed<'r, R: Row>(row: &'r R, from: usize) -> FailedEvent
where
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    FailedEvent {
        position: row.get::<i64, _>(from) as u64,
        stream: row.get(from + 1),
        event_type: row.get(from + 2),
        error: row.get(from + 3),
        at_micros: row.get(from + 4),
    }
}

/// A row of [`PARKED`].
pub(crate) fn parked<'r, R: Row>(row: &'r R) -> (GenerationId, FailedEvent)
where
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let id = GenerationId { domain: row.get(0), name: row.get(1), generation: row.get::<i64, _>(2) as u64 };
    (id, failed(row, 3))
}

/// A row of [`SKIPPED`].
pub(crate) fn skipped<'r, R: Row>(row: &'r R) -> SkippedEvent
where
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    SkippedEvent { generation: row.get::<i64, _>(0) as u64, event: failed(row, 1), by: row.get(6) }
}
