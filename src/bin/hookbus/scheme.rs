//! The signature schemes the tool speaks, and how a received request is
//! checked against one (shared by `listen` and `verify`).

use std::fmt;

use clap::ValueEnum;
use hookbus::signature::{
    BodySignature, GitHubSignature, Secret, SignatureScheme, SlackSignature, StandardWebhooks,
    TimestampedSignature,
};

use crate::Failure;

/// A signature scheme, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scheme {
    /// Standard Webhooks v1: webhook-id, webhook-timestamp, webhook-signature: v1,<base64>
    Standard,
    /// Briefcase: X-Briefcase-Signature: sha256=<hex HMAC of the body>
    Briefcase,
    /// X-<PREFIX>-Timestamp and X-<PREFIX>-Signature: sha256=<hex HMAC of "<ts>.<body>">
    Timestamped,
    /// GitHub: X-Hub-Signature-256: sha256=<hex HMAC of the body>
    Github,
    /// Slack: X-Slack-Request-Timestamp and X-Slack-Signature: v0=<hex HMAC of "v0:<ts>:<body>">
    Slack,
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
    /// The signing secret (or set HOOKBUS_SECRET). Never printed.
    #[arg(long, env = "HOOKBUS_SECRET", hide_env_values = true)]
    pub(crate) secret: Option<String>,
    /// The signature scheme.
    #[arg(long, value_enum, default_value_t = Scheme::Briefcase)]
    pub(crate) scheme: Scheme,
    /// Header prefix of the timestamped scheme (X-<PREFIX>-Timestamp, X-<PREFIX>-Signature).
    #[arg(long, default_value = "Rubric")]
    pub(crate) prefix: String,
}

impl SigningArgs {
    /// The secret, if one was given and is not empty.
    pub(crate) fn secret(&self) -> Option<Secret> {
        self.secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(Secret::new)
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
        })
    }
}

/// Request headers, looked up case-insensitively.
#[derive(Debug, Default, Clone)]
pub(crate) struct Headers(pub(crate) Vec<(String, String)>);

impl Headers {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The event type: CloudEvents binary mode, GitHub, or `-`.
    pub(crate) fn event_type(&self) -> &str {
        self.get("ce-type")
            .or_else(|| self.get(GitHubSignature::HEADER_EVENT))
            .unwrap_or("-")
    }

    /// The event or delivery id: CloudEvents, Standard Webhooks, GitHub, or `-`.
    pub(crate) fn id(&self) -> &str {
        self.get("ce-id")
            .or_else(|| self.get(StandardWebhooks::HEADER_ID))
            .or_else(|| self.get(GitHubSignature::HEADER_DELIVERY))
            .unwrap_or("-")
    }
}

/// How a request's signature is checked.
#[derive(Debug, Clone)]
pub(crate) struct Checker {
    pub(crate) scheme: Scheme,
    pub(crate) prefix: String,
    pub(crate) secret: Secret,
    /// Largest accepted timestamp age, in seconds; `None` skips the check.
    pub(crate) max_age: Option<u64>,
}

const RAW_BYTES_HINT: &str = "verify the raw bytes received, not re-serialized JSON";

impl Checker {
    /// `Ok` when the signature verifies, else why not.
    pub(crate) fn check(&self, headers: &Headers, body: &[u8], now: i64) -> Result<(), String> {
        let require = |name: &str| {
            headers.get(name).ok_or_else(|| {
                format!(
                    "missing header {name}: is the sender signing, and with the {} scheme?",
                    self.scheme
                )
            })
        };
        let mismatch = |signed: &str| {
            format!(
                "signature mismatch: the secret differs from the sender's, or {signed} changed ({RAW_BYTES_HINT})"
            )
        };
        match self.scheme {
            Scheme::Briefcase | Scheme::Github => {
                let sig = match self.scheme {
                    Scheme::Github => GitHubSignature::body_signature(),
                    _ => BodySignature::default(),
                };
                let value = require(sig.header())?;
                well_formed_hex(sig.header(), value, sig.prefix())?;
                if sig.verify(&self.secret, body, value) {
                    Ok(())
                } else {
                    Err(mismatch("the body"))
                }
            }
            Scheme::Timestamped => {
                let sig = TimestampedSignature::new(&self.prefix)
                    .map_err(|e| format!("--prefix: {e}"))?;
                let ts = require(sig.timestamp_header())?;
                let value = require(sig.signature_header())?;
                self.check_age(sig.timestamp_header(), ts, now)?;
                well_formed_hex(
                    sig.signature_header(),
                    value,
                    TimestampedSignature::VALUE_PREFIX,
                )?;
                if sig.verify(&self.secret, ts, body, value) {
                    Ok(())
                } else {
                    Err(mismatch("the timestamp or the body"))
                }
            }
            Scheme::Standard => {
                let id = require(StandardWebhooks::HEADER_ID)?;
                let ts = require(StandardWebhooks::HEADER_TIMESTAMP)?;
                let value = require(StandardWebhooks::HEADER_SIGNATURE)?;
                self.check_age(StandardWebhooks::HEADER_TIMESTAMP, ts, now)?;
                if !value
                    .split(' ')
                    .any(|s| s.starts_with(StandardWebhooks::VERSION_PREFIX))
                {
                    return Err(format!(
                        "malformed {}: expected one or more space-separated v1,<base64> signatures",
                        StandardWebhooks::HEADER_SIGNATURE
                    ));
                }
                match StandardWebhooks::verify(&self.secret, id, ts, body, value) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(mismatch("the id, the timestamp or the body")),
                    Err(e) => Err(format!("the secret cannot be used: {e}")),
                }
            }
            Scheme::Slack => {
                let ts = require(SlackSignature::HEADER_TIMESTAMP)?;
                let value = require(SlackSignature::HEADER_SIGNATURE)?;
                self.check_age(SlackSignature::HEADER_TIMESTAMP, ts, now)?;
                well_formed_hex(
                    SlackSignature::HEADER_SIGNATURE,
                    value,
                    SlackSignature::PREFIX,
                )?;
                if SlackSignature::verify(&self.secret, ts, body, value) {
                    Ok(())
                } else {
                    Err(mismatch("the timestamp or the body"))
                }
            }
        }
    }

    fn check_age(&self, header: &str, ts: &str, now: i64) -> Result<(), String> {
        let t: i64 = ts
            .trim()
            .parse()
            .map_err(|_| format!("{header} is {ts:?}, not unix seconds"))?;
        if let Some(max) = self.max_age {
            let age = now.saturating_sub(t);
            if age.unsigned_abs() > max {
                return Err(format!(
                    "{header} is {age} s away from now, outside the tolerance of {max} s (a replay, or clock skew; --max-age 0 skips this check for old captures)"
                ));
            }
        }
        Ok(())
    }
}

/// Checks `<prefix><64 hex digits>`.
fn well_formed_hex(header: &str, value: &str, prefix: &str) -> Result<(), String> {
    let ok = value
        .trim()
        .strip_prefix(prefix)
        .and_then(|h| hex::decode(h).ok())
        .is_some_and(|mac| mac.len() == 32);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "malformed {header}: expected {prefix}<64 hex digits>"
        ))
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
