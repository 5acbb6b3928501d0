//! HMAC of the body alone, hex encoded: `X-Briefcase-Signature: sha256=<hex>`.

use super::{Secret, SignatureError, check_header_name, hmac_sha256, hmac_sha256_verify};

/// The Briefcase scheme and its variants: one header carrying
/// `<prefix><hex HMAC-SHA256 of the body>`. Default header
/// `X-Briefcase-Signature`, default prefix `sha256=`; the Empathy guide uses
/// `X-Empathy-Signature` with no prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodySignature {
    header: String,
    prefix: String,
}

impl Default for BodySignature {
    fn default() -> Self {
        BodySignature {
            header: "X-Briefcase-Signature".into(),
            prefix: "sha256=".into(),
        }
    }
}

impl BodySignature {
    /// A body signature in `header`, its value prefixed by `prefix` (may be empty).
    pub fn new(header: &str, prefix: &str) -> Result<BodySignature, SignatureError> {
        check_header_name(header)?;
        Ok(BodySignature {
            header: header.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
    /// GitHub's `X-Hub-Signature-256: sha256=<hex>`.
    pub fn github() -> BodySignature {
        BodySignature {
            header: "X-Hub-Signature-256".into(),
            prefix: "sha256=".into(),
        }
    }
    /// The header name.
    pub fn header(&self) -> &str {
        &self.header
    }
    /// The value prefix (e.g. `sha256=`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// The signed content: the body bytes.
    pub fn signed_content(body: &[u8]) -> [&[u8]; 1] {
        [body]
    }
    /// The header value for `body`.
    pub fn sign(&self, secret: &Secret, body: &[u8]) -> String {
        let mac = hmac_sha256(secret.expose(), &Self::signed_content(body));
        format!("{}{}", self.prefix, hex::encode(mac))
    }

    /// Checks a received header value against `body` in constant time (the
    /// building block for the receiving side).
    pub fn verify(&self, secret: &Secret, body: &[u8], header_value: &str) -> bool {
        let Some(hex_sig) = header_value.trim().strip_prefix(self.prefix.as_str()) else {
            return false;
        };
        let Ok(mac) = hex::decode(hex_sig) else {
            return false;
        };
        hmac_sha256_verify(secret.expose(), &Self::signed_content(body), &mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_vector_and_round_trip() {
        let s = BodySignature::new("X-Hub-Signature-256", "sha256=").unwrap();
        let secret = Secret::new("It's a Secret to Everybody");
        let v = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(s.sign(&secret, b"Hello, World!"), v);
        assert!(s.verify(&secret, b"Hello, World!", v));
        assert!(!s.verify(&secret, b"Hello, World?", v));
        assert!(!s.verify(&Secret::new("other"), b"Hello, World!", v));
        assert!(!s.verify(&secret, b"Hello, World!", "sha256=zz"));
        assert!(!s.verify(&secret, b"Hello, World!", &v[7..]));
    }
}
