//! A circuit breaker per outside service: closed (calls go through, failures counted in a
//! sliding window) → open after `failure_threshold` failures within `window` (calls fail fast
//! with `circuit-open`) → half-open after `open_for` (one probe call goes through) → closed when
//! the probe succeeds, open again when it fails. Shared by every domain that calls the service.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Breaker thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures within `window` that open the circuit.
    pub failure_threshold: u32,
    /// How far back failures count.
    pub window: Duration,
    /// How long the circuit stays open before a probe.
    pub open_for: Duration,
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// One probe is (or may be) in flight.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: VecDeque<Instant>,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

/// One service's breaker.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    inner: Mutex<Inner>,
}

/// Permission to make a call; report how it went with [`Breaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A normal call.
    Call,
    /// The half-open probe.
    Probe,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        let inner =
            Inner { state: BreakerState::Closed, failures: VecDeque::new(), opened_at: None, probe_in_flight: false };
        Self { settings, inner: Mutex::new(inner) }
    }

    /// Whether a call may go out now; `None` = fail fast (circuit open).
    pub fn admit(&self, now: Instant) -> Option<Admission> {
        let mut inner = self.inner.lock().expect("breaker lock");
        match inner.state {
            BreakerState::Closed => Some(Admission::Call),
            BreakerState::Open => {
                let opened = inner.opened_at.unwrap_or(now);
                if now.duration_since(opened) >= self.settings.open_for {
                    inner.state = BreakerState::HalfOpen;
                    inner.probe_in_flight = true;
                    Some(Admission::Probe)
                } else {
                    None
                }
            }
            BreakerState::HalfOpen if !inner.probe_in_flight => {
                inner.probe_in_flight = true;
                Some(Admission::Probe)
            }
            BreakerState::HalfOpen => None,
        }
    }

    /// Records the outcome of an admitted call.
    pub fn record(&self, admission: Admission, success: bool, now: Instant) {
        let mut inner = self.inner.lock().expect("breaker lock");
        if admission == Admission::Probe {
            inner.probe_in_flight = false;
            if success {
                inner.state = BreakerState::Closed;
                inner.failures.clear();
                inner.opened_at = None;
            } else {
                inner.state = BreakerState::Open;
                inner.opened_at = Some(now);
            }
            return;
        }
        if success || inner.state != BreakerState::Closed {
            return;
        }
        inner.failures.push_back(now);
        while inner.failures.front().is_some_and(|t| now.duration_since(*t) > self.settings.window) {
            inner.failures.pop_front();
        }
        if inner.failures.len() as u32 >= self.settings.failure_threshold {
            inner.state = BreakerState::Open;
            inner.opened_at = Some(now);
            inner.failures.clear();
        }
    }

    /// Gives back an admission whose call did not reach the service (a malformed request): a
    /// probe leaves the breaker half-open for the next caller; a normal call changes nothing.
    pub fn release(&self, admission: Admission) {
        if admission == Admission::Probe {
            self.inner.lock().expect("breaker lock").probe_in_flight = false;
        }
    }

    /// The current state (an open breaker past its `open_for` reports half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        let inner = self.inner.lock().expect("breaker lock");
        match (inner.state, inner.opened_at) {
            (BreakerState::Open, Some(at)) if now.duration_since(at) >= self.settings.open_for => {
                BreakerState::HalfOpen
            }
            (state, _) => state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings {
            failure_threshold: 3,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
        })
    }

    #[test]
    fn opens_after_the_threshold_fails_fast_then_a_probe_closes_it() {
        let b = breaker();
        let t0 = Instant::now();
        for i in 0..3 {
            let admission = b.admit(t0).unwrap();
            b.record(admission, false, t0 + Duration::from_millis(i));
        }
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(b.admit(t0 + Duration::from_secs(1)), None, "fails fast while open");
        let probe = b.admit(t0 + Duration::from_secs(6)).unwrap();
        assert_eq!(probe, Admission::Probe);
        assert_eq!(b.admit(t0 + Duration::from_secs(6)), None, "one probe at a time");
        b.record(probe, true, t0 + Duration::from_secs(6));
        assert_eq!(b.state(t0 + Duration::from_secs(6)), BreakerState::Closed);
        assert_eq!(b.admit(t0 + Duration::from_secs(6)), Some(Admission::Call));
    }

    #[test]
    fn a_failed_probe_opens_it_again_and_old_failures_leave_the_window() {
        let b = breaker();
        let t0 = Instant::now();
        for i in 0..2 {
            b.record(Admission::Call, false, t0 + Duration::from_secs(i));
        }
        b.record(Admission::Call, false, t0 + Duration::from_secs(30));
        assert_eq!(b.state(t0 + Duration::from_secs(30)), BreakerState::Closed, "two of three left the window");
        b.record(Admission::Call, false, t0 + Duration::from_secs(31));
        b.record(Admission::Call, false, t0 + Duration::from_secs(32));
        assert_eq!(b.state(t0 + Duration::from_secs(32)), BreakerState::Open);
        let probe = b.admit(t0 + Duration::from_secs(40)).unwrap();
        b.record(probe, false, t0 + Duration::from_secs(40));
        assert_eq!(b.admit(t0 + Duration::from_secs(41)), None, "open again after a failed probe");
    }
}
