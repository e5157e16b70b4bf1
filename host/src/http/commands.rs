//! `POST /v1/domains/{domain}/commands/{command}`: a JSON object in, the appended events out.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, Problem};
use crate::engine::{BatchRequest, CommandRequest};

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// `?not_before=<RFC 3339>` delays an asynchronous command.
#[derive(Debug, serde::Deserialize)]
pub struct SendQuery {
    not_before: Option<String>,
}

/// Sends a command to a domain. With `Prefer: respond-async` it is stored and answered `202`.
pub async fn send(
    State(state): State<AppState>,
    Path((domain, command)): Path<(String, String)>,
    query: Result<axum::extract::Query<SendQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let body = body.map_err(body_problem)?;
    check_content_type(&headers)?;
    let payload = json_object(&body)?;
    let idempotency_key = header_text(&headers, "idempotency-key", MAX_IDEMPOTENCY_KEY)?;
    let correlation_id = header_text(&headers, "x-correlation-id", MAX_IDEMPOTENCY_KEY)?;
    let request = CommandRequest { domain, command, payload, idempotency_key, correlation_id };
    let prefer = headers.get("prefer").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if prefer.split([',', ';']).any(|p| p.trim().eq_ignore_ascii_case("respond-async")) {
        let axum::extract::Query(query) =
            query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid-query", e.body_text()))?;
        return super::queued::submit(&state, request, query.not_before.as_deref()).await;
    }
    Ok(respond(state.engine.handle(request).await?))
}

/// One command of a batch body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchItem {
    command: String,
    #[serde(default)]
    payload: Option<Box<serde_json::value::RawValue>>,
}

/// A batch body: `{"commands": [{"command": "...", "payload": {...}}, ...]}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    commands: Vec<BatchItem>,
}

/// `POST /v1/domains/{domain}/batch`: several commands, applied in order, all or nothing.
pub async fn batch(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let body = body.map_err(body_problem)?;
    check_content_type(&headers)?;
    let parsed: BatchBody = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-batch",
            format!("The body must be {{\"commands\": [{{\"command\": \"...\", \"payload\": {{...}}}}]}}: {e}"),
        )
    })?;
    let mut commands = Vec::with_capacity(parsed.commands.len());
    for (i, item) in parsed.commands.into_iter().enumerate() {
        let payload = item.payload.map_or_else(|| "{}".to_string(), |p| p.get().to_string());
        if !payload.trim_start().starts_with('{') {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-batch",
                format!("The payload of command {} must be a JSON object.", i + 1),
            ));
        }
        commands.push((item.command, payload));
    }
    let idempotency_key = header_text(&headers, "idempotency-key", MAX_IDEMPOTENCY_KEY)?;
    let correlation_id = header_text(&headers, "x-correlation-id", MAX_IDEMPOTENCY_KEY)?;
    let outcome = state.engine.handle_batch(BatchRequest { domain, commands, idempotency_key, correlation_id }).await?;
    Ok(respond(outcome))
}

fn respond(outcome: crate::engine::CommandOutcome) -> Response {
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::OK);
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], outcome.body).into_response();
    if let Some(position) = outcome.position {
        response.headers_mut().insert("cairn-position", header::HeaderValue::from(position));
    }
    if outcome.replayed {
        response.headers_mut().insert("idempotent-replayed", header::HeaderValue::from_static("true"));
    }
    response
}

/// Maps a body that could not be read (too large, broken stream) to a problem.
pub(super) fn body_problem(rejection: BytesRejection) -> Problem {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(status, "body-too-large", "The request body exceeds the size limit of this server.")
    } else {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "unreadable-body",
            format!("The request body could not be read: {rejection}"),
        )
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(()) };
    let value = value.to_str().unwrap_or_default().to_ascii_lowercase();
    let mime = value.split(';').next().unwrap_or_default().trim();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("Commands are JSON; got `{mime}`."),
        ))
    }
}

/// The body as the JSON text of an object; an empty body is `{}`.
fn json_object(body: &[u8]) -> Result<String, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok("{}".to_string());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "malformed-json", format!("The body is not valid JSON: {e}"))
    })?;
    if !value.is_object() {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "malformed-json", "The body must be a JSON object."));
    }
    // Valid UTF-8 is guaranteed once serde_json accepted it.
    Ok(String::from_utf8_lossy(body).into_owned())
}

fn header_text(headers: &HeaderMap, name: &str, max: usize) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(name) else { return Ok(None) };
    match value.to_str() {
        Ok(text) if !text.is_empty() && text.len() <= max => Ok(Some(text.to_string())),
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-header",
            format!("`{name}` must be 1 to {max} visible ASCII characters."),
        )),
    }
}
