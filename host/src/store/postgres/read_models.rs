//! [`ReadModels`] on PostgreSQL, in the tables `documents` (body `JSONB`) and
//! `projection_generations` of the shared store's schema. Every host writes and reads them at
//! once: projector transactions are READ COMMITTED and made safe by the checkpoint
//! compare-and-set of [`ReadModelTx::commit`]; a query reads one REPEATABLE READ snapshot.
//!
//! Filters and sorts mirror the SQLite store (`sqlite_read_models.rs`) on `body #> path`:
//! equality is JSON equality (`30` is `30.0`, not `"30"`; `null` also matches a missing field),
//! comparisons only hold between a number and a number or a string and a string (strings in
//! byte order, as SQLite's `BINARY`), and a sort puts missing fields and `null` first, then
//! numbers (booleans as 0 and 1), then strings, ties broken by id in byte order. One difference:
//! arrays and objects compare as `jsonb` values, not as JSON text.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};

use crate::store::read_models::{
    Checkpoint, Condition, Cursor, DEFAULT_PAGE, FailedEvent, Find, GenerationId, GenerationRole, GenerationRow,
    MAX_PAGE, Page, ReadModelTx, ReadModels, SkippedEvent, WriteError, last_writes, write_error,
};
use crate::store::{StoreError, now_micros};

/// The channel told about every generation change, with the domain as payload.
pub(super) const GENERATIONS_CHANNEL: &str = "cairn_generations";

/// The PostgreSQL read-model store, over the event store's pool.
pub struct PgReadModels {
    pool: PgPool,
}

impl PgReadModels {
    /// The store over `pool` (from `PgStore::pool`, whose migrations created the tables).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// A READ COMMITTED transaction holding the lock on `domain/name`'s generation numbering
    /// and roles, so that generation changes of one projection run one at a time on all hosts.
    async fn lock_projection(&self, domain: &str, name: &str) -> sqlx::Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?;
        // Advisory locks are database-wide: the schema is part of the key so that hosts using
        // other schemas of the database (test schemas, other deployments) do not queue here.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/' || $1 || '/' || $2))")
            .bind(domain)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// Tells every host (`listen.rs`) that `domain`'s generations changed; sent inside the
/// transaction, so it is delivered only if the change commits.
async fn notify(tx: &mut Transaction<'static, Postgres>, domain: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(GENERATIONS_CHANNEL).bind(domain).execute(&mut **tx).await?;
    Ok(())
}

#[async_trait]
impl ReadModels for PgReadModels {
    /// Unlike SQLite's, write transactions of one store (and of every host) run side by side;
    /// two runners of one generation are kept apart by the checkpoint compare-and-set.
    async fn write(&self) -> Result<Box<dyn ReadModelTx>, StoreError> {
        Ok(Box::new(PgTx(self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?)))
    }

    async fn read(&self) -> Result<Box<dyn ReadModelTx>, StoreError> {
        Ok(Box::new(PgTx(self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?)))
    }

    async fn generations(&self) -> Result<Vec<GenerationRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT domain, name, generation, version, plugin_version, role, position FROM projection_generations \
             ORDER BY domain COLLATE \"C\", name COLLATE \"C\", generation",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(generation_row).collect::<sqlx::Result<_>>()?)
    }

    /// Numbers the generation MAX + 1 under the projection's advisory lock: a second host
    /// creating one at the same time waits, then (READ COMMITTED: a fresh snapshot per
    /// statement) sees this one's row and takes the next number.
    async fn create_generation(
        &self,
        domain: &str,
        name: &str,
        version: u32,
        plugin_version: &str,
        role: GenerationRole,
    ) -> Result<GenerationRow, StoreError> {
        let mut tx = self.lock_projection(domain, name).await?;
        // Never a number used before (see the migration of `projection_counters`).
        let next: i64 = sqlx::query_scalar(
            "INSERT INTO projection_counters (domain, name, last) VALUES ($1, $2, \
             (SELECT COALESCE(MAX(generation), 0) + 1 FROM projection_generations WHERE domain = $1 AND name = $2)) \
             ON CONFLICT (domain, name) DO UPDATE SET last = projection_counters.last + 1 RETURNING last",
        )
        .bind(domain)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let now = now_micros();
        sqlx::query(
            "INSERT INTO projection_generations (domain, name, generation, version, plugin_version, role, position, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
        )
        .bind(domain)
        .bind(name)
        .bind(next)
        .bind(i32::try_from(version).map_err(|_| StoreError(format!("projection version {version} is too large")))?)
        .bind(plugin_version)
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        notify(&mut tx, domain).await?;
        tx.commit().await?;
        let id = GenerationId { domain: domain.into(), name: name.into(), generation: next as u64 };
        Ok(GenerationRow { id, version, plugin_version: plugin_version.into(), role, position: 0 })
    }

    async fn set_plugin_version(&self, id: &GenerationId, plugin_version: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?;
        sqlx::query(
            "UPDATE projection_generations SET plugin_version = $1, updated_at = $2 \
             WHERE domain = $3 AND name = $4 AND generation = $5",
        )
        .bind(plugin_version)
        .bind(now_micros())
        .bind(&id.domain)
        .bind(&id.name)
        .bind(id.generation as i64)
        .execute(&mut *tx)
        .await?;
        notify(&mut tx, &id.domain).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn promote(&self, id: &GenerationId) -> Result<(), StoreError> {
        let mut tx = self.lock_projection(&id.domain, &id.name).await?;
        let others = sqlx::query(
            "SELECT generation, role FROM projection_generations WHERE domain = $1 AND name = $2 AND generation <> $3",
        )
        .bind(&id.domain)
        .bind(&id.name)
        .bind(id.generation as i64)
        .fetch_all(&mut *tx)
        .await?;
        for row in others {
            let other = GenerationId { generation: row.try_get::<i64, _>(0)? as u64, ..id.clone() };
            match GenerationRole::parse(row.try_get::<&str, _>(1)?) {
                GenerationRole::Active => set_role(&mut tx, &other, GenerationRole::Retired).await?,
                GenerationRole::Retired | GenerationRole::Building => drop_in(&mut tx, &other).await?,
            }
        }
        set_role(&mut tx, id, GenerationRole::Active).await?;
        notify(&mut tx, &id.domain).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn drop_generation(&self, id: &GenerationId) -> Result<(), StoreError> {
        let mut tx = self.lock_projection(&id.domain, &id.name).await?;
        drop_in(&mut tx, id).await?;
        notify(&mut tx, &id.domain).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn park(&self, id: &GenerationId, event: &FailedEvent) -> Result<(), StoreError> {
        super::parking::park(&self.pool, id, event).await
    }

    async fn unpark(&self, id: &GenerationId) -> Result<(), StoreError> {
        super::parking::unpark(&self.pool, id).await
    }

    async fn parked(&self) -> Result<Vec<(GenerationId, FailedEvent)>, StoreError> {
        super::parking::parked(&self.pool).await
    }

    async fn skipped(&self, domain: &str, name: &str, limit: u32) -> Result<Vec<SkippedEvent>, StoreError> {
        super::parking::skipped(&self.pool, domain, name, limit).await
    }
}

async fn set_role(
    tx: &mut Transaction<'static, Postgres>,
    id: &GenerationId,
    role: GenerationRole,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE projection_generations SET role = $1, updated_at = $2 WHERE domain = $3 AND name = $4 AND generation = $5",
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

/// Deletes the generation row first: that waits for a runner whose checkpoint update holds it,
/// so the documents that runner commits are there for the second statement (a fresh snapshot
/// under READ COMMITTED) to delete, and a later runner finds no row and commits nothing.
async fn drop_in(tx: &mut Transaction<'static, Postgres>, id: &GenerationId) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM projection_generations WHERE domain = $1 AND name = $2 AND generation = $3")
        .bind(&id.domain)
        .bind(&id.name)
        .bind(id.generation as i64)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM documents WHERE namespace = $1").bind(id.namespace()).execute(&mut **tx).await?;
    Ok(())
}

fn generation_row(row: &PgRow) -> sqlx::Result<GenerationRow> {
    Ok(GenerationRow {
        id: GenerationId {
            domain: row.try_get(0)?,
            name: row.try_get(1)?,
            generation: row.try_get::<i64, _>(2)? as u64,
        },
        version: row.try_get::<i32, _>(3)? as u32,
        plugin_version: row.try_get(4)?,
        role: GenerationRole::parse(row.try_get(5)?),
        position: row.try_get::<i64, _>(6)? as u64,
    })
}

/// One PostgreSQL transaction on the read models: READ COMMITTED for a projector, REPEATABLE
/// READ READ ONLY for a query. Dropped without a commit, it rolls back.
struct PgTx(Transaction<'static, Postgres>);

#[async_trait]
impl ReadModelTx for PgTx {
    async fn get(&mut self, namespace: &str, collection: &str, id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT body::text FROM documents WHERE namespace = $1 AND collection = $2 AND id = $3")
            .bind(namespace)
            .bind(collection)
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?)
    }

    /// One statement: the filtered documents with their sort value `d.sort`, compared and
    /// ordered by [`sort_key`] and then by id.
    async fn find(&mut self, namespace: &str, collection: &str, find: &Find) -> Result<Page, StoreError> {
        Ok(self.find_overlaid(namespace, collection, find, &[]).await?)
    }

    /// The overlay is a `documents` CTE that shadows the table for the statement (in a WITH
    /// that is not RECURSIVE, the name inside it is still the table): the collection's stored
    /// rows but the overlaid ids, and the overlay's bodies as jsonb.
    async fn find_overlaid(
        &mut self,
        namespace: &str,
        collection: &str,
        find: &Find,
        overlay: &[(String, Option<String>)],
    ) -> Result<Page, WriteError> {
        let limit = match find.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let dir = match find.order {
            Some(ref order) if order.descending => "DESC",
            _ => "ASC",
        };
        let mut q = QueryBuilder::<Postgres>::new("");
        if !overlay.is_empty() {
            let ids: Vec<&str> = overlay.iter().map(|(id, _)| id.as_str()).collect();
            let bodies: Vec<Option<&str>> = overlay.iter().map(|(_, body)| body.as_deref()).collect();
            q.push("WITH documents AS (SELECT namespace, collection, id, body FROM documents WHERE namespace = ")
                .push_bind(namespace.to_string())
                .push(" AND collection = ")
                .push_bind(collection.to_string())
                .push(" AND id <> ALL(")
                .push_bind(ids.clone())
                .push("::text[]) UNION ALL SELECT ")
                .push_bind(namespace.to_string())
                .push("::text, ")
                .push_bind(collection.to_string())
                .push("::text, w.i, w.b::jsonb FROM unnest(")
                .push_bind(ids)
                .push("::text[], ")
                .push_bind(bodies)
                .push("::text[]) AS w (i, b) WHERE w.b IS NOT NULL) ");
        }
        q.push("SELECT d.id, d.body::text, d.sort::text FROM (SELECT id, body, ");
        match &find.order {
            Some(order) => q.push("body #> ").push_bind(order.path.clone()).push("::text[]"),
            None => q.push("NULL::jsonb"),
        };
        q.push(" AS sort FROM documents WHERE namespace = ").push_bind(namespace.to_string());
        q.push(" AND collection = ").push_bind(collection.to_string());
        for filter in &find.filters {
            q.push(" AND ");
            push_condition(&mut q, &filter.path, &filter.condition);
        }
        q.push(") AS d");
        let key = |e: &str, suffix: &str| if find.order.is_some() { sort_key(e, suffix) } else { String::new() };
        if let Some(after) = &find.after {
            // A row comparison is lexicographic: after the cursor's key, then after its id.
            let op = if dir == "DESC" { "<" } else { ">" };
            q.push(format!(" WHERE ({}d.id COLLATE \"C\") {op} (SELECT {}", key("d.sort", ""), key("c.v", "")));
            q.push_bind(after.id.clone()).push(" COLLATE \"C\" FROM (SELECT ");
            q.push_bind(after.sort.to_string()).push("::jsonb AS v) AS c)");
        }
        let suffix = format!(" {dir}");
        q.push(format!(" ORDER BY {}d.id COLLATE \"C\"{suffix} LIMIT ", key("d.sort", &suffix)));
        q.push_bind(i64::from(limit) + 1);
        let rows = q.build().fetch_all(&mut *self.0).await.map_err(|e| write_error(e, refused))?;
        let mut documents = Vec::with_capacity(rows.len().min(limit as usize));
        let mut last_sort = Value::Null;
        for row in rows.iter().take(limit as usize) {
            documents.push((
                row.try_get::<String, _>(0).map_err(StoreError::from)?,
                row.try_get::<String, _>(1).map_err(StoreError::from)?,
            ));
            last_sort = match row.try_get::<Option<String>, _>(2).map_err(StoreError::from)? {
                Some(text) => serde_json::from_str(&text).map_err(|e| StoreError(format!("a sort value: {e}")))?,
                None => Value::Null,
            };
        }
        let next = (rows.len() > limit as usize)
            .then(|| documents.last().map(|(id, _)| Cursor { sort: last_sort, id: id.clone() }))
            .flatten();
        Ok(Page { documents, next })
    }

    async fn upsert(&mut self, namespace: &str, collection: &str, id: &str, body: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO documents (namespace, collection, id, body) VALUES ($1, $2, $3, $4::jsonb) \
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

    /// At most two statements: one multi-row upsert, one multi-row delete. Only the last write
    /// to each document counts (as if applied in order; an `INSERT ... ON CONFLICT` may not touch
    /// a row twice anyway), and rows are written in key order, so two transactions writing the
    /// same documents lock them in the same order instead of deadlocking.
    async fn write_many(
        &mut self,
        namespace: &str,
        writes: &[(String, String, Option<String>)],
    ) -> Result<(), WriteError> {
        let last = last_writes(writes);
        let (mut collections, mut ids, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
        let (mut gone_collections, mut gone_ids) = (Vec::new(), Vec::new());
        for ((collection, id), body) in last {
            match body {
                Some(body) => {
                    collections.push(collection);
                    ids.push(id);
                    bodies.push(body);
                }
                None => {
                    gone_collections.push(collection);
                    gone_ids.push(id);
                }
            }
        }
        if !ids.is_empty() {
            sqlx::query(
                "INSERT INTO documents (namespace, collection, id, body) \
                 SELECT $1, c, i, b::jsonb FROM unnest($2::text[], $3::text[], $4::text[]) AS w (c, i, b) \
                 ON CONFLICT (namespace, collection, id) DO UPDATE SET body = excluded.body",
            )
            .bind(namespace)
            .bind(collections)
            .bind(ids)
            .bind(bodies)
            .execute(&mut *self.0)
            .await
            .map_err(|e| write_error(e, refused))?;
        }
        if !gone_ids.is_empty() {
            sqlx::query(
                "DELETE FROM documents WHERE namespace = $1 \
                 AND (collection, id) IN (SELECT * FROM unnest($2::text[], $3::text[]))",
            )
            .bind(namespace)
            .bind(gone_collections)
            .bind(gone_ids)
            .execute(&mut *self.0)
            .await
            .map_err(|e| write_error(e, refused))?;
        }
        Ok(())
    }

    async fn delete(&mut self, namespace: &str, collection: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM documents WHERE namespace = $1 AND collection = $2 AND id = $3")
            .bind(namespace)
            .bind(collection)
            .bind(id)
            .execute(&mut *self.0)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The checkpoint is a compare-and-set that holds across connections and hosts. Under READ
    /// COMMITTED, an `UPDATE` that finds its row locked by another transaction waits for it to
    /// end; if that one committed, PostgreSQL re-evaluates the `WHERE` on the row's new version
    /// before updating. So of two transactions that expect the same position, the second either
    /// sees the moved position (or the `retired` role set by `promote`, or no row after a drop)
    /// and updates nothing, or, if the first rolled back, goes ahead. The row lock is then held
    /// to the commit, which publishes the documents and the checkpoint in one go. Nothing of a
    /// transaction whose compare failed commits.
    async fn record_skip(&mut self, id: &GenerationId, skipped: &SkippedEvent) -> Result<(), StoreError> {
        super::parking::record_skip(&mut self.0, id, skipped).await
    }

    async fn commit(mut self: Box<Self>, checkpoint: Option<Checkpoint>) -> Result<(), StoreError> {
        if let Some(checkpoint) = checkpoint {
            let Checkpoint { generation: id, expected, position } = &checkpoint;
            let updated = sqlx::query(
                "UPDATE projection_generations SET position = $1, updated_at = $2 \
                 WHERE domain = $3 AND name = $4 AND generation = $5 AND position = $6 AND role <> 'retired'",
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
                self.0.rollback().await?;
                return Err(checkpoint.moved());
            }
        }
        self.0.commit().await?;
        Ok(())
    }
}

/// `body #> path`, the field a filter looks at (`NULL` when missing).
fn push_field(q: &mut QueryBuilder<'_, Postgres>, path: &[String]) {
    q.push("(body #> ").push_bind(path.to_vec()).push("::text[])");
}

/// `body #>> path`, the field as text (a string without its quotes).
fn push_text(q: &mut QueryBuilder<'_, Postgres>, path: &[String]) {
    q.push("(body #>> ").push_bind(path.to_vec()).push("::text[])");
}

fn push_json(q: &mut QueryBuilder<'_, Postgres>, value: &Value) {
    q.push_bind(value.to_string()).push("::jsonb");
}

/// JSON equality; `null` matches a JSON null or a missing field.
fn push_eq(q: &mut QueryBuilder<'_, Postgres>, path: &[String], value: &Value) {
    if value.is_null() {
        q.push("COALESCE(");
        push_field(q, path);
        q.push(", 'null'::jsonb) = 'null'::jsonb");
    } else {
        push_field(q, path);
        q.push(" = ");
        push_json(q, value);
    }
}

/// `field op value` when the field has the value's JSON type, as SQLite's `json_type` guard:
/// numbers compare as numbers, strings in byte order, a boolean only with itself, `null` never.
fn push_compare(q: &mut QueryBuilder<'_, Postgres>, path: &[String], op: &str, value: &Value) {
    let kind = match value {
        Value::Null => {
            q.push("FALSE");
            return;
        }
        Value::String(text) => {
            q.push("(jsonb_typeof(");
            push_field(q, path);
            q.push(") = 'string' AND ");
            push_text(q, path);
            q.push(format!(" COLLATE \"C\" {op} ")).push_bind(text.clone()).push(" COLLATE \"C\")");
            return;
        }
        Value::Bool(_) => {
            q.push("(");
            push_eq(q, path, value);
            q.push(" AND ");
            push_field(q, path);
            q.push(format!(" {op} "));
            push_json(q, value);
            q.push(")");
            return;
        }
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    q.push("(jsonb_typeof(");
    push_field(q, path);
    q.push(format!(") = '{kind}' AND "));
    push_field(q, path);
    q.push(format!(" {op} "));
    push_json(q, value);
    q.push(")");
}

fn push_condition(q: &mut QueryBuilder<'_, Postgres>, path: &[String], condition: &Condition) {
    match condition {
        Condition::Eq(value) => push_eq(q, path, value),
        Condition::Ne(value) => {
            q.push("(");
            push_field(q, path);
            q.push(" IS NOT NULL AND NOT ");
            push_eq(q, path, value);
            q.push(")");
        }
        Condition::Lt(value) => push_compare(q, path, "<", value),
        Condition::Lte(value) => push_compare(q, path, "<=", value),
        Condition::Gt(value) => push_compare(q, path, ">", value),
        Condition::Gte(value) => push_compare(q, path, ">=", value),
        Condition::Prefix(prefix) => {
            q.push("(jsonb_typeof(");
            push_field(q, path);
            q.push(") = 'string' AND left(");
            push_text(q, path);
            q.push(", ").push_bind(prefix.chars().count() as i32).push(") = ").push_bind(prefix.clone()).push(")");
        }
        Condition::AnyOf(values) => {
            q.push("(FALSE");
            for value in values {
                q.push(" OR ");
                push_eq(q, path, value);
            }
            q.push(")");
        }
    }
}

/// The sort key of the JSON value `e` (SQL `NULL` when missing), in SQLite's order of
/// `json_extract` results: (rank, number, text) with rank 0 for missing or `null`, 1 for numbers
/// and booleans (as 0 and 1), 2 for strings (then arrays and objects, as their text). No part
/// can fail to evaluate, whatever `e` holds. Each part is followed by `suffix` and a comma.
fn sort_key(e: &str, suffix: &str) -> String {
    format!(
        "CASE jsonb_typeof({e}) WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 WHEN 'string' THEN 2 \
         WHEN 'array' THEN 2 WHEN 'object' THEN 2 ELSE 0 END{suffix}, \
         CASE jsonb_typeof({e}) WHEN 'number' THEN {e} WHEN 'boolean' THEN \
         (CASE WHEN {e} = 'true'::jsonb THEN '1'::jsonb ELSE '0'::jsonb END) ELSE '0'::jsonb END{suffix}, \
         (CASE jsonb_typeof({e}) WHEN 'string' THEN {e} #>> '{{}}' WHEN 'array' THEN {e}::text \
         WHEN 'object' THEN {e}::text ELSE '' END) COLLATE \"C\"{suffix}, "
    )
}

/// PostgreSQL refused the data itself: SQLSTATE class 22 (data exception: a number jsonb cannot
/// hold, an invalid escape, ...) or 23 (integrity constraint violation).
fn refused(error: &dyn sqlx::error::DatabaseError) -> bool {
    error.code().is_some_and(|code| code.len() == 5 && (code.starts_with("22") || code.starts_with("23")))
}
