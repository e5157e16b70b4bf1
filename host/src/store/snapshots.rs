//! Aggregate snapshots: a stream's folded state at a version, keyed by the digest of the
//! component that folded it, so a state is only ever read back by the code that made it (a new
//! plugin version starts from its own snapshots, or from the events).
//!
//! A snapshot is written either with the events that bring the stream to its version (in the
//! same transaction as them, through [`AppendBatch::snapshots`]: it commits only if they do), or
//! on its own by [`EventStore::save_snapshots`](super::EventStore::save_snapshots) (a shadow
//! replay of a new plugin version, ahead of its activation). Either way a snapshot already
//! stored under its (domain, stream, digest, version) is left as it is: writing one twice never
//! fails a unit of work. [`EventStore::load_snapshot`](super::EventStore::load_snapshot) is one
//! seek on the primary key: the newest version at or below a bound.
//!
//! The rules here are checked before anything reaches a writer, the same on both backends.

use std::collections::HashMap;

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{AppendBatch, AppendError, StoreError, StreamId};

/// The newest snapshot of a stream by a digest at or below a version (`$1` domain, `$2` stream,
/// `$3` digest, `$4` at most): one seek on the primary key, backwards. Both dialects (sqlx binds
/// `$n` on SQLite too).
pub(crate) const LOAD: &str = "SELECT version, state FROM snapshots \
     WHERE domain = $1 AND stream = $2 AND digest = $3 AND version <= $4 ORDER BY version DESC LIMIT 1";

/// The snapshot of `domain`/`stream` by `digest` in a row of [`LOAD`].
pub(crate) fn loaded<'r, R: Row>(row: &'r R, domain: &str, stream: &str, digest: &str) -> Snapshot
where
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Snapshot {
        domain: domain.to_string(),
        stream: stream.to_string(),
        digest: digest.to_string(),
        version: row.get::<i64, _>(0) as u64,
        state: row.get(1),
    }
}

/// A folded aggregate state, stored with the stream version it stands for and the digest of the
/// component that folded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Owning domain.
    pub domain: String,
    /// Stream name.
    pub stream: String,
    /// sha256 (lowercase hex) of the component that folded the state: a snapshot is only ever
    /// read back for that digest.
    pub digest: String,
    /// The stream version the state stands for (its last folded event), >= 1.
    pub version: u64,
    /// The state as the plugin returned it (JSON text, stored as TEXT on both backends: a
    /// plugin's state may hold `\u0000`, which PostgreSQL's `jsonb` refuses).
    pub state: String,
}

impl Snapshot {
    /// Why no backend can store this snapshot, if so: version 0 stands for no event (and a
    /// version past `i64::MAX` fits no BIGINT), and a NUL character (a raw one, not the JSON
    /// escape `\u0000`) does not fit PostgreSQL's TEXT.
    fn problem(&self) -> Option<String> {
        let Self { domain, stream, digest, version, state } = self;
        if *version == 0 || i64::try_from(*version).is_err() {
            return Some(format!(
                "snapshot of stream `{stream}` in domain `{domain}` has version {version}; a snapshot stands for a \
                 stored event (version 1 to 2^63-1)"
            ));
        }
        if digest.contains('\0') || state.contains('\0') {
            return Some(format!(
                "snapshot of stream `{stream}` in domain `{domain}` at version {version} holds a NUL character in \
                 its digest or state"
            ));
        }
        None
    }
}

/// Refuses a unit of work whose snapshots are malformed or do not ride with events: each must
/// have a version >= 1 and be of a (domain, stream) the unit appends to.
pub(crate) fn check_unit(batch: &AppendBatch) -> Result<(), AppendError> {
    for snapshot in &batch.snapshots {
        if let Some(problem) = snapshot.problem() {
            return Err(AppendError::Invalid(problem));
        }
        if !batch.streams.iter().any(|s| s.domain == snapshot.domain && s.stream == snapshot.stream) {
            return Err(AppendError::Invalid(format!(
                "snapshot of stream `{}` in domain `{}` rides with a unit of work that does not append to that \
                 stream; a snapshot is written with the events that produce its version",
                snapshot.stream, snapshot.domain
            )));
        }
    }
    Ok(())
}

/// Refuses a placed unit of work with a snapshot past its stream's head after the unit (a
/// version no event has): such a state would later stand in for events it never folded.
pub(crate) fn check_placed(batch: &AppendBatch, heads: &HashMap<StreamId, u64>) -> Result<(), AppendError> {
    for snapshot in &batch.snapshots {
        let head = heads.get(&(snapshot.domain.clone(), snapshot.stream.clone())).copied().unwrap_or_default();
        if snapshot.version > head {
            return Err(AppendError::Invalid(format!(
                "snapshot of stream `{}` in domain `{}` stands for version {}, past the stream's version {head} \
                 after this unit of work",
                snapshot.stream, snapshot.domain, snapshot.version
            )));
        }
    }
    Ok(())
}

/// Refuses snapshots given to `save_snapshots` that no backend can store (see
/// [`check_unit`] for the same rules on a unit of work).
pub(crate) fn check_saved(snapshots: &[Snapshot]) -> Result<(), StoreError> {
    match snapshots.iter().find_map(Snapshot::problem) {
        Some(problem) => Err(StoreError(format!("snapshots not saved: {problem}"))),
        None => Ok(()),
    }
}

/// A bound on a version for SQL (BIGINT): past `i64::MAX` means no bound.
pub(crate) fn sql_version(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}
