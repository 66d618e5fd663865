//! Trust for outgoing HTTPS (webhook deliveries, contract `/test` calls, the CLI).
//!
//! Every outgoing client is built through [`Trust::client_builder`]: rustls (no OpenSSL),
//! certificate and host-name verification against the system's
//! roots, plus the PEM certificates of `--webhook-ca-file` / `KOOR_WEBHOOK_CA_FILE` when
//! set. A certificate error is an ordinary request error for the caller to report.

use std::path::{Path, PathBuf};

/// The environment variable naming the extra CA file (server and CLI alike).
pub const CA_FILE_ENV: &str = "KOOR_WEBHOOK_CA_FILE";

/// The roots outgoing HTTPS calls trust besides the system's.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    extra: Vec<reqwest::Certificate>,
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
        let extra = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("CA file {} is not valid PEM: {e}", path.display()))?;
        if extra.is_empty() {
            return Err(format!(
                "CA file {} holds no PEM certificate",
                path.display()
            ));
        }
        Ok(Trust {
            extra,
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
    }
}
