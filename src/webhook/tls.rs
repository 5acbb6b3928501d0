//! TLS settings of a webhook's client: a client certificate for mTLS and the
//! root certificates it trusts. The PEM is parsed when the webhook is built,
//! so a wrong file is an error there, naming what is wrong, and never a
//! failed delivery.

use std::borrow::Cow;
use std::path::PathBuf;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::{HttpClientError, PemInput, PemProblem, TlsError};

/// PEM as given: bytes, or a file a config file names (read by `build`).
#[derive(Clone)]
pub(crate) enum Pem {
    Bytes(Vec<u8>),
    File { field: &'static str, path: PathBuf },
}

impl Pem {
    fn read(&self) -> Result<Cow<'_, [u8]>, TlsError> {
        match self {
            Pem::Bytes(b) => Ok(Cow::Borrowed(b)),
            Pem::File { field, path } => std::fs::read(path).map(Cow::Owned).map_err(|e| {
                let (field, path, kind) = (*field, path.clone(), e.kind());
                TlsError::ReadFile { field, path, kind }
            }),
        }
    }
}

/// The TLS part of a [`WebhookBuilder`](super::WebhookBuilder), as given.
#[derive(Clone, Default)]
pub(crate) struct TlsSettings {
    /// The client certificate chain and its private key (PEM).
    pub(crate) identity: Option<(Pem, Pem)>,
    /// Extra trusted roots (PEM, one or more certificates per entry).
    pub(crate) roots: Vec<Pem>,
    /// Whether the built-in (webpki) roots are trusted too.
    pub(crate) built_in_roots: bool,
}

impl TlsSettings {
    pub(crate) fn new() -> TlsSettings {
        TlsSettings {
            built_in_roots: true,
            ..TlsSettings::default()
        }
    }

    /// What `Debug` may show: whether each part is set, never key material.
    pub(crate) fn describe(&self) -> String {
        format!(
            "client_identity: {}, extra_roots: {}, built_in_roots: {}",
            self.identity.is_some(),
            self.roots.len(),
            self.built_in_roots
        )
    }

    /// Checks the PEM and adds it to the client.
    pub(crate) fn apply(
        &self,
        mut client: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TlsError> {
        if let Some((certs, key)) = &self.identity {
            let (certs, key) = (&*certs.read()?, &*key.read()?);
            certificates(certs, PemInput::IdentityCertificate)?;
            match PrivateKeyDer::from_pem_slice(key) {
                Ok(_) => {}
                Err(pem::Error::NoItemsFound) => return Err(TlsError::NoPrivateKey),
                Err(e) => return Err(pem_error(PemInput::IdentityKey, &e)),
            }
            // reqwest (rustls) wants the chain and the key in one buffer.
            let mut both = Vec::with_capacity(certs.len() + key.len() + 1);
            both.extend_from_slice(certs);
            both.push(b'\n');
            both.extend_from_slice(key);
            let identity = reqwest::Identity::from_pem(&both)
                .map_err(|e| TlsError::Identity(HttpClientError::new(e)))?;
            client = client.identity(identity);
        }
        for (i, pem) in self.roots.iter().enumerate() {
            let input = PemInput::Root(i + 1);
            for der in certificates(&pem.read()?, input)? {
                let cert = reqwest::Certificate::from_der(&der).map_err(|e| {
                    let source = HttpClientError::new(e);
                    TlsError::RootRefused { input, source }
                })?;
                client = client.add_root_certificate(cert);
            }
        }
        if !self.built_in_roots && self.roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        Ok(client.tls_built_in_root_certs(self.built_in_roots))
    }
}

/// The CERTIFICATE blocks of a PEM buffer: at least one, or an error.
fn certificates(pem: &[u8], input: PemInput) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(input, &e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(input));
    }
    Ok(certs)
}

fn pem_error(input: PemInput, e: &pem::Error) -> TlsError {
    let reason = match e {
        pem::Error::MissingSectionEnd { .. } => PemProblem::MissingEnd,
        pem::Error::IllegalSectionStart { .. } => PemProblem::BadBegin,
        pem::Error::Base64Decode(_) => PemProblem::Base64,
        _ => PemProblem::Malformed,
    };
    TlsError::Pem { input, reason }
}
