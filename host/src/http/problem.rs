//! One error type for the whole HTTP surface, rendered as RFC 9457 problem details. The client
//! gets a stable `code`, a readable `detail` and, for rejections, every failing field; the real
//! cause of a server-side failure goes to the log, never into the body.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::CommandError;
use crate::runtime::FaultKind;

/// A problem response: `type`, `title`, `status`, `detail`, plus Cairn's `code` and extras.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    code: String,
    #[serde(flatten)]
    extra: Map<String, Value>,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem with `status`, a kebab-case `code` and a readable `detail`.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:cairn:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    /// Adds a member to the body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// Asks the client to retry after `seconds` (a `Retry-After` header).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// `errors`: field → message (messages for one field joined).
    pub(super) fn with_fields<'a>(self, fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut errors = Map::new();
        for (field, message) in fields {
            match errors.get_mut(field) {
                Some(Value::String(existing)) => {
                    existing.push(' ');
                    existing.push_str(message);
                }
                _ => {
                    errors.insert(field.to_string(), Value::String(message.to_string()));
                }
            }
        }
        if errors.is_empty() { self } else { self.with("errors", errors) }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let mut response = (status, [(header::CONTENT_TYPE, "application/problem+json")], Json(self)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

impl From<CommandError> for Problem {
    fn from(error: CommandError) -> Self {
        use CommandError as E;
        match error {
            E::UnknownDomain(_) => Problem::new(StatusCode::NOT_FOUND, "unknown-domain", error.to_string()),
            E::UnknownCommand { .. } => Problem::new(StatusCode::NOT_FOUND, "unknown-command", error.to_string()),
            E::UnknownAggregate { .. } => Problem::new(StatusCode::NOT_FOUND, "unknown-aggregate", error.to_string()),
            E::VersionNotFound { head: 0, ref stream, .. } => Problem::new(
                StatusCode::NOT_FOUND,
                "aggregate-not-found",
                format!("no events were ever recorded on `{}`", crate::text::quote(stream)),
            ),
            E::VersionNotFound { head, .. } => {
                Problem::new(StatusCode::NOT_FOUND, "version-not-found", error.to_string()).with("head", head)
            }
            E::InvalidPayload { ref fields, ref message } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-payload", message)
                    .with_fields(fields.iter().map(|(f, m)| (f.as_str(), m.as_str())))
            }
            E::Rejected(rejection) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, &rejection.code, &rejection.message)
                    .with_fields(rejection.fields.iter().map(|f| (f.field.as_str(), f.message.as_str())))
            }
            E::Conflict { attempts, .. } => {
                Problem::new(StatusCode::CONFLICT, "concurrency-conflict", error.to_string()).with("attempts", attempts)
            }
            E::IdempotencyKeyReused(_) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused", error.to_string())
            }
            E::PluginFault(fault) => Problem::from(fault),
            E::LimitExceeded { ref domain, ref version, limit, .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "limit-exceeded", error.to_string())
                    .with("domain", domain.as_str())
                    .with("plugin_version", version.as_str())
                    .with("function", "decide")
                    .with("limit", limit)
            }
            E::DomainBusy { .. } => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "domain-busy", error.to_string())
                .with("limit", crate::runtime::limit_names::CONCURRENCY)
                .retry_after(1),
            E::PluginContract { .. } => {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "plugin-contract-violation", error.to_string())
            }
            E::BatchFailed { index, command, error } => {
                let inner = Problem::from(*error);
                let detail = format!(
                    "Command {index} of the batch (`{command}`) failed, so nothing was written: {}",
                    inner.detail
                );
                Problem { detail, ..inner }.with("failed_index", index).with("failed_command", command)
            }
            E::InvalidStream(message) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-stream", message)
                .with("limit", crate::runtime::limit_names::STREAM_NAME),
            E::HistoryTooLarge { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "history-too-large", error.to_string())
                    .with("limit", "limits.max_read_mib")
            }
            E::Unstorable(unstorable) => {
                let mut problem =
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "unstorable-event", unstorable.to_string())
                        .with("stream", unstorable.stream.as_str())
                        .with("event_index", unstorable.index)
                        .with("event_type", unstorable.event_type.as_str())
                        .with("pointer", unstorable.error.pointer.as_str());
                if matches!(unstorable.error.reason, crate::store::event_rules::Reason::TooDeep(_)) {
                    problem = problem.with("limit", "limits.max_event_depth");
                }
                problem
            }
            E::Store(cause) => {
                tracing::error!(%cause, "event store failure");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "The event store is unavailable; retry later.",
                )
            }
        }
    }
}

impl From<crate::runtime::PluginFault> for Problem {
    fn from(fault: crate::runtime::PluginFault) -> Self {
        let (status, code) = match fault.kind {
            FaultKind::Deadline => (StatusCode::GATEWAY_TIMEOUT, "deadline-exceeded"),
            FaultKind::Memory | FaultKind::Stack | FaultKind::HostCall => {
                (StatusCode::UNPROCESSABLE_ENTITY, "limit-exceeded")
            }
            FaultKind::Trap => (StatusCode::INTERNAL_SERVER_ERROR, "plugin-trapped"),
        };
        let mut problem = Problem::new(status, code, fault.to_string())
            .with("domain", fault.domain)
            .with("plugin_version", fault.version)
            .with("function", fault.function);
        if let Some(limit) = fault.limit {
            problem = problem.with("limit", limit);
        }
        problem
    }
}

/// 404 for routes that do not exist.
pub async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", format!("no route for {}", uri.path()))
}
