//! How a stop reaches the queue and outbox workers: a `watch` channel of [`Stop`], from
//! [`Stop::Run`] to [`Stop::Drain`] (claim nothing more, finish what is under way) to
//! [`Stop::Cut`] (the grace period is over).

use tokio::sync::watch;

/// What a stop asks of the queue and outbox workers (through a `watch` channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Work on.
    Run,
    /// Claim nothing more; finish what is under way, then return.
    Drain,
    /// The grace period is over: cut off what is under way (waiting until it is dropped, so
    /// nothing holds the store any more) and return; what was cut off is then released.
    Cut,
}

/// Whether the workers should claim more: not once a stop began (nor once the host is gone).
pub(crate) fn running(stop: &watch::Receiver<Stop>) -> bool {
    *stop.borrow() == Stop::Run && stop.has_changed().is_ok()
}

/// Until a stop begins (or the host is gone).
pub(crate) async fn stopping(stop: &mut watch::Receiver<Stop>) {
    let _ = stop.wait_for(|s| *s != Stop::Run).await;
}

/// Until the grace period is over ([`Stop::Cut`]); never, once the host is gone.
pub(crate) async fn cut(stop: &mut watch::Receiver<Stop>) {
    if stop.wait_for(|s| *s == Stop::Cut).await.is_err() {
        std::future::pending::<()>().await;
    }
}
