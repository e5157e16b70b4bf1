//! The gateway's TLS (rustls, no OpenSSL): clients trusting the web PKI roots (Mozilla's and
//! the platform's), plus a service's private CA and client identity; and TLS failures named by
//! their cause (unknown issuer, expired, name mismatch, a refused client certificate).

use rustls::{AlertDescription, CertificateError};

/// A service's own trust and identity, as PEM text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTls {
    /// CA certificates trusted on top of the web PKI roots.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate chain followed by its private key.
    pub identity_pem: Option<Vec<u8>>,
}

/// A client for one service (redirects are never followed).
pub(super) fn client(tls: &ServiceTls) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).use_rustls_tls();
    if let Some(pem) = &tls.ca_pem {
        for certificate in reqwest::Certificate::from_pem_bundle(pem)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some(pem) = &tls.identity_pem {
        builder = builder.identity(reqwest::Identity::from_pem(pem)?);
    }
    Ok(builder.build()?)
}

/// The TLS cause of a failed request, if TLS failed.
pub fn failure(error: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(describe(tls));
        }
        // `io::Error::source` skips the error it wraps (io errors nest): step into it instead.
        source = match current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

/// One line naming the cause.
pub fn describe(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(cause) => match cause {
            CertificateError::UnknownIssuer => {
                "unknown issuer: the certificate is not signed by a trusted CA (see `ca_file`)".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "the certificate has expired".into(),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the certificate is not valid yet".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "name mismatch: the certificate is not valid for the service's host name".into()
            }
            CertificateError::Revoked => "the certificate is revoked".into(),
            other => format!("invalid certificate: {other:?}"),
        },
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied),
        ) => format!("the service refused the client certificate ({alert:?})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unknown_issuer_is_named() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let key = rcgen::KeyPair::generate().expect("key");
        let cert =
            rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params").self_signed(&key).expect("cert");
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("der");
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], der)
            .expect("config");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = acceptor.accept(stream).await;
            }
        });
        let client = client(&ServiceTls::default()).expect("client");
        let error = client.get(format!("https://localhost:{port}/")).send().await.expect_err("untrusted");
        let cause = failure(&error).expect("a TLS failure");
        assert!(cause.contains("unknown issuer"), "{cause}");
    }
}
