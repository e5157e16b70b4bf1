//! The deadline of the plugin call running on this thread, for host calls that block.
//!
//! Epoch interruption stops a guest only while it runs wasm: time spent inside a host call (a
//! store read, a gateway call, a WASI sleep) is invisible to it. So every blocking host call goes
//! through [`block_on`], which cuts the wait at the call's remaining deadline and marks the call
//! as overrun; the runtime then reports the call as a deadline fault, whatever the guest did with
//! the error it got. A thread-local, because host functions run synchronously on the thread that
//! entered the call ([`enter`] scopes it to that call).

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static OVERRUN: Cell<bool> = const { Cell::new(false) };
}

/// A host call waited until the plugin call's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun;

impl std::fmt::Display for Overrun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the plugin call reached its deadline while waiting in a host call")
    }
}

/// The scope of one plugin call's deadline on this thread; dropping it ends the scope.
#[must_use = "the deadline holds only while the guard lives"]
pub struct DeadlineScope {
    previous: Option<Instant>,
    previous_overrun: bool,
}

/// Starts the deadline of a plugin call on this thread (`None`: no deadline, as when limits are
/// not enforced).
pub fn enter(deadline: Option<Instant>) -> DeadlineScope {
    let previous = DEADLINE.with(|d| d.replace(deadline));
    let previous_overrun = OVERRUN.with(|o| o.replace(false));
    DeadlineScope { previous, previous_overrun }
}

impl DeadlineScope {
    /// Whether a host call of this scope was cut at the deadline.
    pub fn overran(&self) -> bool {
        OVERRUN.with(Cell::get)
    }
}

impl Drop for DeadlineScope {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.previous));
        OVERRUN.with(|o| o.set(self.previous_overrun));
    }
}

/// Time left to the current call's deadline (`None`: no deadline on this thread).
pub fn remaining() -> Option<Duration> {
    DEADLINE.with(Cell::get).map(|at| at.saturating_duration_since(Instant::now()))
}

/// Marks the current call as overrun (a host call gave up at the deadline).
pub fn mark_overrun() {
    OVERRUN.with(|o| o.set(true));
}

/// Runs `future` to completion on `runtime`, but no longer than the current call's deadline.
pub fn block_on<F: Future>(runtime: &tokio::runtime::Handle, future: F) -> Result<F::Output, Overrun> {
    match remaining() {
        None => Ok(runtime.block_on(future)),
        Some(left) => match runtime.block_on(async { tokio::time::timeout(left, future).await }) {
            Ok(output) => Ok(output),
            Err(_) => {
                mark_overrun();
                Err(Overrun)
            }
        },
    }
}

/// [`block_on`] for a store call: a cut wait is a store error naming the deadline (the call then
/// fails as a deadline fault, whatever the guest makes of the error it got).
pub fn block_on_store<T>(
    runtime: &tokio::runtime::Handle,
    future: impl Future<Output = Result<T, crate::store::StoreError>>,
) -> Result<T, crate::store::StoreError> {
    block_on(runtime, future).unwrap_or_else(|overrun| Err(crate::store::StoreError(overrun.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_cut_at_the_deadline_and_the_call_marked() {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_time().build().expect("runtime");
        let handle = runtime.handle().clone();
        let scope = enter(Some(Instant::now() + Duration::from_millis(30)));
        let started = Instant::now();
        let result = block_on(&handle, async { tokio::time::sleep(Duration::from_secs(10)).await });
        assert_eq!(result, Err(Overrun));
        assert!(started.elapsed() < Duration::from_secs(2), "cut at the deadline");
        assert!(scope.overran());
        assert_eq!(block_on(&handle, async { 7 }), Ok(7), "a ready future still answers at the deadline");
        drop(scope);
        assert!(remaining().is_none(), "the scope ends with its guard");
        assert!(!OVERRUN.with(Cell::get));
    }

    #[test]
    fn without_a_deadline_nothing_is_cut() {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_time().build().expect("runtime");
        let _scope = enter(None);
        assert_eq!(block_on(runtime.handle(), async { 1 }), Ok(1));
    }
}
