//! Webhooks from configuration files: the `Deserialize` of
//! [`WebhookBuilder`], whose docs show the keys; each key is translated into
//! its setter, and `build` checks the result as it checks any builder.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::builder::WebhookBuilder;
use super::filter::Filter;
use super::oauth::OAuth2;
use super::retry::{Backoff, RetryPolicy};
use super::tls::Pem;
use super::wire::WireFormat;
use crate::signature::{SignatureError, SignatureScheme};
use crate::{BatchConfig, OverflowPolicy};

/// A webhook as written in a config file (see the module docs).
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct File {
    name: Option<String>,
    url: String,
    secret: Option<String>,
    secrets: Vec<String>,
    signature: Option<SignatureConfig>,
    events: Vec<String>,
    timeout_ms: Option<u64>,
    headers: BTreeMap<String, String>,
    #[serde(alias = "filters")]
    filter: Option<Filter>,
    template: Option<Value>,
    templates: BTreeMap<String, Value>,
    format: WireFormat,
    #[serde(alias = "retry_config")]
    retry: Option<RetryConfig>,
    retry_for: Vec<RetryRule>,
    batch_size: Option<usize>,
    batch_timeout_ms: Option<u64>,
    concurrency: Option<usize>,
    retry_capacity: Option<usize>,
    ordered: bool,
    ordered_by: Option<String>,
    capacity: Option<usize>,
    overflow: Option<OverflowPolicy>,
    source: Option<String>,
    allow_http: bool,
    verify_ssl: Option<bool>,
    disable_after: Option<u32>,
    rate_limit: Option<RateLimit>,
    tls: Option<Tls>,
    oauth2: Option<OAuth2>,
    proxy: Option<String>,
    proxy_from_env: bool,
}

#[derive(Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
enum SignatureConfig {
    Briefcase {
        header: Option<String>,
        prefix: Option<String>,
    },
    Timestamped {
        prefix: String,
    },
    StandardWebhooks,
}

/// Retries as written in a config file (the Rubric `retry_config` shape):
/// `max_retries` after the first attempt (default 2), `backoff`
/// (`exponential`, the default, `fixed` or `standard_webhooks`),
/// `initial_delay_ms` (default 500) and `max_delay_ms` (default 30,000).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RetryConfig {
    max_retries: u32,
    backoff: BackoffName,
    initial_delay_ms: u64,
    max_delay_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BackoffName {
    Exponential,
    Fixed,
    StandardWebhooks,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 2,
            backoff: BackoffName::Exponential,
            initial_delay_ms: 500,
            max_delay_ms: 30_000,
        }
    }
}

impl From<RetryConfig> for RetryPolicy {
    fn from(c: RetryConfig) -> RetryPolicy {
        let attempts = c.max_retries.saturating_add(1);
        let initial = Duration::from_millis(c.initial_delay_ms);
        let max = Duration::from_millis(c.max_delay_ms.max(c.initial_delay_ms));
        match c.backoff {
            BackoffName::Exponential => RetryPolicy::exponential(attempts, initial, max),
            BackoffName::Fixed => RetryPolicy {
                max_attempts: attempts,
                backoff: Backoff::Schedule(vec![initial]),
                ..RetryPolicy::default()
            },
            BackoffName::StandardWebhooks => {
                RetryPolicy::standard_webhooks().with_max_attempts(attempts)
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimit {
    requests: u32,
    #[serde(default = "one_second_ms")]
    per_ms: u64,
    burst: Option<u32>,
}

fn one_second_ms() -> u64 {
    1000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryRule {
    events: String,
    retry: RetryConfig,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Tls {
    client_cert_pem_file: Option<PathBuf>,
    client_key_pem_file: Option<PathBuf>,
    ca_pem_file: Option<PathBuf>,
    built_in_roots: Option<bool>,
}

/// What is wrong in a config file beyond its types (serde reports it).
#[derive(Debug, thiserror::Error)]
enum FileError {
    #[error("tls: client_cert_pem_file and client_key_pem_file go together")]
    CertWithoutKey,
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

impl<'de> Deserialize<'de> for WebhookBuilder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<WebhookBuilder, D::Error> {
        translate(File::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The builder a config file describes.
fn translate(f: File) -> Result<WebhookBuilder, FileError> {
    let mut b = WebhookBuilder::new(f.url).events(f.events);
    b.name = f.name;
    b.secrets = match (f.secrets.is_empty(), f.secret) {
        (false, _) => f.secrets.into_iter().map(Into::into).collect(),
        (true, secret) => secret.into_iter().map(Into::into).collect(),
    };
    b.scheme = match f.signature {
        None => SignatureScheme::default(),
        Some(SignatureConfig::Briefcase { header, prefix }) => SignatureScheme::body(
            header.as_deref().unwrap_or("X-Briefcase-Signature"),
            prefix.as_deref().unwrap_or("sha256="),
        )?,
        Some(SignatureConfig::Timestamped { prefix }) => SignatureScheme::timestamped(&prefix)?,
        Some(SignatureConfig::StandardWebhooks) => SignatureScheme::standard_webhooks(),
    };
    b.timeout = f.timeout_ms.map_or(b.timeout, Duration::from_millis);
    b.headers = f.headers.into_iter().collect();
    b.filter = f.filter.map(Ok);
    b.template = f.template;
    b.templates = f.templates.into_iter().collect();
    b.format = f.format;
    b.retry = f.retry.map_or(b.retry, Into::into);
    b.retry_rules = (f.retry_for.into_iter())
        .map(|r| (r.events, r.retry.into()))
        .collect();
    // `ordered` first, so `ordered: true` with a concurrency above 1 is
    // refused by `build` rather than quietly set to 1.
    if f.ordered {
        b = b.ordered();
    }
    let o = &mut b.options;
    o.batch = f.batch_size.map(|max_size| BatchConfig {
        max_size,
        max_wait: Duration::from_millis(f.batch_timeout_ms.unwrap_or(1000)),
    });
    o.concurrency = f.concurrency.unwrap_or(o.concurrency);
    o.capacity = f.capacity.unwrap_or(o.capacity);
    o.overflow = f.overflow.unwrap_or(o.overflow);
    b.retry_capacity = f.retry_capacity.unwrap_or(b.retry_capacity);
    b.order_key = f.ordered_by;
    b.source = f.source;
    b.disable_after = f.disable_after.or(b.disable_after);
    if let Some(r) = f.rate_limit {
        b.rate_limit = Some((r.requests, Duration::from_millis(r.per_ms)));
        b.rate_burst = r.burst;
    }
    if let Some(t) = f.tls {
        let file = |field, path: PathBuf| Pem::File { field, path };
        b.tls.identity = match (t.client_cert_pem_file, t.client_key_pem_file) {
            (Some(c), Some(k)) => Some((
                file("client_cert_pem_file", c),
                file("client_key_pem_file", k),
            )),
            (None, None) => None,
            _ => return Err(FileError::CertWithoutKey),
        };
        b.tls.roots = t
            .ca_pem_file
            .map(|p| file("ca_pem_file", p))
            .into_iter()
            .collect();
        b.tls.built_in_roots = t.built_in_roots.unwrap_or(true);
    }
    b.oauth2 = f.oauth2;
    b.proxy.explicit = f.proxy;
    b.proxy.from_env = f.proxy_from_env;
    b.allow_http = f.allow_http;
    b.verify_ssl = f.verify_ssl.unwrap_or(true);
    Ok(b)
}
