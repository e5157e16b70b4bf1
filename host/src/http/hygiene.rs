//! HTTP hygiene around the router: every error answered as problem+json (405s and extractor
//! rejections too) with `instance` naming the request id, CORS for configured origins, the
//! usual security headers, and one access-log line per request (target `cairn::access`, level
//! `info`: `RUST_LOG=cairn::access=warn` silences it).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use super::{Problem, REQUEST_ID};

/// Largest problem body rewritten to carry `instance` (problems are small).
const MAX_PROBLEM_BYTES: usize = 64 << 10;
const PROBLEM_JSON: &str = "application/problem+json";

/// Turns every error answer into problem+json carrying `instance` (the request id).
pub async fn problems(request: Request, next: Next) -> Response {
    let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_PROBLEM_BYTES).await else {
        return Problem::new(status, "internal-error", "The answer could not be read.").into_response();
    };
    let mut problem = if is_problem {
        match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes) {
            Ok(problem) => problem,
            Err(_) => return Response::from_parts(parts, Body::from(bytes)),
        }
    } else {
        // A rejection of axum's own (405, a malformed query string or path): its text, quoted.
        let text = String::from_utf8_lossy(&bytes);
        let detail = if text.trim().is_empty() {
            status.canonical_reason().unwrap_or("Error").to_string()
        } else {
            crate::text::quote(text.trim())
        };
        let value = serde_json::to_value(Problem::new(status, code_of(status), detail)).unwrap_or_default();
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        value.as_object().cloned().unwrap_or_default()
    };
    if !id.is_empty() {
        problem.entry("instance").or_insert_with(|| format!("urn:uuid:{id}").into());
    }
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The problem code of a rejection by its status.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::BAD_REQUEST => "malformed-request",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid-request",
        status if status.is_server_error() => "internal-error",
        _ => "request-refused",
    }
}

/// CORS for `origins` (`*`: any); `None` when none are configured (no CORS headers at all).
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static(REQUEST_ID),
            ])
            .expose_headers([HeaderName::from_static(REQUEST_ID), header::RETRY_AFTER, header::LOCATION])
            .max_age(Duration::from_secs(600)),
    )
}

/// The usual security headers, set unless a handler set them.
pub fn security_headers() -> [SetResponseHeaderLayer<HeaderValue>; 4] {
    let header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(HeaderName::from_static(name), HeaderValue::from_static(value))
    };
    [
        header("x-content-type-options", "nosniff"),
        header("x-frame-options", "DENY"),
        header("referrer-policy", "no-referrer"),
        header("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ]
}

/// `Strict-Transport-Security` for a host serving HTTPS: browsers keep to HTTPS for a year.
pub fn strict_transport_security() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    )
}

/// The span of one request: method, matched route, request id and domain.
pub fn span(request: &Request) -> tracing::Span {
    let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
    let route = request.extensions().get::<MatchedPath>().map_or("-", MatchedPath::as_str);
    let path = request.uri().path();
    let domain = path
        .strip_prefix("/v1/domains/")
        .or_else(|| path.strip_prefix("/admin/v1/domains/"))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("-");
    tracing::info_span!("http", method = %request.method(), route, path, request_id = %id, domain = %crate::text::quote(domain))
}

/// The access-log line of one answered request.
pub fn access_log(response: &Response, latency: Duration, _span: &tracing::Span) {
    tracing::info!(target: "cairn::access", status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0, "request");
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;
    use tower_http::trace::TraceLayer;
    use tracing_subscriber::EnvFilter;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn logged(filter: &str) -> String {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(filter))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = Router::new()
            .route("/v1/domains/{domain}/queries/{query}", get(|| async { "answer" }))
            .layer(TraceLayer::new_for_http().make_span_with(span).on_response(access_log));
        let request = Request::builder()
            .uri("/v1/domains/orders/queries/totals?x=1")
            .header(REQUEST_ID, "req-42")
            .body(Body::empty())
            .expect("a request");
        let response = app.oneshot(request).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::OK);
        String::from_utf8(lines.0.lock().expect("lines").clone()).expect("text")
    }

    #[tokio::test]
    async fn one_access_line_per_request_names_route_status_latency_request_and_domain() {
        let text = logged("info").await;
        let lines: Vec<_> = text.lines().filter(|l| l.contains("cairn::access")).collect();
        assert_eq!(lines.len(), 1, "{text}");
        for part in
            ["GET", "/v1/domains/{domain}/queries/{query}", "status=200", "latency_ms=", "req-42", "domain=orders"]
        {
            assert!(lines[0].contains(part), "{part} in {}", lines[0]);
        }
        assert!(logged("info,cairn::access=warn").await.is_empty(), "RUST_LOG silences it");
    }
}
