//! Parked and skipped events of projection generations on PostgreSQL, for
//! [`super::read_models`]; see [`ReadModels::park`](crate::store::ReadModels::park).
//! Parks, unparks and skips notify the other hosts (as a generation change), which follow them
//! at once (at the latest at their next look, every 250 ms).

use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};

use crate::store::{StoreError, parking_rows};

/// Tells the hosts following the generations (see `read_models::notify`).
async fn notify<'e>(executor: impl sqlx::PgExecutor<'e>, domain: &str) -> Result<(), StoreError> {
    let channel = super::read_models::GENERATIONS_CHANNEL;
    sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(domain).execute(executor).await?;
    Ok(())
}
use crate::store::read_models::{FailedEvent, GenerationId, SkippedEvent};

pub(super) async fn park(pool: &PgPool, id: &GenerationId, event: &FailedEvent) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO projection_parked (domain, name, generation, position, stream, event_type, error, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (domain, name, generation) DO UPDATE SET \
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
    notify(pool, &id.domain).await
}

pub(super) async fn unpark(pool: &PgPool, id: &GenerationId) -> Result<(), StoreError> {
    sqlx::query(parking_rows::UNPARK).bind(&id.domain).bind(&id.name).bind(id.generation as i64).execute(pool).await?;
    notify(pool, &id.domain).await
}

pub(super) async fn parked(pool: &PgPool) -> Result<Vec<(GenerationId, FailedEvent)>, StoreError> {
    let rows = sqlx::query(parking_rows::PARKED).fetch_all(pool).await?;
    Ok(rows.iter().map(parking_rows::parked).collect())
}

pub(super) async fn skipped(
    pool: &PgPool,
    domain: &str,
    name: &str,
    limit: u32,
) -> Result<Vec<SkippedEvent>, StoreError> {
    let rows =
        sqlx::query(parking_rows::SKIPPED).bind(domain).bind(name).bind(i64::from(limit)).fetch_all(pool).await?;
    Ok(rows.iter().map(parking_rows::skipped).collect())
}

pub(super) async fn record_skip(
    tx: &mut Transaction<'static, Postgres>,
    id: &GenerationId,
    skipped: &SkippedEvent,
) -> Result<(), StoreError> {
    let event = &skipped.event;
    sqlx::query(
        "INSERT INTO projection_skipped (domain, name, generation, position, stream, event_type, error, \
         skipped_by, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (domain, name, generation, position) DO NOTHING",
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
    notify(&mut **tx, &id.domain).await
}
