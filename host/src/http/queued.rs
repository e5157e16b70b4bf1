//! Asynchronous commands over HTTP: `Prefer: respond-async` → `202` with a status URL (under a
//! repeated `Idempotency-Key`, the first job's, marked `Idempotent-Replayed: true`);
//! `GET /v1/commands/{id}`; and the dead letters under the admin API.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AppState, Problem};
use crate::engine::CommandRequest;
use crate::store::QueuedCommand;

/// Stores the command and answers `202 Accepted` with where to look.
pub(super) async fn submit(
    state: &AppState,
    request: CommandRequest,
    not_before: Option<&str>,
) -> Result<Response, Problem> {
    let not_before = not_before
        .map(|text| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000) as i64)
                .map_err(|e| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid-query",
                        format!("`not_before` must be RFC 3339: {e}"),
                    )
                })
        })
        .transpose()?;
    let submitted = state.commands.submit(&request, not_before).await?;
    let job = submitted.job;
    let url = format!("/v1/commands/{}", job.id);
    let body = json!({ "id": job.id, "state": job.state, "status_url": url, "not_before": super::rfc3339(job.not_before_micros) });
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(location) = header::HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if submitted.replayed {
        response.headers_mut().insert("idempotent-replayed", header::HeaderValue::from_static("true"));
    }
    Ok(response)
}

fn view(job: &QueuedCommand) -> Value {
    let result = job.result.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok());
    json!({
        "id": job.id,
        "domain": job.domain,
        "command": job.command,
        "state": job.state,
        "attempts": job.attempts,
        "not_before": super::rfc3339(job.not_before_micros),
        "result_status": job.result_status,
        "result": result,
        "last_error": job.last_error,
    })
}

/// `GET /v1/commands/{id}`: queued, running, succeeded (with the command's answer), rejected
/// (with the reason) or failed (a dead letter, with the last error).
pub async fn status(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, Problem> {
    let job = state.commands.job(&id).await.map_err(crate::engine::CommandError::from)?;
    let job = job.ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND, "unknown-command-id", format!("no queued command `{id}`"))
    })?;
    Ok(Json(view(&job)))
}

/// `GET /admin/v1/dead-letters`.
pub async fn dead_letters(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    let jobs = state.commands.queue().dead_letters().await.map_err(crate::engine::CommandError::from)?;
    Ok(Json(json!({ "dead_letters": jobs.iter().map(view).collect::<Vec<_>>() })))
}

/// `POST /admin/v1/dead-letters/{id}/retry`: back in the queue, attempts reset.
pub async fn retry(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, Problem> {
    let revived = state
        .commands
        .queue()
        .revive(&id, crate::store::now_micros())
        .await
        .map_err(crate::engine::CommandError::from)?;
    if !revived {
        return Err(Problem::new(StatusCode::NOT_FOUND, "unknown-dead-letter", format!("no dead letter `{id}`")));
    }
    state.commands.wake();
    Ok(Json(json!({ "id": id, "state": "queued" })))
}

/// `DELETE /admin/v1/dead-letters/{id}`.
pub async fn discard(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, Problem> {
    let gone = state.commands.queue().discard(&id).await.map_err(crate::engine::CommandError::from)?;
    if gone {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::new(StatusCode::NOT_FOUND, "unknown-dead-letter", format!("no dead letter `{id}`")))
    }
}
