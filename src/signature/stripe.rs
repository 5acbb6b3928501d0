//! Stripe-style signatures: one header `Stripe-Signature: t=<ts>,v1=<hex>`
//! where each `v1` is the hex HMAC-SHA256 of `"<ts>.<body>"`.

use super::{Secret, SignatureError, check_header_name, hmac_sha256, hmac_sha256_verify};

/// The Stripe-style scheme: timestamp and signatures in one header
/// (`Stripe-Signature` unless [`new`](Self::new) names another), one `v1=`
/// entry per secret while a secret is being rotated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeSignature {
    header: String,
}

impl Default for StripeSignature {
    fn default() -> Self {
        StripeSignature {
            header: Self::HEADER.to_owned(),
        }
    }
}

impl StripeSignature {
    /// Stripe's header name (the default; see [`new`](Self::new)).
    pub const HEADER: &'static str = "Stripe-Signature";

    /// The Stripe format under another header name.
    pub fn new(header: &str) -> Result<StripeSignature, SignatureError> {
        check_header_name(header)?;
        Ok(StripeSignature {
            header: header.to_owned(),
        })
    }

    /// The header's name.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The signed content: `<timestamp>.<body>`.
    pub fn signed_content<'a>(timestamp: &'a str, body: &'a [u8]) -> [&'a [u8]; 3] {
        [timestamp.as_bytes(), b".", body]
    }
    /// The header value `t=<ts>,v1=<hex>[,v1=<hex>…]`, one `v1` per non-empty secret.
    pub fn sign(secrets: &[Secret], timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let mut value = format!("t={ts}");
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            let mac = hmac_sha256(s.expose(), &Self::signed_content(&ts, body));
            value.push_str(",v1=");
            value.push_str(&hex::encode(mac));
        }
        value
    }
    /// Checks one received `v1` signature (hex) for `timestamp` and `body` in
    /// constant time. Parsing the header (`t=`, several `v1=`) and the
    /// timestamp's age are the receiver's, see [`crate::verify`].
    pub fn verify(secret: &Secret, timestamp: &str, body: &[u8], v1_hex: &str) -> bool {
        hex::decode(v1_hex.trim()).is_ok_and(|mac| {
            hmac_sha256_verify(
                secret.expose(),
                &Self::signed_content(timestamp, body),
                &mac,
            )
        })
    }
}
