//! The in-memory read model's semantics, which the host's backends share.

use serde_json::{Value, json};

use super::*;
use crate::read_model::{ReadModelExt, ReadModelReadExt};

fn model(docs: &[(&str, Value)]) -> MemoryReadModel {
    let mut model = MemoryReadModel::new();
    for (id, body) in docs {
        model.upsert("c", id, body).unwrap();
    }
    model
}

fn ids(model: &MemoryReadModel, find: &Find) -> Vec<String> {
    model.find("c", find).unwrap().documents.into_iter().map(|d| d.id).collect()
}

fn people() -> MemoryReadModel {
    model(&[
        ("a", json!({"name": "Abel", "age": 30, "tags": {"vip": true}, "city": "Oslo"})),
        ("b", json!({"name": "Abby", "age": 25.0, "city": null})),
        ("c", json!({"name": "Bert", "age": "40"})),
        ("d", json!({"name": "Carl", "age": 41, "tags": {"vip": false}, "city": "Rome"})),
    ])
}

#[test]
fn upsert_get_delete() {
    let mut model = MemoryReadModel::new();
    assert_eq!(model.get("c", "x").unwrap(), None);
    model.upsert("c", "x", &json!({"a": 1})).unwrap();
    model.upsert("c", "x", &json!({"a": 2})).unwrap();
    assert_eq!(model.get("c", "x").unwrap(), Some(json!({"a": 2})));
    assert!(model.delete("c", "x").unwrap());
    assert!(!model.delete("c", "x").unwrap());
    assert!(model.documents("c").is_empty());
}

#[test]
fn documents_must_be_objects_and_names_non_empty() {
    let mut model = MemoryReadModel::new();
    assert!(matches!(model.upsert("c", "x", &json!([1])), Err(ReadModelError::Invalid(_))));
    assert!(matches!(model.upsert("", "x", &json!({})), Err(ReadModelError::Invalid(_))));
    assert!(matches!(model.get("c", ""), Err(ReadModelError::Invalid(_))));
    assert!(matches!(model.get("c", &"x".repeat(MAX_NAME_BYTES + 1)), Err(ReadModelError::Invalid(_))));
}

#[test]
fn typed_helpers_round_trip() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Doc {
        n: u32,
    }
    let mut model = MemoryReadModel::new();
    let dynamic: &mut dyn ReadModel = &mut model;
    dynamic.upsert_as("c", "x", &Doc { n: 3 }).unwrap();
    assert_eq!(dynamic.get_as::<Doc>("c", "x").unwrap(), Some(Doc { n: 3 }));
    assert!(matches!(dynamic.get_as::<String>("c", "x"), Err(ReadModelError::Invalid(_))));
    assert!(matches!(dynamic.upsert_as("c", "y", &5), Err(ReadModelError::Invalid(_))));
}

#[test]
fn eq_compares_numbers_as_numbers_and_null_matches_missing() {
    let model = people();
    assert_eq!(ids(&model, &Find::new().eq("age", 25)), ["b"]);
    assert_eq!(ids(&model, &Find::new().eq("age", 30.0)), ["a"]);
    assert_eq!(ids(&model, &Find::new().eq("age", "40")), ["c"]);
    assert_eq!(ids(&model, &Find::new().eq("city", Value::Null)), ["b", "c"]);
    assert_eq!(ids(&model, &Find::new().eq("tags.vip", true)), ["a"]);
    assert_eq!(ids(&model, &Find::new().eq("tags", json!({"vip": false}))), ["d"]);
}

#[test]
fn ne_never_matches_a_missing_field() {
    let model = people();
    assert_eq!(ids(&model, &Find::new().ne("city", "Oslo")), ["d"]);
    assert_eq!(ids(&model, &Find::new().ne("age", 30)), ["b", "c", "d"]);
    assert_eq!(ids(&model, &Find::new().ne("city", Value::Null)), ["a", "d"]);
}

#[test]
fn ranges_compare_within_a_type_only() {
    let model = people();
    assert_eq!(ids(&model, &Find::new().gt("age", 25)), ["a", "d"]);
    assert_eq!(ids(&model, &Find::new().gte("age", 25)), ["a", "b", "d"]);
    assert_eq!(ids(&model, &Find::new().lt("age", 41).gte("age", 26)), ["a"]);
    assert_eq!(ids(&model, &Find::new().lte("age", 41)), ["a", "b", "d"]);
    assert_eq!(ids(&model, &Find::new().gt("name", "B")), ["c", "d"]);
    assert_eq!(ids(&model, &Find::new().lt("age", "5")), ["c"]);
}

#[test]
fn prefix_and_any_of() {
    let model = people();
    assert_eq!(ids(&model, &Find::new().prefix("name", "Ab")), ["a", "b"]);
    assert_eq!(ids(&model, &Find::new().prefix("age", "4")), ["c"]);
    assert_eq!(ids(&model, &Find::new().any_of("city", [json!("Rome"), Value::Null])), ["b", "c", "d"]);
    assert!(ids(&model, &Find::new().any_of("city", Vec::<Value>::new())).is_empty());
    let too_many = Find::new().any_of("age", 0..=MAX_ANY_OF as u64);
    assert!(matches!(model.find("c", &too_many), Err(ReadModelError::LimitExceeded(_))));
}

#[test]
fn bad_paths_and_cursors_are_invalid() {
    let model = people();
    for field in ["", "a..b", ".a", "a b", "a.$"] {
        assert!(matches!(model.find("c", &Find::new().eq(field, 1)), Err(ReadModelError::Invalid(_))), "{field}");
    }
    let bad = Find::new().after(Some("not a cursor".into()));
    assert!(matches!(model.find("c", &bad), Err(ReadModelError::Invalid(_))));
}

#[test]
fn order_by_field_then_id_with_missing_first_ascending_and_last_descending() {
    let model = model(&[
        ("a", json!({"n": 2})),
        ("b", json!({})),
        ("c", json!({"n": 1})),
        ("d", json!({"n": 2})),
        ("e", json!({"n": null})),
    ]);
    assert_eq!(ids(&model, &Find::new().order_by("n", Direction::Ascending)), ["b", "e", "c", "a", "d"]);
    assert_eq!(ids(&model, &Find::new().order_by("n", Direction::Descending)), ["d", "a", "c", "e", "b"]);
    assert_eq!(ids(&model, &Find::new()), ["a", "b", "c", "d", "e"]);
}

#[test]
fn limit_defaults_to_100_and_caps_at_1000() {
    let mut model = MemoryReadModel::new();
    for i in 0..1_100 {
        model.upsert("c", &format!("{i:05}"), &json!({})).unwrap();
    }
    assert_eq!(model.find("c", &Find::new()).unwrap().documents.len(), 100);
    assert_eq!(model.find("c", &Find::new().limit(5_000)).unwrap().documents.len(), 1_000);
    assert_eq!(model.find("c", &Find::new().limit(7)).unwrap().documents.len(), 7);
}

#[test]
fn cursors_walk_every_page_once_in_both_directions() {
    let mut model = MemoryReadModel::new();
    for i in 0..23 {
        let body = if i % 5 == 0 { json!({"kind": "x"}) } else { json!({"kind": "x", "at": i % 7}) };
        model.upsert("c", &format!("d{i:02}"), &body).unwrap();
    }
    for direction in [Direction::Ascending, Direction::Descending] {
        let all = ids(&model, &Find::new().eq("kind", "x").order_by("at", direction).limit(1_000));
        let mut walked = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let find = Find::new().eq("kind", "x").order_by("at", direction).limit(4).after(cursor);
            let page = model.find("c", &find).unwrap();
            pages += 1;
            walked.extend(page.documents.into_iter().map(|d| d.id));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(walked, all, "{direction:?}");
        assert_eq!(pages, 6, "23 documents in pages of 4, no empty last page");
    }
}

#[test]
fn an_exact_last_page_has_no_cursor() {
    let model = model(&[("a", json!({})), ("b", json!({}))]);
    let page = model.find("c", &Find::new().limit(2)).unwrap();
    assert_eq!(page.documents.len(), 2);
    assert_eq!(page.next_cursor, None);
    let first = model.find("c", &Find::new().limit(1)).unwrap();
    let second = model.find("c", &Find::new().limit(1).after(first.next_cursor)).unwrap();
    assert_eq!(second.documents[0].id, "b");
    assert_eq!(second.next_cursor, None);
}

#[test]
fn increment_creates_documents_fields_and_objects() {
    let mut model = MemoryReadModel::new();
    assert_eq!(model.increment("c", "x", "count", 1.0).unwrap(), 1.0);
    assert_eq!(model.increment("c", "x", "count", 2.0).unwrap(), 3.0);
    assert_eq!(model.increment("c", "x", "money.cents", -250.0).unwrap(), -250.0);
    assert_eq!(model.increment("c", "x", "ratio", 0.5).unwrap(), 0.5);
    assert_eq!(model.get("c", "x").unwrap(), Some(json!({"count": 3, "money": {"cents": -250}, "ratio": 0.5})));
}

#[test]
fn increment_refuses_non_numbers_and_changes_nothing() {
    let mut model = model(&[("x", json!({"name": "A", "n": null, "deep": 5}))]);
    assert!(matches!(model.increment("c", "x", "name", 1.0), Err(ReadModelError::NotANumber(_))));
    assert!(matches!(model.increment("c", "x", "deep.n", 1.0), Err(ReadModelError::NotANumber(_))));
    assert!(matches!(model.increment("c", "x", "n", f64::NAN), Err(ReadModelError::Invalid(_))));
    assert!(matches!(model.increment("c", "x", "bad path", 1.0), Err(ReadModelError::Invalid(_))));
    assert_eq!(model.get("c", "x").unwrap(), Some(json!({"name": "A", "n": null, "deep": 5})));
    assert_eq!(model.increment("c", "x", "n", 4.0).unwrap(), 4.0);
}
