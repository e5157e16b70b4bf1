//! [`FakeGateway`]: scripted answers for a handler's gateway calls in native tests, and a record
//! of every call made. A call nothing answers is refused as `not-granted`, as the host refuses a
//! service the domain was not granted.
//!
//! ```
//! use cairn_sdk::testing::FakeGateway;
//! use cairn_sdk::{GatewayBackend, GatewayError, GatewayRequest};
//! use serde_json::json;
//!
//! let mut fake = FakeGateway::new()
//!     .answer("rates", "/rates?from=GB", 200, json!({"price_cents": 1250}))
//!     .fail("labels", "/labels", GatewayError::Timeout("after 2s".into()));
//! assert_eq!(fake.call("rates", GatewayRequest::get("/rates?from=GB")).unwrap().status, 200);
//! assert_eq!(fake.call("labels", GatewayRequest::post("/labels")).unwrap_err().kind(), "timeout");
//! assert_eq!(fake.call("rates", GatewayRequest::get("/other")).unwrap_err().kind(), "not-granted");
//! assert_eq!(fake.calls().len(), 3);
//! ```

use std::fmt;

use serde_json::Value;

use crate::gateway::{GatewayBackend, GatewayError, GatewayRequest, GatewayResponse};

/// One call a handler made: the service and the request as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayCall {
    /// The service's name.
    pub service: String,
    /// The request.
    pub request: GatewayRequest,
}

type Script = Box<dyn FnMut(&str, &GatewayRequest) -> Result<GatewayResponse, GatewayError>>;

/// How one scripted call is answered.
enum Answer {
    Fixed(Result<GatewayResponse, GatewayError>),
    Script(Script),
}

/// Which calls a rule answers: `None` matches any service (or path).
struct Rule {
    service: Option<String>,
    path: Option<String>,
    answer: Answer,
}

/// A gateway with scripted answers. Rules are tried in the order they were added; the first one
/// whose service and path (the whole path, query included) equal the call's answers it. A call
/// no rule matches answers [`GatewayError::NotGranted`].
#[derive(Default)]
pub struct FakeGateway {
    rules: Vec<Rule>,
    calls: Vec<GatewayCall>,
    enqueued: Vec<GatewayCall>,
}

impl FakeGateway {
    /// A gateway that refuses every call (`not-granted`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers calls to `service` at `path` with `status` and `body` as JSON
    /// (`Content-Type: application/json`).
    pub fn answer(self, service: &str, path: &str, status: u16, body: Value) -> Self {
        let mut response = GatewayResponse::new(status, body.to_string().into_bytes());
        response.headers.push(("content-type".into(), "application/json".into()));
        self.respond(service, path, response)
    }

    /// Answers calls to `service` at `path` with `response` as it is.
    pub fn respond(self, service: &str, path: &str, response: GatewayResponse) -> Self {
        self.rule(Some(service), Some(path), Answer::Fixed(Ok(response)))
    }

    /// Fails calls to `service` at `path` with `error`.
    pub fn fail(self, service: &str, path: &str, error: GatewayError) -> Self {
        self.rule(Some(service), Some(path), Answer::Fixed(Err(error)))
    }

    /// Fails every call to `service`, whatever the path, with `error`.
    pub fn fail_all(self, service: &str, error: GatewayError) -> Self {
        self.rule(Some(service), None, Answer::Fixed(Err(error)))
    }

    /// Answers every call to `service`, whatever the path, with `script(request)`.
    pub fn script(
        self,
        service: &str,
        mut script: impl FnMut(&GatewayRequest) -> Result<GatewayResponse, GatewayError> + 'static,
    ) -> Self {
        self.rule(Some(service), None, Answer::Script(Box::new(move |_, request| script(request))))
    }

    /// Answers every call, to any service, with `script(service, request)` (after the rules
    /// added before it).
    pub fn script_all(
        self,
        script: impl FnMut(&str, &GatewayRequest) -> Result<GatewayResponse, GatewayError> + 'static,
    ) -> Self {
        self.rule(None, None, Answer::Script(Box::new(script)))
    }

    /// Every call enqueued so far (the host would make them after the commit), in order.
    pub fn enqueued(&self) -> &[GatewayCall] {
        &self.enqueued
    }

    /// Every call made so far, in order.
    pub fn calls(&self) -> &[GatewayCall] {
        &self.calls
    }

    /// Takes the calls made so far.
    pub(crate) fn take_calls(&mut self) -> Vec<GatewayCall> {
        std::mem::take(&mut self.calls)
    }

    fn rule(mut self, service: Option<&str>, path: Option<&str>, answer: Answer) -> Self {
        self.rules.push(Rule { service: service.map(str::to_string), path: path.map(str::to_string), answer });
        self
    }
}

impl GatewayBackend for FakeGateway {
    fn call(&mut self, service: &str, request: GatewayRequest) -> Result<GatewayResponse, GatewayError> {
        let matches = |rule: &&mut Rule| {
            rule.service.as_deref().is_none_or(|s| s == service)
                && rule.path.as_deref().is_none_or(|p| p == request.path)
        };
        let outcome = match self.rules.iter_mut().find(matches) {
            Some(Rule { answer: Answer::Fixed(answer), .. }) => answer.clone(),
            Some(Rule { answer: Answer::Script(script), .. }) => script(service, &request),
            None => Err(GatewayError::NotGranted(format!(
                "the fake gateway has no answer for `{service}` {} {}",
                request.method, request.path
            ))),
        };
        self.calls.push(GatewayCall { service: service.to_string(), request });
        outcome
    }

    /// Records the call as enqueued (see [`FakeGateway::enqueued`]); its id is `outbox-<n>`.
    fn enqueue(&mut self, service: &str, request: GatewayRequest) -> Result<String, GatewayError> {
        self.enqueued.push(GatewayCall { service: service.to_string(), request });
        Ok(format!("outbox-{}", self.enqueued.len()))
    }
}

impl fmt::Debug for FakeGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules: Vec<String> = self
            .rules
            .iter()
            .map(|r| format!("{} {}", r.service.as_deref().unwrap_or("*"), r.path.as_deref().unwrap_or("*")))
            .collect();
        f.debug_struct("FakeGateway").field("rules", &rules).field("calls", &self.calls).finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_first_matching_rule_answers_and_every_call_is_recorded() {
        let mut fake = FakeGateway::new()
            .answer("rates", "/a", 200, json!({"n": 1}))
            .fail_all("rates", GatewayError::Unavailable("down".into()))
            .script_all(|service, request| Ok(GatewayResponse::new(299, format!("{service}{}", request.path))));
        let a = fake.call("rates", GatewayRequest::get("/a")).unwrap();
        assert_eq!((a.status, a.json::<Value>().unwrap()), (200, json!({"n": 1})));
        assert_eq!(a.header("Content-Type"), Some("application/json"));
        assert_eq!(fake.call("rates", GatewayRequest::get("/a?x=1")).unwrap_err().kind(), "unavailable");
        assert_eq!(fake.call("labels", GatewayRequest::get("/b")).unwrap().body, b"labels/b");
        let services: Vec<&str> = fake.calls().iter().map(|c| c.service.as_str()).collect();
        assert_eq!(services, ["rates", "rates", "labels"]);
    }

    #[test]
    fn without_rules_every_call_is_not_granted() {
        let error = FakeGateway::new().call("rates", GatewayRequest::get("/rates")).unwrap_err();
        assert!(matches!(&error, GatewayError::NotGranted(m) if m.contains("`rates` GET /rates")), "{error}");
    }
}
