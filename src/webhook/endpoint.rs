//! What an endpoint is: its settings as built ([`Endpoint`], data), the
//! state that outlives configuration changes ([`EndpointState`]), which
//! events it wants, how they become a request body, and the innermost
//! service of the delivery stack, one attempt ([`Post`]: signing, headers,
//! the reqwest call). The layers around it are in their own modules and
//! [`delivery`](super::delivery) builds the stack.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::Value;

use super::attempt::{Attempt, RESPONSE_EXCERPT_LEN, Request, Verdict};
use super::filter::Filter;
use super::log::{DeliveryLog, WebhookStats};
use super::rate::RateLimiter;
use super::retry::{RetryPolicy, StatusClass, classify, parse_retry_after};
use super::template::Template;
use super::wire::{self, Payload, WireFormat};
use crate::bus::Bus;
use crate::event::Event;
use crate::hub::Hub;
use crate::pattern::Pattern;
use crate::signature::SignRequest;

/// State that outlives configuration changes: enabled flag, failure streak,
/// the log, the bus to announce on.
#[derive(Debug)]
pub(crate) struct EndpointState {
    pub(crate) enabled: AtomicBool,
    pub(crate) consecutive_failures: AtomicU64,
    /// Deliveries waiting for their next attempt now.
    pub(crate) waiting_retry: AtomicU64,
    /// Waits for rate-limit tokens (now, and since the start).
    pub(crate) rate: Arc<super::rate::RateWaits>,
    /// The pause after a `Retry-After`, and the adaptive limit.
    pub(crate) pressure: Arc<super::concurrency::Pressure>,
    pub(crate) log: DeliveryLog,
    /// The failure streak, for the log and the stats.
    pub(crate) trouble: super::trouble::Trouble,
    bus: Mutex<Option<Weak<Hub>>>,
    /// Why it was disabled (while it is).
    disabled_reason: Mutex<Option<String>>,
    /// The store of a durable webhook: its enabled state and dead letters
    /// are kept there too.
    #[cfg(feature = "durable")]
    pub(crate) store: std::sync::OnceLock<crate::store::Store>,
}

impl EndpointState {
    pub(crate) fn new(log: DeliveryLog) -> EndpointState {
        EndpointState {
            enabled: AtomicBool::new(true),
            consecutive_failures: AtomicU64::new(0),
            waiting_retry: AtomicU64::new(0),
            rate: Default::default(),
            pressure: Default::default(),
            log,
            trouble: Default::default(),
            bus: Mutex::new(None),
            disabled_reason: Mutex::new(None),
            #[cfg(feature = "durable")]
            store: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn set_disabled_reason(&self, reason: Option<&str>) {
        *self
            .disabled_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = reason.map(str::to_owned);
    }

    pub(crate) fn disabled_reason(&self) -> Option<String> {
        if self.enabled.load(SeqCst) {
            return None;
        }
        self.disabled_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the enabled state in the store of a durable webhook.
    pub(crate) fn persist_enabled(&self, _name: &str, _enabled: bool, _reason: &str) {
        #[cfg(feature = "durable")]
        if let Some(store) = self.store.get() {
            store.set_endpoint_state(_name, _enabled, _reason);
        }
    }

    /// A durable webhook's first attachment to its store: the state and
    /// dead letters it had before a restart come back.
    #[cfg(feature = "durable")]
    pub(crate) fn attach_store(&self, name: &str, display_url: &str, store: &crate::store::Store) {
        if self.store.set(store.clone()).is_err() {
            return;
        }
        if let Some((false, reason)) = store.endpoint_state(name) {
            self.enabled.store(false, SeqCst);
            self.set_disabled_reason(Some(&reason));
            tracing::warn!(webhook = %name, url = %display_url, reason = %reason, "hookbus: webhook endpoint still disabled (as before the restart)");
        }
        let attempts = store
            .attempts(name, self.log.capacity)
            .into_iter()
            .filter_map(|json| serde_json::from_slice(&json).ok())
            .collect();
        self.log.restore_attempts(attempts);
        match store.dead_letters(Some(name), self.log.dead_capacity) {
            Ok(letters) => self.log.restore(
                letters
                    .into_iter()
                    .map(|d| super::log::DeadLetter {
                        time: time::OffsetDateTime::from(d.failed_at),
                        events: vec![Arc::new(d.event)],
                        error: d.reason,
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::error!(webhook = %name, error = %e, "hookbus: cannot read the webhook's dead letters from its store");
            }
        }
    }

    /// Keeps an attempt in a durable webhook's store too.
    pub(crate) fn persist_attempt(&self, _name: &str, _attempt: &super::log::DeliveryAttempt) {
        #[cfg(feature = "durable")]
        if let Some(store) = self.store.get()
            && let Ok(json) = serde_json::to_vec(_attempt)
        {
            store.record_attempt(_name, json);
        }
    }

    /// Dead letters delivered by `retry_failed` leave a durable webhook's
    /// store.
    pub(crate) fn forget_dead(&self, _name: &str, _events: &[Arc<Event>]) {
        #[cfg(feature = "durable")]
        if let Some(store) = self.store.get() {
            store.remove_dead(_name, _events.iter().map(|e| e.id().to_owned()).collect());
        }
    }

    pub(crate) fn set_bus(&self, bus: &Bus) {
        *self.bus.lock().unwrap_or_else(|e| e.into_inner()) = Some(bus.downgrade());
    }

    pub(crate) fn bus(&self) -> Option<Arc<Hub>> {
        self.bus
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(Weak::upgrade)
    }
}

/// One configured endpoint: the builder it was built from (`settings`,
/// the one shape of its settings) and what [`build`](super::WebhookBuilder::build)
/// checked and derived from it. Immutable; an update swaps it.
pub(crate) struct Endpoint {
    pub(crate) settings: super::WebhookBuilder,
    pub(crate) name: String,
    pub(crate) display_url: String,
    pub(crate) url: url::Url,
    pub(crate) client: reqwest::Client,
    pub(crate) headers: HeaderMap,
    /// The signature header names, in the order the scheme returns them.
    pub(crate) signature_headers: Vec<HeaderName>,
    pub(crate) template: Option<Template>,
    pub(crate) templates: Vec<(Pattern, Template)>,
    /// Policies by event type, first match wins (else `settings.retry`).
    pub(crate) retry_rules: Vec<(Pattern, RetryPolicy)>,
    pub(crate) patterns: Vec<Pattern>,
    pub(crate) filter: Option<Filter>,
    pub(crate) key_order: Option<Arc<super::order::KeyOrder>>,
    pub(crate) rate_limit: Option<Arc<RateLimiter>>,
    pub(crate) oauth: Option<Arc<super::oauth::TokenSource>>,
    /// The SSRF guard when a proxy connects to the target for us: the
    /// target is checked before each request.
    pub(crate) proxied_guard: Option<Arc<super::guard::SsrfGuard>>,
    pub(crate) state: Arc<EndpointState>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("settings", &self.settings)
            .field("enabled", &self.state.enabled.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Whether this endpoint wants the event (patterns, condition, filter expression).
    pub(crate) fn wants(&self, event: &Event) -> bool {
        let type_ok =
            self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches(event.event_type()));
        type_ok && self.wants_routed(event)
    }

    /// [`wants`](Self::wants) for an event the bus routed by the patterns
    /// already: the filter expression and the condition, and no `hookbus.*` event for
    /// an endpoint that names no pattern.
    pub(crate) fn wants_routed(&self, event: &Event) -> bool {
        !(self.patterns.is_empty() && event.event_type().starts_with("hookbus."))
            && self.filter.as_ref().is_none_or(|f| f.matches(event))
            && self.settings.condition.as_ref().is_none_or(|c| c(event))
    }

    pub(crate) fn template_for(&self, event: &Event) -> Option<&Template> {
        self.templates
            .iter()
            .find(|(p, _)| p.matches(event.event_type()))
            .map(|(_, t)| t)
            .or(self.template.as_ref())
    }

    /// The retry policy for an event: the first `retry_for` rule that
    /// matches its type, else the default.
    pub(crate) fn retry_policy(&self, event: &Event) -> &RetryPolicy {
        self.retry_rules
            .iter()
            .find(|(p, _)| p.matches(event.event_type()))
            .map_or(&self.settings.retry, |(_, policy)| policy)
    }

    pub(crate) fn build_payload(&self, events: &[Arc<Event>]) -> Result<Payload, String> {
        let s = &self.settings;
        if events.iter().all(|e| self.template_for(e).is_none()) {
            return Ok(wire::payload(events, s.format, s.source.as_deref()));
        }
        let mut content_type = "application/json";
        let mut parts = Vec::with_capacity(events.len());
        for e in events {
            parts.push(match self.template_for(e) {
                None => e.structured_json(),
                Some(t) => match t
                    .render(e)
                    .map_err(|err| format!("event {}: {err}", e.id()))?
                {
                    // Raw: a template rendering a string sends the string.
                    Value::String(text) if s.format == WireFormat::Raw && events.len() == 1 => {
                        content_type = "text/plain; charset=utf-8";
                        Bytes::from(text)
                    }
                    v => Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
                },
            });
        }
        let mut headers = wire::content_type(content_type);
        wire::trace_headers(&events[0], &mut headers);
        Ok(Payload {
            body: match parts.len() {
                1 => parts.swap_remove(0),
                _ => wire::join_array(parts.into_iter()),
            },
            headers,
            message_id: wire::message_id(events),
        })
    }

    /// Disables the endpoint and announces it, once.
    pub(crate) fn disable(&self, reason: &str) {
        if self
            .state
            .enabled
            .compare_exchange(true, false, SeqCst, SeqCst)
            .is_err()
        {
            return;
        }
        tracing::warn!(webhook = %self.name, url = %self.display_url, reason, "hookbus: webhook endpoint disabled");
        self.state.set_disabled_reason(Some(reason));
        self.state.persist_enabled(&self.name, false, reason);
        if let Some(bus) = self.state.bus() {
            bus.announce(crate::catalog::bus::EndpointDisabled {
                webhook: self.name.clone(),
                url: self.display_url.to_string(),
                reason: reason.to_owned(),
            });
        }
    }

    pub(crate) fn stats(&self) -> WebhookStats {
        let c = &self.state.log.counters;
        let (p50, p99) = self.state.log.latency_percentiles();
        WebhookStats {
            delivered: c.delivered.load(Relaxed),
            failed: c.failed.load(Relaxed),
            retried: c.retried.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            attempts: c.attempts.load(Relaxed),
            p50_latency: p50,
            p99_latency: p99,
            consecutive_failures: self.state.consecutive_failures.load(Relaxed),
            failing_since: self.state.trouble.failing_since(),
            waiting_retry: self.state.waiting_retry.load(Relaxed),
            waiting_rate_limit: self.state.rate.waiting.load(Relaxed),
            rate_limited: self.state.rate.limited.load(Relaxed),
            concurrency_limit: self.state.pressure.limit(),
            paused_until: self.state.pressure.paused_until_utc(),
            enabled: self.state.enabled.load(Relaxed),
            disabled_reason: self.state.disabled_reason(),
            dead_letters: self.state.log.dead_letter_count(),
            attempts_by_class: c.classes(),
            latency: c.latency(),
        }
    }
}

/// The innermost service of the delivery stack: one attempt (sign, set
/// the headers, the reqwest call, read the answer and judge it). It owns
/// the endpoint's settings; the layers around it add the timeout, the
/// OAuth2 token, the limits and the retries.
#[derive(Clone)]
pub(crate) struct Post(pub(crate) Arc<Endpoint>);

impl tower::Service<Request> for Post {
    type Response = Attempt;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Attempt, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let ep = self.0.clone();
        Box::pin(async move { Ok(ep.send(&req).await) })
    }
}

impl Endpoint {
    /// Signs and sends the request once.
    async fn send(&self, req: &Request) -> Attempt {
        // Checked after every wait (pause, token, slot): the endpoint may
        // have been disabled meanwhile.
        if !req.even_disabled && !self.state.enabled.load(SeqCst) {
            return Attempt::failed(Verdict::Disabled, Duration::ZERO, String::new());
        }
        if let Some(guard) = &self.proxied_guard
            && let Err(e) = super::proxy::check_target(guard, &self.url).await
        {
            return Attempt::refused(e);
        }
        let payload = &req.payload;
        let mut headers = payload.headers.clone();
        // A fresh timestamp on every attempt, so receivers' tolerance windows
        // hold across retries.
        let sign = SignRequest {
            id: &payload.message_id,
            timestamp: time::OffsetDateTime::now_utc().unix_timestamp(),
            body: &payload.body,
        };
        let signed = self.settings.scheme.sign(&self.settings.secrets, &sign);
        let sigs = match signed {
            Ok(sigs) => sigs,
            Err(e) => return Attempt::refused(format!("signing failed: {e}")),
        };
        for ((_, v), name) in sigs.into_iter().zip(&self.signature_headers) {
            // A value HTTP cannot carry (an event id with a control
            // character in `webhook-id`): fail, never send the request
            // without its signature headers.
            let Ok(mut v) = HeaderValue::try_from(v) else {
                return Attempt::refused(format!(
                    "signing failed: the {name} header value holds characters HTTP headers cannot carry"
                ));
            };
            v.set_sensitive(true);
            headers.insert(name.clone(), v);
        }
        // Extra headers replace the defaults of the same name; a name given
        // several times is sent with all its values.
        for name in self.headers.keys() {
            headers.remove(name);
            for v in self.headers.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        if let Some(bearer) = &req.bearer {
            headers.insert(reqwest::header::AUTHORIZATION, bearer.clone());
        }
        let started = Instant::now();
        // The headers go in as one map (no merge into an empty one).
        let mut request = reqwest::Request::new(reqwest::Method::POST, self.url.clone());
        *request.headers_mut() = headers;
        *request.body_mut() = Some(payload.body.clone().into());
        let sent = self.client.execute(request).await;
        let mut resp = match sent {
            Ok(resp) => resp,
            Err(e) => {
                let (error, retryable) = describe_error(&e);
                let verdict = if retryable {
                    Verdict::Retry { after: None }
                } else {
                    Verdict::Final
                };
                return Attempt::failed(verdict, started.elapsed(), error);
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let excerpt = read_excerpt(&mut resp).await;
        let (verdict, error) = match classify(status) {
            StatusClass::Success => (Verdict::Delivered, None),
            StatusClass::Gone => (
                Verdict::Gone,
                Some("410 Gone: the endpoint asks to stop".to_owned()),
            ),
            StatusClass::Retryable => (
                Verdict::Retry { after: retry_after },
                Some(format!("HTTP {status}")),
            ),
            StatusClass::Final if (300..400).contains(&status) => (
                Verdict::Final,
                Some(format!("HTTP {status}: redirects are not followed")),
            ),
            StatusClass::Final => (Verdict::Final, Some(format!("HTTP {status}"))),
        };
        Attempt {
            verdict,
            status: Some(status),
            latency: started.elapsed(),
            error,
            excerpt,
            number: 0,
        }
    }
}

/// Describes a reqwest error without its URL (which may hold a secret
/// path), and whether another attempt may fix it.
fn describe_error(e: &reqwest::Error) -> (String, bool) {
    let mut chain = Vec::new();
    let mut src = std::error::Error::source(e);
    let mut guard_refused = false;
    while let Some(s) = src {
        let text = s.to_string();
        guard_refused |= text.starts_with("SSRF guard");
        if !chain.contains(&text) {
            chain.push(text);
        }
        src = s.source();
    }
    let detail = chain.join(": ");
    if guard_refused {
        (detail, false)
    } else if e.is_connect() {
        (format!("connection failed: {detail}"), true)
    } else {
        (format!("request failed: {detail}"), true)
    }
}

async fn read_excerpt(resp: &mut reqwest::Response) -> Option<String> {
    let mut buf = Vec::new();
    while buf.len() < RESPONSE_EXCERPT_LEN {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c),
            _ => break,
        }
    }
    if buf.is_empty() {
        return None;
    }
    buf.truncate(RESPONSE_EXCERPT_LEN);
    Some(String::from_utf8_lossy(&buf).into_owned())
}
