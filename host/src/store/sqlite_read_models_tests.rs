//! The SQLite read-model store against a real database file: filters on JSON fields, ordering
//! with missing fields, keyset pages, checkpoints committed with the writes, generations.

use serde_json::{Value, json};

use super::read_models::{Checkpoint, Condition, Filter, Find, GenerationRole, Order, ReadModels};
use super::sqlite_read_models::SqliteReadModels;

const NS: &str = "shop/orders/1";

async fn seeded() -> (tempfile::TempDir, SqliteReadModels) {
    let dir = tempfile::tempdir().unwrap();
    let models = SqliteReadModels::open(dir.path()).await.unwrap();
    let mut tx = models.write().await.unwrap();
    let docs = [
        ("a", json!({"status": "paid", "total": 30, "user": {"id": "u1"}, "flag": true})),
        ("b", json!({"status": "open", "total": 10.5, "user": {"id": "u2"}})),
        ("c", json!({"status": "paid", "total": 20, "user": {"id": "u1"}, "flag": false})),
        ("d", json!({"status": "void", "user": {"id": "u3"}, "note": "Apple pie"})),
        ("e", json!({"status": "paid", "total": "30", "user": {"id": "u10"}})),
    ];
    for (id, body) in docs {
        tx.upsert(NS, "orders", id, &body.to_string()).await.unwrap();
    }
    tx.upsert("shop/orders/2", "orders", "z", &json!({"status": "paid"}).to_string()).await.unwrap();
    tx.commit(None).await.unwrap();
    (dir, models)
}

fn filter(path: &str, condition: Condition) -> Filter {
    Filter { path: path.split('.').map(str::to_string).collect(), condition }
}

async fn ids(models: &SqliteReadModels, find: Find) -> Vec<String> {
    let mut tx = models.read().await.unwrap();
    tx.find(NS, "orders", &find).await.unwrap().documents.into_iter().map(|(id, _)| id).collect()
}

fn find(filters: Vec<Filter>) -> Find {
    Find { filters, limit: 100, ..Find::default() }
}

#[tokio::test]
async fn filters_compare_by_json_type_and_stay_in_their_namespace() {
    let (_dir, models) = seeded().await;
    assert_eq!(ids(&models, find(vec![filter("status", Condition::Eq(json!("paid")))])).await, ["a", "c", "e"]);
    assert_eq!(ids(&models, find(vec![filter("total", Condition::Eq(json!(30)))])).await, ["a"], "30 is not \"30\"");
    assert_eq!(ids(&models, find(vec![filter("total", Condition::Gte(json!(20)))])).await, ["a", "c"]);
    assert_eq!(ids(&models, find(vec![filter("total", Condition::Lt(json!(20)))])).await, ["b"]);
    assert_eq!(ids(&models, find(vec![filter("total", Condition::Eq(Value::Null))])).await, ["d"], "missing is null");
    assert_eq!(ids(&models, find(vec![filter("total", Condition::Ne(json!(30)))])).await, ["b", "c", "e"]);
    assert_eq!(ids(&models, find(vec![filter("user.id", Condition::Prefix("u1".into()))])).await, ["a", "c", "e"]);
    assert_eq!(ids(&models, find(vec![filter("flag", Condition::Eq(json!(true)))])).await, ["a"]);
    let any = Condition::AnyOf(vec![json!("open"), json!("void")]);
    assert_eq!(ids(&models, find(vec![filter("status", any)])).await, ["b", "d"]);
    let both = vec![filter("status", Condition::Eq(json!("paid"))), filter("user.id", Condition::Eq(json!("u1")))];
    assert_eq!(ids(&models, find(both)).await, ["a", "c"]);
}

#[tokio::test]
async fn pages_follow_the_order_with_missing_fields_first_ascending_and_last_descending() {
    let (_dir, models) = seeded().await;
    for (descending, expected) in [(false, ["d", "b", "c", "a", "e"]), (true, ["e", "a", "c", "b", "d"])] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let order = Some(Order { path: vec!["total".into()], descending });
            let page = {
                let mut tx = models.read().await.unwrap();
                tx.find(NS, "orders", &Find { filters: vec![], order, limit: 2, after }).await.unwrap()
            };
            seen.extend(page.documents.into_iter().map(|(id, _)| id));
            match page.next {
                Some(cursor) => after = Some(super::read_models::Cursor::decode(&cursor.encode()).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, expected, "descending: {descending}");
    }
}

#[tokio::test]
async fn a_checkpoint_commits_with_the_writes_and_a_dropped_transaction_writes_nothing() {
    let (_dir, models) = seeded().await;
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
}

#[tokio::test]
async fn promoting_retires_the_active_generation_and_drops_the_one_before() {
    let (_dir, models) = seeded().await;
    let first = models.create_generation("shop", "orders", 1, "0.1.0", GenerationRole::Active).await.unwrap();
    let second = models.create_generation("shop", "orders", 2, "0.2.0", GenerationRole::Building).await.unwrap();
    models.promote(&second.id).await.unwrap();
    let third = models.create_generation("shop", "orders", 3, "0.3.0", GenerationRole::Building).await.unwrap();
    models.promote(&third.id).await.unwrap();
    let roles: Vec<(u64, GenerationRole)> =
        models.generations().await.unwrap().into_iter().map(|g| (g.id.generation, g.role)).collect();
    assert_eq!(roles, [(2, GenerationRole::Retired), (3, GenerationRole::Active)]);
    assert!(ids(&models, find(vec![])).await.is_empty(), "generation 1's documents are gone with it");
    assert_eq!(first.id.namespace(), NS);
}
