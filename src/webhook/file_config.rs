//! Webhooks from configuration files: [`WebhookConfig`] is plain data
//! (serde) that turns into a [`WebhookBuilder`], with filters and templates
//! written as the Rubric docs show them.
//!
//! ```
//! use hookbus::webhook::WebhookConfig;
//!
//! let config: WebhookConfig = serde_json::from_str(r#"{
//!     "name": "production-notifications",
//!     "url": "https://your-api.example.com/webhooks/rubric",
//!     "events": ["evaluation.completed", "review.completed", "alert.triggered", "safety.critical"],
//!     "secret": "whsec_your_signing_secret",
//!     "signature": {"scheme": "timestamped", "prefix": "Rubric"},
//!     "filters": {"projects": ["patient-triage", "symptom-checker"], "severity": ["high", "critical"]},
//!     "retry_config": {"max_retries": 5, "backoff": "exponential", "initial_delay_ms": 1000},
//!     "templates": {
//!         "evaluation.completed": {"text": "Evaluation completed: {{data.name}}"}
//!     }
//! }"#)?;
//! assert!(!format!("{config:?}").contains("whsec_your_signing_secret"));
//! let sink = config.into_builder()?.build()?;
//! # let _ = sink;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::config::WebhookBuilder;
use super::error::TlsError;
use super::error::WebhookError;
use super::filter::Filter;
use super::oauth::{OAuth2, OAuth2ClientAuth};
use super::retry::{Backoff, RetryPolicy};
use super::wire::WireFormat;
use crate::OverflowPolicy;
use crate::signature::SignatureScheme;

/// The signing scheme as written in a config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignatureConfig {
    /// Body HMAC (`X-Briefcase-Signature: sha256=<hex>` unless overridden).
    Briefcase {
        /// The header name.
        #[serde(default)]
        header: Option<String>,
        /// The value prefix.
        #[serde(default)]
        prefix: Option<String>,
    },
    /// `X-<prefix>-Timestamp` + `X-<prefix>-Signature`.
    Timestamped {
        /// The header prefix, e.g. `Rubric`.
        prefix: String,
    },
    /// Standard Webhooks v1.
    StandardWebhooks,
}

/// Retries as written in a config file (the Rubric `retry_config` shape).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first attempt (default 2: three attempts in all).
    pub max_retries: u32,
    /// `exponential` (default), `fixed`, or `standard_webhooks` (the Svix schedule).
    pub backoff: String,
    /// Delay before the first retry.
    pub initial_delay_ms: u64,
    /// Longest delay.
    pub max_delay_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 2,
            backoff: "exponential".into(),
            initial_delay_ms: 500,
            max_delay_ms: 30_000,
        }
    }
}

impl RetryConfig {
    fn policy(&self) -> Result<RetryPolicy, WebhookError> {
        let attempts = self.max_retries.saturating_add(1);
        let initial = Duration::from_millis(self.initial_delay_ms);
        let max = Duration::from_millis(self.max_delay_ms.max(self.initial_delay_ms));
        Ok(match self.backoff.as_str() {
            "exponential" => RetryPolicy::exponential(attempts, initial, max),
            "fixed" => RetryPolicy {
                max_attempts: attempts,
                backoff: Backoff::Schedule(vec![initial]),
                ..RetryPolicy::default()
            },
            "standard_webhooks" => RetryPolicy::standard_webhooks().with_max_attempts(attempts),
            other => {
                return Err(super::error::OptionError::Backoff(other.to_owned()).into());
            }
        })
    }
}

/// A rate limit as written in a config file: `{"requests": 5, "per_ms":
/// 1000, "burst": 5}` (see [`WebhookBuilder::rate_limit`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per period (at least 1).
    pub requests: u32,
    /// The period in milliseconds (default 1000).
    #[serde(default = "one_second_ms")]
    pub per_ms: u64,
    /// The largest burst (default: `requests`).
    #[serde(default)]
    pub burst: Option<u32>,
}

fn one_second_ms() -> u64 {
    1000
}

/// A retry schedule for some event types, as written in a config file:
/// `{"events": "payment.*", "retry": {"backoff": "standard_webhooks"}}` (see
/// [`WebhookBuilder::retry_for`]; the first rule that matches wins).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRuleConfig {
    /// The event type or pattern.
    pub events: String,
    /// The retries for those events.
    pub retry: RetryConfig,
}

/// TLS settings as written in a config file: PEM files for mutual TLS and
/// extra roots (see [`WebhookBuilder::client_identity_pem`]). The files are
/// read by [`WebhookConfig::into_builder`]; one that cannot be read is a
/// [`WebhookError::Tls`] naming it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The client certificate chain (PEM); needs `client_key_pem_file`.
    pub client_cert_pem_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key_pem_file: Option<PathBuf>,
    /// Extra trusted root certificates (PEM).
    pub ca_pem_file: Option<PathBuf>,
    /// Whether the built-in roots are trusted too (default true).
    pub built_in_roots: Option<bool>,
}

/// OAuth2 client credentials as written in a config file (see
/// [`OAuth2`]): `{"token_url": "...", "client_id": "...", "client_secret":
/// "...", "scopes": ["a"], "client_auth": "basic" | "request_body"}`. The
/// secret never shows in `Debug`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// The token endpoint.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// Scopes (none: the server's default).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// How the credentials are sent (default `basic`).
    #[serde(default)]
    pub client_auth: OAuth2ClientAuth,
}

impl fmt::Debug for OAuth2Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Config")
            .field("token_url", &super::guard::redact_url(&self.token_url))
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

impl TlsConfig {
    fn apply(self, mut b: WebhookBuilder) -> Result<WebhookBuilder, WebhookError> {
        let read = |field: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| TlsError::ReadFile {
                field,
                path: path.clone(),
                kind: e.kind(),
            })
        };
        match (&self.client_cert_pem_file, &self.client_key_pem_file) {
            (Some(cert), Some(key)) => {
                b = b.client_identity_pem(
                    read("client_cert_pem_file", cert)?,
                    read("client_key_pem_file", key)?,
                );
            }
            (None, None) => {}
            _ => {
                return Err(TlsError::CertWithoutKey.into());
            }
        }
        if let Some(ca) = &self.ca_pem_file {
            b = b.root_certificates_pem(read("ca_pem_file", ca)?);
        }
        if let Some(built_in) = self.built_in_roots {
            b = b.tls_built_in_roots(built_in);
        }
        Ok(b)
    }
}

/// One webhook as written in a config file. Unknown keys are refused.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Its name.
    pub name: Option<String>,
    /// The URL.
    pub url: String,
    /// The signing secret (empty or absent: unsigned).
    pub secret: Option<String>,
    /// Several secrets during rotation.
    pub secrets: Vec<String>,
    /// The signing scheme (default Standard Webhooks).
    pub signature: Option<SignatureConfig>,
    /// Event types or patterns (empty: all).
    pub events: Vec<String>,
    /// Request timeout in milliseconds (default 10,000).
    pub timeout_ms: Option<u64>,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// A declarative filter (expression or map, see [`Filter`]).
    #[serde(alias = "filters")]
    pub filter: Option<Filter>,
    /// A payload template for every event.
    pub template: Option<Value>,
    /// Payload templates by event type or pattern.
    pub templates: BTreeMap<String, Value>,
    /// The wire format (`structured`, the default, `binary`, `batched`,
    /// `envelope`, `raw`).
    pub format: WireFormat,
    /// Retries.
    #[serde(alias = "retry_config")]
    pub retry: Option<RetryConfig>,
    /// Retries by event type, tried in order (first match wins).
    pub retry_for: Vec<RetryRuleConfig>,
    /// Events per request.
    pub batch_size: Option<usize>,
    /// Longest wait for a batch to fill, in milliseconds (default 1000).
    pub batch_timeout_ms: Option<u64>,
    /// Requests in flight.
    pub concurrency: Option<usize>,
    /// Deliveries that may be under way beyond `concurrency` (sending or
    /// waiting for a retry).
    pub retry_capacity: Option<usize>,
    /// Deliver one at a time, in order (a retrying event holds up the rest).
    pub ordered: bool,
    /// Deliver in order per key: the field path of the key.
    pub ordered_by: Option<String>,
    /// Mailbox capacity.
    pub capacity: Option<usize>,
    /// Mailbox overflow policy.
    pub overflow: Option<OverflowPolicy>,
    /// `ce-source` for events without one.
    pub source: Option<String>,
    /// Allow plain http to non-loopback hosts.
    pub allow_http: bool,
    /// Verify TLS certificates (default true).
    pub verify_ssl: bool,
    /// Failed deliveries in a row before the endpoint is disabled.
    pub disable_after: Option<u32>,
    /// At most so many requests per period to this endpoint.
    pub rate_limit: Option<RateLimitConfig>,
    /// Client certificate and root CAs.
    pub tls: Option<TlsConfig>,
    /// OAuth2 client credentials.
    pub oauth2: Option<OAuth2Config>,
    /// An egress proxy URL (wins over `proxy_from_env`).
    pub proxy: Option<String>,
    /// Use `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` when no `proxy` is given
    /// (default false).
    pub proxy_from_env: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            name: None,
            url: String::new(),
            secret: None,
            secrets: Vec::new(),
            signature: None,
            events: Vec::new(),
            timeout_ms: None,
            headers: BTreeMap::new(),
            filter: None,
            template: None,
            templates: BTreeMap::new(),
            format: WireFormat::default(),
            retry: None,
            retry_for: Vec::new(),
            batch_size: None,
            batch_timeout_ms: None,
            concurrency: None,
            retry_capacity: None,
            ordered: false,
            ordered_by: None,
            capacity: None,
            overflow: None,
            source: None,
            allow_http: false,
            verify_ssl: true,
            disable_after: None,
            rate_limit: None,
            tls: None,
            oauth2: None,
            proxy: None,
            proxy_from_env: false,
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &super::guard::redact_url(&self.url))
            .field(
                "signed",
                &(self.secret.as_deref().is_some_and(|s| !s.is_empty())
                    || !self.secrets.is_empty()),
            )
            .field("signature", &self.signature)
            .field("events", &self.events)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("filter", &self.filter)
            .field("format", &self.format)
            .field("retry", &self.retry)
            .field("retry_for", &self.retry_for)
            .field("rate_limit", &self.rate_limit)
            .field("tls", &self.tls)
            .field("oauth2", &self.oauth2)
            .field(
                "proxy",
                &self.proxy.as_deref().map(super::guard::redact_url),
            )
            .field("proxy_from_env", &self.proxy_from_env)
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// The builder this config describes (checked fully by its `build`).
    pub fn into_builder(self) -> Result<WebhookBuilder, WebhookError> {
        let mut b = WebhookBuilder::new(self.url);
        if let Some(n) = self.name {
            b = b.name(n);
        }
        if !self.secrets.is_empty() {
            b = b.secrets(self.secrets);
        } else if let Some(s) = self.secret {
            b = b.secret(s);
        }
        b = b.signature(match self.signature {
            None => SignatureScheme::default(),
            Some(SignatureConfig::Briefcase { header, prefix }) => SignatureScheme::body(
                header.as_deref().unwrap_or("X-Briefcase-Signature"),
                prefix.as_deref().unwrap_or("sha256="),
            )?,
            Some(SignatureConfig::Timestamped { prefix }) => SignatureScheme::timestamped(&prefix)?,
            Some(SignatureConfig::StandardWebhooks) => SignatureScheme::standard_webhooks(),
        });
        b = b.events(self.events);
        if let Some(ms) = self.timeout_ms {
            b = b.timeout(Duration::from_millis(ms));
        }
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        if let Some(f) = self.filter {
            b = b.filter_parsed(f);
        }
        if let Some(t) = self.template {
            b = b.template(t);
        }
        for (p, t) in self.templates {
            b = b.template_for(p, t);
        }
        b = b.format(self.format);
        if let Some(r) = self.retry {
            b = b.retry(r.policy()?);
        }
        for rule in self.retry_for {
            b = b.retry_for(rule.events, rule.retry.policy()?);
        }
        // ordered() first, so `ordered: true` with a concurrency above 1 is
        // refused by the builder rather than quietly set to 1.
        if self.ordered {
            b = b.ordered();
        }
        // The file's subscriber settings translate into the one shape every
        // subscriber takes.
        let mut options = b.options.clone();
        if let Some(max_size) = self.batch_size {
            options.batch = Some(crate::BatchConfig {
                max_size,
                max_wait: Duration::from_millis(self.batch_timeout_ms.unwrap_or(1000)),
            });
        }
        if let Some(c) = self.concurrency {
            options.concurrency = c;
        }
        if let Some(c) = self.capacity {
            options.capacity = c;
        }
        if let Some(o) = self.overflow {
            options.overflow = o;
        }
        b = b.options(options);
        if let Some(n) = self.retry_capacity {
            b = b.retry_capacity(n);
        }
        if let Some(k) = self.ordered_by {
            b = b.ordered_by(k);
        }
        if let Some(s) = self.source {
            b = b.source(s);
        }
        if let Some(n) = self.disable_after {
            b = b.disable_after(Some(n));
        }
        if let Some(r) = self.rate_limit {
            b = b.rate_limit(r.requests, Duration::from_millis(r.per_ms));
            if let Some(burst) = r.burst {
                b = b.rate_limit_burst(burst);
            }
        }
        if let Some(tls) = self.tls {
            b = tls.apply(b)?;
        }
        if let Some(o) = self.oauth2 {
            let mut oauth = OAuth2::client_credentials(o.token_url, o.client_id, o.client_secret)
                .client_auth(o.client_auth);
            for scope in o.scopes {
                oauth = oauth.scope(scope);
            }
            b = b.oauth2(oauth);
        }
        if let Some(p) = self.proxy {
            b = b.proxy(p);
        }
        Ok(b.proxy_from_env(self.proxy_from_env)
            .allow_http(self.allow_http)
            .verify_ssl(self.verify_ssl))
    }
}
