//! Aggregate snapshots on SQLite (see [`super::snapshots`]): the multi-row INSERT the writer
//! adds to a group commit that carries snapshots, and the writes outside any unit of work.

use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, SqliteConnection};

use super::snapshots::{self, Snapshot};
use super::{StoreError, now_micros};

/// Rows per multi-row INSERT (6 binds each, well under SQLite's 32766 variables).
const ROWS_PER_INSERT: usize = 1000;

/// Writes snapshots outside any unit of work, in one transaction on the registry connection.
///
/// Not through the writer task: these writes are rare (a shadow replay before an activation),
/// may be many, and need no order with the appends, so queueing them on the writer would only
/// hold appends up behind them (and give the writer a second kind of job). The registry
/// connection takes the write lock up front (`BEGIN IMMEDIATE`) as the writer does, each waiting
/// for the other through `busy_timeout`; the lock is held for the whole call, so a caller saves
/// a large replay in batches of modest size.
pub(super) async fn save(admin: &SqlitePool, snapshots: &[Snapshot]) -> Result<(), StoreError> {
    snapshots::check_saved(snapshots)?;
    if snapshots.is_empty() {
        return Ok(());
    }
    let mut tx = admin.begin_with("BEGIN IMMEDIATE").await?;
    insert(&mut tx, snapshots.iter(), now_micros()).await?;
    tx.commit().await?;
    Ok(())
}

/// Inserts snapshots with multi-row INSERTs; one already stored under its key is left as it is.
pub(super) async fn insert<'a>(
    conn: &mut SqliteConnection,
    snapshots: impl IntoIterator<Item = &'a Snapshot>,
    created_at: i64,
) -> Result<(), sqlx::Error> {
    let snapshots: Vec<&Snapshot> = snapshots.into_iter().collect();
    for chunk in snapshots.chunks(ROWS_PER_INSERT) {
        let mut insert =
            QueryBuilder::new("INSERT INTO snapshots (domain, stream, digest, version, state, created_at) ");
        insert.push_values(chunk, |mut row, snapshot| {
            row.push_bind(&snapshot.domain)
                .push_bind(&snapshot.stream)
                .push_bind(&snapshot.digest)
                .push_bind(snapshot.version as i64)
                .push_bind(&snapshot.state)
                .push_bind(created_at);
        });
        insert.push(" ON CONFLICT (domain, stream, digest, version) DO NOTHING");
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}
