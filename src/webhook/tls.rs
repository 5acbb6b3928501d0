//! TLS settings of a webhook's client: a client certificate for mTLS and the
//! root certificates it trusts. The PEM is parsed when the webhook is built,
//! so a wrong file is an error there, naming what is wrong, and never a
//! failed delivery.

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::WebhookError;

/// The TLS part of a [`WebhookBuilder`](super::WebhookBuilder), as given.
#[derive(Clone, Default)]
pub(crate) struct TlsSettings {
    /// The client certificate chain and its private key (PEM).
    pub(crate) identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Extra trusted roots (PEM, one or more certificates per entry).
    pub(crate) roots: Vec<Vec<u8>>,
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
    ) -> Result<reqwest::ClientBuilder, WebhookError> {
        if let Some((certs, key)) = &self.identity {
            let chain = certificates(certs, "client_identity_pem: the certificate")?;
            match PrivateKeyDer::from_pem_slice(key) {
                Ok(_) => {}
                Err(pem::Error::NoItemsFound) => {
                    return Err(WebhookError::Tls(
                        "client_identity_pem: the key PEM holds no private key (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)".into(),
                    ));
                }
                Err(e) => {
                    return Err(WebhookError::Tls(format!(
                        "client_identity_pem: the key PEM does not parse: {}",
                        pem_reason(&e)
                    )));
                }
            }
            // reqwest (rustls) wants the chain and the key in one buffer.
            let mut both = Vec::with_capacity(certs.len() + key.len() + 1);
            both.extend_from_slice(certs);
            both.push(b'\n');
            both.extend_from_slice(key);
            let identity = reqwest::Identity::from_pem(&both).map_err(|e| {
                WebhookError::Tls(format!(
                    "client_identity_pem: {} certificate(s) and a key were found but the identity is refused: {}",
                    chain.len(),
                    source_text(&e)
                ))
            })?;
            client = client.identity(identity);
        }
        for (i, pem) in self.roots.iter().enumerate() {
            let what = format!("root_certificates_pem (#{})", i + 1);
            for der in certificates(pem, &what)? {
                let cert = reqwest::Certificate::from_der(&der).map_err(|e| {
                    WebhookError::Tls(format!(
                        "{what}: a certificate is refused: {}",
                        source_text(&e)
                    ))
                })?;
                client = client.add_root_certificate(cert);
            }
        }
        if !self.built_in_roots && self.roots.is_empty() {
            return Err(WebhookError::Tls(
                "tls_built_in_roots(false) without root_certificates_pem: no server certificate could be trusted".into(),
            ));
        }
        Ok(client.tls_built_in_root_certs(self.built_in_roots))
    }
}

/// The CERTIFICATE blocks of a PEM buffer: at least one, or an error.
fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, WebhookError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WebhookError::Tls(format!("{what} PEM does not parse: {}", pem_reason(&e))))?;
    if certs.is_empty() {
        return Err(WebhookError::Tls(format!(
            "{what} PEM holds no CERTIFICATE block"
        )));
    }
    Ok(certs)
}

fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a block has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".into(),
        pem::Error::Base64Decode(_) => "a block is not valid base64".into(),
        other => format!("{other:?}"),
    }
}

/// An error's innermost explanation (reqwest's own text is "builder error").
fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        text = s.to_string();
        src = s.source();
    }
    text
}
