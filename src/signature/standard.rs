//! Standard Webhooks v1: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{Secret, SignatureError, hmac_sha256, hmac_sha256_verify};

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

    /// Whether any `v1,` signature in a received `webhook-signature` value
    /// (space-separated) matches, in constant time per signature.
    pub fn verify(
        secret: &Secret,
        id: &str,
        timestamp: &str,
        body: &[u8],
        header_value: &str,
    ) -> Result<bool, SignatureError> {
        let key = Self::key(secret)?;
        let content = Self::signed_content(id, timestamp, body);
        Ok(header_value.split(' ').any(|sig| {
            sig.strip_prefix(Self::VERSION_PREFIX)
                .and_then(|b64| BASE64.decode(b64).ok())
                .is_some_and(|mac| hmac_sha256_verify(&key, &content, &mac))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example() {
        // The example in the Standard Webhooks specification.
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = "1614265330";
        let body = br#"{"test": 2432232314}"#;
        let sig = StandardWebhooks::sign(&secret, id, ts, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let rotated = format!("v1,bm9wZQ== {sig}");
        assert!(StandardWebhooks::verify(&secret, id, ts, body, &rotated).unwrap());
        assert!(!StandardWebhooks::verify(&secret, id, "1614265331", body, &sig).unwrap());
    }
}
