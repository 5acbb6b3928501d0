//! Slack: `X-Slack-Request-Timestamp: <unix seconds>` and
//! `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:<body>">`.
//! Slack asks receivers to reject timestamps older than five minutes; the
//! age check is the receiver's.
//!
//! ```
//! use hookbus::signature::{Secret, SlackSignature};
//!
//! let secret = Secret::new("8f742231b10e8888abcd99yyyzzz85a5");
//! let value = SlackSignature::sign(&secret, "1531420618", b"token=xyz&team_id=T1");
//! assert!(value.starts_with("v0="));
//! assert!(SlackSignature::verify(&secret, "1531420618", b"token=xyz&team_id=T1", &value));
//! assert!(!SlackSignature::verify(&secret, "1531420619", b"token=xyz&team_id=T1", &value));
//! ```

use super::{Secret, hmac_sha256, verify_prefixed_hex};

/// The Slack request-signing scheme (version `v0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlackSignature;

impl SlackSignature {
    /// The signature header.
    pub const HEADER_SIGNATURE: &'static str = "X-Slack-Signature";
    /// The timestamp header.
    pub const HEADER_TIMESTAMP: &'static str = "X-Slack-Request-Timestamp";
    /// The value prefix of the signature.
    pub const PREFIX: &'static str = "v0=";
    /// The oldest request Slack tells receivers to accept, in seconds.
    pub const MAX_AGE_SECS: i64 = 300;

    /// The signed content: `v0:<timestamp>:<body>`.
    pub fn signed_content<'a>(timestamp: &'a str, body: &'a [u8]) -> [&'a [u8]; 4] {
        [b"v0:", timestamp.as_bytes(), b":", body]
    }
    /// The `X-Slack-Signature` value.
    pub fn sign(secret: &Secret, timestamp: &str, body: &[u8]) -> String {
        let mac = hmac_sha256(secret.expose(), &Self::signed_content(timestamp, body));
        format!("{}{}", Self::PREFIX, hex::encode(mac))
    }
    /// Checks a received `X-Slack-Signature` value for `timestamp` and the raw
    /// body, in constant time.
    pub fn verify(secret: &Secret, timestamp: &str, body: &[u8], signature: &str) -> bool {
        verify_prefixed_hex(
            secret.expose(),
            &Self::signed_content(timestamp, body),
            Self::PREFIX,
            signature,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{SignRequest, SignatureScheme};

    #[test]
    fn scheme_signs_what_verify_accepts() {
        let secret = Secret::new("s3cret");
        let headers = SignatureScheme::slack()
            .sign(
                std::slice::from_ref(&secret),
                &SignRequest {
                    id: "e1",
                    timestamp: 1_700_000_000,
                    body: b"{}",
                },
            )
            .unwrap();
        assert_eq!(
            headers[0],
            (
                SlackSignature::HEADER_TIMESTAMP.to_owned(),
                "1700000000".to_owned()
            )
        );
        assert_eq!(headers[1].0, SlackSignature::HEADER_SIGNATURE);
        assert!(SlackSignature::verify(
            &secret,
            "1700000000",
            b"{}",
            &headers[1].1
        ));
        assert!(!SlackSignature::verify(
            &secret,
            "1700000000",
            b"{ }",
            &headers[1].1
        ));
        assert!(!SlackSignature::verify(
            &secret,
            "1700000000",
            b"{}",
            "v0=zz"
        ));
    }
}
