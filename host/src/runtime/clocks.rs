//! `wasi:clocks/monotonic-clock` with sleeps cut at the plugin call's deadline.
//!
//! WASI's own clock sleeps for as long as the guest asks (`std::thread::sleep` in a plugin is a
//! `subscribe-duration` and a `poll`), and epoch interruption cannot stop a guest waiting inside
//! the host. This replaces the clock's two `subscribe-*` functions in the linker: a sleep that
//! would end after the call's deadline ends at the deadline instead and marks the call overrun,
//! so the call fails as a deadline fault (`limits.deadline_ms`) the moment its time is up.
//! `now` and `resolution` are WASI's own.

use std::time::Duration;

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::clocks::{WasiClocksCtxView, WasiClocksView};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{self, Duration as WasiDuration, Instant};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::HostState;
use crate::capabilities::deadline;

/// Links the deadline-aware monotonic clock over the one `add_to_linker_sync` put in `linker`.
pub(super) fn shadow_monotonic_clock(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = monotonic_clock::add_to_linker::<HostState, DeadlineClock>(linker, |state| DeadlineClockView {
        wasi: state.clocks(),
    });
    linker.allow_shadowing(false);
    linked
}

/// The clock's data in a call: WASI's clock context and resource table.
struct DeadlineClock;

impl HasData for DeadlineClock {
    type Data<'a> = DeadlineClockView<'a>;
}

struct DeadlineClockView<'a> {
    wasi: WasiClocksCtxView<'a>,
}

impl DeadlineClockView<'_> {
    fn sleep(&mut self, asked: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        let left = deadline::remaining();
        let (length, cut) = match left {
            Some(left) if asked >= left => (left, true),
            _ => (asked, false),
        };
        let until = tokio::time::Instant::now().checked_add(length);
        let sleep = self.wasi.table.push(Sleep { until, cut, yielded: false })?;
        subscribe(self.wasi.table, sleep)
    }
}

impl monotonic_clock::Host for DeadlineClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<Instant> {
        monotonic_clock::Host::now(&mut self.wasi)
    }

    fn resolution(&mut self) -> wasmtime::Result<Instant> {
        monotonic_clock::Host::resolution(&mut self.wasi)
    }

    fn subscribe_instant(&mut self, when: Instant) -> wasmtime::Result<Resource<DynPollable>> {
        let now = monotonic_clock::Host::now(&mut self.wasi)?;
        self.sleep(Duration::from_nanos(when.saturating_sub(now)))
    }

    fn subscribe_duration(&mut self, duration: WasiDuration) -> wasmtime::Result<Resource<DynPollable>> {
        self.sleep(Duration::from_nanos(duration))
    }
}

/// A sleep: ready at `until` (`None`: never, a time too far to represent without a deadline).
struct Sleep {
    until: Option<tokio::time::Instant>,
    /// It ends at the call's deadline, not when the guest asked.
    cut: bool,
    /// A zero sleep yields to tokio once (as WASI's own does, so a busy `poll` loop cannot
    /// starve the I/O driver).
    yielded: bool,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Sleep {
    async fn ready(&mut self) {
        match self.until {
            Some(until) if until <= tokio::time::Instant::now() => {
                if !self.yielded {
                    self.yielded = true;
                    tokio::task::yield_now().await;
                }
            }
            Some(until) => tokio::time::sleep_until(until).await,
            None => std::future::pending().await,
        }
        if self.cut {
            deadline::mark_overrun();
        }
    }
}
