//! Calls to outside services through the host's gateway (WIT `cairn:domain/gateway`). A command
//! handler reaches it with [`crate::UnitOfWork::gateway`]; the operator configures each service
//! (base URL, timeout, retries, breaker, which domains may use it), the plugin names only the
//! service and a path under it.
//!
//! ```
//! use cairn_sdk::{GatewayError, GatewayRequest, GatewayResponse};
//!
//! let request = GatewayRequest::get("/rates?from=GB").idempotency_key("q-1");
//! assert_eq!((request.method.as_str(), request.path.as_str()), ("GET", "/rates?from=GB"));
//!
//! let answer = GatewayResponse::new(200, br#"{"price_cents": 1250}"#.to_vec());
//! let price: serde_json::Value = answer.json().unwrap();
//! assert_eq!(price["price_cents"], 1250);
//! assert_eq!(GatewayError::UpstreamStatus(GatewayResponse::new(503, vec![])).kind(), "upstream-status");
//! ```

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An HTTP request to a service (mirror of the WIT `request`), built with [`GatewayRequest::get`]
/// and friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRequest {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// An absolute path under the service's base URL, with an optional query (`/rates?to=FR`).
    pub path: String,
    /// Extra headers (the host sets `Host`, `Content-Length` and `Idempotency-Key`).
    pub headers: Vec<(String, String)>,
    /// The body (may be empty).
    pub body: Vec<u8>,
    /// Sent as `Idempotency-Key`, the same on every retry of the call.
    pub idempotency_key: Option<String>,
    /// Why [`GatewayRequest::json`] could not encode the body: the call fails with
    /// [`GatewayError::InvalidRequest`] without reaching the host.
    invalid: Option<String>,
}

impl GatewayRequest {
    /// A request with `method` to `path`, no headers, no body.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            idempotency_key: None,
            invalid: None,
        }
    }

    /// A `GET` of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new("GET", path)
    }

    /// A `POST` to `path`.
    pub fn post(path: impl Into<String>) -> Self {
        Self::new("POST", path)
    }

    /// A `PUT` to `path`.
    pub fn put(path: impl Into<String>) -> Self {
        Self::new("PUT", path)
    }

    /// A `PATCH` of `path`.
    pub fn patch(path: impl Into<String>) -> Self {
        Self::new("PATCH", path)
    }

    /// A `DELETE` of `path`.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new("DELETE", path)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON, with `Content-Type: application/json`. A value that does
    /// not serialize makes the call fail with [`GatewayError::InvalidRequest`].
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => self.body = body,
            Err(e) => self.invalid = Some(format!("the JSON body does not serialize: {e}")),
        }
        self.header("content-type", "application/json")
    }

    /// Sets the idempotency key (sent as `Idempotency-Key`, the same on every retry). Use an id
    /// the unit of work is about, so a re-run of the command sends the same key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The first header named `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Why the request cannot be sent, if the builder found out.
    pub(crate) fn invalid(&self) -> Option<&str> {
        self.invalid.as_deref()
    }
}

/// A service's answer (mirror of the WIT `response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayResponse {
    /// The HTTP status.
    pub status: u16,
    /// The answer's headers.
    pub headers: Vec<(String, String)>,
    /// The answer's body.
    pub body: Vec<u8>,
}

impl GatewayResponse {
    /// An answer with `status` and `body`, no headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self { status, headers: Vec::new(), body: body.into() }
    }

    /// The body decoded as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a call has no answer the plugin can use (mirror of the WIT `gateway-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// This domain may not use the service (or no such service is configured).
    NotGranted(String),
    /// The service's breaker is open after repeated failures: failing fast.
    CircuitOpen(String),
    /// No answer within the service's timeout, on every attempt.
    Timeout(String),
    /// The service kept answering with a retried status (5xx, 429) until the last attempt; here
    /// is its last answer.
    UpstreamStatus(GatewayResponse),
    /// The answer was larger than the service's cap.
    TooLarge(String),
    /// The request is malformed: a path leaving the base URL, a bad method or header.
    InvalidRequest(String),
    /// The service could not be reached (connection refused, DNS, ...).
    Unavailable(String),
}

impl GatewayError {
    /// The WIT case name, kebab-case: `not-granted`, `circuit-open`, `timeout`,
    /// `upstream-status`, `too-large`, `invalid-request` or `unavailable`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotGranted(_) => "not-granted",
            Self::CircuitOpen(_) => "circuit-open",
            Self::Timeout(_) => "timeout",
            Self::UpstreamStatus(_) => "upstream-status",
            Self::TooLarge(_) => "too-large",
            Self::InvalidRequest(_) => "invalid-request",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UpstreamStatus(response) => write!(f, "{}: the service answered {}", self.kind(), response.status),
            Self::NotGranted(m)
            | Self::CircuitOpen(m)
            | Self::Timeout(m)
            | Self::TooLarge(m)
            | Self::InvalidRequest(m)
            | Self::Unavailable(m) => write!(f, "{}: {m}", self.kind()),
        }
    }
}

impl std::error::Error for GatewayError {}

/// Where gateway calls go: the host's `gateway` import in a component, a scripted
/// [`crate::testing::FakeGateway`] in native tests.
pub trait GatewayBackend {
    /// Calls `service` with `request`: the final answer (any status the service does not retry),
    /// or why there is none.
    fn call(&mut self, service: &str, request: GatewayRequest) -> Result<GatewayResponse, GatewayError>;

    /// Enqueues a call the host makes once the command's events are committed (the outbox);
    /// returns the message id. By default refused.
    fn enqueue(&mut self, service: &str, request: GatewayRequest) -> Result<String, GatewayError> {
        Err(GatewayError::NotGranted(format!(
            "no outbox here (service `{service}`, {} {})",
            request.method, request.path
        )))
    }
}

/// A command handler's access to the gateway, from [`crate::UnitOfWork::gateway`].
///
/// Without a backend set on the unit of work, calls go to the host's `gateway` import in a
/// component, and answer [`GatewayError::NotGranted`] natively. The import is referenced only
/// from [`Gateway::call`], so a component whose code never calls it does not import
/// `cairn:domain/gateway` at all.
pub struct Gateway<'w> {
    backend: Option<&'w mut dyn GatewayBackend>,
}

impl<'w> Gateway<'w> {
    pub(crate) fn new(backend: Option<&'w mut dyn GatewayBackend>) -> Self {
        Self { backend }
    }

    /// Enqueues `request` to `service` through the transactional outbox: the host makes the
    /// call only after this command's events are committed (never if the command fails or
    /// writes nothing), retries it per the service's policy, across restarts, and keeps it as a
    /// dead letter after the last attempt. The idempotency key defaults to the returned message
    /// id. Use it for effects that must follow the command (a confirmation, a notice).
    pub fn enqueue(&mut self, service: &str, request: GatewayRequest) -> Result<String, GatewayError> {
        if let Some(why) = request.invalid() {
            return Err(GatewayError::InvalidRequest(why.to_string()));
        }
        match &mut self.backend {
            Some(backend) => backend.enqueue(service, request),
            None => default_enqueue(service, request),
        }
    }

    /// Calls `service` (a name the operator configured) with `request`, retried per the
    /// service's policy: the final answer, 4xx included, or why there is none.
    pub fn call(&mut self, service: &str, request: GatewayRequest) -> Result<GatewayResponse, GatewayError> {
        if let Some(why) = request.invalid() {
            return Err(GatewayError::InvalidRequest(why.to_string()));
        }
        match &mut self.backend {
            Some(backend) => backend.call(service, request),
            None => default_call(service, request),
        }
    }
}

/// The host's gateway: a direct (not `dyn`) call, so only code that calls it links the import.
#[cfg(target_arch = "wasm32")]
fn default_call(service: &str, request: GatewayRequest) -> Result<GatewayResponse, GatewayError> {
    crate::wasm::HostGateway.call(service, request)
}

/// The host's outbox: a direct call, so only code that enqueues links the import.
#[cfg(target_arch = "wasm32")]
fn default_enqueue(service: &str, request: GatewayRequest) -> Result<String, GatewayError> {
    crate::wasm::HostGateway.enqueue(service, request)
}

/// Natively there is no host: every enqueue is refused.
#[cfg(not(target_arch = "wasm32"))]
fn default_enqueue(service: &str, request: GatewayRequest) -> Result<String, GatewayError> {
    Err(GatewayError::NotGranted(format!(
        "no outbox outside a component (service `{service}`, {} {}): use `cairn_sdk::testing::FakeGateway`",
        request.method, request.path
    )))
}

/// Natively there is no host: every call is refused.
#[cfg(not(target_arch = "wasm32"))]
fn default_call(service: &str, request: GatewayRequest) -> Result<GatewayResponse, GatewayError> {
    Err(GatewayError::NotGranted(format!(
        "no gateway outside a component (service `{service}`, {} {}): script one with \
         `cairn_sdk::testing::FakeGateway`",
        request.method, request.path
    )))
}

fn find_header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_the_wit_case_names() {
        let kinds: Vec<&str> = [
            GatewayError::NotGranted(String::new()),
            GatewayError::CircuitOpen(String::new()),
            GatewayError::Timeout(String::new()),
            GatewayError::UpstreamStatus(GatewayResponse::new(502, vec![])),
            GatewayError::TooLarge(String::new()),
            GatewayError::InvalidRequest(String::new()),
            GatewayError::Unavailable(String::new()),
        ]
        .iter()
        .map(GatewayError::kind)
        .collect();
        assert_eq!(
            kinds,
            [
                "not-granted",
                "circuit-open",
                "timeout",
                "upstream-status",
                "too-large",
                "invalid-request",
                "unavailable"
            ]
        );
        assert_eq!(GatewayError::Timeout("after 2s".into()).to_string(), "timeout: after 2s");
        assert_eq!(
            GatewayError::UpstreamStatus(GatewayResponse::new(503, vec![])).to_string(),
            "upstream-status: the service answered 503"
        );
    }

    #[test]
    fn requests_build_and_json_sets_the_content_type() {
        let request = GatewayRequest::post("/labels").json(&serde_json::json!({"a": 1})).idempotency_key("k");
        assert_eq!(request.method, "POST");
        assert_eq!(request.body, br#"{"a":1}"#);
        assert_eq!(request.header_value("Content-Type"), Some("application/json"));
        assert_eq!(request.idempotency_key.as_deref(), Some("k"));
    }

    #[test]
    fn a_body_that_does_not_serialize_fails_the_call_before_the_backend() {
        let mut bad = std::collections::HashMap::new();
        bad.insert(vec![1u8], 1);
        let request = GatewayRequest::post("/x").json(&bad);
        let outcome = Gateway::new(None).call("svc", request);
        assert!(matches!(outcome, Err(GatewayError::InvalidRequest(m)) if m.contains("does not serialize")));
    }

    #[test]
    fn natively_without_a_backend_every_call_is_not_granted() {
        let outcome = Gateway::new(None).call("rates", GatewayRequest::get("/rates"));
        assert!(matches!(outcome, Err(GatewayError::NotGranted(_))));
    }

    #[test]
    fn responses_decode_json_and_find_headers() {
        let mut response = GatewayResponse::new(200, br#"{"n": 3}"#.to_vec());
        response.headers.push(("Content-Type".into(), "application/json".into()));
        assert_eq!(response.json::<serde_json::Value>().unwrap()["n"], 3);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert!(response.is_success() && response.text().is_ok());
        assert!(GatewayResponse::new(200, b"nope".to_vec()).json::<serde_json::Value>().is_err());
    }
}
