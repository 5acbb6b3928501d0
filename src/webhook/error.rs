//! Why a webhook could not be built or managed: [`WebhookError`] and the
//! typed reasons it carries.

use std::path::PathBuf;
use std::sync::Arc;

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
    InvalidUrl(#[source] UrlError),
    /// Plain http to a host that is not loopback.
    #[error(
        "refusing plain http to non-loopback host {0}: use https, or call allow_http(true) if you accept an unencrypted connection"
    )]
    InsecureUrl(url::Host<String>),
    /// The SSRF guard refuses the URL's address.
    #[error(
        "the SSRF guard refuses {0}: it is an internal address; add it to the allow-list to permit"
    )]
    BlockedAddress(std::net::IpAddr),
    /// A header name or value HTTP does not allow, or one hookbus sets.
    #[error("invalid header {name:?}: {reason}")]
    InvalidHeader {
        /// The header name.
        name: String,
        /// What is wrong (the value is not repeated).
        #[source]
        reason: HeaderError,
    },
    /// A payload template is wrong.
    #[error("invalid template: {0}")]
    Template(#[from] TemplateError),
    /// A filter expression is wrong.
    #[error("invalid filter expression: {0}")]
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
    /// Another option is out of range, or two do not go together.
    #[error("invalid webhook option: {0}")]
    InvalidOption(#[from] OptionError),
    /// A TLS setting is wrong: a client certificate or key, or a root
    /// certificate, that does not parse or does not fit.
    #[error("invalid TLS setting: {0}")]
    Tls(#[from] TlsError),
    /// An OAuth2 setting is wrong (the token URL, the client id).
    #[error("invalid OAuth2 setting: {0}")]
    OAuth2(#[from] OAuth2Error),
    /// A proxy setting is wrong (from the builder or the environment).
    #[error("invalid proxy setting: {0}")]
    Proxy(#[from] ProxyError),
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(#[source] HttpClientError),
    /// Subscribing to the bus failed.
    #[error("could not subscribe the webhook: {0}")]
    Subscribe(#[from] crate::SubscribeError),
    /// The webhook's durable store could not be read.
    #[cfg(feature = "durable")]
    #[error("cannot read the webhook's store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// `update` would change the name or the mailbox-side settings of the
    /// durable webhook of this name (mailbox, batch, concurrency, ordering,
    /// rate limit, the store itself), which needs a second subscription
    /// under the same name in the store. Its events, route key, condition
    /// and filter expression change in place and never cause this.
    #[error(
        "webhook {0:?} is durable: update can change its endpoint settings, events, route key, condition and filter expression in place, not its name or its mailbox-side settings (mailbox, batch, concurrency, ordering, rate limit, store); delete it and register it again"
    )]
    DurableResubscribe(String),
    /// No webhook has this id.
    #[error("no webhook with id {:?}", .0.as_str())]
    NotFound(super::WebhookId),
}

/// Why a webhook URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// It does not parse.
    #[error(transparent)]
    Parse(#[from] url::ParseError),
    /// It has no host.
    #[error("the URL has no host")]
    NoHost,
    /// Its scheme is not http(s) (the scheme).
    #[error("scheme {0:?} is not supported; use https (or http for loopback)")]
    Scheme(String),
}

/// What is wrong with an extra header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Not a header name.
    #[error("not a valid HTTP header name")]
    Name,
    /// A value HTTP cannot carry.
    #[error(
        "the value holds characters HTTP headers cannot carry (control characters or non-ASCII)"
    )]
    Value,
    /// The signature scheme's prefix cannot go in a header.
    #[error("the signature prefix holds characters HTTP headers cannot carry (control characters)")]
    SignaturePrefix,
    /// A `ce-*` header (set from the event).
    #[error(
        "ce-* headers carry the event's CloudEvents attributes and are set from the event (add an extension with Event::extension instead)"
    )]
    CloudEvents,
    /// A header the signature scheme sets.
    #[error("the signature scheme sets this header on every attempt")]
    Signature,
    /// A header the HTTP client sets.
    #[error("the HTTP client sets this header")]
    Client,
    /// `Authorization` with OAuth2.
    #[error("oauth2() sends the token in this header: drop the header, or oauth2()")]
    OAuth2,
}

/// An option out of range, or options that do not go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionError {
    /// `timeout(0)`.
    #[error("timeout must be more than zero")]
    ZeroTimeout,
    /// `ordered()` with a concurrency above 1 (the concurrency).
    #[error(
        "ordered() sends one request at a time, but concurrency is {0}: drop concurrency(), or use ordered_by(key) to order per key"
    )]
    OrderedConcurrency(usize),
    /// `ordered()` with adaptive concurrency.
    #[error(
        "ordered() sends one request at a time: adaptive_concurrency has nothing to adapt; drop one of them"
    )]
    OrderedAdaptive,
    /// Batching raw payloads.
    #[error(
        "raw payloads (WireFormat::Raw) are one event per request: drop batch(), or pick another format"
    )]
    RawBatch,
    /// `disable_after(Some(0))`.
    #[error("disable_after must be at least 1 (or None)")]
    DisableAfterZero,
    /// `ordered_by` with an empty path or segment (the path).
    #[error("ordered_by needs a field path such as data.decision_id, got {0:?}")]
    OrderKey(String),
    /// `replay` on a webhook without a store that keeps delivered events
    /// (the webhook's name).
    #[error(
        "webhook {0:?} cannot replay: it needs durable(&store) with a store that keeps delivered events (StoreBuilder::keep_delivered)"
    )]
    NoReplay(String),
}

/// Which PEM input an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemInput {
    /// The certificate chain of `client_identity_pem`.
    IdentityCertificate,
    /// The key of `client_identity_pem`.
    IdentityKey,
    /// The n-th `root_certificates_pem` (from 1).
    Root(usize),
}

impl std::fmt::Display for PemInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemInput::IdentityCertificate => f.write_str("client_identity_pem: the certificate"),
            PemInput::IdentityKey => f.write_str("client_identity_pem: the key"),
            PemInput::Root(n) => write!(f, "root_certificates_pem (#{n})"),
        }
    }
}

/// What is wrong with a TLS setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM input does not parse.
    #[error("{input} PEM does not parse: {reason}")]
    Pem {
        /// Which input.
        input: PemInput,
        /// Why (no key material).
        reason: PemProblem,
    },
    /// A certificate input holds no CERTIFICATE block.
    #[error("{0} PEM holds no CERTIFICATE block")]
    NoCertificate(PemInput),
    /// The key input holds no private key.
    #[error(
        "client_identity_pem: the key PEM holds no private key (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)"
    )]
    NoPrivateKey,
    /// The client identity parses but is refused (e.g. the key is not the
    /// certificate's).
    #[error("client_identity_pem: the certificate(s) and the key are refused: {0}")]
    Identity(#[source] HttpClientError),
    /// A root certificate parses but is refused.
    #[error("{input}: a certificate is refused: {source}")]
    RootRefused {
        /// Which input.
        input: PemInput,
        /// Why.
        source: HttpClientError,
    },
    /// Neither built-in nor given roots.
    #[error(
        "tls_built_in_roots(false) without root_certificates_pem: no server certificate could be trusted"
    )]
    NoRoots,
    /// A config file's PEM file cannot be read.
    #[error("cannot read {field} {}: {kind}", path.display())]
    ReadFile {
        /// The config field.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        kind: std::io::ErrorKind,
    },
}

/// Why a PEM block does not parse (never its content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemProblem {
    /// A block has no END line.
    #[error("a block has no END line")]
    MissingEnd,
    /// A BEGIN line is malformed.
    #[error("a BEGIN line is malformed")]
    BadBegin,
    /// A block is not valid base64.
    #[error("a block is not valid base64")]
    Base64,
    /// Another malformation.
    #[error("the PEM is malformed")]
    Malformed,
}

/// What is wrong with an OAuth2 setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuth2Error {
    /// The token URL is refused as a webhook URL would be.
    #[error("the token URL: {0}")]
    TokenUrl(#[source] Box<WebhookError>),
    /// The client id is empty.
    #[error("the client id is empty")]
    EmptyClientId,
}

/// What is wrong with a proxy setting. `setting` names where it came from
/// (`proxy`, `https_proxy`, `HTTP_PROXY`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// Not a URL.
    #[error("{setting} is not a URL ({source}); use http://host:port")]
    NotAUrl {
        /// The setting.
        setting: &'static str,
        /// Why.
        source: url::ParseError,
    },
    /// Not an http(s) proxy.
    #[error("{setting}: scheme {scheme:?} is not supported; use an http:// or https:// proxy")]
    Scheme {
        /// The setting.
        setting: &'static str,
        /// Its scheme.
        scheme: String,
    },
    /// No host.
    #[error("{setting} has no host")]
    NoHost {
        /// The setting.
        setting: &'static str,
    },
    /// The HTTP client refuses it.
    #[error("{setting}: {source}")]
    Refused {
        /// The setting.
        setting: &'static str,
        /// Why.
        source: HttpClientError,
    },
}

/// An error of the HTTP client (reqwest) while it is built. Shows the
/// innermost explanation (reqwest's own text is "builder error"); the
/// reqwest error is its [`source`](std::error::Error::source). Two are equal
/// when they say the same.
#[derive(Debug, Clone)]
pub struct HttpClientError(Arc<reqwest::Error>);

impl HttpClientError {
    pub(crate) fn new(e: reqwest::Error) -> HttpClientError {
        HttpClientError(Arc::new(e))
    }
}

impl std::fmt::Display for HttpClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut inner: &dyn std::error::Error = &*self.0;
        while let Some(s) = inner.source() {
            inner = s;
        }
        write!(f, "{inner}")
    }
}

impl std::error::Error for HttpClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl PartialEq for HttpClientError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for HttpClientError {}
