//! The receiving side of webhooks: signature verification, no web framework
//! needed.
//!
//! A [`Verifier`] checks one scheme against the **raw body bytes** and the
//! request headers, with one or more secrets (rotation), a timestamp
//! tolerance (default 5 minutes, in both directions) and an optional
//! [`ReplayGuard`]. Comparisons are constant-time.
//!
//! | constructor | what it checks |
//! |---|---|
//! | [`Verifier::briefcase`], [`Verifier::body`] | `X-Briefcase-Signature: sha256=<hex of body>` (header and prefix configurable, e.g. Empathy's `X-Empathy-Signature: <hex>`) |
//! | [`Verifier::timestamped`] | `X-<Prefix>-Timestamp` + `X-<Prefix>-Signature: sha256=<hex of "<ts>.<body>">` (Rubric) |
//! | [`Verifier::standard_webhooks`] | `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 of "<id>.<ts>.<body>">` under a `whsec_` secret, or `v1a,<base64 ed25519 signature>` under a `whpk_` public key |
//! | [`Verifier::github`] | `X-Hub-Signature-256: sha256=<hex of body>` |
//! | [`Verifier::slack`] | `X-Slack-Request-Timestamp` + `X-Slack-Signature: v0=<hex of "v0:<ts>:<body>">` |
//! | [`Verifier::stripe`], [`Verifier::stripe_style`] | `Stripe-Signature: t=<ts>,v1=<hex of "<ts>.<body>">` |
//!
//! ```
//! use hookbus::signature::{Secret, SignatureScheme, SignRequest};
//! use hookbus::verify::{Verifier, VerifyError};
//!
//! let body = br#"{"decision_id":"abc123"}"#;
//! let now = 1_700_000_000;
//! // What a Rubric-style sender puts in the headers...
//! let headers = SignatureScheme::timestamped("Rubric")?
//!     .sign(&[Secret::new("whsec_s3cret")], &SignRequest { id: "", timestamp: now, body })?;
//!
//! // ...and what the receiver checks, over the raw body bytes.
//! let verifier = Verifier::timestamped("Rubric", "whsec_s3cret")?;
//! let verified = verifier.verify_at(&headers, body, now + 2)?;
//! assert_eq!(verified.timestamp, Some(now));
//!
//! // A changed body, a stale timestamp: errors that say what is wrong.
//! let err = verifier.verify_at(&headers, br#"{"decision_id":"abc124"}"#, now).unwrap_err();
//! assert!(matches!(err, VerifyError::Mismatch { .. }));
//! let err = verifier.verify_at(&headers, body, now + 301).unwrap_err();
//! assert_eq!(err.to_string(), "timestamp is 301 s in the past; the tolerance is 300 s");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Replays
//!
//! With a [`ReplayGuard`] ([`Verifier::replay_guard`]) a request whose signed
//! content was already accepted is refused with [`VerifyError::Replay`]. The
//! guard is keyed by **sender** (the verifier's keys, all of them: one guard
//! may serve many verifiers, and the same `webhook-id` from two senders
//! names two messages; a rotating sender stays one sender whichever of its
//! signatures a copy keeps) and by what the signature covers, never by
//! header text, so a replay cannot pass by re-spelling the signature (hex in
//! upper case, an extra `v0=`/unknown entry, a dropped rotation signature):
//!
//! | scheme | key (with the sender) | remembered until |
//! |---|---|---|
//! | Standard Webhooks | the `webhook-id` (senders retry with the same id) | timestamp + tolerance |
//! | timestamped, Slack, Stripe | the timestamp and the MAC of the signed content under the verifier's first secret | timestamp + tolerance |
//! | body only (Briefcase, Empathy, GitHub) | the MAC of the body under the verifier's first secret | first receipt + tolerance |
//!
//! For the schemes that sign a timestamp the memory matches the tolerance
//! exactly: inside the window the guard refuses a replay, outside it the
//! timestamp check does, so no copy of an accepted request is accepted
//! again (as long as the guard's capacity covers the requests of one
//! window: past it the oldest entries are forgotten early, counted by
//! [`ReplayGuard::evicted`]).
//!
//! ### What a body-only signature protects
//!
//! Briefcase, Empathy and GitHub sign the body and nothing else:
//!
//! - **protected**: the body's bytes, and that a holder of the secret made
//!   them; a copy arriving within the tolerance after the first one
//!   (refused as a replay: [`VerifyError::Replay`], or a duplicate at the
//!   [ingress](crate::ingress));
//! - **not protected**: freshness (with no signed timestamp an old capture
//!   cannot be told from a delivery: once the window after its first
//!   receipt has passed, the same request verifies again, and a guard
//!   forgets it when the process restarts); every header: GitHub's
//!   `X-GitHub-Event` and `X-GitHub-Delivery`, CloudEvents binary mode's
//!   `ce-*`, `Content-Type`, so a copy can be re-labelled (the ingress
//!   therefore refuses binary mode under these schemes and takes a GitHub
//!   event's name from the unsigned `X-GitHub-Event` only as GitHub sends
//!   it); nothing ties a request to a message id.
//!
//! When you control the sender, sign with Standard Webhooks (hookbus's
//! default: id, timestamp and body signed) or the timestamped scheme
//! instead, and send CloudEvents in structured mode (the default) so every
//! attribute is inside the signed body.
//!
//! [`Verifier::verify_pending`] reserves the request in the guard without
//! committing it: [`Pending::accept`] commits it once the request was
//! processed; dropping the [`Pending`] (the work failed, the sender will
//! retry) leaves no trace. Meanwhile a second copy gets
//! [`VerifyError::InFlight`]. [`Verifier::verify`] accepts at once.

mod body;
mod replay;
mod slack;
mod standard;
mod stripe;
mod timestamped;

pub use replay::{Admission, DEFAULT_REPLAY_CAPACITY, ReplayGuard, Reservation};

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::signature::{
    Secret, SignatureError, SignatureScheme, StandardWebhooks, constant_time_eq,
};

/// Default timestamp tolerance: 5 minutes, in both directions.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a request was not accepted. The messages say what is wrong and never
/// contain a secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A header the scheme needs is absent.
    #[error("missing header {header}")]
    MissingHeader {
        /// The header's name.
        header: String,
    },
    /// A header is present but cannot be read.
    #[error("malformed header {header}: {reason}")]
    MalformedHeader {
        /// The header's name.
        header: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signed timestamp is too far from now.
    #[error(
        "timestamp is {} s in the {}; the tolerance is {tolerance_secs} s",
        .skew_secs.unsigned_abs(),
        if *.skew_secs >= 0 { "past" } else { "future" }
    )]
    TimestampOutsideTolerance {
        /// Now minus the timestamp, in seconds: positive for the past,
        /// negative for the future.
        skew_secs: i64,
        /// The tolerance in seconds.
        tolerance_secs: u64,
    },
    /// No signature in the request matches the body under any secret.
    #[error(
        "signature mismatch: none of the {signatures} signature(s) matches the body under any of the {secrets} secret(s)"
    )]
    Mismatch {
        /// How many signatures the request carried.
        signatures: usize,
        /// How many secrets were tried.
        secrets: usize,
    },
    /// The request is valid but was already accepted inside the tolerance
    /// window.
    #[error("replay: this request was already accepted inside the tolerance window")]
    Replay,
    /// The same signed request is being processed right now (its first copy
    /// was verified but not yet [accepted](Pending::accept)): retry later.
    #[error("this request is already being processed; retry later")]
    InFlight,
    /// The verifier has no (non-empty) secret, so it accepts nothing.
    #[error("the verifier has no secret configured")]
    NoSecret,
}

impl VerifyError {
    fn missing(header: &str) -> VerifyError {
        VerifyError::MissingHeader {
            header: header.to_owned(),
        }
    }
    fn malformed(header: &str, reason: &'static str) -> VerifyError {
        VerifyError::MalformedHeader {
            header: header.to_owned(),
            reason,
        }
    }
}

/// Read access to request headers by case-insensitive name, so verification
/// works with any HTTP library. Implemented for `http::HeaderMap` (with the
/// `axum`, `webhook` or `integrations` feature) and for lists of
/// `(name, value)` pairs.
pub trait HeaderSource {
    /// The first value of the header `name` (any case), as bytes.
    fn header_bytes(&self, name: &str) -> Option<&[u8]>;
}

impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderSource for [(K, V)] {
    fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderSource for Vec<(K, V)> {
    fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header_bytes(name)
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>, const N: usize> HeaderSource for [(K, V); N] {
    fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header_bytes(name)
    }
}

#[cfg(any(feature = "webhook", feature = "axum", feature = "integrations"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "webhook", feature = "axum", feature = "integrations")))
)]
impl HeaderSource for http::HeaderMap {
    fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(|v| v.as_bytes())
    }
}

/// A required header as text.
fn header<'h>(
    headers: &'h (impl HeaderSource + ?Sized),
    name: &str,
) -> Result<&'h str, VerifyError> {
    let raw = headers
        .header_bytes(name)
        .ok_or_else(|| VerifyError::missing(name))?;
    let text = std::str::from_utf8(raw)
        .map_err(|_| VerifyError::malformed(name, "not valid UTF-8"))?
        .trim();
    if text.is_empty() {
        return Err(VerifyError::malformed(name, "empty"));
    }
    Ok(text)
}

/// A unix-seconds timestamp: ASCII digits only (no sign, no fraction).
fn parse_timestamp(name: &str, text: &str) -> Result<i64, VerifyError> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::malformed(
            name,
            "expected a unix timestamp in seconds (ASCII digits)",
        ));
    }
    text.parse()
        .map_err(|_| VerifyError::malformed(name, "timestamp out of range"))
}

/// Checks that a signature is a hex-encoded HMAC-SHA256 (64 hex digits,
/// any case), so a malformed header is reported as such, not as a mismatch.
fn check_hex_mac(name: &str, text: &str) -> Result<(), VerifyError> {
    if text.len() != 64 {
        return Err(VerifyError::malformed(
            name,
            "expected 64 hex digits of HMAC-SHA256",
        ));
    }
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VerifyError::malformed(name, "signature is not hex"));
    }
    Ok(())
}

/// Decodes 64 hex digits (checked by [`check_hex_mac`]).
fn decode_hex_mac(name: &str, text: &str) -> Result<Vec<u8>, VerifyError> {
    check_hex_mac(name, text)?;
    hex::decode(text).map_err(|_| VerifyError::malformed(name, "signature is not hex"))
}

/// Decodes a `<prefix><64 hex digits>` signature value to the MAC bytes.
fn prefixed_hex(name: &str, value: &str, prefix: &str) -> Result<Vec<u8>, VerifyError> {
    let hex = value.strip_prefix(prefix).ok_or_else(|| {
        VerifyError::malformed(name, "the value does not start with the expected prefix")
    })?;
    decode_hex_mac(name, hex)
}

/// A timestamp header and a `<prefix><hex>` signature header, both checked
/// for shape: the timestamp, its text as signed, and the decoded MAC.
fn timestamp_and_signature<'h>(
    headers: &'h (impl HeaderSource + ?Sized),
    ts_name: &str,
    sig_name: &str,
    prefix: &str,
) -> Result<(i64, &'h str, Vec<u8>), VerifyError> {
    let ts_text = header(headers, ts_name)?;
    let sig = header(headers, sig_name)?;
    let timestamp = parse_timestamp(ts_name, ts_text)?;
    let mac = prefixed_hex(sig_name, sig, prefix)?;
    Ok((timestamp, ts_text, mac))
}

/// What a scheme read from a well-formed request: the signed timestamp and
/// id, the decoded signatures, and how to compute the MAC of the signed
/// content under a secret. The verifier compares in constant time.
struct Claim<'a> {
    /// Names the scheme in replay-guard keys.
    tag: &'static str,
    timestamp: Option<i64>,
    id: Option<&'a str>,
    /// The signatures, decoded (the well-formed ones of the scheme's version).
    signatures: Vec<Vec<u8>>,
    /// How many signatures the request carries.
    count: usize,
    /// The HMAC-SHA256 of the signed content with a secret's key (`None`
    /// when the secret has no HMAC key, e.g. a `whpk_` public key).
    mac: MacFn<'a>,
    /// Whether an asymmetric signature in the request verifies under a
    /// secret that is a public key (`None` when it is not one).
    signed_by: SignedByFn<'a>,
}

/// Computes the MAC of a claim's signed content under a secret.
type MacFn<'a> = Box<dyn Fn(&Secret) -> Option<[u8; 32]> + 'a>;
/// Checks a claim's asymmetric signatures under a public key.
type SignedByFn<'a> = Box<dyn Fn(&Secret) -> Option<bool> + 'a>;

/// For schemes without asymmetric signatures.
fn no_asymmetric<'a>() -> SignedByFn<'a> {
    Box::new(|_| None)
}

/// How each scheme reads a request: the verifying half of
/// [`SignatureScheme`] (one enum signs and verifies).
impl SignatureScheme {
    fn claim<'a>(
        &'a self,
        headers: &'a (impl HeaderSource + ?Sized),
        body: &'a [u8],
    ) -> Result<Claim<'a>, VerifyError> {
        match self {
            SignatureScheme::Body(s) => body::claim(s, headers, body),
            SignatureScheme::Timestamped(s) => timestamped::claim(s, headers, body),
            SignatureScheme::StandardWebhooks(_) => standard::claim(headers, body),
            SignatureScheme::Slack(_) => slack::claim(headers, body),
            SignatureScheme::Stripe(s) => stripe::claim(s.header(), headers, body),
        }
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The signed timestamp (unix seconds), for schemes that sign one.
    pub timestamp: Option<i64>,
    /// The signed message id (Standard Webhooks `webhook-id`).
    pub id: Option<String>,
    /// Which of the verifier's secrets matched (0 = the first given).
    pub secret_index: usize,
}

/// A request that verified, with its [`ReplayGuard`] entry (if the verifier
/// has a guard) reserved but not committed; see [`Verifier::verify_pending`].
/// [`accept`](Self::accept) commits it; dropping it releases the entry, so
/// a retry of the same request is not taken for a replay.
#[must_use = "dropping a Pending releases the request: call accept() once it was processed"]
pub struct Pending {
    verified: Verified,
    reservation: Option<Reservation>,
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("verified", &self.verified)
            .field("guarded", &self.reservation.is_some())
            .finish()
    }
}

impl Pending {
    /// What the verification established.
    pub fn verified(&self) -> &Verified {
        &self.verified
    }

    /// The request was processed: remember it, so a replay is refused.
    pub fn accept(self) -> Verified {
        if let Some(r) = self.reservation {
            r.commit();
        }
        self.verified
    }
}

/// Verifies one signature scheme with one or more secrets.
///
/// Cheap to clone; clones share the replay guard.
#[derive(Debug, Clone)]
pub struct Verifier {
    scheme: SignatureScheme,
    // The secrets, redacted in Debug (a `whsec_` one is checked when added).
    keys: Vec<Secret>,
    tolerance: Duration,
    replay: Option<Arc<ReplayGuard>>,
}

impl Verifier {
    /// A verifier for `scheme` with one secret (add more with
    /// [`secret`](Self::secret)). An empty secret is ignored: a verifier
    /// without secrets refuses everything with [`VerifyError::NoSecret`].
    /// The scheme is the one webhooks sign with:
    /// `Verifier::new(SignatureScheme::default(), secret)` checks what a
    /// default webhook sends.
    pub fn new(
        scheme: SignatureScheme,
        secret: impl Into<Secret>,
    ) -> Result<Verifier, SignatureError> {
        Verifier {
            scheme,
            keys: Vec::new(),
            tolerance: DEFAULT_TOLERANCE,
            replay: None,
        }
        .secret(secret)
    }

    /// The verifier matching a webhook subscriber's [`SignatureScheme`], with
    /// the same secrets.
    pub fn for_scheme(
        scheme: &SignatureScheme,
        secrets: &[Secret],
    ) -> Result<Verifier, SignatureError> {
        let mut v = Verifier::new(scheme.clone(), "")?;
        for s in secrets {
            v = v.secret(s.clone())?;
        }
        Ok(v)
    }

    /// Briefcase: `X-Briefcase-Signature: sha256=<hex HMAC of the body>`.
    pub fn briefcase(secret: impl Into<Secret>) -> Verifier {
        Verifier::plain(SignatureScheme::briefcase(), secret)
    }

    /// A body HMAC under a custom header and prefix, e.g.
    /// `Verifier::body("X-Empathy-Signature", "", secret)` for the Empathy guide.
    pub fn body(
        header: &str,
        prefix: &str,
        secret: impl Into<Secret>,
    ) -> Result<Verifier, SignatureError> {
        Ok(Verifier::plain(
            SignatureScheme::body(header, prefix)?,
            secret,
        ))
    }

    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC of the body>`.
    pub fn github(secret: impl Into<Secret>) -> Verifier {
        Verifier::plain(SignatureScheme::github(), secret)
    }

    /// Timestamped: `X-<prefix>-Timestamp` and `X-<prefix>-Signature:
    /// sha256=<hex HMAC of "<ts>.<body>">` (e.g. prefix `Rubric`).
    pub fn timestamped(
        prefix: &str,
        secret: impl Into<Secret>,
    ) -> Result<Verifier, SignatureError> {
        Ok(Verifier::plain(
            SignatureScheme::timestamped(prefix)?,
            secret,
        ))
    }

    /// Standard Webhooks v1. The secret is base64-decoded, with or without
    /// the `whsec_` prefix, as the official libraries do; see
    /// [`StandardWebhooks::key`] for the rules (an invalid `whsec_` secret is
    /// an error).
    pub fn standard_webhooks(secret: impl Into<Secret>) -> Result<Verifier, SignatureError> {
        Verifier::new(SignatureScheme::standard_webhooks(), secret)
    }

    /// Slack request signatures (`v0=`), with the app's signing secret.
    pub fn slack(signing_secret: impl Into<Secret>) -> Verifier {
        Verifier::plain(SignatureScheme::slack(), signing_secret)
    }

    /// Stripe: `Stripe-Signature: t=<ts>,v1=<hex>`.
    pub fn stripe(secret: impl Into<Secret>) -> Verifier {
        Verifier::plain(SignatureScheme::stripe(), secret)
    }

    /// The Stripe format under another header name.
    pub fn stripe_style(
        header: &str,
        secret: impl Into<Secret>,
    ) -> Result<Verifier, SignatureError> {
        Ok(Verifier::plain(
            SignatureScheme::stripe_style(header)?,
            secret,
        ))
    }

    // For schemes whose secrets are raw bytes: adding one cannot fail.
    fn plain(scheme: SignatureScheme, secret: impl Into<Secret>) -> Verifier {
        let secret = secret.into();
        Verifier {
            scheme,
            keys: if secret.is_empty() {
                Vec::new()
            } else {
                vec![secret]
            },
            tolerance: DEFAULT_TOLERANCE,
            replay: None,
        }
    }

    /// Accepts another secret too (rotation: the new one and the old one
    /// until every sender has switched; for Standard Webhooks a `whsec_`
    /// secret and a `whpk_` public key may stand side by side). Empty
    /// secrets are ignored. For Standard Webhooks a malformed `whsec_` or
    /// `whpk_` key is an error, and so is a `whsk_` secret key
    /// ([`SignatureError::SigningKeyToVerify`]: receivers verify with the
    /// public key); the other schemes refuse `whsk_`/`whpk_` keys.
    pub fn secret(mut self, secret: impl Into<Secret>) -> Result<Verifier, SignatureError> {
        let secret = secret.into();
        if secret.is_empty() {
            return Ok(self);
        }
        if let SignatureScheme::StandardWebhooks(_) = self.scheme {
            StandardWebhooks::verifying(&secret)?;
        } else if crate::signature::is_asymmetric_key(&secret) {
            return Err(SignatureError::AsymmetricKeyForHmacScheme);
        }
        self.keys.push(secret);
        Ok(self)
    }

    /// How far a signed timestamp may be from now, in either direction
    /// (default [`DEFAULT_TOLERANCE`], 5 minutes).
    pub fn tolerance(mut self, tolerance: Duration) -> Verifier {
        self.tolerance = tolerance;
        self
    }

    /// Refuses a request already accepted inside the tolerance window
    /// ([`VerifyError::Replay`]). The key remembered is this verifier's
    /// keys (the sender) with the Standard Webhooks `webhook-id`, else what
    /// the signature covers (see the [module docs](self#replays)): never
    /// the header text. One guard can serve several verifiers; each
    /// sender's ids stay apart.
    pub fn replay_guard(mut self, guard: Arc<ReplayGuard>) -> Verifier {
        self.replay = Some(guard);
        self
    }

    /// Whether a [`ReplayGuard`] is set.
    pub fn has_replay_guard(&self) -> bool {
        self.replay.is_some()
    }

    /// The scheme checked.
    pub fn scheme(&self) -> &SignatureScheme {
        &self.scheme
    }

    /// Verifies a request against the current time.
    pub fn verify(
        &self,
        headers: &(impl HeaderSource + ?Sized),
        body: &[u8],
    ) -> Result<Verified, VerifyError> {
        self.verify_at(headers, body, unix_now())
    }

    /// Verifies a request as if the time were `now` (unix seconds), and
    /// remembers it in the replay guard at once.
    pub fn verify_at(
        &self,
        headers: &(impl HeaderSource + ?Sized),
        body: &[u8],
        now: i64,
    ) -> Result<Verified, VerifyError> {
        self.verify_pending_at(headers, body, now)
            .map(Pending::accept)
    }

    /// Verifies a request against the current time and reserves it in the
    /// replay guard until the returned [`Pending`] is accepted (or dropped:
    /// then it leaves no trace).
    pub fn verify_pending(
        &self,
        headers: &(impl HeaderSource + ?Sized),
        body: &[u8],
    ) -> Result<Pending, VerifyError> {
        self.verify_pending_at(headers, body, unix_now())
    }

    /// [`verify_pending`](Self::verify_pending) as if the time were `now`
    /// (unix seconds).
    pub fn verify_pending_at(
        &self,
        headers: &(impl HeaderSource + ?Sized),
        body: &[u8],
        now: i64,
    ) -> Result<Pending, VerifyError> {
        if self.keys.is_empty() {
            return Err(VerifyError::NoSecret);
        }
        let claim = self.scheme.claim(headers, body)?;
        let tolerance = self.tolerance.as_secs();
        if let Some(ts) = claim.timestamp {
            let skew = now.saturating_sub(ts);
            if skew.unsigned_abs() > tolerance {
                return Err(VerifyError::TimestampOutsideTolerance {
                    skew_secs: skew,
                    tolerance_secs: tolerance,
                });
            }
        }
        // One MAC per secret, compared with every signature in constant
        // time; a public key checks the asymmetric signatures instead. The
        // first secret's MAC is the canonical one the replay guard keys on
        // (for schemes without a signed id), whichever secret matched.
        let mut canonical = None;
        let mut matched = None;
        for (index, key) in self.keys.iter().enumerate() {
            if let Some(hit) = (claim.signed_by)(key) {
                if hit {
                    matched = Some(index);
                    break;
                }
                continue;
            }
            let Some(mac) = (claim.mac)(key) else {
                continue;
            };
            canonical.get_or_insert(mac);
            let hit = claim
                .signatures
                .iter()
                .fold(false, |hit, sig| hit | constant_time_eq(&mac, sig));
            if hit {
                matched = Some(index);
                break;
            }
        }
        let Some(secret_index) = matched else {
            return Err(VerifyError::Mismatch {
                signatures: claim.count,
                secrets: self.keys.len(),
            });
        };
        let reservation = match &self.replay {
            None => None,
            Some(guard) => {
                let window = i64::try_from(tolerance).unwrap_or(i64::MAX);
                let ts_bytes = claim.timestamp.map(i64::to_be_bytes);
                // Keyed by sender: the verifier's keys (all of them, so a
                // rotating sender is one sender whichever of its signatures
                // a copy keeps), then what the signature covers.
                let mut parts: Vec<&[u8]> = Vec::with_capacity(3 + self.keys.len());
                parts.push(claim.tag.as_bytes());
                match (claim.id, &canonical) {
                    (Some(id), _) => parts.extend([&b"id"[..], id.as_bytes()]),
                    (None, Some(canonical)) => parts.extend([
                        ts_bytes.as_ref().map_or(&[][..], |b| &b[..]),
                        &canonical[..],
                    ]),
                    // Every scheme without a signed id is an HMAC scheme, so
                    // a match means a MAC was computed.
                    (None, None) => unreachable!("an HMAC scheme matched without a MAC"),
                }
                parts.extend(self.keys.iter().map(Secret::expose));
                let key = replay::digest_key(&parts);
                // Signed timestamps bound the window; otherwise it runs from
                // the first receipt.
                let from = claim.timestamp.unwrap_or(now);
                let expires = from.saturating_add(window).saturating_add(1);
                match guard.reserve_key(key, expires, now) {
                    Admission::New(r) => Some(r),
                    Admission::Seen => return Err(VerifyError::Replay),
                    Admission::InFlight => return Err(VerifyError::InFlight),
                }
            }
        };
        Ok(Pending {
            verified: Verified {
                timestamp: claim.timestamp,
                id: claim.id.map(str::to_owned),
                secret_index,
            },
            reservation,
        })
    }
}

/// The current time in unix seconds (0 if the clock is before 1970).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
