//! Inbound TLS (rustls): the server certificate of `[http.tls]`, HTTP/2 and HTTP/1.1 offered
//! through ALPN, and the certificate reloaded without a restart when its files change (their
//! modification times are checked at most once a second, at a handshake; a pair that does not
//! load, say half written, leaves the current certificate in place).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often a handshake may look at the files' modification times.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// A certificate file and its key file.
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl CertificateFiles {
    /// The pair.
    pub fn new(cert: &Path, key: &Path) -> Self {
        Self { cert: cert.to_path_buf(), key: key.to_path_buf() }
    }

    /// Reads and checks both files; errors name `http.tls.cert_file` or `http.tls.key_file`.
    pub fn load(&self) -> Result<Arc<CertifiedKey>> {
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow!("http.tls.cert_file `{}`: {e}", self.cert.display()))?;
        if chain.is_empty() {
            return Err(anyhow!("http.tls.cert_file `{}` holds no PEM certificate", self.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| anyhow!("http.tls.key_file `{}`: {e}", self.key.display()))?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| anyhow!("http.tls.key_file `{}`: {e}", self.key.display()))?;
        let certified = CertifiedKey::new(chain, signing);
        certified.keys_match().map_err(|e| {
            anyhow!("http.tls.key_file `{}` is not the key of http.tls.cert_file: {e}", self.key.display())
        })?;
        Ok(Arc::new(certified))
    }

    fn modified(&self) -> Option<(SystemTime, SystemTime)> {
        let time = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Some((time(&self.cert)?, time(&self.key)?))
    }
}

/// The current certificate, replaced when the files change.
#[derive(Debug)]
struct Reloading {
    files: CertificateFiles,
    state: Mutex<Current>,
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    modified: Option<(SystemTime, SystemTime)>,
    checked: Instant,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if current.checked.elapsed() >= RELOAD_CHECK {
            current.checked = Instant::now();
            let modified = self.files.modified();
            if modified.is_some() && modified != current.modified {
                match self.files.load() {
                    Ok(key) => {
                        tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                        current.key = key;
                        current.modified = modified;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the changed TLS certificate does not load; keeping the current one")
                    }
                }
            }
        }
        Some(current.key.clone())
    }
}

/// The server's TLS configuration: the files' certificate, reloaded when they change.
pub fn server_config(files: CertificateFiles) -> Result<Arc<rustls::ServerConfig>> {
    let modified = files.modified();
    let key = files.load()?;
    let resolver = Reloading { files, state: Mutex::new(Current { key, modified, checked: Instant::now() }) };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
