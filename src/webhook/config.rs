//! Building a webhook endpoint: [`WebhookBuilder::build`] checks the
//! settings and derives what delivery needs ([`Endpoint`]).
//!
//! Everything is checked here: the URL (https unless the host is loopback
//! or [`allow_http`](WebhookBuilder::allow_http) is set), header names and
//! values, templates, filters, event patterns, secrets, retry settings. A
//! bad value is an error that says what is wrong; nothing is checked for
//! the first time at delivery.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::builder::WebhookBuilder;
use super::emitter::WebhookEmitter;
use super::endpoint::{Endpoint, EndpointState};
use super::error::WebhookError;
use super::error::{HeaderError, HttpClientError, OAuth2Error, OptionError, TlsError, UrlError};
use super::guard::{GuardedResolver, SsrfGuard, is_loopback_host, redact_url};
use super::log::DeliveryLog;
use super::oauth::TokenSource;
use super::rate::{RateLimitError, RateLimiter};
use super::sink::WebhookSink;
use super::template::Template;
use super::wire::WireFormat;
use crate::pattern::Pattern;
use crate::signature::{SignatureError, SignatureScheme};

impl WebhookBuilder {
    /// Checks everything and builds a sink to attach to a bus with
    /// [`WebhookSink::subscribe`].
    pub fn build(self) -> Result<WebhookSink, WebhookError> {
        let state = Arc::new(EndpointState::new(DeliveryLog::new(
            self.log_capacity,
            self.dead_letter_capacity,
        )));
        self.build_with_state(state, None)
    }

    /// Checks everything and builds an emitter to call directly.
    pub fn build_emitter(self) -> Result<WebhookEmitter, WebhookError> {
        Ok(WebhookEmitter::from_sink(self.build()?))
    }

    /// Builds on `state`; with `previous` (an update), the endpoint keeps
    /// its name unless a new one is given (its store records are kept under
    /// it), its rate-limit bucket and its per-key order.
    pub(crate) fn build_with_state(
        self,
        state: Arc<EndpointState>,
        previous: Option<&Endpoint>,
    ) -> Result<WebhookSink, WebhookError> {
        let url = check_url(&self.url, self.allow_http, self.guard.as_ref())?;
        let name = match (&self.name, previous) {
            (Some(name), _) => name.clone(),
            (None, Some(p)) => p.name.clone(),
            (None, None) => url.host_str().unwrap_or("webhook").to_owned(),
        };
        if self.timeout.is_zero() {
            return Err(OptionError::ZeroTimeout.into());
        }
        // The subscriber settings are checked where every subscriber's are.
        self.options.validate()?;
        if self.ordered && self.options.concurrency != 1 {
            return Err(OptionError::OrderedConcurrency(self.options.concurrency).into());
        }
        if self.ordered && self.adaptive_concurrency {
            return Err(OptionError::OrderedAdaptive.into());
        }
        if self.options.batch.is_some() && self.format == WireFormat::Raw {
            return Err(OptionError::RawBatch.into());
        }
        if self.disable_after == Some(0) {
            return Err(OptionError::DisableAfterZero.into());
        }
        self.retry.validate()?;
        let retry_rules = self
            .retry_rules
            .iter()
            .map(|(p, policy)| {
                policy.validate().map_err(|source| WebhookError::RetryFor {
                    pattern: p.clone(),
                    source,
                })?;
                Ok((Pattern::new(p)?, policy.clone()))
            })
            .collect::<Result<Vec<_>, WebhookError>>()?;
        let rate_limit = match (self.rate_limit, self.rate_burst) {
            (Some((n, per)), burst) => {
                let limiter = RateLimiter::new(n, per, burst.unwrap_or(n))?;
                // An update keeps the bucket: the same limiter when the rate
                // is the same, else the new rate on the old bucket.
                Some(match previous.and_then(|p| p.rate_limit.as_ref()) {
                    Some(old) if old.same_rate(&limiter) => old.clone(),
                    Some(old) => Arc::new(limiter.continuing(old)),
                    None => Arc::new(limiter),
                })
            }
            (None, Some(_)) => return Err(RateLimitError::BurstWithoutRate.into()),
            (None, None) => None,
        };
        let key_order = match &self.order_key {
            Some(p) if p.is_empty() || p.split('.').any(str::is_empty) => {
                return Err(OptionError::OrderKey(p.clone()).into());
            }
            Some(p) => match previous.and_then(|e| e.key_order.as_ref()) {
                // The chains of events already under way go on.
                Some(old) if old.path() == p => Some(old.clone()),
                _ => Some(Arc::new(super::order::KeyOrder::new(p.clone()))),
            },
            None => None,
        };
        self.scheme.check_secrets(&self.secrets)?;
        let (headers, signature_headers) = self.checked_headers()?;
        let patterns = self
            .events
            .iter()
            .map(|p| Pattern::new(p))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = self.filter.clone().transpose()?;
        let template = self.template.clone().map(Template::new).transpose()?;
        let templates = self
            .templates
            .iter()
            .map(|(p, t)| Ok((Pattern::new(p)?, Template::new(t.clone())?)))
            .collect::<Result<Vec<_>, WebhookError>>()?;

        let token_url = self
            .oauth2
            .as_ref()
            .map(|o| {
                check_url(&o.token_url, self.allow_http, self.guard.as_ref())
                    .map_err(|e| OAuth2Error::TokenUrl(Box::new(e)))
            })
            .transpose()?;
        if let Some(o) = &self.oauth2
            && o.client_id.is_empty()
        {
            return Err(OAuth2Error::EmptyClientId.into());
        }
        let proxies = self.proxy.choose(|name| std::env::var(name).ok())?;
        let client = self.client(&name, &proxies)?;
        // With a proxy, the proxy connects to the target: the guard checks
        // it before each request instead of in the resolver.
        let proxied_guard = match (&self.guard, proxies.proxies.is_empty()) {
            (Some(g), false) => Some(Arc::new(g.clone())),
            _ => None,
        };
        let oauth = self.oauth2.clone().zip(token_url).map(|(o, url)| {
            let (client, guard) = (client.clone(), proxied_guard.clone());
            Arc::new(TokenSource::new(o, url, self.timeout, client, guard))
        });

        let endpoint = Endpoint {
            name,
            display_url: redact_url(url.as_str()),
            url,
            client,
            headers,
            signature_headers,
            template,
            templates,
            retry_rules,
            patterns,
            filter,
            key_order,
            rate_limit,
            oauth,
            proxied_guard,
            state,
            settings: self,
        };
        Ok(WebhookSink::from_endpoint(Arc::new(endpoint)))
    }
}

impl WebhookBuilder {
    /// The extra headers, and the signature scheme's header names: none
    /// that HTTP cannot carry, and none that hookbus sets itself.
    fn checked_headers(&self) -> Result<(HeaderMap, Vec<HeaderName>), WebhookError> {
        let bad = |name: &str, reason| WebhookError::InvalidHeader {
            name: name.to_owned(),
            reason,
        };
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            let name =
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad(k, HeaderError::Name))?;
            let mut value = HeaderValue::from_str(v).map_err(|_| bad(k, HeaderError::Value))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        if let SignatureScheme::Body(b) = &self.scheme
            && HeaderValue::from_str(b.prefix()).is_err()
        {
            return Err(bad(b.header(), HeaderError::SignaturePrefix));
        }
        let signature_headers = self
            .scheme
            .header_names()
            .into_iter()
            .map(|n| {
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| SignatureError::BadHeaderName(n.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let signed = self.secrets.iter().any(|s| !s.is_empty());
        const CLIENT_SETS: [&str; 6] = [
            "content-length",
            "transfer-encoding",
            "host",
            "connection",
            "te",
            "upgrade",
        ];
        for name in headers.keys() {
            let reason = if name.as_str().starts_with("ce-") {
                HeaderError::CloudEvents
            } else if signed && signature_headers.contains(name) {
                HeaderError::Signature
            } else if CLIENT_SETS.contains(&name.as_str()) {
                HeaderError::Client
            } else if self.oauth2.is_some() && name == reqwest::header::AUTHORIZATION {
                HeaderError::OAuth2
            } else {
                continue;
            };
            return Err(bad(name.as_str(), reason));
        }
        Ok((headers, signature_headers))
    }

    /// The endpoint's HTTP client: no redirects, its TLS settings, its
    /// proxy (or none) and the SSRF guard's resolver.
    fn client(
        &self,
        name: &str,
        proxies: &super::proxy::Chosen,
    ) -> Result<reqwest::Client, WebhookError> {
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hookbus/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(90));
        if !self.verify_ssl {
            tracing::warn!(webhook = %name, "hookbus: TLS certificate verification is OFF for this webhook (verify_ssl(false)); anyone on the path can read and alter its requests");
            client = client.danger_accept_invalid_certs(true);
        }
        client = self.tls.apply(client)?;
        // Never the system's proxy settings unless asked (ProxySettings).
        client = client.no_proxy();
        for p in &proxies.proxies {
            client = client.proxy(p.clone());
        }
        if let Some(g) = &self.guard {
            client = client.dns_resolver(Arc::new(GuardedResolver {
                guard: Arc::new(g.clone()),
                exempt: proxies.hosts.clone(),
            }));
        }
        client.build().map_err(|e| {
            let e = HttpClientError::new(e);
            if self.tls.identity.is_some() {
                TlsError::Identity(e).into()
            } else {
                WebhookError::Client(e)
            }
        })
    }
}

pub(crate) fn check_url(
    text: &str,
    allow_http: bool,
    guard: Option<&SsrfGuard>,
) -> Result<url::Url, WebhookError> {
    let invalid = WebhookError::InvalidUrl;
    let url = url::Url::parse(text).map_err(|e| invalid(UrlError::Parse(e)))?;
    let host = url.host().ok_or(invalid(UrlError::NoHost))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http || is_loopback_host(&host) => {}
        "http" => return Err(WebhookError::InsecureUrl(host.to_owned())),
        other => return Err(invalid(UrlError::Scheme(other.to_owned()))),
    }
    if let Some(g) = guard {
        let ip = match host {
            url::Host::Ipv4(a) => Some(std::net::IpAddr::V4(a)),
            url::Host::Ipv6(a) => Some(std::net::IpAddr::V6(a)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = ip
            && !g.permits(ip)
        {
            return Err(WebhookError::BlockedAddress(ip));
        }
    }
    Ok(url)
}

// The constructors of what the builder builds live here, with the builder,
// so that the sink and the emitter do not depend on their configuration.
impl WebhookSink {
    /// Starts configuring a webhook to `url`.
    pub fn builder(url: impl Into<String>) -> WebhookBuilder {
        WebhookBuilder::new(url)
    }
}

impl WebhookEmitter {
    /// An emitter to `url` with default settings (unsigned, all events, 10 s
    /// timeout, 3 attempts).
    pub fn new(url: impl Into<String>) -> Result<WebhookEmitter, WebhookError> {
        WebhookBuilder::new(url).build_emitter()
    }

    /// Starts configuring an emitter; finish with
    /// [`build_emitter`](WebhookBuilder::build_emitter).
    pub fn builder(url: impl Into<String>) -> WebhookBuilder {
        WebhookBuilder::new(url)
    }
}
