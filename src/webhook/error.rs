//! Why a webhook could not be built or managed.

use crate::expr::{FilterError, TemplateError};
use crate::pattern::PatternError;
use crate::signature::SignatureError;

/// What is wrong with a webhook's settings, or why a management call failed.
/// Never contains secrets or the URL's path and query (which often are secret,
/// e.g. Slack's incoming-webhook URLs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL does not parse or is not http(s).
    #[error("invalid webhook URL: {0}")]
    InvalidUrl(String),
    /// Plain http to a host that is not loopback.
    #[error(
        "refusing plain http to non-loopback host {0}: use https, or call allow_http(true) if you accept an unencrypted connection"
    )]
    InsecureUrl(String),
    /// The SSRF guard refuses the URL's address.
    #[error(
        "the SSRF guard refuses {0}: it is an internal address; add it to the allow-list to permit"
    )]
    BlockedAddress(String),
    /// A header name or value HTTP does not allow.
    #[error("invalid header {name:?}: {reason}")]
    InvalidHeader {
        /// The header name.
        name: String,
        /// What is wrong (the value is not repeated).
        reason: String,
    },
    /// A payload template is wrong.
    #[error("invalid template: {0}")]
    Template(#[from] TemplateError),
    /// A filter is wrong.
    #[error("invalid filter: {0}")]
    Filter(#[from] FilterError),
    /// An event pattern is wrong.
    #[error("invalid event pattern: {0}")]
    Pattern(#[from] PatternError),
    /// A signing setting or secret is wrong.
    #[error("invalid signature setting: {0}")]
    Signature(#[from] SignatureError),
    /// The retry policy is wrong.
    #[error("invalid retry policy: {0}")]
    Retry(#[from] super::retry::RetryPolicyError),
    /// A [`retry_for`](super::WebhookBuilder::retry_for) policy is wrong.
    #[error("invalid retry_for({pattern:?}) policy: {source}")]
    RetryFor {
        /// The rule's pattern.
        pattern: String,
        /// What is wrong with its policy.
        source: super::retry::RetryPolicyError,
    },
    /// The rate limit is wrong.
    #[error("invalid rate limit: {0}")]
    RateLimit(#[from] super::rate::RateLimitError),
    /// Another option is out of range.
    #[error("invalid webhook option: {0}")]
    InvalidOption(String),
    /// A TLS setting is wrong: a client certificate or key, or a root
    /// certificate, that does not parse or does not fit.
    #[error("invalid TLS setting: {0}")]
    Tls(String),
    /// An OAuth2 setting is wrong (the token URL, the client id).
    #[error("invalid OAuth2 setting: {0}")]
    OAuth2(String),
    /// A proxy setting is wrong (from the builder or the environment).
    #[error("invalid proxy setting: {0}")]
    Proxy(String),
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(String),
    /// Subscribing to the bus failed.
    #[error("could not subscribe the webhook: {0}")]
    Subscribe(#[from] crate::SubscribeError),
    /// `update` would change a durable webhook's subscription settings,
    /// which needs a second subscription under the same name in the store.
    #[error(
        "webhook {0:?} is durable: update can change its endpoint settings in place, not its name or its subscription settings (events, mailbox, batch, concurrency, ordering, rate limit, condition or filter, store); delete it and register it again"
    )]
    DurableResubscribe(String),
    /// No webhook has this id.
    #[error("no webhook with id {0:?}")]
    NotFound(String),
}
