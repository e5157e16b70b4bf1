//! A projector's `find` over its own buffered writes: answered on its read snapshot with the
//! writes overlaid, page for page what the store answers once they are written (filters,
//! order with missing fields, cursors), on both backends; and without the shared writer, which
//! another projection may hold meanwhile.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::store::ReadModels;
use crate::store::postgres::{PgStore, testing};
use crate::store::read_models::Page;
use crate::store::sqlite_read_models::SqliteReadModels;

const NS: &str = "d/p/1";

async fn backends(case: &str) -> Vec<(Arc<dyn ReadModels>, Option<tempfile::TempDir>, Option<PgStore>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn ReadModels> = Arc::new(SqliteReadModels::open(dir.path()).await.unwrap());
    let mut all = vec![(sqlite, Some(dir), None)];
    if let Some(settings) = testing::settings(case) {
        let store = PgStore::open(&settings).await.unwrap();
        let models: Arc<dyn ReadModels> =
            Arc::new(crate::store::postgres::read_models::PgReadModels::new(store.pool()));
        all.push((models, None, Some(store)));
    }
    all
}

fn by_total(descending: bool, limit: u32) -> Find {
    Find { order: Some(Order { path: vec!["total".into()], descending }), limit, ..Find::default() }
}

/// The finds compared: every page of each, cursor to cursor.
fn finds() -> Vec<Find> {
    let at_least_ten = Filter { path: vec!["total".into()], condition: Condition::Gte(json!(10)) };
    let tagged = Filter { path: vec!["tag".into()], condition: Condition::Eq(json!("x")) };
    vec![
        Find { limit: 2, ..Find::default() },
        by_total(false, 2),
        by_total(true, 2),
        by_total(true, 1),
        Find { filters: vec![at_least_ten], ..by_total(false, 2) },
        Find { filters: vec![tagged], ..by_total(true, 10) },
    ]
}

/// Every page of `find`, following the cursors.
async fn pages(mut next: impl AsyncFnMut(&Find) -> Page, find: &Find) -> Vec<Page> {
    let mut find = find.clone();
    let mut all = Vec::new();
    loop {
        let page = next(&find).await;
        let more = page.next.clone();
        all.push(page);
        match more {
            Some(cursor) if all.len() < 20 => find.after = Some(cursor),
            _ => return all,
        }
    }
}

fn buffered() -> Vec<(String, String, Option<String>)> {
    let doc = |c: &str, id: &str, body: serde_json::Value| (c.to_string(), id.to_string(), Some(body.to_string()));
    vec![
        doc("c", "c", json!({"total": 25, "tag": "x"})),
        ("c".into(), "b".into(), None),
        doc("c", "a", json!({"total": 5, "tag": "x"})),
        doc("c", "g", json!({"note": "no total"})),
        doc("other", "z", json!({"total": 99, "tag": "x"})),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_find_over_buffered_writes_answers_what_the_store_answers_once_they_are_written() {
    for (models, _dir, _pg) in backends("find_over_buffered_writes").await {
        let mut tx = models.write().await.unwrap();
        for (id, body) in [
            ("a", json!({"total": 30, "tag": "x"})),
            ("b", json!({"total": 10})),
            ("d", json!({"tag": "x"})),
            ("e", json!({"total": 20, "tag": "y"})),
            ("f", json!({"total": 20, "tag": "x"})),
        ] {
            tx.upsert(NS, "c", id, &body.to_string()).await.unwrap();
        }
        tx.commit(None).await.unwrap();

        // What the store answers with the writes written (in a transaction then rolled back).
        let mut expected = Vec::new();
        let mut writer = models.write().await.unwrap();
        writer.write_many(NS, &buffered()).await.unwrap();
        for find in finds() {
            expected.push(pages(async |f: &Find| writer.find(NS, "c", f).await.unwrap(), &find).await);
        }
        drop(writer);

        let handle = tokio::runtime::Handle::current();
        let models2 = models.clone();
        let overlaid = tokio::task::spawn_blocking(move || {
            let mut access = ReadAccess::projector(NS.into(), models2, handle.clone(), 1 << 20);
            for (collection, id, body) in buffered() {
                access.write(&collection, &id, body).unwrap();
            }
            let mut all = Vec::new();
            for find in finds() {
                let mut find = find.clone();
                let mut found = Vec::new();
                loop {
                    let page = access.find_page("c", &find).unwrap();
                    let more = page.next.clone();
                    found.push(page);
                    match more {
                        Some(cursor) if found.len() < 20 => find.after = Some(cursor),
                        _ => break,
                    }
                }
                all.push(found);
            }
            all
        })
        .await
        .unwrap();
        assert_eq!(overlaid, expected);
        let ids: Vec<&str> = expected[2].iter().flat_map(|p| p.documents.iter().map(|(id, _)| id.as_str())).collect();
        assert_eq!(ids, ["c", "f", "e", "a", "g", "d"], "descending by total, missing last, ties by id");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_find_over_buffered_writes_does_not_take_the_shared_writer() {
    let dir = tempfile::tempdir().unwrap();
    let models: Arc<dyn ReadModels> = Arc::new(SqliteReadModels::open(dir.path()).await.unwrap());
    // Another projection's commit is under way: it holds SQLite's single write connection.
    let mut other = models.write().await.unwrap();
    other.upsert("e/q/1", "c", "x", r#"{"k": 1}"#).await.unwrap();
    let handle = tokio::runtime::Handle::current();
    let models2 = models.clone();
    let find = tokio::task::spawn_blocking(move || {
        let mut access = ReadAccess::projector(NS.into(), models2, handle, 1 << 20);
        access.write("c", "new", Some(r#"{"k": 2}"#.into())).unwrap();
        let page = access.find_page("c", &Find { limit: 10, ..Find::default() }).unwrap();
        page.documents.into_iter().map(|(id, _)| id).collect::<Vec<_>>()
    });
    // A deadlock detector, not a measure of speed: taking the writer would wait for `other`.
    let ids = tokio::time::timeout(Duration::from_secs(20), find).await.expect("the find waited for the writer");
    assert_eq!(ids.unwrap(), ["new"]);
    other.commit(None).await.unwrap();
}

/// A buffered document PostgreSQL refuses (a number beyond jsonb's numeric) makes the find
/// `invalid`, the plugin's error, not a store failure the projection would retry forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_find_over_a_buffered_document_the_store_refuses_is_the_plugins_error() {
    for (models, _dir, pg) in backends("find_over_refused_document").await {
        let handle = tokio::runtime::Handle::current();
        let (found, failure) = tokio::task::spawn_blocking(move || {
            let mut access = ReadAccess::projector(NS.into(), models, handle, 1 << 20);
            access.write("c", "odd", Some(r#"{"n": 1e-20000}"#.into())).unwrap();
            let found = access.find_page("c", &Find { limit: 10, ..Find::default() });
            (found.map(|page| page.documents.len()), access.store_failure.clone())
        })
        .await
        .unwrap();
        match pg {
            Some(_) => assert!(matches!(&found, Err(ReadModelError::Invalid(m)) if m.contains("refused")), "{found:?}"),
            None => assert_eq!(found.unwrap(), 1, "SQLite holds it"),
        }
        assert_eq!(failure, None, "not a store failure");
    }
}
