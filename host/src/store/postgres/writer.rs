//! This host's PostgreSQL writer task: it group-commits whatever is waiting in one transaction
//! serialised on the log head (see the module above for why that keeps the global order
//! gap-safe). A group whose data the database refuses is retried unit by unit, so only the
//! refused unit gets the error (an unknown outcome, such as a connection lost at `COMMIT`, is
//! never retried: that could write a unit twice); the pool rolls a failed transaction back (or drops its connection),
//! so the writer recovers by itself once the database can commit again, and its health feeds
//! `/readyz` (see `writer_health`). A unit's snapshots are written by the statement that writes
//! its events (see `crate::store::snapshots`).

use std::collections::{HashMap, HashSet};

use sqlx::postgres::PgPool;
use sqlx::{PgConnection, Row};
use tokio::sync::{mpsc, oneshot, watch};

use super::events::idempotency_lookup;
use super::snapshots::SnapshotColumns;
use crate::store::writer_health::{self, Next, WriterHealth};
use crate::store::{
    AppendBatch, AppendError, AppendResult, AppendedStream, IdempotencyRecord, Placement, StoreError, StreamId,
    now_micros, place,
};

/// Most appends gathered into one transaction.
const MAX_GROUP: usize = 256;

/// One unit of work for the writer, and where to answer.
pub(super) struct WriteJob {
    pub(super) batch: AppendBatch,
    pub(super) reply: oneshot::Sender<Result<AppendResult, AppendError>>,
}

/// This host's writer: one transaction at a time, each carrying every append waiting.
pub(super) struct Writer {
    pub(super) pool: PgPool,
    /// The last committed position (this host's commits; the listener adds other hosts').
    pub(super) head: watch::Sender<u64>,
    /// Whether the last commit attempt succeeded (for `/readyz`).
    pub(super) health: std::sync::Arc<WriterHealth>,
}

impl Writer {
    pub(super) async fn run(self, mut jobs: mpsc::Receiver<WriteJob>) {
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

    /// Commits a group; when that fails and it held more than one unit, each unit is tried
    /// again on its own, so a unit the database refuses cannot fail the others.
    ///
    /// Only a refusal of the data (a statement before `COMMIT` failing with an SQLSTATE of class
    /// 22 or 23) is retried that way. Any other failure — a lost connection, an error on `COMMIT`
    /// itself — leaves the group's outcome unknown (it may have committed): every unit gets the
    /// error, as it would alone, and none is written again.
    async fn commit_group(&self, group: Vec<WriteJob>) {
        let (jobs, batches): (Vec<_>, Vec<_>) = group.into_iter().map(|j| (j.reply, j.batch)).unzip();
        match self.try_commit(&batches).await {
            Ok(done) => self.committed(jobs, done),
            Err(Failure { error, data_refused: true }) if batches.len() > 1 => {
                tracing::error!(%error, units = batches.len(), "PostgreSQL group commit failed; committing unit by unit");
                // The store is failing only if no unit commits on its own either.
                let (mut any_committed, mut failure) = (false, None);
                for (reply, batch) in jobs.into_iter().zip(batches) {
                    match self.try_commit(std::slice::from_ref(&batch)).await {
                        Ok(done) => {
                            any_committed = true;
                            self.committed(vec![reply], done);
                        }
                        Err(Failure { error, .. }) => {
                            tracing::error!(%error, "a unit of work failed on its own");
                            let _ = reply.send(Err(AppendError::Store(error.clone())));
                            failure = Some(error);
                        }
                    }
                }
                if let (false, Some(error)) = (any_committed, failure) {
                    self.health.failed(&error);
                }
            }
            Err(Failure { error, .. }) => self.failed(jobs, &error),
        }
    }

    #[allow(clippy::type_complexity)]
    fn committed(
        &self,
        replies: Vec<oneshot::Sender<Result<AppendResult, AppendError>>>,
        (verdicts, last): (Vec<Result<AppendResult, AppendError>>, Option<u64>),
    ) {
        self.health.committed();
        if let Some(last) = last {
            super::raise(&self.head, last);
        }
        for (reply, verdict) in replies.into_iter().zip(verdicts) {
            let _ = reply.send(verdict);
        }
    }

    fn failed(&self, replies: Vec<oneshot::Sender<Result<AppendResult, AppendError>>>, error: &StoreError) {
        tracing::error!(%error, "PostgreSQL commit failed");
        self.health.failed(error);
        for reply in replies {
            let _ = reply.send(Err(AppendError::Store(error.clone())));
        }
    }

    /// A real write (a row inserted and deleted in one transaction) to learn whether the
    /// database can commit again.
    async fn probe(&self) {
        let outcome: Result<(), sqlx::Error> = async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at) \
                 VALUES ('', $1, '', 0, '{}', 0) ON CONFLICT DO NOTHING",
            )
            .bind(writer_health::PROBE_KEY)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM idempotency_keys WHERE scope = '' AND key = $1")
                .bind(writer_health::PROBE_KEY)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await;
        match outcome {
            Ok(()) => self.health.committed(),
            Err(error) => {
                tracing::warn!(%error, "the event store still cannot commit");
                self.health.failed(&error.into());
            }
        }
    }

    /// One transaction: lock the head, check every batch, write the accepted ones, commit.
    /// Answers one verdict per batch and the new head (if anything was written).
    #[allow(clippy::type_complexity)]
    async fn try_commit(
        &self,
        batches: &[AppendBatch],
    ) -> Result<(Vec<Result<AppendResult, AppendError>>, Option<u64>), Failure> {
        // READ COMMITTED whatever the database's default: each statement after the lock must
        // see what the previous holder committed (the order argument in the module docs).
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?;
        let head: i64 =
            sqlx::query_scalar("SELECT position FROM event_log_head FOR UPDATE").fetch_one(&mut *tx).await?;
        let keys: Vec<(String, String)> =
            batches.iter().filter_map(|b| b.idempotency.as_ref().map(|r| (r.scope.clone(), r.key.clone()))).collect();
        let mut stored_keys: HashMap<(String, String), IdempotencyRecord> = if keys.is_empty() {
            HashMap::new()
        } else {
            idempotency_lookup(&mut *tx, &keys)
                .await?
                .into_iter()
                .map(|r| ((r.scope.clone(), r.key.clone()), r))
                .collect()
        };
        let mut versions = stream_versions(&mut tx, batches).await?;
        let recorded_at_micros = now_micros();
        let mut next = head as u64 + 1;
        let mut verdicts = Vec::with_capacity(batches.len());
        let mut accepted = Vec::new();
        for batch in batches {
            match plan(batch, &versions, &stored_keys, next) {
                Ok((streams, heads)) => {
                    next += streams.iter().map(|s| s.count).sum::<u64>();
                    versions.extend(heads);
                    if let Some(record) = &batch.idempotency {
                        stored_keys.insert((record.scope.clone(), record.key.clone()), record.clone());
                    }
                    accepted.push((batch, streams.clone()));
                    verdicts.push(Ok(AppendResult { streams, recorded_at_micros }));
                }
                Err(refusal) => verdicts.push(Err(refusal)),
            }
        }
        if accepted.is_empty() {
            tx.rollback().await?;
            return Ok((verdicts, None));
        }
        let last = next - 1;
        write_rows(&mut tx, &accepted, recorded_at_micros, last).await.map_err(Failure::writing)?;
        tx.commit().await?;
        Ok((verdicts, Some(last)))
    }
}

/// Why a group did not commit, and whether the database refused its data (then nothing of it
/// was written, and each unit may be tried again on its own).
struct Failure {
    error: StoreError,
    data_refused: bool,
}

impl Failure {
    /// A failure of the statements writing the rows: the data's fault when PostgreSQL says so
    /// (SQLSTATE class 22, data exception, or 23, integrity constraint violation).
    fn writing(error: sqlx::Error) -> Self {
        let data_refused = error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| code.starts_with("22") || code.starts_with("23"));
        Self { error: error.into(), data_refused }
    }
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Self { error: error.into(), data_refused: false }
    }
}

/// The current version of every stream the batches touch (0 for none), read under the head lock.
async fn stream_versions(
    tx: &mut PgConnection,
    batches: &[AppendBatch],
) -> Result<HashMap<(String, String), u64>, sqlx::Error> {
    let wanted: HashSet<(&str, &str)> =
        batches.iter().flat_map(|b| &b.streams).map(|s| (s.domain.as_str(), s.stream.as_str())).collect();
    let (domains, streams): (Vec<&str>, Vec<&str>) = wanted.iter().copied().unzip();
    let rows = sqlx::query(
        "SELECT w.domain, w.stream, COALESCE((SELECT MAX(version) FROM events e \
            WHERE e.domain = w.domain AND e.stream = w.stream), 0) \
         FROM unnest($1::text[], $2::text[]) AS w(domain, stream)",
    )
    .bind(&domains)
    .bind(&streams)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.iter().map(|r| ((r.get(0), r.get(1)), r.get::<i64, _>(2) as u64)).collect())
}

/// Checks one batch against the versions and keys so far: its placement, or why it is refused.
fn plan(
    batch: &AppendBatch,
    versions: &HashMap<StreamId, u64>,
    keys: &HashMap<StreamId, IdempotencyRecord>,
    first_position: u64,
) -> Result<Placement, AppendError> {
    if let Some(record) = &batch.idempotency
        && let Some(existing) = keys.get(&(record.scope.clone(), record.key.clone()))
    {
        return Err(AppendError::DuplicateIdempotencyKey(existing.clone()));
    }
    place(batch, |id| versions.get(id).copied().unwrap_or_default(), first_position)
}

/// The statement writing a group's events (`$1..$8`), moving the head to `$9` and notifying the
/// other hosts; with `$snapshots`, a part writing snapshots too.
macro_rules! write_events {
    ($snapshots:literal) => {
        concat!(
            "WITH written AS (INSERT INTO events (position, domain, stream, version, event_type, data, metadata, \
                recorded_at) SELECT p, d, s, v, t, da, m, $8 FROM unnest($1::bigint[], $2::text[], $3::text[], \
                $4::bigint[], $5::text[], $6::text[], $7::text[]) AS r(p, d, s, v, t, da, m)), ",
            $snapshots,
            "moved AS (UPDATE event_log_head SET position = $9) \
             SELECT pg_notify('cairn_events', $9::text)"
        )
    };
}

/// A group's events, without snapshots (most groups).
const WRITE_EVENTS: &str = write_events!("");

/// A group's events and their snapshots (`$10..$14`, see [`SnapshotColumns`]): one statement
/// still, so snapshots add no round trip while the head is locked. A snapshot already stored is
/// left as it is.
const WRITE_EVENTS_AND_SNAPSHOTS: &str = write_events!(
    "snapped AS (INSERT INTO snapshots (domain, stream, digest, version, state, created_at) \
        SELECT d, s, g, v, st, $8 FROM unnest($10::text[], $11::text[], $12::text[], $13::bigint[], \
        $14::text[]) AS n(d, s, g, v, st) ON CONFLICT (domain, stream, digest, version) DO NOTHING), "
);

/// Writes the accepted events (and their snapshots), outbox messages and idempotency records:
/// one statement each, whatever the number of rows (arrays through `unnest`). The events'
/// statement also writes the snapshots, moves the head to `last` and notifies the other hosts:
/// fewer round trips while the head is locked.
async fn write_rows(
    tx: &mut PgConnection,
    accepted: &[(&AppendBatch, Vec<AppendedStream>)],
    recorded_at: i64,
    last: u64,
) -> Result<(), sqlx::Error> {
    let mut events = EventColumns::default();
    for (batch, placed) in accepted {
        for (append, placed) in batch.streams.iter().zip(placed) {
            for (i, event) in append.events.iter().enumerate() {
                events.position.push((placed.first_position + i as u64) as i64);
                events.domain.push(&append.domain);
                events.stream.push(&append.stream);
                events.version.push((placed.first_version + i as u64) as i64);
                events.event_type.push(&event.event_type);
                events.data.push(&event.data);
                events.metadata.push(&event.metadata);
            }
        }
    }
    let snapshots = SnapshotColumns::of(accepted.iter().flat_map(|(b, _)| &b.snapshots));
    let statement = if snapshots.is_empty() { WRITE_EVENTS } else { WRITE_EVENTS_AND_SNAPSHOTS };
    let mut query = sqlx::query(statement)
        .bind(&events.position)
        .bind(&events.domain)
        .bind(&events.stream)
        .bind(&events.version)
        .bind(&events.event_type)
        .bind(&events.data)
        .bind(&events.metadata)
        .bind(recorded_at)
        .bind(last as i64);
    if !snapshots.is_empty() {
        query = query
            .bind(&snapshots.domain)
            .bind(&snapshots.stream)
            .bind(&snapshots.digest)
            .bind(&snapshots.version)
            .bind(&snapshots.state);
    }
    query.execute(&mut *tx).await?;
    let messages: Vec<_> = accepted.iter().flat_map(|(b, _)| &b.outbox).collect();
    if !messages.is_empty() {
        let requests: Vec<String> =
            messages.iter().map(|m| serde_json::to_string(&m.request).unwrap_or_default()).collect();
        sqlx::query(
            "INSERT INTO gateway_outbox (id, domain, service, request, state, attempts, next_at, created_at, updated_at) \
             SELECT i, d, s, r, 'pending', 0, $5, $5, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) \
             AS m(i, d, s, r)",
        )
        .bind(messages.iter().map(|m| m.id.as_str()).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.domain.as_str()).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.service.as_str()).collect::<Vec<_>>())
        .bind(&requests)
        .bind(recorded_at)
        .execute(&mut *tx)
        .await?;
    }
    let records: Vec<&IdempotencyRecord> = accepted.iter().filter_map(|(b, _)| b.idempotency.as_ref()).collect();
    if !records.is_empty() {
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at) \
             SELECT s, k, h, st, r, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[]) \
             AS i(s, k, h, st, r)",
        )
        .bind(records.iter().map(|r| r.scope.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.key.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.request_hash.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| i32::from(r.status)).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.response.as_str()).collect::<Vec<_>>())
        .bind(recorded_at)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The events of one transaction, column by column (for `unnest`).
#[derive(Default)]
struct EventColumns<'a> {
    position: Vec<i64>,
    domain: Vec<&'a str>,
    stream: Vec<&'a str>,
    version: Vec<i64>,
    event_type: Vec<&'a str>,
    data: Vec<&'a str>,
    metadata: Vec<&'a str>,
}
