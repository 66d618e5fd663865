//! Trust for outgoing HTTPS (webhook deliveries, contract `/test` calls, the CLI).
//!
//! Every outgoing client is built from a [`Trust`]: rustls (no OpenSSL), certificate and
//! host-name verification against the system's roots, plus the PEM certificates of
//! `--webhook-ca-file` / `KOOR_WEBHOOK_CA_FILE` when set. HTTP clients come from
//! [`Trust::client_builder`]; the CLI's WebSocket (`koor events subscribe` over `wss://`)
//! uses [`Trust::rustls_config`], which verifies the same way. A certificate error is an
//! ordinary request error for the caller to report.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The environment variable naming the extra CA file (server and CLI alike).
pub const CA_FILE_ENV: &str = "KOOR_WEBHOOK_CA_FILE";

/// The roots outgoing HTTPS calls trust besides the system's.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// The extra roots, for reqwest.
    extra: Vec<reqwest::Certificate>,
    /// The same roots, for a rustls configuration of our own.
    extra_der: Vec<CertificateDer<'static>>,
    /// The file the extra roots came from, for messages.
    source: Option<PathBuf>,
}

impl Trust {
    /// The system roots alone.
    pub fn system() -> Trust {
        Trust::default()
    }

    /// The system roots plus every certificate of the PEM file at `path`; a file that cannot
    /// be read or holds no certificate is an error naming it.
    pub fn with_ca_file(path: &Path) -> Result<Trust, String> {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        let not_pem =
            |e: &dyn std::fmt::Display| format!("CA file {} is not valid PEM: {e}", path.display());
        let extra_der = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| not_pem(&e))?;
        if extra_der.is_empty() {
            return Err(format!(
                "CA file {} holds no PEM certificate",
                path.display()
            ));
        }
        let extra = extra_der
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| not_pem(&e))?;
        Ok(Trust {
            extra,
            extra_der,
            source: Some(path.to_path_buf()),
        })
    }

    /// The trust the CLI uses: the file named by `KOOR_WEBHOOK_CA_FILE` when set and
    /// non-empty, else the system roots.
    pub fn from_env() -> Result<Trust, String> {
        match std::env::var_os(CA_FILE_ENV).filter(|v| !v.is_empty()) {
            Some(path) => Trust::with_ca_file(Path::new(&path)),
            None => Ok(Trust::system()),
        }
    }

    /// The number of extra roots.
    pub fn extra_roots(&self) -> usize {
        self.extra.len()
    }

    /// The file the extra roots came from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// A reqwest client builder that verifies servers against this trust.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_backend_rustls()
            .tls_certs_merge(self.extra.iter().cloned())
    }

    /// A rustls client configuration (no ALPN) that verifies servers as the clients of
    /// [`Trust::client_builder`] do: the platform's verifier over the system's roots plus
    /// the extra roots, host names included, with the process's default crypto provider or
    /// else aws-lc-rs.
    pub fn rustls_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let verifier = if self.extra_der.is_empty() {
            rustls_platform_verifier::Verifier::new(provider.clone())
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(
                self.extra_der.iter().cloned(),
                provider.clone(),
            )
        }
        .map_err(|e| format!("cannot set up TLS verification: {e}"))?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            // Not a way around verification: the platform verifier is the one that verifies.
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = Trust::with_ca_file(&missing).unwrap_err();
        assert!(e.contains("missing.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let e = Trust::with_ca_file(&empty).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn the_system_trust_builds_a_client() {
        assert!(Trust::system().client_builder().build().is_ok());
        assert!(Trust::system().rustls_config().is_ok());
    }

    #[test]
    fn a_ca_file_gives_both_clients_its_roots() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertifiedIssuer::self_signed(params, key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, format!("{}{}", ca.pem(), ca.pem())).unwrap();
        let trust = Trust::with_ca_file(&file).unwrap();
        assert_eq!(trust.extra_roots(), 2);
        assert_eq!(trust.source(), Some(file.as_path()));
        assert!(trust.client_builder().build().is_ok());
        assert!(trust.rustls_config().is_ok());
    }
}
