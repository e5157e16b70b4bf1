//! The admin API under `/admin/v1`: deploy, list, activate and roll back plugin versions.
//! Every call needs `Authorization: Bearer <admin.token>` (compared in constant time); with no
//! token configured the admin API refuses everything and says how to set one.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{AppState, Problem};
use crate::registry::{ActivateMode, Registry, RegistryError};
use crate::store::Activation;

/// The admin API's own state: the registry and the token's digest.
#[derive(Clone)]
pub struct AdminState {
    registry: Arc<Registry>,
    token_digest: Option<[u8; 32]>,
}

impl AdminState {
    /// Admin state for `registry`, guarded by `token` (`None`: the admin API is disabled).
    pub fn new(registry: Arc<Registry>, token: Option<String>) -> Self {
        Self { registry, token_digest: token.map(|t| Sha256::digest(t.as_bytes()).into()) }
    }
}

/// Rejects calls without the right bearer token.
pub async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(expected) = state.admin.token_digest else {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "admin-disabled",
            "The admin API is disabled: set `admin.token` in the config file or the CAIRN_ADMIN_TOKEN \
             environment variable (at least 16 characters) and restart the host.",
        )
        .into_response();
    };
    let provided = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let Some(provided) = provided else {
        let mut response =
            Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Send `Authorization: Bearer <admin token>`.")
                .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"cairn-admin\""));
        return response;
    };
    let provided: [u8; 32] = Sha256::digest(provided.trim().as_bytes()).into();
    // Constant time: compare every byte of the two digests, whatever the first difference.
    if provided.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
        return Problem::new(StatusCode::FORBIDDEN, "invalid-token", "The admin token is not valid.").into_response();
    }
    next.run(request).await
}

/// `?activate=false` stages without activating.
#[derive(Debug, Deserialize)]
pub struct DeployQuery {
    activate: Option<bool>,
}

/// `POST /admin/v1/plugins`: upload a component.
pub async fn deploy(
    State(state): State<AppState>,
    query: Result<Query<DeployQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid-query", e.body_text()))?;
    let registry = &state.admin.registry;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            let cap = registry.max_component_bytes();
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "component-too-large",
                format!("the component exceeds the cap of {cap} bytes"),
            )
            .with("cap_bytes", cap)
        } else {
            super::commands::body_problem(rejection)
        }
    })?;
    let mime = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !mime.starts_with("application/wasm") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("Upload the component with `Content-Type: application/wasm` (got `{mime}`)."),
        ));
    }
    let mode = if query.activate == Some(false) { ActivateMode::No } else { ActivateMode::Yes };
    let report = registry.deploy(body.to_vec(), mode).await?;
    let status = if report.newly_stored { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(report)).into_response())
}

/// `GET /admin/v1/domains`: every domain with its active version.
pub async fn domains(State(state): State<AppState>) -> Json<Value> {
    let domains: Vec<Value> = state
        .admin
        .registry
        .all()
        .iter()
        .map(|p| json!({ "domain": p.domain(), "version": p.version(), "digest": p.digest, "describe": p.description() }))
        .collect();
    Json(json!({ "domains": domains }))
}

/// `GET /admin/v1/domains/{domain}/versions`: stored versions and the activation history.
pub async fn versions(State(state): State<AppState>, Path(domain): Path<String>) -> Result<Json<Value>, Problem> {
    let registry = &state.admin.registry;
    let (versions, history) = registry.history(&domain).await?;
    let active = registry.get(&domain).map(|p| p.digest.clone());
    let version_of = |digest: &str| versions.iter().find(|v| v.digest == digest).map(|v| v.version.clone());
    let listed: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "digest": v.digest,
                "size": v.size,
                "uploaded_at": super::rfc3339(v.uploaded_at_micros),
                "active": active.as_deref() == Some(v.digest.as_str()),
            })
        })
        .collect();
    let history: Vec<Value> = history
        .iter()
        .map(|a| activation_json(a, version_of(&a.digest), a.previous_digest.as_deref().and_then(version_of)))
        .collect();
    Ok(Json(json!({ "domain": domain, "active": active, "versions": listed, "history": history })))
}

/// Body of `activate` and `rollback`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    version: Option<String>,
    /// The digest (or version) the caller believes active; a different one is a 409.
    expected_active: Option<String>,
}

/// `POST /admin/v1/domains/{domain}/activate` with `{"version": "..."}`.
pub async fn activate(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    target: Result<Json<Target>, JsonRejection>,
) -> Result<Json<Value>, Problem> {
    let Json(target) = target.map_err(json_problem)?;
    let Some(selector) = target.version else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            "Send `{\"version\": \"<semver or digest>\"}`.",
        ));
    };
    let registry = &state.admin.registry;
    let expected = match target.expected_active {
        Some(expected) => Some(registry.find_version(&domain, &expected).await?.digest),
        None => None,
    };
    let (activation, replay) = registry.activate(&domain, &selector, expected.as_deref()).await?;
    Ok(Json(
        json!({ "activation": activation, "replay": replay, "version": registry.get(&domain).map(|p| p.version().to_string()) }),
    ))
}

/// `POST /admin/v1/domains/{domain}/rollback`, optionally with `{"version": "..."}`.
pub async fn rollback(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let target: Target = if body.iter().all(u8::is_ascii_whitespace) {
        Target::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid-body", e.to_string()))?
    };
    let registry = &state.admin.registry;
    let activation = registry.rollback(&domain, target.version.as_deref()).await?;
    Ok(Json(json!({ "activation": activation, "version": registry.get(&domain).map(|p| p.version().to_string()) })))
}

fn activation_json(a: &Activation, version: Option<String>, previous_version: Option<String>) -> Value {
    json!({
        "action": a.action,
        "digest": a.digest,
        "version": version,
        "previous_digest": a.previous_digest,
        "previous_version": previous_version,
        "at": super::rfc3339(a.at_micros),
    })
}

fn json_problem(rejection: JsonRejection) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid-body", rejection.body_text())
}

impl From<RegistryError> for Problem {
    fn from(error: RegistryError) -> Self {
        use RegistryError as E;
        let detail = error.to_string();
        match error {
            E::NotAComponent(_) => Problem::new(StatusCode::BAD_REQUEST, "not-a-component", detail),
            E::TooLarge { cap, .. } => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "component-too-large", detail).with("cap_bytes", cap)
            }
            E::Invalid(_) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-plugin", detail),
            E::VersionTaken(_) => Problem::new(StatusCode::CONFLICT, "version-taken", detail),
            E::ActiveChanged { .. } => Problem::new(StatusCode::CONFLICT, "activation-conflict", detail),
            E::ReplayFailed { report, .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "shadow-replay-failed", detail)
                    .with("replay", serde_json::to_value(report).unwrap_or_default())
            }
            E::UnknownDomain(_) => Problem::new(StatusCode::NOT_FOUND, "unknown-domain", detail),
            E::UnknownVersion { .. } => Problem::new(StatusCode::NOT_FOUND, "unknown-version", detail),
            E::NoPreviousVersion(_) => Problem::new(StatusCode::CONFLICT, "no-previous-version", detail),
            E::Store(cause) => {
                tracing::error!(%cause, "registry store failure");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "The registry store is unavailable; retry later.",
                )
            }
        }
    }
}
