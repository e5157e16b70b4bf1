//! Caps on what a plugin may send out through the gateway: the headers of every request (how
//! many, how many bytes) and an enqueued call as a whole (path, headers, body and idempotency
//! key), so no plugin can make the host build, store or send unbounded requests. A request over
//! a cap is refused with `too-large` naming the config key, before anything is sent or stored.

use crate::bindings::gateway::{GatewayError, Request};

/// The caps, from `[gateway]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Most headers one request may carry (`gateway.max_request_headers`).
    pub max_headers: usize,
    /// Most bytes of header names and values one request may carry
    /// (`gateway.max_request_header_kib`).
    pub max_header_bytes: usize,
    /// Most bytes of one enqueued call: path, header names and values, body and idempotency
    /// key (`gateway.max_enqueued_kib`).
    pub max_enqueued_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self { max_headers: 64, max_header_bytes: 16 << 10, max_enqueued_bytes: 256 << 10 }
    }
}

/// Bytes of header names and values.
fn header_bytes(headers: &[(String, String)]) -> usize {
    headers.iter().map(|(name, value)| name.len() + value.len()).sum()
}

impl RequestLimits {
    /// Refuses headers over the count or byte cap.
    pub(super) fn check_headers(&self, headers: &[(String, String)]) -> Result<(), GatewayError> {
        if headers.len() > self.max_headers {
            return Err(GatewayError::TooLarge(format!(
                "a request may carry at most {} headers (gateway.max_request_headers)",
                self.max_headers
            )));
        }
        if header_bytes(headers) > self.max_header_bytes {
            return Err(GatewayError::TooLarge(format!(
                "a request's headers may hold at most {} KiB (gateway.max_request_header_kib)",
                self.max_header_bytes >> 10
            )));
        }
        Ok(())
    }

    /// Refuses an enqueued call over the whole-message cap.
    pub(super) fn check_enqueued(&self, request: &Request) -> Result<(), GatewayError> {
        let size = request.path.len()
            + header_bytes(&request.headers)
            + request.body.len()
            + request.idempotency_key.as_ref().map_or(0, String::len);
        if size > self.max_enqueued_bytes {
            return Err(GatewayError::TooLarge(format!(
                "an enqueued call (path, headers, body and key) may hold at most {} KiB (gateway.max_enqueued_kib)",
                self.max_enqueued_bytes >> 10
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: Vec<(String, String)>, body: usize) -> Request {
        Request { method: "POST".into(), path: "/x".into(), headers, body: vec![0; body], idempotency_key: None }
    }

    #[test]
    fn headers_and_messages_over_their_caps_are_too_large_and_name_the_key() {
        let limits = RequestLimits { max_headers: 2, max_header_bytes: 1024, max_enqueued_bytes: 2048 };
        let two = vec![("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())];
        assert!(limits.check_headers(&two).is_ok());
        let three = [two.clone(), vec![("c".into(), "3".into())]].concat();
        let error = limits.check_headers(&three).unwrap_err();
        assert!(matches!(&error, GatewayError::TooLarge(m) if m.contains("gateway.max_request_headers")), "{error:?}");
        let fat = vec![("a".to_string(), "x".repeat(1024))];
        let error = limits.check_headers(&fat).unwrap_err();
        assert!(matches!(&error, GatewayError::TooLarge(m) if m.contains("max_request_header_kib")), "{error:?}");
        assert!(limits.check_enqueued(&request(two.clone(), 2000)).is_ok());
        let error = limits.check_enqueued(&request(two, 2046)).unwrap_err();
        assert!(matches!(&error, GatewayError::TooLarge(m) if m.contains("gateway.max_enqueued_kib")), "{error:?}");
    }
}
