//! `Host` impl of `cairn:domain/gateway`.

use crate::bindings::gateway::{GatewayError, Host, Request, Response};
use crate::runtime::HostState;

impl Host for HostState {
    fn call(&mut self, service: String, request: Request) -> Result<Response, GatewayError> {
        let access = self.gateway.as_ref().ok_or_else(|| {
            GatewayError::NotGranted("only command handlers may call outside services, and only inside `handle`".into())
        })?;
        let _span = tracing::info_span!("gateway.call", domain = %access.domain, service = %service).entered();
        access.runtime.block_on(access.gateway.call(&access.domain, &service, request, access.deadline))
    }
}
