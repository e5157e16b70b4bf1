//! `Host` impl of `cairn:domain/gateway`.

use crate::bindings::gateway::{GatewayError, Host, Request, Response};
use crate::runtime::HostState;
use crate::store::{NewOutboxMessage, OutboxRequest};

impl Host for HostState {
    fn call(&mut self, service: String, request: Request) -> Result<Response, GatewayError> {
        let access = self.gateway.as_ref().ok_or_else(|| {
            GatewayError::NotGranted("only command handlers may call outside services, and only inside `handle`".into())
        })?;
        let _span = tracing::info_span!("gateway.call", domain = %access.domain, service = %service).entered();
        crate::capabilities::deadline::block_on(
            &access.runtime,
            access.gateway.call(&access.domain, &service, request, access.deadline),
        )
        .unwrap_or_else(|overrun| Err(GatewayError::Timeout(overrun.to_string())))
    }

    fn enqueue(&mut self, service: String, request: Request) -> Result<String, GatewayError> {
        let not_granted =
            || GatewayError::NotGranted("only command handlers may enqueue calls, and only inside `handle`".into());
        let access = self.gateway.as_ref().ok_or_else(not_granted)?;
        access.gateway.check(&access.domain, &service, &request)?;
        let domain = access.domain.clone();
        let unit = self.unit.as_mut().ok_or_else(not_granted)?;
        if unit.outbox.len() >= MAX_ENQUEUED {
            return Err(GatewayError::InvalidRequest(format!("a command may enqueue at most {MAX_ENQUEUED} calls")));
        }
        if request.body.len() > MAX_ENQUEUED_BODY {
            return Err(GatewayError::TooLarge(format!("an enqueued body may hold at most {MAX_ENQUEUED_BODY} bytes")));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let message = NewOutboxMessage {
            id: id.clone(),
            domain,
            service,
            request: OutboxRequest {
                method: request.method.to_ascii_uppercase(),
                path: request.path,
                headers: request.headers,
                body_hex: hex::encode(&request.body),
                idempotency_key: request.idempotency_key.unwrap_or_else(|| id.clone()),
            },
        };
        unit.outbox.push(message);
        Ok(id)
    }
}

/// Most calls one command may enqueue.
const MAX_ENQUEUED: usize = 16;
/// Largest body of an enqueued call.
const MAX_ENQUEUED_BODY: usize = 256 << 10;
