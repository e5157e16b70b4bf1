//! Parked and skipped events of projection generations on SQLite (`read-models.db`), for
//! [`super::sqlite_read_models`]; see [`ReadModels::park`](super::ReadModels::park).

use sqlx::sqlite::SqlitePool;
use sqlx::{Sqlite, Transaction};

use super::read_models::{FailedEvent, GenerationId, SkippedEvent};
use super::{StoreError, parking_rows};

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
    sqlx::query(parking_rows::UNPARK).bind(&id.domain).bind(&id.name).bind(id.generation as i64).execute(pool).await?;
    Ok(())
}

pub(super) async fn parked(pool: &SqlitePool) -> Result<Vec<(GenerationId, FailedEvent)>, StoreError> {
    let rows = sqlx::query(parking_rows::PARKED).fetch_all(pool).await?;
    Ok(rows.iter().map(parking_rows::parked).collect())
}

pub(super) async fn skipped(
    pool: &SqlitePool,
    domain: &str,
    name: &str,
    limit: u32,
) -> Result<Vec<SkippedEvent>, StoreError> {
    let rows =
        sqlx::query(parking_rows::SKIPPED).bind(domain).bind(name).bind(i64::from(limit)).fetch_all(pool).await?;
    Ok(rows.iter().map(parking_rows::skipped).collect())
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
    sqlx::query(parking_rows::UNPARK)
        .bind(&id.domain)
        .bind(&id.name)
        .bind(id.generation as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
