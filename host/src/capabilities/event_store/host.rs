//! `Host` impl of `cairn:domain/event-store`.

use super::{BufferedAppend, MAX_READ, check_new_stream, recorded};
use crate::bindings::event_store::{ExpectedVersion as WitExpected, Host, StoreError};
use crate::bindings::types::{NewEvent, RecordedEvent};
use crate::runtime::HostState;
use crate::store::ExpectedVersion;

fn not_granted() -> StoreError {
    StoreError::NotGranted("only command handlers may use the event store, and only inside `handle`".into())
}

/// A stream a handler reads: 1 to `max` bytes, no control characters (reading a stream that
/// cannot exist answers nothing; writing has the stricter rule of [`check_new_stream`]).
fn check_stream(stream: &str, max: usize) -> Result<(), StoreError> {
    if stream.is_empty() || stream.len() > max || stream.chars().any(char::is_control) {
        return Err(StoreError::InvalidStream(format!(
            "`{}` must be 1 to {max} bytes (limits.max_stream_name_bytes), no control characters",
            crate::text::quote(stream)
        )));
    }
    Ok(())
}

impl Host for HostState {
    fn read_stream(
        &mut self,
        stream: String,
        from_version: u64,
        max_count: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let unit = self.unit.as_mut().ok_or_else(not_granted)?;
        check_stream(&stream, unit.max_stream_bytes)?;
        let from = from_version.max(1);
        let max = max_count.min(MAX_READ);
        let stored = unit.stored(&stream, from, max).map_err(|e| {
            unit.store_failure = Some(e.clone());
            StoreError::Unavailable(e)
        })?;
        let mut events: Vec<RecordedEvent> =
            stored.into_iter().map(crate::capabilities::event_store::recorded_event).collect();
        // Read your own writes: what this unit appended comes after what is stored.
        if let Some(buffered) = unit.appends.iter().find(|a| a.stream == stream) {
            for (i, event) in buffered.events.iter().enumerate() {
                let version = buffered.first_version + i as u64;
                if version >= from && events.len() < max as usize {
                    events.push(recorded(&stream, version, event));
                }
            }
        }
        Ok(events)
    }

    fn append(&mut self, stream: String, expected: WitExpected, events: Vec<NewEvent>) -> Result<u64, StoreError> {
        let unit = self.unit.as_mut().ok_or_else(not_granted)?;
        if let Err(refusal) = check_new_stream(&stream, &unit.aggregates, unit.max_stream_bytes) {
            unit.refused_stream = Some(refusal.clone());
            return Err(StoreError::InvalidStream(refusal));
        }
        if unit.buffered_count() + events.len() > unit.max_events {
            return Err(StoreError::LimitExceeded(format!(
                "a unit of work may append at most {} events (limits.max_events_per_decision)",
                unit.max_events
            )));
        }
        if let Some(buffered) = unit.appends.iter_mut().find(|a| a.stream == stream) {
            // A second append to a stream continues the first one.
            let head = buffered.first_version + buffered.events.len() as u64 - 1;
            let fits = match expected {
                WitExpected::Any | WitExpected::StreamExists => true,
                WitExpected::NoStream => false,
                WitExpected::Exact(v) => v == head,
            };
            if !fits {
                return Err(StoreError::WrongExpectedVersion((stream, head)));
            }
            buffered.events.extend(events);
            return Ok(buffered.first_version + buffered.events.len() as u64 - 1);
        }
        let head = match expected {
            WitExpected::NoStream => 0,
            WitExpected::Exact(v) => v,
            WitExpected::Any | WitExpected::StreamExists => {
                let head = unit.head(&stream).map_err(|e| {
                    unit.store_failure = Some(e.clone());
                    StoreError::Unavailable(e)
                })?;
                if matches!(expected, WitExpected::StreamExists) && head == 0 {
                    return Err(StoreError::WrongExpectedVersion((stream, 0)));
                }
                head
            }
        };
        let store_expected = match expected {
            WitExpected::Any => ExpectedVersion::Any,
            WitExpected::NoStream => ExpectedVersion::NoStream,
            WitExpected::Exact(v) => ExpectedVersion::Exact(v),
            // Pinned to the version seen, so the commit notices if the stream moved meanwhile.
            WitExpected::StreamExists => ExpectedVersion::Exact(head),
        };
        let count = events.len() as u64;
        unit.appends.push(BufferedAppend { stream, expected: store_expected, first_version: head + 1, events });
        Ok(head + count)
    }
}
