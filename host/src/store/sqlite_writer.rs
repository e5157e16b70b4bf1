//! The SQLite writer task: the only writer of the database. It **group-commits**: the appends
//! waiting when a transaction starts are checked one by one (expected versions, idempotency
//! keys) and the accepted ones are written with multi-row INSERTs in a single `BEGIN IMMEDIATE`
//! transaction, so one fsync serves many commands. The snapshots of the accepted units ride in
//! the same transaction (see [`super::snapshots`]).
//!
//! A failed group commit is retried unit by unit, so only the unit the database refuses gets
//! the error; after any failure the writer discards its connection (SQLite may have rolled the
//! transaction back itself, leaving the driver's transaction depth behind) and opens a new one,
//! so it recovers by itself once the cause (a full disk, an I/O error) clears. Its health
//! feeds `/readyz` (see [`super::writer_health`]).

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, QueryBuilder, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch};

use super::sqlite::idempotency_lookup;
use super::sqlite_snapshots;
use super::writer_health::{self, Next, WriterHealth};
use super::{
    AppendBatch, AppendError, AppendResult, AppendedStream, IdempotencyRecord, StoreError, StreamId, now_micros, place,
};

/// Most appends gathered into one transaction.
const MAX_GROUP: usize = 256;
/// Rows per multi-row INSERT (8 binds each, well under SQLite's 32766 variables).
const ROWS_PER_INSERT: usize = 1000;
/// Stream heads remembered by the writer before it forgets them all.
const MAX_CACHED_HEADS: usize = 100_000;

/// One unit of work for the writer, and where to answer.
pub(super) struct WriteJob {
    pub(super) batch: AppendBatch,
    pub(super) reply: oneshot::Sender<Result<AppendResult, AppendError>>,
}

/// The single writer. `heads` caches stream versions it has seen; it is the only writer of the
/// database (the directory lock guarantees it), so the cache stays exact.
pub(super) struct Writer {
    /// `None` after a failure discarded it; the next attempt opens a new one.
    pub(super) conn: Option<SqliteConnection>,
    pub(super) options: SqliteConnectOptions,
    pub(super) health: Arc<WriterHealth>,
    pub(super) heads: HashMap<(String, String), u64>,
    /// The last committed position, published after every commit (projection runners wake on it).
    pub(super) head: watch::Sender<u64>,
}

/// An accepted append and where its events go.
struct Planned {
    job: WriteJob,
    result: AppendResult,
}

impl Writer {
    pub(super) async fn run(mut self, mut jobs: mpsc::Receiver<WriteJob>) {
        loop {
            match writer_health::next(&mut jobs, &self.health).await {
                Next::Job(first) => {
                    let group = writer_health::gather(first, &mut jobs, MAX_GROUP);
                    self.commit_group(group).await;
                }
                Next::Probe => self.probe().await,
                Next::Closed => break,
            }
        }
    }

    /// Commits a group; when that fails with more than one unit accepted, each of them is
    /// tried again on its own, so a unit the database refuses cannot fail the others.
    async fn commit_group(&mut self, group: Vec<WriteJob>) {
        match self.try_commit_group(group).await {
            Ok((planned, heads, next_position)) => self.committed(planned, heads, next_position),
            Err((planned, error)) => {
                tracing::error!(%error, units = planned.len(), "SQLite group commit failed");
                self.discard().await;
                if planned.len() <= 1 {
                    self.failed(planned, &error);
                    return;
                }
                // The store is failing only if no unit commits on its own either.
                let (mut any_committed, mut failure) = (false, None);
                for Planned { job, .. } in planned {
                    match self.try_commit_group(vec![job]).await {
                        Ok((planned, heads, next_position)) => {
                            any_committed = true;
                            self.committed(planned, heads, next_position);
                        }
                        Err((planned, error)) => {
                            tracing::error!(%error, "a unit of work failed on its own");
                            self.discard().await;
                            answer_failed(planned, &error);
                            failure = Some(error);
                        }
                    }
                }
                if let (false, Some(error)) = (any_committed, failure) {
                    self.health.failed(&error);
                }
            }
        }
    }

    fn committed(&mut self, planned: Vec<Planned>, heads: HashMap<StreamId, u64>, next_position: u64) {
        self.health.committed();
        self.heads.extend(heads);
        if self.heads.len() > MAX_CACHED_HEADS {
            self.heads.clear();
        }
        self.head.send_replace(next_position - 1);
        for Planned { job, result } in planned {
            let _ = job.reply.send(Ok(result));
        }
    }

    fn failed(&mut self, planned: Vec<Planned>, error: &StoreError) {
        self.health.failed(error);
        answer_failed(planned, error);
    }

    /// Drops the connection after a failure: whatever state SQLite or the driver was left in
    /// (an open or half-rolled-back transaction), the next attempt starts on a fresh one.
    async fn discard(&mut self) {
        self.heads.clear();
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }

    /// The writer's connection, opened anew after a discard.
    async fn connection(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        if self.conn.is_none() {
            self.conn = Some(SqliteConnection::connect_with(&self.options).await?);
        }
        Ok(self.conn.as_mut().expect("just opened"))
    }

    /// A real write (a row inserted and deleted in one transaction) to learn whether the store
    /// can commit again.
    async fn probe(&mut self) {
        let outcome: Result<(), StoreError> = async {
            let conn = self.connection().await?;
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query(
                "INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at) \
                 VALUES ('', ?, '', 0, '{}', 0)",
            )
            .bind(writer_health::PROBE_KEY)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM idempotency_keys WHERE scope = '' AND key = ?")
                .bind(writer_health::PROBE_KEY)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => self.health.committed(),
            Err(error) => {
                tracing::warn!(%error, "the event store still cannot commit");
                self.discard().await;
                self.health.failed(&error);
            }
        }
    }

    /// Plans every job, writes the accepted ones, commits. Rejected jobs are answered at once.
    #[allow(clippy::type_complexity)]
    async fn try_commit_group(
        &mut self,
        group: Vec<WriteJob>,
    ) -> Result<(Vec<Planned>, HashMap<(String, String), u64>, u64), (Vec<Planned>, StoreError)> {
        let mut planned: Vec<Planned> = Vec::with_capacity(group.len());
        if self.conn.is_none() {
            match SqliteConnection::connect_with(&self.options).await {
                Ok(conn) => self.conn = Some(conn),
                Err(e) => return Err(fail(group, planned, e.into())),
            }
        }
        let conn = self.conn.as_mut().expect("just opened");
        let mut tx = match conn.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) => {
                return Err(fail(group, planned, e.into()));
            }
        };
        let mut tentative: HashMap<(String, String), u64> = HashMap::new();
        let mut keys: HashMap<(String, String), IdempotencyRecord> = HashMap::new();
        let recorded_at_micros = now_micros();
        // Read inside the write transaction (an index seek): positions follow whatever committed
        // last, so they are assigned in commit order.
        let mut next_position = match sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(position), 0) + 1 FROM events")
            .fetch_one(&mut *tx)
            .await
        {
            Ok(p) => p as u64,
            Err(e) => return Err(fail(group, planned, e.into())),
        };
        let mut remaining = group.into_iter();
        while let Some(job) = remaining.next() {
            let verdict = plan(&mut tx, &self.heads, &job.batch, &mut tentative, &keys, next_position).await;
            match verdict {
                Ok(Ok((streams, heads, used))) => {
                    next_position += used;
                    tentative.extend(heads);
                    if let Some(record) = &job.batch.idempotency {
                        keys.insert((record.scope.clone(), record.key.clone()), record.clone());
                    }
                    planned.push(Planned { job, result: AppendResult { streams, recorded_at_micros } });
                }
                Ok(Err(refusal)) => {
                    let _ = job.reply.send(Err(refusal));
                }
                Err(e) => {
                    let rest: Vec<WriteJob> = std::iter::once(job).chain(remaining).collect();
                    return Err(fail(rest, planned, e));
                }
            }
        }
        if let Err(e) = write_rows(&mut tx, &planned, recorded_at_micros).await {
            return Err((planned, e.into()));
        }
        if let Err(e) = tx.commit().await {
            return Err((planned, e.into()));
        }
        Ok((planned, tentative, next_position))
    }
}

/// Checks one job against the current heads: `Ok(Ok(..))` accepted with its placement,
/// `Ok(Err(..))` refused, `Err(..)` the database failed.
#[allow(clippy::type_complexity)]
async fn plan(
    tx: &mut SqliteConnection,
    cached: &HashMap<(String, String), u64>,
    batch: &AppendBatch,
    tentative: &mut HashMap<(String, String), u64>,
    keys: &HashMap<(String, String), IdempotencyRecord>,
    first_position: u64,
) -> Result<Result<(Vec<AppendedStream>, HashMap<(String, String), u64>, u64), AppendError>, StoreError> {
    if let Some(record) = &batch.idempotency {
        if let Some(existing) = keys.get(&(record.scope.clone(), record.key.clone())) {
            return Ok(Err(AppendError::DuplicateIdempotencyKey(existing.clone())));
        }
        if let Some(existing) = idempotency_lookup(&mut *tx, &record.scope, &record.key).await? {
            return Ok(Err(AppendError::DuplicateIdempotencyKey(existing)));
        }
    }
    // The versions of streams this writer has not seen yet, read inside the write transaction.
    for append in &batch.streams {
        let id = (append.domain.clone(), append.stream.clone());
        if !tentative.contains_key(&id) && !cached.contains_key(&id) {
            let v: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM events WHERE domain = ? AND stream = ?")
                    .bind(&append.domain)
                    .bind(&append.stream)
                    .fetch_one(&mut *tx)
                    .await?;
            tentative.insert(id, v as u64);
        }
    }
    let version_of = |id: &StreamId| tentative.get(id).or_else(|| cached.get(id)).copied().unwrap_or_default();
    Ok(place(batch, version_of, first_position).map(|(streams, heads)| {
        let used = streams.iter().map(|s| s.count).sum();
        (streams, heads, used)
    }))
}

fn answer_failed(planned: Vec<Planned>, error: &StoreError) {
    for Planned { job, .. } in planned {
        let _ = job.reply.send(Err(AppendError::Store(error.clone())));
    }
}

fn fail(jobs: Vec<WriteJob>, planned: Vec<Planned>, error: StoreError) -> (Vec<Planned>, StoreError) {
    for job in jobs {
        let _ = job.reply.send(Err(AppendError::Store(error.clone())));
    }
    (planned, error)
}

/// Writes the accepted events and their snapshots with multi-row INSERTs, then their outbox
/// messages and idempotency records.
async fn write_rows(tx: &mut SqliteConnection, planned: &[Planned], recorded_at: i64) -> Result<(), sqlx::Error> {
    struct Row<'a> {
        position: u64,
        domain: &'a str,
        stream: &'a str,
        version: u64,
        event: &'a super::EventToAppend,
    }
    let mut rows = Vec::new();
    for Planned { job, result } in planned {
        for (append, placed) in job.batch.streams.iter().zip(&result.streams) {
            for (i, event) in append.events.iter().enumerate() {
                rows.push(Row {
                    position: placed.first_position + i as u64,
                    domain: &append.domain,
                    stream: &append.stream,
                    version: placed.first_version + i as u64,
                    event,
                });
            }
        }
    }
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::new(
            "INSERT INTO events (position, domain, stream, version, event_type, data, metadata, recorded_at) ",
        );
        insert.push_values(chunk, |mut b, row| {
            b.push_bind(row.position as i64)
                .push_bind(row.domain)
                .push_bind(row.stream)
                .push_bind(row.version as i64)
                .push_bind(&row.event.event_type)
                .push_bind(&row.event.data)
                .push_bind(&row.event.metadata)
                .push_bind(recorded_at);
        });
        insert.build().execute(&mut *tx).await?;
    }
    // No statement at all for a group without snapshots (most of them).
    let snapshots = planned.iter().flat_map(|p| &p.job.batch.snapshots);
    sqlite_snapshots::insert(&mut *tx, snapshots, recorded_at).await?;
    for message in planned.iter().flat_map(|p| &p.job.batch.outbox) {
        let request = serde_json::to_string(&message.request).unwrap_or_default();
        sqlx::query(
            "INSERT INTO gateway_outbox (id, domain, service, request, state, attempts, next_at, created_at, updated_at) \
             VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
        )
        .bind(&message.id)
        .bind(&message.domain)
        .bind(&message.service)
        .bind(request)
        .bind(recorded_at)
        .bind(recorded_at)
        .bind(recorded_at)
        .execute(&mut *tx)
        .await?;
    }
    for record in planned.iter().filter_map(|p| p.job.batch.idempotency.as_ref()) {
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&record.scope)
        .bind(&record.key)
        .bind(&record.request_hash)
        .bind(i64::from(record.status))
        .bind(&record.response)
        .bind(recorded_at)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
