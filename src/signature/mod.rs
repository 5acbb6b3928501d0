//! Webhook signature schemes: what is signed, with which key, and how the
//! signature is written into headers.
//!
//! Each scheme lives in its own file and exposes the same three pieces, so the
//! sending side (webhook subscribers) and a receiving side can share them:
//!
//! - the **signed content** as a list of byte slices fed to HMAC-SHA256 in
//!   order (the body is never copied or re-serialised: sign the exact bytes you
//!   send, verify the exact bytes you received);
//! - the **encoding** of the MAC into a header value (`sha256=<hex>`,
//!   `v1,<base64>`);
//! - the **header names**;
//! - a constant-time **verify** for each scheme (`verify_slice` under the
//!   hood), which the receiving side builds on.
//!
//! | scheme | headers | signed content | value |
//! |---|---|---|---|
//! | [`BodySignature`] (Briefcase, Empathy) | `X-Briefcase-Signature` (configurable) | body | `sha256=<hex>` (prefix configurable) |
//! | [`TimestampedSignature`] (Rubric) | `X-<Prefix>-Timestamp`, `X-<Prefix>-Signature` | `<ts>.<body>` | `sha256=<hex>` |
//! | [`StandardWebhooks`] v1 (the default) | `webhook-id`, `webhook-timestamp`, `webhook-signature` | `<id>.<ts>.<body>` | `v1,<base64 HMAC>` with a `whsec_` secret, `v1a,<base64 ed25519>` with a `whsk_` key (space-separated when rotating) |
//! | GitHub ([`BodySignature::github`]) | `X-Hub-Signature-256` | body | `sha256=<hex>` |
//! | [`SlackSignature`] | `X-Slack-Request-Timestamp`, `X-Slack-Signature` | `v0:<ts>:<body>` | `v0=<hex>` |
//! | [`StripeSignature`] | `Stripe-Signature` | `<ts>.<body>` | `t=<ts>,v1=<hex>` (several `v1` when rotating; the secret, `whsec_` included, is the key as is) |
//!
//! The last three are what services send to you: [`crate::verify`] checks
//! them, and their signing helpers exist for round-trip tests and stand-ins.
//!
//! [`SignatureScheme::default`] is Standard Webhooks (`whsec_` secrets);
//! Briefcase and the others are one call away.
//!
//! ```
//! use hookbus::signature::{Secret, SignatureScheme, SignRequest};
//!
//! let scheme = SignatureScheme::briefcase();
//! let secret = Secret::new("my-webhook-secret");
//! let headers = scheme
//!     .sign(&[secret], &SignRequest { id: "evt_1", timestamp: 1_700_000_000, body: br#"{"a":1}"# })
//!     .unwrap();
//! assert_eq!(headers[0].0, "X-Briefcase-Signature");
//! assert!(headers[0].1.starts_with("sha256="));
//! ```

mod body;
mod slack;
mod standard;
mod stripe;
mod timestamped;

pub use body::BodySignature;
pub use slack::SlackSignature;
pub use standard::{SecretSource, StandardWebhooks};
pub(crate) use standard::{StandardKey, ed25519_verify};
pub use stripe::StripeSignature;
pub use timestamped::TimestampedSignature;

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA256 as every scheme here uses it.
pub type HmacSha256 = Hmac<Sha256>;

/// A signing secret. Its `Debug` and `Display` never show the value, so it
/// can sit in configs and errors safely.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl PartialEq for Secret {
    /// Compares in time independent of where the bytes differ (the length
    /// may show), so `==` on secrets leaks no timing about their contents.
    fn eq(&self, other: &Secret) -> bool {
        constant_time_eq(self.expose(), other.expose())
    }
}

impl Eq for Secret {}

impl Secret {
    /// A secret from text or bytes, used as given (for Standard Webhooks a
    /// `whsec_` secret is decoded by the scheme, see [`StandardWebhooks`]).
    pub fn new(secret: impl AsRef<[u8]>) -> Secret {
        Secret(Arc::from(secret.as_ref()))
    }
    /// Whether the secret is empty (an empty secret means "unsigned").
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The secret's bytes. Keep them out of logs.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret::new(s)
    }
}

/// What is wrong with a secret or a scheme setting. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// A `whsec_` secret whose rest is not valid base64.
    #[error(
        "a Standard Webhooks secret must be \"whsec_\" followed by base64; this one does not decode"
    )]
    BadStandardSecret,
    /// A `whsk_` key whose rest is not the base64 of an ed25519 secret key.
    #[error(
        "a Standard Webhooks secret key must be \"whsk_\" followed by the base64 of a 32-byte ed25519 seed (or of the 64-byte seed and public key); this one does not decode"
    )]
    BadSigningKey,
    /// A `whpk_` key whose rest is not the base64 of an ed25519 public key.
    #[error(
        "a Standard Webhooks public key must be \"whpk_\" followed by the base64 of a 32-byte ed25519 public key; this one does not decode"
    )]
    BadPublicKey,
    /// A `whsk_` secret key where a receiver's key is expected.
    #[error(
        "a whsk_ secret key was given to verify: receivers verify with its whpk_ public key (`hookbus keygen` prints both); keep the whsk_ key on the sending side only"
    )]
    SigningKeyToVerify,
    /// A `whpk_` public key where a sender's key is expected.
    #[error(
        "a whpk_ public key cannot sign: sign with its whsk_ secret key, and give receivers the whpk_ key"
    )]
    PublicKeyToSign,
    /// An asymmetric key (`whsk_`, `whpk_`) where an HMAC secret is expected.
    #[error(
        "a whsk_/whpk_ key signs or verifies v1a (ed25519) signatures, not HMACs: use a whsec_ secret for v1"
    )]
    NotSymmetric,
    /// A symmetric secret where an ed25519 key is expected.
    #[error("a whsec_ secret has no public key: only a whsk_ secret key does")]
    NotAsymmetric,
    /// A symmetric Standard Webhooks secret of the wrong size.
    #[error("a Standard Webhooks secret needs 24 to 64 random bytes, not {0}")]
    BadSecretLength(usize),
    /// A key that only Standard Webhooks reads (`whsk_`, `whpk_`) given to
    /// another scheme, which would take it as raw HMAC bytes.
    #[error(
        "a whsk_/whpk_ key is for Standard Webhooks v1a; this scheme signs with an HMAC secret"
    )]
    AsymmetricKeyForHmacScheme,
    /// A header name or prefix that HTTP does not allow.
    #[error("invalid signature header name {0:?}")]
    BadHeaderName(String),
}

/// What one request's signature covers. The `id` and `timestamp` are used by
/// the schemes that sign them.
#[derive(Debug, Clone, Copy)]
pub struct SignRequest<'a> {
    /// The message id (Standard Webhooks `webhook-id`).
    pub id: &'a str,
    /// Unix seconds, taken afresh for every attempt.
    pub timestamp: i64,
    /// The exact body bytes sent.
    pub body: &'a [u8],
}

/// Whether `a == b`, in time independent of where they differ (the length
/// may show): for comparing MACs and secrets.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)))
            == 0
}

/// HMAC-SHA256 of the concatenation of `parts`, fed incrementally (no copy).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Checks `expected` against the HMAC of `parts` in constant time.
pub fn hmac_sha256_verify(key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(expected).is_ok()
}

/// A signature scheme: what a webhook signs with
/// ([`sign`](Self::sign)) and what a [`Verifier`](crate::verify::Verifier)
/// checks, one enum for both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureScheme {
    /// HMAC of the body alone, hex (Briefcase `X-Briefcase-Signature: sha256=…`,
    /// Empathy `X-Empathy-Signature: …`).
    Body(BodySignature),
    /// HMAC of `"<timestamp>.<body>"` with a timestamp header (Rubric).
    Timestamped(TimestampedSignature),
    /// Standard Webhooks v1: `v1` HMACs with `whsec_` secrets, `v1a`
    /// ed25519 signatures with `whsk_` keys (the default scheme).
    StandardWebhooks(StandardWebhooks),
    /// Slack's `v0` request signing (for tools that stand in for Slack, such
    /// as `hookbus send --scheme slack`).
    Slack(SlackSignature),
    /// Stripe's `Stripe-Signature: t=<ts>,v1=<hex>` (one `v1` per secret,
    /// the header's name configurable), for tools that stand in for Stripe
    /// (`hookbus send --scheme stripe`) and receivers of Stripe-style
    /// signatures.
    Stripe(StripeSignature),
}

impl Default for SignatureScheme {
    /// Standard Webhooks: what webhooks, `hookbus send` and `hookbus listen`
    /// use unless told otherwise, so hookbus's defaults interoperate with
    /// each other and with the official Standard Webhooks libraries.
    fn default() -> Self {
        SignatureScheme::standard_webhooks()
    }
}

impl SignatureScheme {
    /// `X-Briefcase-Signature: sha256=<hex>`.
    pub fn briefcase() -> SignatureScheme {
        SignatureScheme::Body(BodySignature::default())
    }
    /// Body HMAC under a custom header and prefix, e.g.
    /// `body("X-Empathy-Signature", "")`.
    pub fn body(header: &str, prefix: &str) -> Result<SignatureScheme, SignatureError> {
        Ok(SignatureScheme::Body(BodySignature::new(header, prefix)?))
    }
    /// `X-<prefix>-Timestamp` + `X-<prefix>-Signature: sha256=<hex of "<ts>.<body>">`.
    pub fn timestamped(prefix: &str) -> Result<SignatureScheme, SignatureError> {
        Ok(SignatureScheme::Timestamped(TimestampedSignature::new(
            prefix,
        )?))
    }
    /// Standard Webhooks v1.
    pub fn standard_webhooks() -> SignatureScheme {
        SignatureScheme::StandardWebhooks(StandardWebhooks)
    }
    /// GitHub's `X-Hub-Signature-256: sha256=<hex>` (a body signature).
    pub fn github() -> SignatureScheme {
        SignatureScheme::Body(BodySignature::github())
    }
    /// Slack's `X-Slack-Request-Timestamp` + `X-Slack-Signature: v0=<hex>`.
    pub fn slack() -> SignatureScheme {
        SignatureScheme::Slack(SlackSignature)
    }
    /// Stripe's `Stripe-Signature: t=<ts>,v1=<hex of "<ts>.<body>">`.
    pub fn stripe() -> SignatureScheme {
        SignatureScheme::Stripe(StripeSignature::default())
    }
    /// The Stripe format under another header name.
    pub fn stripe_style(header: &str) -> Result<SignatureScheme, SignatureError> {
        Ok(SignatureScheme::Stripe(StripeSignature::new(header)?))
    }

    /// Checks that the secrets can sign under the scheme: for Standard
    /// Webhooks a `whsec_` secret that decodes or a `whsk_` secret key (a
    /// `whpk_` public key cannot sign); for the HMAC-only schemes no
    /// `whsk_`/`whpk_` key, which they would take as raw bytes.
    pub fn check_secrets(&self, secrets: &[Secret]) -> Result<(), SignatureError> {
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            match self {
                SignatureScheme::StandardWebhooks(_) => {
                    StandardWebhooks::signing(s)?;
                }
                _ if is_asymmetric_key(s) => {
                    return Err(SignatureError::AsymmetricKeyForHmacScheme);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The names of the headers [`sign`](Self::sign) returns, in order.
    pub fn header_names(&self) -> Vec<&str> {
        match self {
            SignatureScheme::Body(s) => vec![s.header()],
            SignatureScheme::Timestamped(s) => vec![s.timestamp_header(), s.signature_header()],
            SignatureScheme::StandardWebhooks(_) => vec![
                standard::HEADER_ID,
                standard::HEADER_TIMESTAMP,
                standard::HEADER_SIGNATURE,
            ],
            SignatureScheme::Slack(_) => vec![
                SlackSignature::HEADER_TIMESTAMP,
                SlackSignature::HEADER_SIGNATURE,
            ],
            SignatureScheme::Stripe(s) => vec![s.header()],
        }
    }

    /// The signature headers for one request, `(name, value)`. Empty when
    /// there is no secret (or only empty ones). Schemes that cannot carry
    /// several signatures sign with the first secret.
    pub fn sign(
        &self,
        secrets: &[Secret],
        req: &SignRequest<'_>,
    ) -> Result<Vec<(String, String)>, SignatureError> {
        let Some(first) = secrets.iter().find(|s| !s.is_empty()) else {
            return Ok(Vec::new());
        };
        Ok(match self {
            SignatureScheme::Body(s) => vec![(s.header().to_owned(), s.sign(first, req.body))],
            SignatureScheme::Timestamped(s) => {
                let ts = req.timestamp.to_string();
                vec![
                    (s.timestamp_header().to_owned(), ts.clone()),
                    (
                        s.signature_header().to_owned(),
                        s.sign(first, &ts, req.body),
                    ),
                ]
            }
            SignatureScheme::StandardWebhooks(_) => {
                let ts = req.timestamp.to_string();
                let mut sigs = Vec::with_capacity(secrets.len());
                for s in secrets.iter().filter(|s| !s.is_empty()) {
                    sigs.push(StandardWebhooks::sign(s, req.id, &ts, req.body)?);
                }
                vec![
                    (standard::HEADER_ID.to_owned(), req.id.to_owned()),
                    (standard::HEADER_TIMESTAMP.to_owned(), ts),
                    (standard::HEADER_SIGNATURE.to_owned(), sigs.join(" ")),
                ]
            }
            SignatureScheme::Slack(_) => {
                let ts = req.timestamp.to_string();
                let sig = SlackSignature::sign(first, &ts, req.body);
                vec![
                    (SlackSignature::HEADER_TIMESTAMP.to_owned(), ts),
                    (SlackSignature::HEADER_SIGNATURE.to_owned(), sig),
                ]
            }
            SignatureScheme::Stripe(s) => vec![(
                s.header().to_owned(),
                StripeSignature::sign(secrets, req.timestamp, req.body),
            )],
        })
    }
}

/// Whether `secret` is written as a Standard Webhooks ed25519 key.
pub(crate) fn is_asymmetric_key(secret: &Secret) -> bool {
    let s = secret.expose();
    s.starts_with(b"whsk_") || s.starts_with(b"whpk_")
}

pub(crate) fn check_header_name(name: &str) -> Result<(), SignatureError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SignatureError::BadHeaderName(name.to_owned()))
    }
}
