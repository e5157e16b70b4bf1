//! What other hosts did, from PostgreSQL's LISTEN/NOTIFY: new events (`cairn_events`), registry
//! changes (`cairn_registry`) and projection generation changes (`cairn_generations`), each sent
//! in the transaction that made the change, so it arrives only if the change committed.
//!
//! Payloads are not trusted: channels are database-wide while a host may use one schema of it,
//! so a notification only says "look again", and the listener reads the head from its own
//! schema. Notifications sent while the listening connection is down are lost; after a
//! reconnect every follower is told to resync, and they poll as well.

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::watch;

const CHANNELS: [&str; 3] = ["cairn_events", "cairn_registry", "cairn_generations"];

/// Counters bumped when a kind of change may have happened; followers watch them and re-read
/// what they follow from the database.
#[derive(Clone)]
pub struct Notifications {
    registry: watch::Sender<u64>,
    generations: watch::Sender<u64>,
}

impl Notifications {
    /// Changes of any domain's active plugin version.
    pub fn registry(&self) -> watch::Receiver<u64> {
        self.registry.subscribe()
    }

    /// Changes of projection generations (created, promoted, dropped, taken over).
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.generations.subscribe()
    }
}

fn bump(counter: &watch::Sender<u64>) {
    counter.send_modify(|n| *n += 1);
}

/// Starts listening; fails if the first LISTEN fails (the database is unreachable).
pub(super) async fn start(pool: PgPool, head: watch::Sender<u64>) -> Result<Notifications> {
    let mut listener = PgListener::connect_with(&pool).await.context("listening to PostgreSQL notifications")?;
    listener.listen_all(CHANNELS).await.context("listening to PostgreSQL notifications")?;
    let notifications = Notifications { registry: watch::channel(0).0, generations: watch::channel(0).0 };
    let counters = notifications.clone();
    tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(first)) => {
                    // Drain what else is waiting, then look once.
                    let mut channels = vec![first.channel().to_string()];
                    while let Some(more) = listener.next_buffered() {
                        channels.push(more.channel().to_string());
                    }
                    if channels.iter().any(|c| c == "cairn_events") {
                        refresh_head(&pool, &head).await;
                    }
                    if channels.iter().any(|c| c == "cairn_registry") {
                        bump(&counters.registry);
                    }
                    if channels.iter().any(|c| c == "cairn_generations") {
                        bump(&counters.generations);
                    }
                }
                Ok(None) => {
                    // The connection dropped (the next call reconnects): anything may have changed.
                    tracing::warn!("the PostgreSQL notification connection dropped; reconnecting");
                    refresh_head(&pool, &head).await;
                    bump(&counters.registry);
                    bump(&counters.generations);
                }
                Err(error) => {
                    tracing::warn!(%error, "listening to PostgreSQL failed; retrying in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    // Notices sent meanwhile are lost: everyone looks again.
                    refresh_head(&pool, &head).await;
                    bump(&counters.registry);
                    bump(&counters.generations);
                }
            }
            if head.is_closed() {
                break; // the store is gone
            }
        }
    });
    Ok(notifications)
}

async fn refresh_head(pool: &PgPool, head: &watch::Sender<u64>) {
    if let Ok(position) = sqlx::query_scalar::<_, i64>("SELECT position FROM event_log_head").fetch_one(pool).await {
        super::raise(head, position as u64);
    }
}
