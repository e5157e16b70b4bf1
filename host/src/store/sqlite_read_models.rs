//! [`ReadModels`] on SQLite, in `read-models.db` beside the event store: its own file so that a
//! projector's commits never wait on, nor delay, the event writer. One write connection
//! (projector commits queue for it; no plugin runs while one is held), WAL readers for queries
//! and projectors' snapshots. Filters and sorts use SQLite's JSON functions on the document text.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::read_models::{
    Checkpoint, Condition, Cursor, FailedEvent, Find, GenerationId, GenerationRole, GenerationRow, Page, ReadModelTx,
    ReadModels, SkippedEvent, WriteError, last_writes, write_error,
};
use super::{StoreError, now_micros};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite_read_models");

/// Read connections: more than one domain's queries may hold at once
/// (`projections.max_queries_per_domain`), plus the projectors' snapshots.
const READ_CONNECTIONS: u32 = 16;

/// The SQLite read-model store.
pub struct SqliteReadModels {
    writes: SqlitePool,
    reads: SqlitePool,
}

impl SqliteReadModels {
    /// Opens (creating if needed) `data_dir/read-models.db` and applies its migrations. The
    /// caller holds the data directory's lock.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(data_dir.join("read-models.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            // A failed commit (a full disk, an I/O error) makes SQLite roll the transaction back
            // by itself; sqlx's rollback then fails and it goes on counting a transaction, so
            // every later `BEGIN` would fail until a restart. Such a connection is closed when it
            // comes back (after the queued rollback ran), and the next write opens a fresh one.
            .after_release(|conn, _| {
                Box::pin(async move {
                    let _ = sqlx::Connection::ping(conn).await;
                    Ok(!sqlx::Connection::is_in_transaction(conn))
                })
            })
            .connect_with(options.clone())
            .await
            .context("opening the read-model database")?;
        MIGRATOR.run(&writes).await.context("applying read-model migrations")?;
        let reads = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .connect_with(options.read_only(true))
            .await
            .context("opening read-model read connections")?;
        Ok(Self { writes, reads })
    }
}

#[async_trait]
impl ReadModels for SqliteReadModels {
    async fn write(&self) -> Result<Box<dyn ReadModelTx>, StoreError> {
        Ok(Box::new(SqliteTx(self.writes.begin_with("BEGIN IMMEDIATE").await?)))
    }

    async fn read(&self) -> Result<Box<dyn ReadModelTx>, StoreError> {
        Ok(Box::new(SqliteTx(self.reads.begin().await?)))
    }

    async fn generations(&self) -> Result<Vec<GenerationRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT domain, name, generation, version, plugin_version, role, position FROM projection_generations \
             ORDER BY domain, name, generation",
        )
        .fetch_all(&self.reads)
        .await?;
        Ok(rows.iter().map(generation_row).collect())
    }

    async fn create_generation(
        &self,
        domain: &str,
        name: &str,
        version: u32,
        plugin_version: &str,
        role: GenerationRole,
    ) -> Result<GenerationRow, StoreError> {
        let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await?;
        // Never a number used before (see the migration of `projection_counters`).
        let next: i64 = sqlx::query_scalar(
            "INSERT INTO projection_counters (domain, name, last) VALUES (?1, ?2, \
             (SELECT COALESCE(MAX(generation), 0) + 1 FROM projection_generations WHERE domain = ?1 AND name = ?2)) \
             ON CONFLICT (domain, name) DO UPDATE SET last = projection_counters.last + 1 RETURNING last",
        )
        .bind(domain)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let now = now_micros();
        sqlx::query(
            "INSERT INTO projection_generations (domain, name, generation, version, plugin_version, role, position, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
        )
        .bind(domain)
        .bind(name)
        .bind(next)
        .bind(i64::from(version))
        .bind(plugin_version)
        .bind(role.as_str())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let id = GenerationId { domain: domain.into(), name: name.into(), generation: next as u64 };
        Ok(GenerationRow { id, version, plugin_version: plugin_version.into(), role, position: 0 })
    }

    async fn set_plugin_version(&self, id: &GenerationId, plugin_version: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE projection_generations SET plugin_version = ?, updated_at = ? \
             WHERE domain = ? AND name = ? AND generation = ?",
        )
        .bind(plugin_version)
        .bind(now_micros())
        .bind(&id.domain)
        .bind(&id.name)
        .bind(id.generation as i64)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    async fn promote(&self, id: &GenerationId) -> Result<(), StoreError> {
        let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await?;
        let others = sqlx::query(
            "SELECT generation, role FROM projection_generations WHERE domain = ? AND name = ? AND generation != ?",
        )
        .bind(&id.domain)
        .bind(&id.name)
        .bind(id.generation as i64)
        .fetch_all(&mut *tx)
        .await?;
        for row in others {
            let other = GenerationId { generation: row.get::<i64, _>(0) as u64, ..id.clone() };
            match GenerationRole::parse(row.get(1)) {
                GenerationRole::Active => set_role(&mut tx, &other, GenerationRole::Retired).await?,
                GenerationRole::Retired | GenerationRole::Building => drop_in(&mut tx, &other).await?,
            }
        }
        set_role(&mut tx, id, GenerationRole::Active).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn drop_generation(&self, id: &GenerationId) -> Result<(), StoreError> {
        let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await?;
        drop_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn park(&self, id: &GenerationId, event: &FailedEvent) -> Result<(), StoreError> {
        super::sqlite_parking::park(&self.writes, id, event).await
    }

    async fn unpark(&self, id: &GenerationId) -> Result<(), StoreError> {
        super::sqlite_parking::unpark(&self.writes, id).await
    }

    async fn parked(&self) -> Result<Vec<(GenerationId, FailedEvent)>, StoreError> {
        super::sqlite_parking::parked(&self.reads).await
    }

    async fn skipped(&self, domain: &str, name: &str, limit: u32) -> Result<Vec<SkippedEvent>, StoreError> {
        super::sqlite_parking::skipped(&self.reads, domain, name, limit).await
    }
}

async fn set_role(tx: &mut Transaction<'static, Sqlite>, id: &GenerationId, role: GenerationRole) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE projection_generations SET role = ?, updated_at = ? WHERE domain = ? AND name = ? AND generation = ?",
    )
    .bind(role.as_str())
    .bind(now_micros())
    .bind(&id.domain)
    .bind(&id.name)
    .bind(id.generation as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn drop_in(tx: &mut Transaction<'static, Sqlite>, id: &GenerationId) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM documents WHERE namespace = ?").bind(id.namespace()).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM projection_generations WHERE domain = ? AND name = ? AND generation = ?")
        .bind(&id.domain)
        .bind(&id.name)
        .bind(id.generation as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn generation_row(row: &sqlx::sqlite::SqliteRow) -> GenerationRow {
    GenerationRow {
        id: GenerationId { domain: row.get(0), name: row.get(1), generation: row.get::<i64, _>(2) as u64 },
        version: row.get::<i64, _>(3) as u32,
        plugin_version: row.get(4),
        role: GenerationRole::parse(row.get(5)),
        position: row.get::<i64, _>(6) as u64,
    }
}

/// One SQLite transaction on the read-model database.
struct SqliteTx(Transaction<'static, Sqlite>);

#[async_trait]
impl ReadModelTx for SqliteTx {
    async fn get(&mut self, namespace: &str, collection: &str, id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT body FROM documents WHERE namespace = ? AND collection = ? AND id = ?")
            .bind(namespace)
            .bind(collection)
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?)
    }

    async fn find(&mut self, namespace: &str, collection: &str, find: &Find) -> Result<Page, StoreError> {
        Ok(self.find_overlaid(namespace, collection, find, &[]).await?)
    }

    /// The overlay is a `documents` CTE that shadows the table for the statement: the
    /// collection's stored rows but the overlaid ids, and the overlay's bodies (a JSON array of
    /// `[id, body text or null]` pairs, read with `json_each`).
    async fn find_overlaid(
        &mut self,
        namespace: &str,
        collection: &str,
        find: &Find,
        overlay: &[(String, Option<String>)],
    ) -> Result<Page, WriteError> {
        let sort_path = find.order.as_ref().map(|o| json_path(&o.path));
        let descending = find.order.as_ref().is_some_and(|o| o.descending);
        let mut q = QueryBuilder::<Sqlite>::new("");
        if !overlay.is_empty() {
            let pairs = serde_json::to_string(overlay).map_err(|e| StoreError(format!("an overlay: {e}")))?;
            q.push("WITH documents AS (SELECT namespace, collection, id, body FROM main.documents WHERE namespace = ")
                .push_bind(namespace.to_string())
                .push(" AND collection = ")
                .push_bind(collection.to_string())
                .push(" AND id NOT IN (SELECT value ->> 0 FROM json_each(")
                .push_bind(pairs.clone())
                .push(")) UNION ALL SELECT ")
                .push_bind(namespace.to_string())
                .push(", ")
                .push_bind(collection.to_string())
                .push(", value ->> 0, value ->> 1 FROM json_each(")
                .push_bind(pairs)
                .push(") WHERE value ->> 1 IS NOT NULL) ");
        }
        q.push("SELECT id, body, ");
        match &sort_path {
            Some(path) => q.push("json_extract(body, ").push_bind(path.clone()).push(")"),
            None => q.push("NULL"),
        };
        q.push(" FROM documents WHERE namespace = ").push_bind(namespace.to_string());
        q.push(" AND collection = ").push_bind(collection.to_string());
        for filter in &find.filters {
            q.push(" AND ");
            push_condition(&mut q, &json_path(&filter.path), &filter.condition);
        }
        if let Some(after) = &find.after {
            q.push(" AND ");
            push_after(&mut q, sort_path.as_deref(), descending, after);
        }
        let dir = if descending { "DESC" } else { "ASC" };
        match &sort_path {
            Some(path) => {
                q.push(" ORDER BY json_extract(body, ").push_bind(path.clone()).push(format!(") {dir}, id {dir}"))
            }
            None => q.push(format!(" ORDER BY id {dir}")),
        };
        q.push(" LIMIT ").push_bind(i64::from(find.limit) + 1);
        let rows = q.build().fetch_all(&mut *self.0).await.map_err(|e| write_error(e, refused))?;
        let mut documents = Vec::with_capacity(rows.len());
        let mut last_sort = Value::Null;
        for row in rows.iter().take(find.limit as usize) {
            documents.push((row.get::<String, _>(0), row.get::<String, _>(1)));
            last_sort = sql_value(row, 2);
        }
        let next = (rows.len() > find.limit as usize)
            .then(|| documents.last().map(|(id, _)| Cursor { sort: last_sort, id: id.clone() }))
            .flatten();
        Ok(Page { documents, next })
    }

    async fn upsert(&mut self, namespace: &str, collection: &str, id: &str, body: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO documents (namespace, collection, id, body) VALUES (?, ?, ?, ?) \
             ON CONFLICT (namespace, collection, id) DO UPDATE SET body = excluded.body",
        )
        .bind(namespace)
        .bind(collection)
        .bind(id)
        .bind(body)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Upserts in multi-row statements (deletes one by one: they are rare).
    async fn write_many(
        &mut self,
        namespace: &str,
        writes: &[(String, String, Option<String>)],
    ) -> Result<(), WriteError> {
        // Only the last write to a document counts, so deletes and upserts can go separately.
        let mut upserts = Vec::new();
        for ((collection, id), body) in last_writes(writes) {
            match body {
                Some(body) => upserts.push((collection, id, body)),
                None => {
                    self.delete(namespace, collection, id).await?;
                }
            }
        }
        for chunk in upserts.chunks(200) {
            let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO documents (namespace, collection, id, body) ");
            insert.push_values(chunk, |mut row, (collection, id, body)| {
                row.push_bind(namespace.to_string())
                    .push_bind(collection.to_string())
                    .push_bind(id.to_string())
                    .push_bind(body.to_string());
            });
            insert.push(" ON CONFLICT (namespace, collection, id) DO UPDATE SET body = excluded.body");
            insert.build().execute(&mut *self.0).await.map_err(|e| write_error(e, refused))?;
        }
        Ok(())
    }

    async fn delete(&mut self, namespace: &str, collection: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM documents WHERE namespace = ? AND collection = ? AND id = ?")
            .bind(namespace)
            .bind(collection)
            .bind(id)
            .execute(&mut *self.0)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_skip(&mut self, id: &GenerationId, skipped: &SkippedEvent) -> Result<(), StoreError> {
        super::sqlite_parking::record_skip(&mut self.0, id, skipped).await
    }

    async fn commit(mut self: Box<Self>, checkpoint: Option<Checkpoint>) -> Result<(), StoreError> {
        if let Some(checkpoint) = checkpoint {
            let Checkpoint { generation: id, expected, position } = &checkpoint;
            let updated = sqlx::query(
                "UPDATE projection_generations SET position = ?, updated_at = ? \
                 WHERE domain = ? AND name = ? AND generation = ? AND position = ? AND role != 'retired'",
            )
            .bind(*position as i64)
            .bind(now_micros())
            .bind(&id.domain)
            .bind(&id.name)
            .bind(id.generation as i64)
            .bind(*expected as i64)
            .execute(&mut *self.0)
            .await?;
            if updated.rows_affected() != 1 {
                return Err(checkpoint.moved());
            }
        }
        self.0.commit().await?;
        Ok(())
    }
}

/// `$."a"."b"`: segments are `[A-Za-z0-9_-]` (checked by the capability), quoted for hyphens.
fn json_path(path: &[String]) -> String {
    let mut out = String::from("$");
    for segment in path {
        out.push_str(".\"");
        out.push_str(segment);
        out.push('"');
    }
    out
}

/// A JSON value as SQLite's `json_extract` returns it; `None` for objects and arrays (compared
/// as their JSON text).
fn push_value(q: &mut QueryBuilder<'_, Sqlite>, value: &Value) {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) => q.push_bind(i),
            None => q.push_bind(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => q.push_bind(s.clone()),
        Value::Bool(b) => q.push_bind(i64::from(*b)),
        Value::Null => q.push("NULL"),
        other => q.push("json(").push_bind(other.to_string()).push(")"),
    };
}

/// The `json_type` names a value of this JSON kind has.
fn type_guard(value: &Value) -> &'static str {
    match value {
        Value::Number(_) => "IN ('integer', 'real')",
        Value::String(_) => "= 'text'",
        Value::Bool(true) => "= 'true'",
        Value::Bool(false) => "= 'false'",
        Value::Array(_) => "= 'array'",
        Value::Object(_) => "= 'object'",
        Value::Null => "= 'null'",
    }
}

fn push_condition(q: &mut QueryBuilder<'_, Sqlite>, path: &str, condition: &Condition) {
    let field = |q: &mut QueryBuilder<'_, Sqlite>, f: &str| {
        q.push(f).push("(body, ").push_bind(path.to_string()).push(")");
    };
    let eq = |q: &mut QueryBuilder<'_, Sqlite>, value: &Value| {
        if value.is_null() {
            q.push("json_extract(body, ").push_bind(path.to_string()).push(") IS NULL");
            return;
        }
        q.push("(");
        field(q, "json_type");
        q.push(" ").push(type_guard(value)).push(" AND ");
        field(q, "json_extract");
        q.push(" = ");
        push_value(q, value);
        q.push(")");
    };
    let compare = |q: &mut QueryBuilder<'_, Sqlite>, op: &str, value: &Value| {
        q.push("(");
        field(q, "json_type");
        q.push(" ").push(type_guard(value)).push(" AND ");
        field(q, "json_extract");
        q.push(format!(" {op} "));
        push_value(q, value);
        q.push(")");
    };
    match condition {
        Condition::Eq(value) => eq(q, value),
        Condition::Ne(value) => {
            q.push("(");
            field(q, "json_type");
            q.push(" IS NOT NULL AND NOT ");
            eq(q, value);
            q.push(")");
        }
        Condition::Lt(value) => compare(q, "<", value),
        Condition::Lte(value) => compare(q, "<=", value),
        Condition::Gt(value) => compare(q, ">", value),
        Condition::Gte(value) => compare(q, ">=", value),
        Condition::Prefix(prefix) => {
            q.push("(");
            field(q, "json_type");
            q.push(" = 'text' AND substr(");
            field(q, "json_extract");
            q.push(", 1, ").push_bind(prefix.chars().count() as i64).push(") = ").push_bind(prefix.clone()).push(")");
        }
        Condition::AnyOf(values) => {
            q.push("(0");
            for value in values {
                q.push(" OR ");
                eq(q, value);
            }
            q.push(")");
        }
    }
}

/// Keyset continuation after `(sort, id)`. SQLite sorts NULL (a missing field) lowest.
fn push_after(q: &mut QueryBuilder<'_, Sqlite>, sort_path: Option<&str>, descending: bool, after: &Cursor) {
    let (gt, id_after) = if descending { ("<", "id < ") } else { (">", "id > ") };
    let Some(path) = sort_path else {
        q.push(id_after).push_bind(after.id.clone());
        return;
    };
    let sort = |q: &mut QueryBuilder<'_, Sqlite>| {
        q.push("json_extract(body, ").push_bind(path.to_string()).push(")");
    };
    if after.sort.is_null() {
        q.push("((");
        sort(q);
        q.push(" IS NULL AND ").push(id_after).push_bind(after.id.clone()).push(")");
        if !descending {
            q.push(" OR ");
            sort(q);
            q.push(" IS NOT NULL");
        }
        q.push(")");
    } else {
        q.push("(");
        sort(q);
        q.push(format!(" {gt} "));
        push_value(q, &after.sort);
        q.push(" OR (");
        sort(q);
        q.push(" = ");
        push_value(q, &after.sort);
        q.push(" AND ").push(id_after).push_bind(after.id.clone()).push(")");
        if descending {
            q.push(" OR ");
            sort(q);
            q.push(" IS NULL");
        }
        q.push(")");
    }
}

/// Column `index` as the JSON value it came from.
fn sql_value(row: &sqlx::sqlite::SqliteRow, index: usize) -> Value {
    if let Ok(Some(i)) = row.try_get::<Option<i64>, _>(index) {
        return Value::from(i);
    }
    if let Ok(Some(f)) = row.try_get::<Option<f64>, _>(index) {
        return Value::from(f);
    }
    if let Ok(Some(s)) = row.try_get::<Option<String>, _>(index) {
        return Value::String(s);
    }
    Value::Null
}

/// SQLite refused the data itself: a constraint (`CHECK (json_valid(body))`, ...), a type
/// mismatch, a value over its size limit, or JSON its functions cannot read.
fn refused(error: &dyn sqlx::error::DatabaseError) -> bool {
    const TOOBIG: i32 = 18;
    const CONSTRAINT: i32 = 19;
    const MISMATCH: i32 = 20;
    let primary = error.code().and_then(|code| code.parse::<i32>().ok()).map(|code| code & 0xff);
    matches!(primary, Some(TOOBIG | CONSTRAINT | MISMATCH)) || error.message().contains("malformed JSON")
}
