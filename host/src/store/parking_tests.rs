//! Parked and skipped events of projection generations on both read-model stores (PostgreSQL
//! skipped without `CAIRN_TEST_POSTGRES_URL`): a park is kept until unparked, a skip is
//! recorded with the checkpoint that moves past it (or not at all) and takes the park away.

use super::postgres::read_models::PgReadModels;
use super::postgres::{PgStore, testing};
use super::read_models::{Checkpoint, FailedEvent, GenerationRole, ReadModels, SkippedEvent};
use super::sqlite_read_models::SqliteReadModels;

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
                let Some(settings) = super::testing::settings(concat!("parking_", stringify!($case))) else { return };
                let store = super::PgStore::open(&settings).await.unwrap();
                super::$case(&super::PgReadModels::new(store.pool())).await;
            }
        }
    )*};
}

on_both_backends!(
    a_parked_generation_stays_parked_until_unparked,
    a_skip_commits_with_its_checkpoint_and_unparks,
    a_skip_whose_checkpoint_moved_records_nothing,
);

fn failed(position: u64, error: &str) -> FailedEvent {
    FailedEvent {
        position,
        stream: "order-1".into(),
        event_type: "OrderCreated".into(),
        error: error.into(),
        at_micros: 1_700_000_000_000_000 + position as i64,
    }
}

async fn a_parked_generation_stays_parked_until_unparked(models: &dyn ReadModels) {
    let first = models.create_generation("shop", "orders", 1, "0.1.0", GenerationRole::Active).await.unwrap();
    let other = models.create_generation("shop", "stats", 1, "0.1.0", GenerationRole::Active).await.unwrap();
    assert!(models.parked().await.unwrap().is_empty());
    models.park(&first.id, &failed(7, "boom")).await.unwrap();
    models.park(&first.id, &failed(7, "boom again")).await.unwrap();
    let parked = models.parked().await.unwrap();
    assert_eq!(parked, vec![(first.id.clone(), failed(7, "boom again"))], "one park per generation, the last");
    models.unpark(&other.id).await.unwrap();
    assert_eq!(models.parked().await.unwrap().len(), 1, "unparking another generation changes nothing");
    models.unpark(&first.id).await.unwrap();
    assert!(models.parked().await.unwrap().is_empty());
    // A dropped generation's park is not listed.
    models.park(&other.id, &failed(3, "x")).await.unwrap();
    models.drop_generation(&other.id).await.unwrap();
    assert!(models.parked().await.unwrap().is_empty());
}

async fn a_skip_commits_with_its_checkpoint_and_unparks(models: &dyn ReadModels) {
    let row = models.create_generation("shop", "orders", 1, "0.1.0", GenerationRole::Active).await.unwrap();
    models.park(&row.id, &failed(5, "boom")).await.unwrap();
    let skipped = SkippedEvent { generation: row.id.generation, event: failed(5, "boom"), by: "operator".into() };
    let mut tx = models.write().await.unwrap();
    tx.record_skip(&row.id, &skipped).await.unwrap();
    tx.commit(Some(Checkpoint { generation: row.id.clone(), expected: 0, position: 5 })).await.unwrap();
    assert!(models.parked().await.unwrap().is_empty(), "a skip takes the park away");
    assert_eq!(models.skipped("shop", "orders", 100).await.unwrap(), vec![skipped.clone()]);
    assert!(models.skipped("shop", "stats", 100).await.unwrap().is_empty());
    let stored = models.generations().await.unwrap();
    assert_eq!(stored[0].position, 5, "the checkpoint moved past the skipped event");

    let later = SkippedEvent { generation: row.id.generation, event: failed(9, "bad"), by: "policy".into() };
    let mut tx = models.write().await.unwrap();
    tx.record_skip(&row.id, &later).await.unwrap();
    tx.commit(Some(Checkpoint { generation: row.id.clone(), expected: 5, position: 9 })).await.unwrap();
    assert_eq!(models.skipped("shop", "orders", 100).await.unwrap(), vec![skipped, later.clone()], "oldest first");
    assert_eq!(models.skipped("shop", "orders", 1).await.unwrap().len(), 1, "limited");
}

async fn a_skip_whose_checkpoint_moved_records_nothing(models: &dyn ReadModels) {
    let row = models.create_generation("shop", "orders", 1, "0.1.0", GenerationRole::Active).await.unwrap();
    models.park(&row.id, &failed(5, "boom")).await.unwrap();
    let skipped = SkippedEvent { generation: row.id.generation, event: failed(5, "boom"), by: "policy".into() };
    let mut tx = models.write().await.unwrap();
    tx.record_skip(&row.id, &skipped).await.unwrap();
    let moved = tx.commit(Some(Checkpoint { generation: row.id.clone(), expected: 3, position: 5 })).await;
    assert!(moved.is_err(), "the checkpoint was not at 3");
    assert!(models.skipped("shop", "orders", 100).await.unwrap().is_empty(), "nothing recorded");
    assert_eq!(models.parked().await.unwrap().len(), 1, "still parked");
}
