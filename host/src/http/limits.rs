//! Request-level guards: a deadline on every request, and a per-client token bucket for the
//! admin API (checked before the token, so guessing tokens is slow too).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Problem;

/// Fails a request that takes longer than `timeout` (reading its body included) with a 503.
pub async fn deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request-timeout",
            format!(
                "The request did not complete within {timeout:?}. A command may still have been applied: \
                 retry with the same Idempotency-Key to find out safely."
            ),
        )
        .retry_after(1)
        .into_response(),
    }
}

/// A body size cap and the problem code that reports it.
#[derive(Debug, Clone, Copy)]
pub struct BodyCap {
    /// Most bytes accepted.
    pub bytes: usize,
    /// `body-too-large`, or `component-too-large` for plugin uploads.
    pub code: &'static str,
}

/// Refuses a request whose `Content-Length` is over the cap at once, without waiting for a
/// body it will never accept (the body limit alone only notices while reading).
pub async fn content_length(State(cap): State<BodyCap>, request: Request, next: Next) -> Response {
    let limit = cap.bytes;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            cap.code,
            format!("The request body ({length} bytes) exceeds the cap of {limit} bytes."),
        )
        .with("cap_bytes", limit)
        .into_response(),
        _ => next.run(request).await,
    }
}

/// A token bucket per client address.
#[derive(Clone)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Arc<Mutex<Buckets>>,
}

/// Tokens left and last refill, per client address (`None`: address unknown).
type Buckets = HashMap<Option<IpAddr>, (f64, Instant)>;

/// Clients tracked before idle ones are forgotten.
const MAX_CLIENTS: usize = 10_000;

impl RateLimiter {
    /// `per_minute` requests a minute per client, with bursts up to `burst`.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_second: f64::from(per_minute) / 60.0, burst: f64::from(burst.max(1)), buckets: Arc::default() }
    }

    /// Takes a token for `client`, or says how many seconds until one is free.
    fn take(&self, client: Option<IpAddr>) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() > MAX_CLIENTS {
            let idle = Duration::from_secs_f64(self.burst / self.per_second.max(f64::EPSILON));
            buckets.retain(|_, (_, last)| now.duration_since(*last) < idle);
        }
        let (tokens, last) = buckets.entry(client).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_second.max(f64::EPSILON)).ceil() as u64)
        }
    }
}

/// Answers 429 with `Retry-After` once a client has used up its tokens.
pub async fn rate_limit(State(limiter): State<RateLimiter>, request: Request, next: Next) -> Response {
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    match limiter.take(client) {
        Ok(()) => next.run(request).await,
        Err(seconds) => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("Too many admin requests from this client; retry in {seconds} s."),
        )
        .retry_after(seconds)
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_then_refills() {
        let limiter = RateLimiter::new(60, 3);
        let client = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..3 {
            assert!(limiter.take(client).is_ok());
        }
        assert_eq!(limiter.take(client), Err(1));
        assert!(limiter.take(Some(IpAddr::from([10, 0, 0, 1]))).is_ok(), "buckets are per client");
    }
}
