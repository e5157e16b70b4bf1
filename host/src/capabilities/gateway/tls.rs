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
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    use super::*;

    /// A CA's PEM, and a TLS server on loopback with a certificate it signed for `names`
    /// (expired when `expired`); the server's port.
    async fn server(names: &[&str], expired: bool) -> (Vec<u8>, u16) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &ca_cert, &ca_key).expect("cert");
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
        (ca_cert.pem().into_bytes(), port)
    }

    async fn cause(tls: &ServiceTls, port: u16) -> String {
        let error = client(tls).expect("client").get(format!("https://localhost:{port}/")).send().await;
        failure(&error.expect_err("refused")).expect("a TLS failure")
    }

    #[tokio::test]
    async fn unknown_issuers_expired_certificates_and_name_mismatches_are_named() {
        let (ca, port) = server(&["localhost"], false).await;
        assert!(cause(&ServiceTls::default(), port).await.contains("unknown issuer"));
        let trusting = ServiceTls { ca_pem: Some(ca), identity_pem: None };
        let error = client(&trusting).expect("client").get(format!("https://localhost:{port}/")).send().await;
        assert!(failure(&error.expect_err("the server says nothing")).is_none(), "the handshake itself passed");
        let (ca, port) = server(&["localhost"], true).await;
        assert!(cause(&ServiceTls { ca_pem: Some(ca), identity_pem: None }, port).await.contains("expired"));
        let (ca, port) = server(&["rates.example"], false).await;
        assert!(cause(&ServiceTls { ca_pem: Some(ca), identity_pem: None }, port).await.contains("name mismatch"));
    }
}
