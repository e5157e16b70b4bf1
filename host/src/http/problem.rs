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
        }
    }

    /// Adds a member to the body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// `errors`: field → message (messages for one field joined).
    fn with_fields<'a>(self, fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
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
        (status, [(header::CONTENT_TYPE, "application/problem+json")], Json(self)).into_response()
    }
}

impl From<CommandError> for Problem {
    fn from(error: CommandError) -> Self {
        use CommandError as E;
        match error {
            E::UnknownDomain(_) => Problem::new(StatusCode::NOT_FOUND, "unknown-domain", error.to_string()),
            E::UnknownCommand { .. } => Problem::new(StatusCode::NOT_FOUND, "unknown-command", error.to_string()),
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
            E::PluginFault(fault) => {
                let (status, code) = match fault.kind {
                    FaultKind::Deadline => (StatusCode::GATEWAY_TIMEOUT, "plugin-deadline-exceeded"),
                    FaultKind::Memory => (StatusCode::INTERNAL_SERVER_ERROR, "plugin-memory-exceeded"),
                    FaultKind::Stack => (StatusCode::INTERNAL_SERVER_ERROR, "plugin-stack-overflow"),
                    FaultKind::Trap => (StatusCode::INTERNAL_SERVER_ERROR, "plugin-trapped"),
                };
                Problem::new(status, code, fault.to_string())
                    .with("domain", fault.domain)
                    .with("plugin_version", fault.version)
                    .with("function", fault.function)
            }
            E::PluginContract { .. } => {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "plugin-contract-violation", error.to_string())
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

/// 404 for routes that do not exist.
pub async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", format!("no route for {}", uri.path()))
}
