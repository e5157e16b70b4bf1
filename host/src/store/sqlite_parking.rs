//! Parked and skipped events of projection generations on SQLite (`read-models.db`), for
//! [`super::sqlite_read_models`]; see [`ReadModels::park`](super::ReadModels::park).

use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Row, Sqlite, Transaction};

use super::StoreError;
use super::read_models::{FailedEvent, GenerationId, SkippedEvent};

fn failed(row: &SqliteRow, from: usize) -> FailedEvent {
    FailedEvent {
        position: row.get::<i64, _>(from) as u64,
        stream: row.get(from + 1),
        event_type: row.get(from + 2),
        error: row.get(from + 3),
        at_micros: row.get(from + 4),
    }
}

pub(super) async fn park(pool: &SqlitePool, id: &GenerationId, event: &FailedEvent) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO projection_parked (domain, name, generation, position, stream, event_type, error, at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (domain, name, generation) DO UPDATE SET \
         position = excluded.position, stream = excluded.stream, event_type = excluded.event_type, \
         error = excluded.error, at = excluded.at",
    )
    .bind(&id.domain)
    .bind(&id.name)
    .bind(id.generation as i64)
    .bind(event.position as i64)
    .bind(&event.stream)
    .bind(&event.event_type)
    .bind(&event.error)
    .bind(event.at_micros)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn unpark(pool: &SqlitePool, id: &GenerationId) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM projection_parked WHERE domain = ? AND name = ? AND generation = ?")
        .bind(&id.domain)
        .bind(&id.name)
        .bind(id.generation as i64)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn parked(pool: &SqlitePool) -> Result<Vec<(GenerationId, FailedEvent)>, StoreError> {
    let rows = sqlx::query(
        "SELECT p.domain, p.name, p.generation, p.position, p.stream, p.event_type, p.error, p.at \
         FROM projection_parked p JOIN projection_generations g \
         ON g.domain = p.domain AND g.name = p.name AND g.generation = p.generation \
         ORDER BY p.domain, p.name, p.generation",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let id = GenerationId { domain: row.get(0), name: row.get(1), generation: row.get::<i64, _>(2) as u64 };
            (id, failed(row, 3))
        })
        .collect())
}

pub(super) async fn skipped(
    pool: &SqlitePool,
    domain: &str,
    name: &str,
    limit: u32,
) -> Result<Vec<SkippedEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT generation, position, stream, event_type, error, at, skipped_by FROM projection_skipped \
         WHERE domain = ? AND name = ? ORDER BY at, generation, position LIMIT ?",
    )
    .bind(domain)
    .bind(name)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| SkippedEvent { generation: row.get::<i64, _>(0) as u64, event: failed(row, 1), by: row.get(6) })
        .collect())
}

pub(super) async fn record_skip(
    tx: &mut Transaction<'static, Sqlite>,
    id: &GenerationId,
    skipped: &SkippedEvent,
) -> Result<(), StoreError> {
    let event = &skipped.event;
    sqlx::query(
        "INSERT OR REPLACE INTO projection_skipped (domain, name, generation, position, stream, event_type, error, \
         skipped_by, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id.domain)
    .bind(&id.name)
    .bind(id.generation as i64)
    .bind(event.position as i64)
    .bind(&event.stream)
    .bind(&event.event_type)
    .bind(&event.error)
    .bind(&skipped.by)
    .bind(event.at_micros)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM projection_parked WHERE domain = ? AND name = ? AND generation = ?")
        .bind(&id.domain)
        .bind(&id.name)
        .bind(id.generation as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
