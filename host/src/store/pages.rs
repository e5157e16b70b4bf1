//! Byte-bounded pages of events. A page is sized in the database before any event's payload is
//! loaded: one statement takes the next `limit` events' keys and sizes (`octet_length`, which
//! neither SQLite nor PostgreSQL answers by reading the value), keeps the prefix whose running
//! total stays within the page's bytes (the first event always), and only then joins the kept
//! keys back to their rows. So a stream that turns from tiny events to huge ones is never loaded
//! a thousand huge events at a time, and the common case (a few small events) is one round trip.
//! Both backends run the same text but for the join back (sqlx binds `$n` on SQLite too).

/// What a page read loaded.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    /// The events, in the read's order.
    pub events: Vec<super::StoredEvent>,
    /// True when events follow the page (it stopped at its count or at its bytes).
    pub more: bool,
}

/// The columns every page selects: an event's, then how many events the page sized.
const COLUMNS: &str = "e.domain, e.stream, e.version, e.position, e.event_type, e.data, e.metadata, e.recorded_at, \
                       s.total";

/// One stream's page: `$1` domain, `$2` stream, `$3` first version, `$4` most events, `$5` most
/// bytes (of data and metadata).
pub(crate) fn stream_page_sql(backend: Backend) -> String {
    sized(
        backend,
        "SELECT stream, version, octet_length(data) + octet_length(metadata) AS size FROM events \
         WHERE domain = $1 AND stream = $2 AND version >= $3 ORDER BY version LIMIT $4",
        "e.stream = $2",
        "s.version",
    )
}

/// One domain's page in (stream, version) order: `$1` domain, `$2`/`$3` the (stream, version)
/// read last (exclusive), `$4` most events, `$5` most bytes.
pub(crate) fn domain_page_sql(backend: Backend) -> String {
    sized(
        backend,
        "SELECT stream, version, octet_length(data) + octet_length(metadata) AS size FROM events \
         WHERE domain = $1 AND (stream, version) > ($2, $3) ORDER BY stream, version LIMIT $4",
        "e.stream = s.stream",
        "s.stream, s.version",
    )
}

/// Which database runs a page (the join back to the rows differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// SQLite: a plain join, which it runs as one index lookup per kept key.
    Sqlite,
    /// PostgreSQL: a `LATERAL` subquery kept apart by `OFFSET 0`, so that each kept key is one
    /// index lookup on (domain, stream, version) whatever the planner's estimates (with young
    /// statistics a plain join scanned the whole stream per key: 100 ms for a page of 1,000).
    Postgres,
}

fn sized(backend: Backend, sizes: &str, same_stream: &str, order: &str) -> String {
    let join = match backend {
        Backend::Sqlite => format!("JOIN events e ON e.domain = $1 AND {same_stream} AND e.version = s.version"),
        Backend::Postgres => format!(
            "JOIN LATERAL (SELECT * FROM events e WHERE e.domain = $1 AND {same_stream} AND e.version = s.version \
             OFFSET 0) e ON TRUE"
        ),
    };
    format!(
        "SELECT {COLUMNS} FROM ( \
            SELECT stream, version, \
                   SUM(size) OVER (ORDER BY {order} ROWS UNBOUNDED PRECEDING) AS running, \
                   ROW_NUMBER() OVER (ORDER BY {order}) AS n, COUNT(*) OVER () AS total \
            FROM ({sizes}) s) s \
         {join} \
         WHERE s.running <= $5 OR s.n = 1 \
         ORDER BY {}",
        order.replace("s.", "e.")
    )
}

/// A page from its rows: `total` is how many events the page sized (its count bound or fewer).
pub(crate) fn page(events: Vec<super::StoredEvent>, total: Option<i64>, limit: u32) -> EventPage {
    let total = total.unwrap_or_default() as usize;
    let more = events.len() < total || (total > 0 && total == limit as usize);
    EventPage { events, more }
}
