//! The signature schemes the tool speaks, and how a received request is
//! checked against one (shared by `listen` and `verify`).

use std::fmt;

use clap::ValueEnum;
use std::time::Duration;

use hookbus::ingress::EventLabel;
use hookbus::signature::{Secret, SignatureScheme, StandardWebhooks};
use hookbus::verify::{Verifier, VerifyError};

use crate::Failure;

/// A signature scheme, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scheme {
    /// Standard Webhooks (the default): webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC> with a whsec_ secret, v1a,<base64 ed25519> with a whsk_ key (send) or its whpk_ public key (listen, verify)
    Standard,
    /// Briefcase: X-Briefcase-Signature: sha256=<hex HMAC of the body>
    Briefcase,
    /// X-<PREFIX>-Timestamp and X-<PREFIX>-Signature: sha256=<hex HMAC of "<ts>.<body>">
    Timestamped,
    /// GitHub: X-Hub-Signature-256: sha256=<hex HMAC of the body>
    Github,
    /// Slack: X-Slack-Request-Timestamp and X-Slack-Signature: v0=<hex HMAC of "v0:<ts>:<body>">
    Slack,
    /// Stripe: Stripe-Signature: t=<ts>,v1=<hex HMAC of "<ts>.<body>"> (the secret, whsec_ included, is the key)
    Stripe,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        f.write_str(&name)
    }
}

/// The signing options every command shares.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SigningArgs {
    /// The signing secret (or set HOOKBUS_SECRET). Never printed. For
    /// --scheme standard: a whsec_ secret, or an ed25519 key (send: whsk_,
    /// listen/verify: whpk_; `hookbus keygen` makes them).
    #[arg(long, env = "HOOKBUS_SECRET", hide_env_values = true)]
    pub(crate) secret: Option<String>,
    /// The signature scheme.
    #[arg(long, value_enum, default_value_t = Scheme::Standard)]
    pub(crate) scheme: Scheme,
    /// Header prefix of the timestamped scheme (X-<PREFIX>-Timestamp, X-<PREFIX>-Signature).
    #[arg(long, default_value = "Rubric")]
    pub(crate) prefix: String,
}

impl SigningArgs {
    /// The secret, if one was given and is not empty. For Standard Webhooks
    /// it says on stderr how the secret was read (with or without the
    /// whsec_ prefix, base64 or raw bytes), since both ends must agree.
    pub(crate) fn secret(&self) -> Option<Secret> {
        let secret = self
            .secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(Secret::new)?;
        if self.scheme == Scheme::Standard
            && let Ok(source) = StandardWebhooks::key_source(&secret)
        {
            eprintln!("note: Standard Webhooks secret: {source}");
        }
        Some(secret)
    }

    /// The library's scheme for signing.
    pub(crate) fn signature_scheme(&self) -> Result<SignatureScheme, Failure> {
        Ok(match self.scheme {
            Scheme::Standard => SignatureScheme::standard_webhooks(),
            Scheme::Briefcase => SignatureScheme::briefcase(),
            Scheme::Timestamped => SignatureScheme::timestamped(&self.prefix)
                .map_err(|e| Failure::input(format!("error: --prefix: {e}")))?,
            Scheme::Github => SignatureScheme::github(),
            Scheme::Slack => SignatureScheme::slack(),
            Scheme::Stripe => SignatureScheme::stripe(),
        })
    }
}

/// Request headers, looked up case-insensitively.
#[derive(Debug, Default, Clone)]
pub(crate) struct Headers(pub(crate) Vec<(String, String)>);

impl Headers {
    /// Which event the request carries (the library's one rule, shared
    /// with the ingress): type and id, `-` where the request names none.
    pub(crate) fn label(&self, body: &[u8]) -> EventLabel {
        EventLabel::of(&self.0, body)
    }
}

/// How a request's signature is checked: the library's [`Verifier`], with
/// hints for the person at the terminal.
#[derive(Debug, Clone)]
pub(crate) struct Checker {
    scheme: Scheme,
    verifier: Verifier,
}

const RAW_BYTES_HINT: &str = "verify the raw bytes received, not re-serialized JSON";

impl Checker {
    /// A checker for the scheme in `signing`; `max_age` in seconds, `None`
    /// skips the timestamp check.
    pub(crate) fn new(
        signing: &SigningArgs,
        secret: Secret,
        max_age: Option<u64>,
    ) -> Result<Checker, Failure> {
        // One scheme enum signs (send) and verifies (listen, verify).
        let verifier = Verifier::new(signing.signature_scheme()?, secret)
            .map_err(|e| Failure::input(format!("error: --secret: {e}")))?;
        Ok(Checker {
            scheme: signing.scheme,
            verifier: verifier.tolerance(max_age.map_or(Duration::MAX, Duration::from_secs)),
        })
    }

    /// The library's verifier.
    pub(crate) fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// `Ok` when the signature verifies at `now` (unix seconds), else why not.
    pub(crate) fn check(&self, headers: &Headers, body: &[u8], now: i64) -> Result<(), String> {
        self.verifier
            .verify_at(&headers.0, body, now)
            .map(|_| ())
            .map_err(|e| self.explain(&e))
    }

    /// Why a request did not verify, with a hint for the person at the
    /// terminal.
    pub(crate) fn explain(&self, e: &VerifyError) -> String {
        match e {
            VerifyError::MissingHeader { .. } => format!(
                "{e}: is the sender signing, and with the {} scheme?",
                self.scheme
            ),
            VerifyError::Mismatch { .. } => format!(
                "{e}: the secret differs from the sender's, or the signed content changed ({RAW_BYTES_HINT})"
            ),
            VerifyError::TimestampOutsideTolerance { .. } => format!(
                "{e} (a replay, or clock skew; --max-age 0 skips this check for old captures)"
            ),
            other => other.to_string(),
        }
    }
}

/// Reads an argument given as text or as `@path`.
pub(crate) fn text_or_file(flag: &str, value: &str) -> Result<Vec<u8>, Failure> {
    match value.strip_prefix('@') {
        Some(path) => std::fs::read(path).map_err(|e| {
            Failure::input(format!("error: {flag} @{path}: cannot read the file: {e}"))
        }),
        None => Ok(value.as_bytes().to_vec()),
    }
}
