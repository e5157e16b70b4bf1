//! The gateway's component glue: [`HostGateway`], the SDK's [`GatewayBackend`] over the host's
//! `gateway` import. Only [`crate::Gateway::call`] names it, and directly (not through `dyn`), so
//! a component whose handlers never call the gateway links none of this and does not import
//! `cairn:domain/gateway`.

use super::cairn::domain::gateway as gw;
use crate::gateway::{GatewayBackend, GatewayError, GatewayRequest, GatewayResponse};

/// The host's gateway, through the `gateway` import.
pub(crate) struct HostGateway;

fn wit_request(request: GatewayRequest) -> gw::Request {
    gw::Request {
        method: request.method,
        path: request.path,
        headers: request.headers,
        body: request.body,
        idempotency_key: request.idempotency_key,
    }
}

impl GatewayBackend for HostGateway {
    fn enqueue(&mut self, service: &str, request: GatewayRequest) -> Result<String, GatewayError> {
        gw::enqueue(service, &wit_request(request)).map_err(error)
    }

    fn call(&mut self, service: &str, request: GatewayRequest) -> Result<GatewayResponse, GatewayError> {
        gw::call(service, &wit_request(request)).map(response).map_err(error)
    }
}

fn error(error: gw::GatewayError) -> GatewayError {
    match error {
        gw::GatewayError::NotGranted(m) => GatewayError::NotGranted(m),
        gw::GatewayError::CircuitOpen(m) => GatewayError::CircuitOpen(m),
        gw::GatewayError::Timeout(m) => GatewayError::Timeout(m),
        gw::GatewayError::UpstreamStatus(r) => GatewayError::UpstreamStatus(response(r)),
        gw::GatewayError::TooLarge(m) => GatewayError::TooLarge(m),
        gw::GatewayError::InvalidRequest(m) => GatewayError::InvalidRequest(m),
        gw::GatewayError::Unavailable(m) => GatewayError::Unavailable(m),
    }
}

fn response(r: gw::Response) -> GatewayResponse {
    GatewayResponse { status: r.status, headers: r.headers, body: r.body }
}
