//! Standard Webhooks v1: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.

use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{Secret, SignatureError, hmac_sha256, hmac_sha256_verify};

pub(crate) const HEADER_ID: &str = "webhook-id";

/// Standard base64 that, like the official libraries, accepts a secret with
/// or without padding and ignores unused trailing bits.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// How a Standard Webhooks secret was read into its key
/// ([`StandardWebhooks::key_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretSource {
    /// `whsec_` followed by base64: the decoded bytes.
    PrefixedBase64,
    /// No prefix, but base64: the decoded bytes (as the official libraries do).
    Base64,
    /// No prefix and not base64: the secret's own bytes (a hookbus extension;
    /// the official libraries refuse such a secret).
    RawBytes,
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecretSource::PrefixedBase64 => "whsec_ prefix, base64-decoded",
            SecretSource::Base64 => {
                "no whsec_ prefix, base64-decoded (as the Standard Webhooks libraries do)"
            }
            SecretSource::RawBytes => {
                "no whsec_ prefix and not base64: used as raw bytes (the Standard Webhooks libraries would refuse it)"
            }
        })
    }
}
pub(crate) const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub(crate) const HEADER_SIGNATURE: &str = "webhook-signature";

/// Standard Webhooks v1. With several secrets (rotation) the signature
/// header carries one `v1,<sig>` per secret, space-separated.
///
/// Secrets are read as the official libraries read them (see
/// [`key`](Self::key)): base64, with or without the `whsec_` prefix, padded
/// or not.
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

    /// The HMAC key of a secret: the base64 after `whsec_`, or the whole
    /// secret as base64 when it has no prefix, as the official libraries
    /// decode it; padding is optional (the Python library pads unpadded
    /// secrets) and unused trailing bits are ignored.
    ///
    /// One deliberate difference: a secret **without** the prefix that is not
    /// base64 at all (e.g. `my secret!`) is used as its raw bytes, where the
    /// libraries raise an error; hookbus senders and receivers agree on it,
    /// and [`key_source`](Self::key_source) says which reading applied. A
    /// `whsec_` secret that does not decode is an error.
    pub fn key(secret: &Secret) -> Result<Vec<u8>, SignatureError> {
        Self::decode(secret).map(|(key, _)| key)
    }

    /// How [`key`](Self::key) reads `secret`.
    pub fn key_source(secret: &Secret) -> Result<SecretSource, SignatureError> {
        Self::decode(secret).map(|(_, source)| source)
    }

    fn decode(secret: &Secret) -> Result<(Vec<u8>, SecretSource), SignatureError> {
        match secret.expose().strip_prefix(b"whsec_") {
            Some(b64) => LENIENT
                .decode(b64)
                .map(|k| (k, SecretSource::PrefixedBase64))
                .map_err(|_| SignatureError::BadStandardSecret),
            None => match LENIENT.decode(secret.expose()) {
                Ok(k) if !k.is_empty() => Ok((k, SecretSource::Base64)),
                _ => Ok((secret.expose().to_vec(), SecretSource::RawBytes)),
            },
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
        // Without the prefix it is the same key.
        let bare = Secret::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(StandardWebhooks::sign(&bare, id, ts, body).unwrap(), sig);
        assert_eq!(
            StandardWebhooks::key_source(&bare).unwrap(),
            SecretSource::Base64
        );
        let rotated = format!("v1,bm9wZQ== {sig}");
        assert!(StandardWebhooks::verify(&secret, id, ts, body, &rotated).unwrap());
        assert!(!StandardWebhooks::verify(&secret, id, "1614265331", body, &sig).unwrap());
    }

    #[test]
    fn unpadded_secrets_decode_like_padded_ones() {
        // The Python library's test_signature_verification_with_unpadded_secret.
        for (unpadded, padded) in [
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS=",
            ),
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr",
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr==",
            ),
        ] {
            assert_eq!(
                StandardWebhooks::key(&Secret::new(unpadded)).unwrap(),
                StandardWebhooks::key(&Secret::new(padded)).unwrap(),
            );
        }
        let raw = Secret::new("my secret!");
        assert_eq!(StandardWebhooks::key(&raw).unwrap(), b"my secret!");
        assert_eq!(
            StandardWebhooks::key_source(&raw).unwrap(),
            SecretSource::RawBytes
        );
        assert!(StandardWebhooks::key(&Secret::new("whsec_my secret!")).is_err());
    }
}
