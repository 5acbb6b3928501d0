//! Standard Webhooks v1: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{Secret, SignatureError, hmac_sha256};

pub(crate) const HEADER_ID: &str = "webhook-id";
pub(crate) const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub(crate) const HEADER_SIGNATURE: &str = "webhook-signature";

/// Standard Webhooks v1. Secrets of the form `whsec_<base64>` are decoded to
/// their key bytes; any other secret is used as raw bytes. With several
/// secrets (rotation) the signature header carries one `v1,<sig>` per secret,
/// space-separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StandardWebhooks;

impl StandardWebhooks {
    /// The id header.
    pub const HEADER_ID: &'static str = HEADER_ID;
    /// The timestamp header.
    pub const HEADER_TIMESTAMP: &'static str = HEADER_TIMESTAMP;
    /// The signature header.
    pub const HEADER_SIGNATURE: &'static str = HEADER_SIGNATURE;
    /// The version prefix of each signature.
    pub const VERSION_PREFIX: &'static str = "v1,";

    /// The HMAC key of a secret: base64-decoded after `whsec_`, else the bytes.
    pub fn key(secret: &Secret) -> Result<Vec<u8>, SignatureError> {
        match secret.expose().strip_prefix(b"whsec_") {
            Some(b64) => BASE64
                .decode(b64)
                .map_err(|_| SignatureError::BadStandardSecret),
            None => Ok(secret.expose().to_vec()),
        }
    }
    /// The signed content: `<id>.<timestamp>.<body>`.
    pub fn signed_content<'a>(id: &'a str, timestamp: &'a str, body: &'a [u8]) -> [&'a [u8]; 5] {
        [id.as_bytes(), b".", timestamp.as_bytes(), b".", body]
    }
    /// One `v1,<base64>` signature.
    pub fn sign(
        secret: &Secret,
        id: &str,
        timestamp: &str,
        body: &[u8],
    ) -> Result<String, SignatureError> {
        let key = Self::key(secret)?;
        let mac = hmac_sha256(&key, &Self::signed_content(id, timestamp, body));
        Ok(format!("{}{}", Self::VERSION_PREFIX, BASE64.encode(mac)))
    }
}
