//! Timestamped HMAC: `X-<Prefix>-Timestamp: <unix seconds>` and
//! `X-<Prefix>-Signature: sha256=<hex HMAC of "<timestamp>.<body>">` (Rubric).

use super::{Secret, SignatureError, check_header_name, hmac_sha256, hmac_sha256_verify};

/// The timestamped scheme with its header prefix (e.g. `Rubric`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampedSignature {
    timestamp_header: String,
    signature_header: String,
}

impl TimestampedSignature {
    /// The value prefix of the signature header.
    pub const VALUE_PREFIX: &'static str = "sha256=";

    /// Headers `X-<prefix>-Timestamp` and `X-<prefix>-Signature`.
    pub fn new(prefix: &str) -> Result<TimestampedSignature, SignatureError> {
        let timestamp_header = format!("X-{prefix}-Timestamp");
        let signature_header = format!("X-{prefix}-Signature");
        check_header_name(&timestamp_header)?;
        Ok(TimestampedSignature {
            timestamp_header,
            signature_header,
        })
    }
    /// The timestamp header name.
    pub fn timestamp_header(&self) -> &str {
        &self.timestamp_header
    }
    /// The signature header name.
    pub fn signature_header(&self) -> &str {
        &self.signature_header
    }
    /// The signed content: `<timestamp>.<body>`.
    pub fn signed_content<'a>(timestamp: &'a str, body: &'a [u8]) -> [&'a [u8]; 3] {
        [timestamp.as_bytes(), b".", body]
    }
    /// The signature header value.
    pub fn sign(&self, secret: &Secret, timestamp: &str, body: &[u8]) -> String {
        let mac = hmac_sha256(secret.expose(), &Self::signed_content(timestamp, body));
        format!("{}{}", Self::VALUE_PREFIX, hex::encode(mac))
    }

    /// Checks a received signature header value for `timestamp` and `body` in
    /// constant time (the timestamp's age is the receiver's to check).
    pub fn verify(&self, secret: &Secret, timestamp: &str, body: &[u8], signature: &str) -> bool {
        let Some(hex_sig) = signature.trim().strip_prefix(Self::VALUE_PREFIX) else {
            return false;
        };
        let Ok(mac) = hex::decode(hex_sig) else {
            return false;
        };
        hmac_sha256_verify(
            secret.expose(),
            &Self::signed_content(timestamp, body),
            &mac,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = TimestampedSignature::new("Rubric").unwrap();
        assert_eq!(s.timestamp_header(), "X-Rubric-Timestamp");
        let secret = Secret::new("whsec_your_signing_secret");
        let sig = s.sign(&secret, "1700000000", b"{}");
        assert!(s.verify(&secret, "1700000000", b"{}", &sig));
        assert!(!s.verify(&secret, "1700000001", b"{}", &sig));
        assert!(!s.verify(&secret, "1700000000", b"{ }", &sig));
    }
}
