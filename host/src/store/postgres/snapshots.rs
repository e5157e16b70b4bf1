//! Aggregate snapshots on PostgreSQL (see [`crate::store::snapshots`]): the writes outside any
//! unit of work (one multi-row INSERT), and the columns the writer binds when a group commit
//! carries snapshots.

use sqlx::postgres::PgPool;

use crate::store::snapshots::{self, Snapshot};
use crate::store::{StoreError, now_micros};

/// Writes snapshots outside any unit of work in one statement; one already stored under its key
/// is left as it is.
pub(super) async fn save(pool: &PgPool, snapshots: &[Snapshot]) -> Result<(), StoreError> {
    snapshots::check_saved(snapshots)?;
    if snapshots.is_empty() {
        return Ok(());
    }
    let columns = SnapshotColumns::of(snapshots);
    sqlx::query(
        "INSERT INTO snapshots (domain, stream, digest, version, state, created_at) \
         SELECT d, s, g, v, st, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[]) \
         AS n(d, s, g, v, st) ON CONFLICT (domain, stream, digest, version) DO NOTHING",
    )
    .bind(&columns.domain)
    .bind(&columns.stream)
    .bind(&columns.digest)
    .bind(&columns.version)
    .bind(&columns.state)
    .bind(now_micros())
    .execute(pool)
    .await?;
    Ok(())
}

/// Snapshots column by column (for `unnest`).
#[derive(Default)]
pub(super) struct SnapshotColumns<'a> {
    pub(super) domain: Vec<&'a str>,
    pub(super) stream: Vec<&'a str>,
    pub(super) digest: Vec<&'a str>,
    pub(super) version: Vec<i64>,
    pub(super) state: Vec<&'a str>,
}

impl<'a> SnapshotColumns<'a> {
    pub(super) fn of(snapshots: impl IntoIterator<Item = &'a Snapshot>) -> Self {
        let mut columns = Self::default();
        for snapshot in snapshots {
            columns.domain.push(&snapshot.domain);
            columns.stream.push(&snapshot.stream);
            columns.digest.push(&snapshot.digest);
            columns.version.push(snapshot.version as i64);
            columns.state.push(&snapshot.state);
        }
        columns
    }

    pub(super) fn is_empty(&self) -> bool {
        self.domain.is_empty()
    }
}
