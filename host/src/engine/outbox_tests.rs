//! The outbox lease outlasts the recording of an outcome: a store that never answers (or keeps
//! failing) gives the recording up within its budget, before the lease could let another host
//! claim the message and call again.

use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;

use super::*;
use crate::store::StoreError;

/// An outbox whose `finish` hangs (`stall`) or fails, counting the tries.
struct Stuck {
    stall: bool,
    tries: AtomicU32,
}

#[async_trait]
impl Outbox for Stuck {
    async fn claim_due(&self, _: i64, _: i64, _: u32) -> Result<Vec<OutboxMessage>, StoreError> {
        Ok(Vec::new())
    }
    async fn finish(&self, _: &str, _: OutboxOutcome) -> Result<(), StoreError> {
        self.tries.fetch_add(1, Ordering::SeqCst);
        if self.stall {
            std::future::pending::<()>().await;
        }
        Err(StoreError("down".into()))
    }
    async fn release(&self, _: &[(String, i64)], _: i64) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn message(&self, _: &str) -> Result<Option<OutboxMessage>, StoreError> {
        Ok(None)
    }
    async fn dead_letters(&self) -> Result<Vec<OutboxMessage>, StoreError> {
        Ok(Vec::new())
    }
    async fn retry(&self, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn discard(&self, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
}

#[tokio::test]
async fn recording_an_outcome_gives_up_within_its_budget_and_the_lease_margin_outlasts_it() {
    // The host's policy, scaled down 40 times to run in real time.
    let scaled = RecordPolicy { attempts: RECORD.attempts, call: RECORD.call / 40, backoff: RECORD.backoff / 40 };
    for stall in [true, false] {
        let outbox = Stuck { stall, tries: AtomicU32::new(0) };
        let recorded = tokio::time::timeout(scaled.budget() * 4, record(&outbox, "m", OutboxOutcome::Done, scaled))
            .await
            .unwrap_or_else(|_| panic!("stall {stall}: recording never gave up"));
        assert!(!recorded);
        assert_eq!(outbox.tries.load(Ordering::SeqCst), RECORD.attempts, "stall {stall}");
    }
    assert_eq!(RECORD.budget(), Duration::from_millis(11_500));
    assert!(RECORD.budget() + Duration::from_secs(1) < LEASE_MARGIN, "the lease outlasts the recording");
}
