//! The read-model stores against real databases: every case runs on SQLite (a temporary file)
//! and on PostgreSQL (a fresh schema, skipped without `CAIRN_TEST_POSTGRES_URL`). Filters on
//! JSON fields, ordering with missing fields, keyset pages, checkpoints committed with the
//! writes, generations; then what only PostgreSQL has: several hosts on one database.

use std::time::Duration;

use serde_json::{Value, json};

use super::postgres::read_models::PgReadModels;
use super::postgres::{PgStore, testing};
use super::read_models::{Checkpoint, Condition, Cursor, Filter, Find, GenerationRole, Order, ReadModels};
use super::sqlite_read_models::SqliteReadModels;

const NS: &str = "shop/orders/1";

/// Each case once per backend: `mod <case> { sqlite, postgres }`.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let models = super::SqliteReadModels::open(dir.path()).await.unwrap();
                super::$case(&models).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(store) = super::pg_store(stringify!($case)).await else { return };
                super::$case(&super::PgReadModels::new(store.pool())).await;
            }
        }
    )*};
}

on_both_backends!(
    filters_compare_by_json_type_and_stay_in_their_namespace,
    pages_follow_the_order_with_missing_fields_first_ascending_and_last_descending,
    pages_without_an_order_follow_the_id_and_filters_apply_to_every_page,
    a_checkpoint_commits_with_the_writes_and_a_dropped_transaction_writes_nothing,
    a_retired_or_dropped_generation_takes_no_checkpoint,
    write_many_upserts_and_deletes_in_one_call,
    write_many_last_write_to_a_document_wins,
    write_many_names_a_document_the_store_refuses_as_refused,
    a_read_transaction_sees_one_snapshot,
    promoting_retires_the_active_generation_and_drops_the_one_before,
    generations_are_numbered_per_projection_and_record_their_plugin_version,
);

/// A PostgreSQL store on a fresh schema, or `None` (test skipped) without a test database.
async fn pg_store(test: &str) -> Option<PgStore> {
    let settings = testing::settings(test)?;
    Some(PgStore::open(&settings).await.unwrap())
}

async fn seed(models: &dyn ReadModels) {
    let mut tx = models.write().await.unwrap();
    let docs = [
        ("a", json!({"status": "paid", "total": 30, "user": {"id": "u1"}, "flag": true})),
        ("b", json!({"status": "open", "total": 10.5, "user": {"id": "u2"}})),
        ("c", json!({"status": "paid", "total": 20, "user": {"id": "u1"}, "flag": false})),
        ("d", json!({"status": "void", "user": {"id": "u3"}, "note": "Apple pie"})),
        ("e", json!({"status": "paid", "total": "30", "user": {"id": "u10"}, "flag": null})),
    ];
    for (id, body) in docs {
        tx.upsert(NS, "orders", id, &body.to_string()).await.unwrap();
    }
    tx.upsert("shop/orders/2", "orders", "z", &json!({"status": "paid"}).to_string()).await.unwrap();
    tx.upsert(NS, "users", "u1", &json!({"status": "paid"}).to_string()).await.unwrap();
    tx.commit(None).await.unwrap();
}

fn filter(path: &str, condition: Condition) -> Filter {
    Filter { path: path.split('.').map(str::to_string).collect(), condition }
}

async fn ids(models: &dyn ReadModels, find: Find) -> Vec<String> {
    let mut tx = models.read().await.unwrap();
    tx.find(NS, "orders", &find).await.unwrap().documents.into_iter().map(|(id, _)| id).collect()
}

fn find(filters: Vec<Filter>) -> Find {
    Find { filters, limit: 100, ..Find::default() }
}

/// Every page of `find` (with `limit`), through encoded cursors.
async fn all_pages(models: &dyn ReadModels, mut find: Find) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let page = models.read().await.unwrap().find(NS, "orders", &find).await.unwrap();
        assert!(page.documents.len() <= find.limit as usize);
        seen.extend(page.documents.into_iter().map(|(id, _)| id));
        match page.next {
            Some(cursor) => find.after = Some(Cursor::decode(&cursor.encode()).unwrap()),
            None => return seen,
        }
    }
}

async fn body(models: &dyn ReadModels, namespace: &str, id: &str) -> Option<Value> {
    let text = models.read().await.unwrap().get(namespace, "orders", id).await.unwrap()?;
    Some(serde_json::from_str(&text).unwrap())
}

async fn filters_compare_by_json_type_and_stay_in_their_namespace(models: &dyn ReadModels) {
    seed(models).await;
    let q = |path: &str, condition: Condition| find(vec![filter(path, condition)]);
    assert_eq!(ids(models, q("status", Condition::Eq(json!("paid")))).await, ["a", "c", "e"]);
    assert_eq!(ids(models, q("total", Condition::Eq(json!(30)))).await, ["a"], "30 is not \"30\"");
    assert_eq!(ids(models, q("total", Condition::Eq(json!(30.0)))).await, ["a"], "30.0 is 30");
    assert_eq!(ids(models, q("total", Condition::Gte(json!(20)))).await, ["a", "c"]);
    assert_eq!(ids(models, q("total", Condition::Lt(json!(20)))).await, ["b"]);
    assert_eq!(ids(models, q("total", Condition::Lte(json!(10.5)))).await, ["b"]);
    assert_eq!(ids(models, q("total", Condition::Gt(json!("2")))).await, ["e"], "strings compare with strings");
    assert_eq!(ids(models, q("status", Condition::Lt(json!("paid")))).await, ["b"]);
    assert_eq!(ids(models, q("note", Condition::Lt(json!("a")))).await, ["d"], "byte order: \"A\" < \"a\"");
    assert_eq!(ids(models, q("total", Condition::Eq(Value::Null))).await, ["d"], "missing is null");
    assert_eq!(ids(models, q("flag", Condition::Eq(Value::Null))).await, ["b", "d", "e"], "null is null");
    assert_eq!(ids(models, q("flag", Condition::Ne(Value::Null))).await, ["a", "c"]);
    assert_eq!(ids(models, q("flag", Condition::Ne(json!(true)))).await, ["c", "e"], "present and not equal");
    assert_eq!(ids(models, q("total", Condition::Ne(json!(30)))).await, ["b", "c", "e"]);
    assert_eq!(ids(models, q("total", Condition::Lt(Value::Null))).await, Vec::<String>::new());
    assert_eq!(ids(models, q("user.id", Condition::Prefix("u1".into()))).await, ["a", "c", "e"]);
    assert_eq!(ids(models, q("total", Condition::Prefix("3".into()))).await, ["e"], "only strings");
    assert_eq!(ids(models, q("flag", Condition::Eq(json!(true)))).await, ["a"]);
    assert_eq!(ids(models, q("flag", Condition::Gte(json!(true)))).await, ["a"]);
    assert_eq!(ids(models, q("flag", Condition::Gt(json!(false)))).await, Vec::<String>::new());
    assert_eq!(ids(models, q("user", Condition::Eq(json!({"id": "u2"})))).await, ["b"]);
    let any = Condition::AnyOf(vec![json!("open"), json!("void")]);
    assert_eq!(ids(models, q("status", any)).await, ["b", "d"]);
    let any = Condition::AnyOf(vec![json!(20), Value::Null]);
    assert_eq!(ids(models, q("total", any)).await, ["c", "d"]);
    assert!(ids(models, q("status", Condition::AnyOf(vec![]))).await.is_empty());
    let both = vec![filter("status", Condition::Eq(json!("paid"))), filter("user.id", Condition::Eq(json!("u1")))];
    assert_eq!(ids(models, find(both)).await, ["a", "c"]);
    let hyphen = q("no-such-field", Condition::Eq(Value::Null));
    assert_eq!(ids(models, hyphen).await, ["a", "b", "c", "d", "e"]);
}

async fn pages_follow_the_order_with_missing_fields_first_ascending_and_last_descending(models: &dyn ReadModels) {
    seed(models).await;
    for (descending, expected) in [(false, ["d", "b", "c", "a", "e"]), (true, ["e", "a", "c", "b", "d"])] {
        let order = Some(Order { path: vec!["total".into()], descending });
        for limit in [1, 2, 5] {
            let seen = all_pages(models, Find { filters: vec![], order: order.clone(), limit, after: None }).await;
            assert_eq!(seen, expected, "descending: {descending}, limit {limit}");
        }
    }
    // Ties on a dotted path are ordered by id, in the same direction.
    for (descending, expected) in [(false, ["a", "c", "e", "b", "d"]), (true, ["d", "b", "e", "c", "a"])] {
        let order = Some(Order { path: vec!["user".into(), "id".into()], descending });
        let seen = all_pages(models, Find { filters: vec![], order, limit: 2, after: None }).await;
        assert_eq!(seen, expected, "descending: {descending}");
    }
    // Booleans sort as 0 and 1 after missing and null; objects as their text.
    for (path, expected) in [("flag", ["b", "d", "e", "c", "a"]), ("user", ["a", "c", "e", "b", "d"])] {
        let order = Some(Order { path: vec![path.into()], descending: false });
        let seen = all_pages(models, Find { filters: vec![], order, limit: 2, after: None }).await;
        assert_eq!(seen, expected, "by {path}");
    }
}

async fn pages_without_an_order_follow_the_id_and_filters_apply_to_every_page(models: &dyn ReadModels) {
    seed(models).await;
    assert_eq!(all_pages(models, Find { limit: 2, ..Find::default() }).await, ["a", "b", "c", "d", "e"]);
    let paid = vec![filter("status", Condition::Eq(json!("paid")))];
    assert_eq!(all_pages(models, Find { filters: paid.clone(), limit: 1, ..Find::default() }).await, ["a", "c", "e"]);
    let order = Some(Order { path: vec!["total".into()], descending: true });
    assert_eq!(all_pages(models, Find { filters: paid, order, limit: 2, after: None }).await, ["e", "a", "c"]);
    let page = models.read().await.unwrap().find(NS, "orders", &Find { limit: 5, ..Find::default() }).await.unwrap();
    assert_eq!(page.documents.len(), 5);
    assert!(page.next.is_none(), "an exactly full last page has no next");
}

async fn a_checkpoint_commits_with_the_writes_and_a_dropped_transaction_writes_nothing(models: &dyn ReadModels) {
    seed(models).await;
    let row = models.create_generation("shop", "orders", 1, "0.1.0", GenerationRole::Active).await.unwrap();
    let mut tx = models.write().await.unwrap();
    tx.upsert(NS, "orders", "f", "{}").await.unwrap();
    drop(tx);
    assert!(models.read().await.unwrap().get(NS, "orders", "f").await.unwrap().is_none());
    let mut tx = models.write().await.unwrap();
    tx.upsert(NS, "orders", "f", "{}").await.unwrap();
    tx.commit(Some(Checkpoint { generation: row.id.clone(), expected: 0, position: 42 })).await.unwrap();
    assert!(models.read().await.unwrap().get(NS, "orders", "f").await.unwrap().is_some());
    assert_eq!(models.generations().await.unwrap()[0].position, 42);
    // A transaction that started from a checkpoint that has moved since commits nothing.
    let mut stale = models.write().await.unwrap();
    stale.upsert(NS, "orders", "g", "{}").await.unwrap();
    assert!(stale.commit(Some(Checkpoint { generation: row.id, expected: 0, position: 50 })).await.is_err());
    assert!(models.read().await.unwrap().get(NS, "orders", "g").await.unwrap().is_none());
    assert_eq!(models.generations().await.unwrap()[0].position, 42);
}

async fn a_retired_or_dropped_generation_takes_no_checkpoint(models: &dyn ReadModels) {
    let first = models.create_generation("shop", "orders", 1, "0.1.0", GenerationRole::Active).await.unwrap();
    let second = models.create_generation("shop", "orders", 2, "0.2.0", GenerationRole::Building).await.unwrap();
    models.promote(&second.id).await.unwrap();
    let mut tx = models.write().await.unwrap();
    tx.upsert(NS, "orders", "x", "{}").await.unwrap();
    let error = tx.commit(Some(Checkpoint { generation: first.id, expected: 0, position: 1 })).await.unwrap_err();
    assert!(error.0.contains("checkpoint moved"), "{error}");
    models.drop_generation(&second.id).await.unwrap();
    let mut tx = models.write().await.unwrap();
    tx.upsert(NS, "orders", "x", "{}").await.unwrap();
    assert!(tx.commit(Some(Checkpoint { generation: second.id, expected: 0, position: 1 })).await.is_err());
    assert!(body(models, NS, "x").await.is_none());
}

fn write(collection: &str, id: &str, body: Option<Value>) -> (String, String, Option<String>) {
    (collection.to_string(), id.to_string(), body.map(|b| b.to_string()))
}

async fn write_many_upserts_and_deletes_in_one_call(models: &dyn ReadModels) {
    seed(models).await;
    let writes = [
        write("orders", "a", None),
        write("orders", "b", Some(json!({"n": 5}))),
        write("orders", "new", Some(json!({"n": 6}))),
        write("orders", "absent", None),
        write("users", "u1", None),
    ];
    let mut tx = models.write().await.unwrap();
    tx.write_many(NS, &writes).await.unwrap();
    tx.write_many(NS, &[]).await.unwrap();
    tx.commit(None).await.unwrap();
    assert_eq!(body(models, NS, "a").await, None);
    assert_eq!(body(models, NS, "b").await, Some(json!({"n": 5})));
    assert_eq!(body(models, NS, "new").await, Some(json!({"n": 6})));
    assert_eq!(body(models, NS, "c").await.map(|c| c["total"].clone()), Some(json!(20)), "untouched");
    assert!(models.read().await.unwrap().get(NS, "users", "u1").await.unwrap().is_none());
    assert_eq!(body(models, "shop/orders/2", "z").await, Some(json!({"status": "paid"})), "other namespace");
}

/// The trait applies a batch "in this order": of several writes to one document, the last wins.
async fn write_many_last_write_to_a_document_wins(models: &dyn ReadModels) {
    seed(models).await;
    let writes = [
        write("orders", "x", Some(json!({"n": 1}))),
        write("orders", "x", None),
        write("orders", "y", None),
        write("orders", "y", Some(json!({"n": 2}))),
        write("orders", "z", Some(json!({"n": 3}))),
        write("orders", "z", Some(json!({"n": 4}))),
        write("orders", "a", Some(json!({"n": 5}))),
        write("orders", "a", None),
    ];
    let mut tx = models.write().await.unwrap();
    tx.write_many(NS, &writes).await.unwrap();
    tx.commit(None).await.unwrap();
    assert_eq!(body(models, NS, "y").await, Some(json!({"n": 2})));
    assert_eq!(body(models, NS, "z").await, Some(json!({"n": 4})));
    assert_eq!(body(models, NS, "x").await, None, "written, then deleted");
    assert_eq!(body(models, NS, "a").await, None, "replaced, then deleted");
}

async fn a_read_transaction_sees_one_snapshot(models: &dyn ReadModels) {
    seed(models).await;
    let mut read = models.read().await.unwrap();
    assert!(read.get(NS, "orders", "a").await.unwrap().is_some());
    let mut tx = models.write().await.unwrap();
    tx.upsert(NS, "orders", "new", "{}").await.unwrap();
    tx.delete(NS, "orders", "a").await.unwrap();
    tx.commit(None).await.unwrap();
    assert!(read.get(NS, "orders", "new").await.unwrap().is_none());
    assert!(read.get(NS, "orders", "a").await.unwrap().is_some());
    assert_eq!(read.find(NS, "orders", &find(vec![])).await.unwrap().documents.len(), 5);
    read.commit(None).await.unwrap();
    assert!(body(models, NS, "new").await.is_some());
    assert!(body(models, NS, "a").await.is_none());
}

async fn promoting_retires_the_active_generation_and_drops_the_one_before(models: &dyn ReadModels) {
    seed(models).await;
    let first = models.create_generation("shop", "orders", 1, "0.1.0", GenerationRole::Active).await.unwrap();
    let second = models.create_generation("shop", "orders", 2, "0.2.0", GenerationRole::Building).await.unwrap();
    models.promote(&second.id).await.unwrap();
    let third = models.create_generation("shop", "orders", 3, "0.3.0", GenerationRole::Building).await.unwrap();
    models.promote(&third.id).await.unwrap();
    let roles: Vec<(u64, GenerationRole)> =
        models.generations().await.unwrap().into_iter().map(|g| (g.id.generation, g.role)).collect();
    assert_eq!(roles, [(2, GenerationRole::Retired), (3, GenerationRole::Active)]);
    assert!(ids(models, find(vec![])).await.is_empty(), "generation 1's documents are gone with it");
    assert_eq!(first.id.namespace(), NS);
}

async fn generations_are_numbered_per_projection_and_record_their_plugin_version(models: &dyn ReadModels) {
    let a = models.create_generation("shop", "orders", 7, "0.1.0", GenerationRole::Building).await.unwrap();
    let b = models.create_generation("shop", "carts", 1, "0.1.0", GenerationRole::Active).await.unwrap();
    let c = models.create_generation("shop", "orders", 8, "0.1.0", GenerationRole::Building).await.unwrap();
    assert_eq!((a.id.generation, b.id.generation, c.id.generation), (1, 1, 2));
    models.set_plugin_version(&c.id, "0.2.0").await.unwrap();
    models.drop_generation(&a.id).await.unwrap();
    let rows = models.generations().await.unwrap();
    let summary: Vec<_> = rows.iter().map(|g| (g.id.name.as_str(), g.id.generation, g.version)).collect();
    assert_eq!(summary, [("carts", 1, 1), ("orders", 2, 8)]);
    assert_eq!(rows[1].plugin_version, "0.2.0");
    let d = models.create_generation("shop", "orders", 9, "0.2.0", GenerationRole::Building).await.unwrap();
    assert_eq!(d.id.generation, 3, "numbers are not reused");
}

/// Two hosts (two stores on one schema) run one generation's projector: of two transactions
/// that start from the same checkpoint, one commits and the other writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_checkpoints_are_exactly_once_across_hosts() {
    let Some(settings) = testing::settings("postgres_checkpoints_are_exactly_once_across_hosts") else { return };
    let (one, two) = (PgStore::open(&settings).await.unwrap(), PgStore::open(&settings).await.unwrap());
    let (one, two) = (PgReadModels::new(one.pool()), PgReadModels::new(two.pool()));
    let row = one.create_generation("shop", "orders", 1, "0.1.0", GenerationRole::Active).await.unwrap();
    let at = |expected, position| Some(Checkpoint { generation: row.id.clone(), expected, position });

    // One after the other: the second one's expected checkpoint is stale.
    let mut first = one.write().await.unwrap();
    let mut second = two.write().await.unwrap();
    first.upsert(NS, "orders", "one", "{}").await.unwrap();
    second.upsert(NS, "orders", "two", "{}").await.unwrap();
    first.commit(at(0, 10)).await.unwrap();
    assert!(second.commit(at(0, 20)).await.is_err());
    assert!(body(&two, NS, "one").await.is_some());
    assert!(body(&one, NS, "two").await.is_none());
    assert_eq!(two.generations().await.unwrap()[0].position, 10);

    // At the same time, over and over: exactly one wins each round.
    for round in 0..10u64 {
        let (mut first, mut second) = (one.write().await.unwrap(), two.write().await.unwrap());
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        first.upsert(NS, "orders", &a, "{}").await.unwrap();
        second.upsert(NS, "orders", &b, "{}").await.unwrap();
        let expected = 10 + round;
        let (x, y) = tokio::join!(first.commit(at(expected, expected + 1)), second.commit(at(expected, expected + 1)));
        assert!(x.is_ok() != y.is_ok(), "round {round}: {x:?} {y:?}");
        assert_eq!(body(&one, NS, &a).await.is_some(), x.is_ok());
        assert_eq!(body(&one, NS, &b).await.is_some(), y.is_ok());
    }
    assert_eq!(one.generations().await.unwrap()[0].position, 20);
}

/// Two hosts creating generations of one projection at once get distinct, consecutive numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_generations_get_consecutive_numbers() {
    let Some(settings) = testing::settings("postgres_concurrent_generations_get_consecutive_numbers") else { return };
    let (one, two) = (PgStore::open(&settings).await.unwrap(), PgStore::open(&settings).await.unwrap());
    let (one, two) = (PgReadModels::new(one.pool()), PgReadModels::new(two.pool()));
    async fn create(models: &PgReadModels) -> Vec<u64> {
        let mut numbers = Vec::new();
        for _ in 0..5 {
            let row = models.create_generation("shop", "orders", 1, "0.1.0", GenerationRole::Building);
            numbers.push(row.await.unwrap().id.generation);
        }
        numbers
    }
    let (a, b) = tokio::join!(create(&one), create(&two));
    let mut all: Vec<u64> = a.into_iter().chain(b).collect();
    all.sort_unstable();
    assert_eq!(all, (1..=10).collect::<Vec<_>>());
}

/// A generation change is announced on `cairn_generations` with the domain, once committed.
#[tokio::test]
async fn postgres_generation_changes_are_notified() {
    let Some(store) = pg_store("postgres_generation_changes_are_notified").await else { return };
    let models = PgReadModels::new(store.pool());
    let mut listener = sqlx::postgres::PgListener::connect_with(&store.pool()).await.unwrap();
    listener.listen("cairn_generations").await.unwrap();
    // Channels are database-wide: a domain of its own tells this test's notifications apart.
    let domain = format!("notified{}", uuid::Uuid::now_v7().simple());
    let mut expect = async || loop {
        let note = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await.unwrap().unwrap();
        if note.payload() == domain {
            break;
        }
    };
    let row = models.create_generation(&domain, "orders", 1, "0.1.0", GenerationRole::Building).await.unwrap();
    expect().await;
    models.set_plugin_version(&row.id, "0.2.0").await.unwrap();
    expect().await;
    models.promote(&row.id).await.unwrap();
    expect().await;
    models.drop_generation(&row.id).await.unwrap();
    expect().await;
}

/// A drop racing a runner's commit leaves none of the runner's documents behind, and the next
/// generation gets a new number (a halted runner's late commit can never land in it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dropping_a_generation_waits_for_its_runner_and_removes_its_documents() {
    let Some(store) = pg_store("postgres_dropping_a_generation_waits_for_its_runner").await else { return };
    let models = std::sync::Arc::new(PgReadModels::new(store.pool()));
    let row = models.create_generation("shop", "orders", 1, "0.1.0", GenerationRole::Building).await.unwrap();
    // A runner between its checkpoint update and its commit (raw SQL: `commit` does both at once).
    let mut runner = store.pool().begin().await.unwrap();
    sqlx::query("INSERT INTO documents VALUES ($1, 'orders', 'late', '{}')")
        .bind(NS)
        .execute(&mut *runner)
        .await
        .unwrap();
    sqlx::query("UPDATE projection_generations SET position = 5").execute(&mut *runner).await.unwrap();
    let dropping = tokio::spawn({
        let (models, id) = (models.clone(), row.id.clone());
        async move { models.drop_generation(&id).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!dropping.is_finished(), "the drop waits for the runner's row lock");
    runner.commit().await.unwrap();
    dropping.await.unwrap().unwrap();
    assert!(body(&*models, NS, "late").await.is_none());
    let again = models.create_generation("shop", "orders", 1, "0.1.0", GenerationRole::Building).await.unwrap();
    assert_eq!(again.id.generation, row.id.generation + 1, "a dropped generation's number is never given again");
}

/// A refused document is the data's fault (`WriteError::Refused`, which the projection runner
/// strikes against the event), not a store failure to retry forever.
async fn write_many_names_a_document_the_store_refuses_as_refused(models: &dyn ReadModels) {
    use super::read_models::WriteError;
    let mut tx = models.write().await.unwrap();
    let refused = tx.write_many(NS, &[("c".into(), "x".into(), Some("not json".into()))]).await;
    assert!(matches!(refused, Err(WriteError::Refused(_))), "{refused:?}");
}

/// PostgreSQL's jsonb refuses a number beyond its numeric type (SQLSTATE 22003) that SQLite
/// and the host's JSON check accept: refused, not a store failure.
#[tokio::test]
async fn postgres_refuses_a_number_jsonb_cannot_hold() {
    use super::read_models::WriteError;
    let Some(store) = pg_store("refuses_a_number").await else { return };
    let models = PgReadModels::new(store.pool());
    let mut tx = models.write().await.unwrap();
    let odd = tx.write_many(NS, &[("c".into(), "x".into(), Some(r#"{"n":1e-20000}"#.into()))]).await;
    assert!(matches!(&odd, Err(WriteError::Refused(m)) if m.contains("numeric")), "{odd:?}");
}
