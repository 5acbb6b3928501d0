//! Slack request signing: `X-Slack-Request-Timestamp: <unix seconds>` and
//! `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:<body>">`.

use super::{Secret, hmac_sha256, hmac_sha256_verify};

/// Slack's request signature (slash commands, interactivity, Events API).
/// Hookbus verifies it ([`crate::verify`]); signing is here for round-trip
/// tests and for tools that stand in for Slack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlackSignature;

impl SlackSignature {
    /// The timestamp header.
    pub const HEADER_TIMESTAMP: &'static str = "X-Slack-Request-Timestamp";
    /// The signature header.
    pub const HEADER_SIGNATURE: &'static str = "X-Slack-Signature";
    /// The value prefix of the signature header.
    pub const VALUE_PREFIX: &'static str = "v0=";

    /// The signed content: `v0:<timestamp>:<body>`.
    pub fn signed_content<'a>(timestamp: &'a str, body: &'a [u8]) -> [&'a [u8]; 4] {
        [b"v0:", timestamp.as_bytes(), b":", body]
    }
    /// The `X-Slack-Signature` value.
    pub fn sign(secret: &Secret, timestamp: &str, body: &[u8]) -> String {
        let mac = hmac_sha256(secret.expose(), &Self::signed_content(timestamp, body));
        format!("{}{}", Self::VALUE_PREFIX, hex::encode(mac))
    }
    /// Checks a received `X-Slack-Signature` value for `timestamp` and `body`
    /// in constant time (the timestamp's age is the receiver's to check).
    pub fn verify(secret: &Secret, timestamp: &str, body: &[u8], header_value: &str) -> bool {
        header_value
            .trim()
            .strip_prefix(Self::VALUE_PREFIX)
            .and_then(|h| hex::decode(h).ok())
            .is_some_and(|mac| {
                hmac_sha256_verify(
                    secret.expose(),
                    &Self::signed_content(timestamp, body),
                    &mac,
                )
            })
    }
}
