//! The webhook endpoint: [`WebhookSink`] (a bus subscriber) and
//! [`WebhookEmitter`] (called directly), both driving the same delivery code.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::json;
use time::OffsetDateTime;

use super::config::{Condition, WebhookBuilder, WebhookError};
use super::filter::Filter;
use super::log::{DeliveryAttempt, DeliveryLog, WebhookStats};
use super::rate::{NextToken, RateLimiter};
use super::retry::{RetryPolicy, StatusClass, classify, parse_retry_after};
use super::slots::{SendSlots, Slot};
use super::template::Template;
use super::wire::{self, Payload, WireFormat};
use crate::bus::Bus;
use crate::event::Event;
use crate::hub::Hub;
use crate::hub::journal::{Journal, Resume};
use crate::pattern::Pattern;
use crate::signature::{Secret, SignRequest, SignatureScheme};
use crate::sink::{Batch, BoxFuture, DeliveryError, FailureKind, Sink, SinkFuture};
use crate::subscriber::Subscription;

/// The start of a response body kept in the log.
pub const RESPONSE_EXCERPT_LEN: usize = 512;

/// How one delivery (one event, or one batch) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// The endpoint answered 2xx.
    Delivered,
    /// Not sent: the event is not subscribed or the condition/filter said no.
    Skipped,
    /// Given up; the events are dead-lettered.
    Failed(FailureKind),
}

/// The outcome of one delivery, as [`WebhookEmitter::emit`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// How it ended.
    pub status: DeliveryStatus,
    /// HTTP attempts made.
    pub attempts: u32,
    /// The last HTTP status, if a response came.
    pub status_code: Option<u16>,
    /// The last attempt's latency.
    pub latency: Duration,
    /// The last error, if it failed.
    pub error: Option<String>,
    /// The start of the last response body.
    pub response_excerpt: Option<String>,
}

impl DeliveryOutcome {
    /// Whether the endpoint accepted it.
    pub fn is_delivered(&self) -> bool {
        self.status == DeliveryStatus::Delivered
    }

    /// `Ok` when delivered or skipped, else the error the bus reports.
    pub fn into_result(self) -> Result<(), DeliveryError> {
        match self.status {
            DeliveryStatus::Delivered | DeliveryStatus::Skipped => Ok(()),
            DeliveryStatus::Failed(kind) => Err(DeliveryError::new(
                kind,
                self.error.unwrap_or_else(|| "delivery failed".into()),
            )),
        }
    }

    fn failed(kind: FailureKind, attempts: u32, error: String) -> DeliveryOutcome {
        DeliveryOutcome {
            status: DeliveryStatus::Failed(kind),
            attempts,
            status_code: None,
            latency: Duration::ZERO,
            error: Some(error),
            response_excerpt: None,
        }
    }
}

/// State that outlives configuration changes: enabled flag, failure streak,
/// the log, the bus to announce on.
#[derive(Debug)]
pub(crate) struct EndpointState {
    pub(crate) enabled: AtomicBool,
    pub(crate) consecutive_failures: AtomicU64,
    /// Deliveries waiting for their next attempt now.
    pub(crate) waiting_retry: AtomicU64,
    /// Deliveries waiting for a rate-limit token now.
    pub(crate) waiting_rate_limit: AtomicU64,
    pub(crate) log: DeliveryLog,
    bus: Mutex<Option<Weak<Hub>>>,
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
            waiting_rate_limit: AtomicU64::new(0),
            log,
            bus: Mutex::new(None),
            #[cfg(feature = "durable")]
            store: std::sync::OnceLock::new(),
        }
    }

    /// Records the enabled state in the store of a durable webhook.
    fn persist_enabled(&self, _name: &str, _enabled: bool, _reason: &str) {
        #[cfg(feature = "durable")]
        if let Some(store) = self.store.get() {
            store.set_endpoint_state(_name, _enabled, _reason);
        }
    }

    /// A durable webhook's first attachment to its store: the state and
    /// dead letters it had before a restart come back.
    #[cfg(feature = "durable")]
    fn attach_store(&self, name: &str, display_url: &str, store: &crate::store::Store) {
        if self.store.set(store.clone()).is_err() {
            return;
        }
        if let Some((false, reason)) = store.endpoint_state(name) {
            self.enabled.store(false, SeqCst);
            tracing::warn!(webhook = %name, url = %display_url, reason = %reason, "hookbus: webhook endpoint still disabled (as before the restart)");
        }
        match store.dead_letters(Some(name), self.log.dead_capacity()) {
            Ok(letters) => self.log.restore(
                letters
                    .into_iter()
                    .map(|d| super::log::DeadLetter {
                        time: OffsetDateTime::from(d.failed_at),
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

    fn bus(&self) -> Option<Arc<Hub>> {
        self.bus
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(Weak::upgrade)
    }
}

/// One configured endpoint. Immutable; the manager swaps it on update.
pub(crate) struct Endpoint {
    pub(crate) name: String,
    pub(crate) display_url: String,
    pub(crate) url: url::Url,
    pub(crate) client: reqwest::Client,
    pub(crate) secrets: Vec<Secret>,
    pub(crate) scheme: SignatureScheme,
    pub(crate) headers: HeaderMap,
    /// The signature header names, in the order the scheme returns them.
    pub(crate) signature_headers: Vec<HeaderName>,
    pub(crate) timeout: Duration,
    pub(crate) format: WireFormat,
    pub(crate) template: Option<Template>,
    pub(crate) templates: Vec<(Pattern, Template)>,
    pub(crate) retry: RetryPolicy,
    /// Policies by event type, first match wins (else `retry`).
    pub(crate) retry_rules: Vec<(Pattern, RetryPolicy)>,
    pub(crate) source: Option<String>,
    pub(crate) disable_after: Option<u32>,
    pub(crate) patterns: Vec<Pattern>,
    pub(crate) condition: Option<Condition>,
    pub(crate) filter: Option<Filter>,
    pub(crate) key_order: Option<Arc<super::order::KeyOrder>>,
    pub(crate) rate_limit: Option<Arc<RateLimiter>>,
    pub(crate) state: Arc<EndpointState>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("url", &self.display_url)
            .field("signed", &self.secrets.iter().any(|s| !s.is_empty()))
            .field("scheme", &self.scheme)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("format", &self.format)
            .field("retry", &self.retry)
            .field("retry_rules", &self.retry_rules.len())
            .field("enabled", &self.state.enabled.load(Relaxed))
            .finish_non_exhaustive()
    }
}

struct AttemptResult {
    class: Result<StatusClass, bool>, // Err(retryable) for transport errors
    status: Option<u16>,
    retry_after: Option<Duration>,
    latency: Duration,
    error: Option<String>,
    excerpt: Option<String>,
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Describes a reqwest error without its URL (which may hold a secret path).
fn describe_error(e: &reqwest::Error, timeout: Duration) -> (String, bool) {
    let mut chain = Vec::new();
    let mut src = std::error::Error::source(e);
    let mut guard_refused = false;
    while let Some(s) = src {
        let text = s.to_string();
        if text.starts_with("SSRF guard") {
            guard_refused = true;
        }
        if !chain.contains(&text) {
            chain.push(text);
        }
        src = s.source();
    }
    let detail = chain.join(": ");
    if guard_refused {
        return (detail, false);
    }
    if e.is_timeout() {
        (format!("timed out after {timeout:?}"), true)
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

impl Endpoint {
    /// Whether this endpoint wants the event (patterns, condition, filter).
    pub(crate) fn wants(&self, event: &Event) -> bool {
        let type_ok = if self.patterns.is_empty() {
            !event.event_type().starts_with("hookbus.")
        } else {
            self.patterns.iter().any(|p| p.matches(event.event_type()))
        };
        type_ok
            && self.filter.as_ref().is_none_or(|f| f.matches(event))
            && self.condition.as_ref().is_none_or(|c| c(event))
    }

    fn template_for(&self, event: &Event) -> Option<&Template> {
        self.templates
            .iter()
            .find(|(p, _)| p.matches(event.event_type()))
            .map(|(_, t)| t)
            .or(self.template.as_ref())
    }

    /// The retry policy for an event: the first `retry_for` rule that
    /// matches its type, else the default.
    fn retry_policy(&self, event: &Event) -> &RetryPolicy {
        self.retry_rules
            .iter()
            .find(|(p, _)| p.matches(event.event_type()))
            .map_or(&self.retry, |(_, policy)| policy)
    }

    fn build_payload(&self, events: &[Arc<Event>]) -> Result<Payload, String> {
        let templated = events.iter().any(|e| self.template_for(e).is_some());
        if let ([e], Some(t), WireFormat::Raw) =
            (events, self.template_for(&events[0]), self.format)
        {
            // A template rendering a string sends the string itself.
            let v = t
                .render(e)
                .map_err(|err| format!("event {}: {err}", e.id()))?;
            let (body, ct) = match v {
                serde_json::Value::String(s) => (Bytes::from(s), "text/plain; charset=utf-8"),
                v => (
                    Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
                    "application/json",
                ),
            };
            return Ok(Payload {
                body,
                headers: wire::content_type(ct),
                message_id: e.id().to_owned(),
            });
        }
        if !templated {
            return Ok(wire::payload(events, self.format, self.source.as_deref()));
        }
        let render = |e: &Event| -> Result<Bytes, String> {
            match self.template_for(e) {
                Some(t) => {
                    let v = t
                        .render(e)
                        .map_err(|err| format!("event {}: {err}", e.id()))?;
                    Ok(Bytes::from(serde_json::to_vec(&v).unwrap_or_default()))
                }
                None => Ok(e.structured_json()),
            }
        };
        let body = if events.len() == 1 {
            render(&events[0])?
        } else {
            let mut out = BytesMut::new();
            out.put_u8(b'[');
            for (i, e) in events.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                out.put_slice(&render(e)?);
            }
            out.put_u8(b']');
            out.freeze()
        };
        let first = &events[0];
        Ok(Payload {
            body,
            headers: wire::content_type("application/json"),
            message_id: if events.len() == 1 {
                first.id().to_owned()
            } else {
                format!("batch_{}_{}", events.len(), first.id())
            },
        })
    }

    async fn attempt(&self, payload: &Payload) -> AttemptResult {
        let mut headers = payload.headers.clone();
        // A fresh timestamp on every attempt, so receivers' tolerance windows
        // hold across retries.
        let sign = SignRequest {
            id: &payload.message_id,
            timestamp: unix_now(),
            body: &payload.body,
        };
        let signed = self
            .scheme
            .sign(&self.secrets, &sign)
            .map_err(|e| e.to_string());
        let signed = signed.and_then(|sigs| {
            for ((_, v), name) in sigs.into_iter().zip(&self.signature_headers) {
                // A value HTTP cannot carry (an event id with a control
                // character in `webhook-id`): fail, never send the request
                // without its signature headers.
                let mut v = HeaderValue::try_from(v).map_err(|_| {
                    format!("the {name} header value holds characters HTTP headers cannot carry")
                })?;
                v.set_sensitive(true);
                headers.insert(name.clone(), v);
            }
            Ok(())
        });
        if let Err(e) = signed {
            return AttemptResult {
                class: Err(false),
                status: None,
                retry_after: None,
                latency: Duration::ZERO,
                error: Some(format!("signing failed: {e}")),
                excerpt: None,
            };
        }
        // Extra headers replace the defaults of the same name; a name given
        // several times is sent with all its values.
        for name in self.headers.keys() {
            headers.remove(name);
            for v in self.headers.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        let started = Instant::now();
        let sent = self
            .client
            .post(self.url.clone())
            .headers(headers)
            .timeout(self.timeout)
            .body(payload.body.clone())
            .send()
            .await;
        match sent {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let excerpt = read_excerpt(&mut resp).await;
                let latency = started.elapsed();
                let class = classify(status);
                let error = match class {
                    StatusClass::Success => None,
                    StatusClass::Gone => Some("410 Gone: the endpoint asks to stop".to_owned()),
                    _ if (300..400).contains(&status) => {
                        Some(format!("HTTP {status}: redirects are not followed"))
                    }
                    _ => Some(format!("HTTP {status}")),
                };
                AttemptResult {
                    class: Ok(class),
                    status: Some(status),
                    retry_after,
                    latency,
                    error,
                    excerpt,
                }
            }
            Err(e) => {
                let (error, retryable) = describe_error(&e, self.timeout);
                AttemptResult {
                    class: Err(retryable),
                    status: None,
                    retry_after: None,
                    latency: started.elapsed(),
                    error: Some(error),
                    excerpt: None,
                }
            }
        }
    }

    fn log_attempt(&self, events: &[Arc<Event>], attempt: u32, r: &AttemptResult, last: bool) {
        self.state.log.record(DeliveryAttempt {
            time: OffsetDateTime::now_utc(),
            event_id: events[0].id().to_owned(),
            event_type: events[0].event_type().to_owned(),
            events: events.len(),
            attempt,
            success: r.class == Ok(StatusClass::Success),
            last,
            status_code: r.status,
            latency: r.latency,
            error: r.error.clone(),
            response_excerpt: r.excerpt.clone(),
        });
    }

    /// Delivers `events` in one request, retrying as the policy says. With a
    /// `slot`, each attempt first takes a sending slot, and the wait between
    /// attempts gives it back. With a rate limit, each attempt first takes a
    /// token (before its slot), except a first attempt whose token the
    /// subscription took already (`token_taken`).
    ///
    /// With a durable subscriber's `journal`, a recovered delivery resumes
    /// its schedule (attempt number, the rest of its backoff) and every
    /// scheduled retry is persisted.
    pub(crate) async fn deliver(
        &self,
        events: &[Arc<Event>],
        mut slot: Option<&mut Slot>,
        mut token_taken: bool,
        journal: Option<&dyn Journal>,
    ) -> DeliveryOutcome {
        let n = events.len() as u64;
        if n == 0 {
            return DeliveryOutcome {
                status: DeliveryStatus::Skipped,
                attempts: 0,
                status_code: None,
                latency: Duration::ZERO,
                error: None,
                response_excerpt: None,
            };
        }
        if !self.state.enabled.load(SeqCst) {
            return self.refuse_disabled(events, 0);
        }
        let payload = match self.build_payload(events) {
            Ok(p) => p,
            Err(msg) => {
                let error = format!("template: {msg}");
                self.state.log.record(DeliveryAttempt {
                    time: OffsetDateTime::now_utc(),
                    event_id: events[0].id().to_owned(),
                    event_type: events[0].event_type().to_owned(),
                    events: events.len(),
                    attempt: 0,
                    success: false,
                    last: true,
                    status_code: None,
                    latency: Duration::ZERO,
                    error: Some(error.clone()),
                    response_excerpt: None,
                });
                self.give_up(events, &error);
                return DeliveryOutcome::failed(FailureKind::Permanent, 0, error);
            }
        };
        let policy = self.retry_policy(&events[0]);
        let max = policy.max_attempts.max(1);
        let mut attempt = 1;
        if let Some(resume) = journal.and_then(|j| j.resume(&events[0])) {
            // Recovered after a restart with a retry scheduled: wait for
            // what is left of its backoff, then go on counting.
            attempt = resume.attempt.clamp(1, max);
            if let Ok(left) = resume.at.duration_since(std::time::SystemTime::now()) {
                if let Some(slot) = slot.as_deref_mut() {
                    slot.release();
                }
                let _waiting = Waiting::new(&self.state.waiting_retry);
                tokio::time::sleep(left).await;
            }
        }
        loop {
            if let Some(limiter) = &self.rate_limit
                && !std::mem::take(&mut token_taken)
            {
                // Waiting for a token sends nothing: no slot meanwhile.
                if let Some(slot) = slot.as_deref_mut() {
                    slot.release();
                }
                limiter.acquire(&self.state).await;
            }
            if let Some(slot) = slot.as_deref_mut() {
                slot.take().await;
            }
            // Checked again after any wait: the endpoint may have been
            // disabled meanwhile.
            if !self.state.enabled.load(SeqCst) {
                return self.refuse_disabled(events, attempt - 1);
            }
            let r = self.attempt(&payload).await;
            let retryable = match r.class {
                Ok(StatusClass::Retryable) | Err(true) => true,
                Ok(_) | Err(false) => false,
            };
            let last = r.class == Ok(StatusClass::Success) || !retryable || attempt >= max;
            self.log_attempt(events, attempt, &r, last);
            let outcome = |status| DeliveryOutcome {
                status,
                attempts: attempt,
                status_code: r.status,
                latency: r.latency,
                error: r.error.clone(),
                response_excerpt: r.excerpt.clone(),
            };
            // A final failure: the outcome carries the dead-letter message.
            let failed = |kind, msg: String| DeliveryOutcome {
                error: Some(msg),
                ..outcome(DeliveryStatus::Failed(kind))
            };
            match r.class {
                Ok(StatusClass::Success) => {
                    self.state.log.counters.delivered.fetch_add(n, Relaxed);
                    self.state.consecutive_failures.store(0, Relaxed);
                    return outcome(DeliveryStatus::Delivered);
                }
                Ok(StatusClass::Gone) => {
                    let msg = format!(
                        "{} (attempt {attempt}); endpoint disabled",
                        r.error.as_deref().unwrap_or("410 Gone")
                    );
                    self.disable("the endpoint answered 410 Gone");
                    self.give_up(events, &msg);
                    return failed(FailureKind::Permanent, msg);
                }
                _ if !retryable => {
                    let msg = format!(
                        "{} (attempt {attempt}, not retryable)",
                        r.error.as_deref().unwrap_or("failed")
                    );
                    self.give_up(events, &msg);
                    return failed(FailureKind::Permanent, msg);
                }
                _ if attempt >= max => {
                    let msg = format!(
                        "{} after {attempt} attempt(s)",
                        r.error.as_deref().unwrap_or("failed")
                    );
                    self.give_up(events, &msg);
                    return failed(FailureKind::Exhausted, msg);
                }
                _ => {
                    let delay = policy.delay(attempt + 1, r.retry_after);
                    tracing::debug!(webhook = %self.name, event_id = %events[0].id(), attempt, ?delay, error = ?r.error, "hookbus: webhook attempt failed, retrying");
                    if let Some(slot) = slot.as_deref_mut() {
                        slot.release();
                    }
                    if let Some(journal) = journal {
                        journal.retrying(
                            events,
                            Resume {
                                attempt: attempt + 1,
                                at: std::time::SystemTime::now() + delay,
                            },
                        );
                    }
                    let _waiting = Waiting::new(&self.state.waiting_retry);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One attempt, no retry, no dead letter (for `WebhookManager::test`).
    pub(crate) async fn send_once(&self, events: &[Arc<Event>]) -> DeliveryOutcome {
        let payload = match self.build_payload(events) {
            Ok(p) => p,
            Err(msg) => {
                return DeliveryOutcome::failed(
                    FailureKind::Permanent,
                    0,
                    format!("template: {msg}"),
                );
            }
        };
        let r = self.attempt(&payload).await;
        self.log_attempt(events, 1, &r, true);
        DeliveryOutcome {
            status: if r.class == Ok(StatusClass::Success) {
                DeliveryStatus::Delivered
            } else {
                DeliveryStatus::Failed(FailureKind::Permanent)
            },
            attempts: 1,
            status_code: r.status,
            latency: r.latency,
            error: r.error,
            response_excerpt: r.excerpt,
        }
    }

    fn refuse_disabled(&self, events: &[Arc<Event>], attempts: u32) -> DeliveryOutcome {
        self.state
            .log
            .counters
            .dropped
            .fetch_add(events.len() as u64, Relaxed);
        // Kept with the dead letters, so retry_failed can send them once the
        // endpoint is enabled again.
        self.state.log.park(events, "endpoint disabled");
        DeliveryOutcome::failed(
            FailureKind::Disabled,
            attempts,
            format!("webhook {:?} is disabled", self.name),
        )
    }

    fn give_up(&self, events: &[Arc<Event>], error: &str) {
        tracing::warn!(webhook = %self.name, url = %self.display_url, event_id = %events[0].id(), events = events.len(), error, "hookbus: webhook delivery dead-lettered");
        self.state.log.dead_letter(events, error);
        let streak = self.state.consecutive_failures.fetch_add(1, Relaxed) + 1;
        if let Some(limit) = self.disable_after
            && streak >= u64::from(limit)
        {
            self.disable(&format!("{streak} failed deliveries in a row"));
        }
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
        self.state.persist_enabled(&self.name, false, reason);
        if let Some(bus) = self.state.bus() {
            bus.announce(
                "hookbus.endpoint_disabled",
                json!({
                    "webhook": self.name,
                    "url": self.display_url,
                    "reason": reason,
                }),
            );
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
            waiting_retry: self.state.waiting_retry.load(Relaxed),
            waiting_rate_limit: self.state.waiting_rate_limit.load(Relaxed),
            rate_limited: c.rate_limited.load(Relaxed),
            enabled: self.state.enabled.load(Relaxed),
        }
    }
}

/// Counts a delivery as waiting for its retry while it lives (a cancelled
/// wait, at a shutdown deadline, stops counting too).
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn new(gauge: &'a AtomicU64) -> Waiting<'a> {
        gauge.fetch_add(1, Relaxed);
        Waiting(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Runs a delivery as its own task (for the bus sink and the emitter alike):
/// the HTTP work of many concurrent deliveries then spreads over the
/// runtime's threads instead of being polled from one task (the subscriber's
/// or the caller's). Dropping the returned future (a shutdown deadline
/// passed, the caller gave up) aborts the delivery.
async fn spawn_delivery(
    delivery: impl std::future::Future<Output = DeliveryOutcome> + Send + 'static,
) -> DeliveryOutcome {
    let mut task = AbortOnDrop(tokio::spawn(tracing::Instrument::in_current_span(delivery)));
    match (&mut task.0).await {
        Ok(outcome) => outcome,
        Err(e) if e.is_panic() => DeliveryOutcome::failed(
            FailureKind::Panic,
            0,
            "webhook delivery panicked".to_owned(),
        ),
        Err(_) => DeliveryOutcome::failed(
            FailureKind::Handler,
            0,
            "webhook delivery was cancelled".to_owned(),
        ),
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A webhook as a bus subscriber: signed CloudEvents over HTTP with retries.
/// Build one with [`WebhookSink::builder`], attach it with
/// [`subscribe`](Self::subscribe).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use hookbus::{Bus, Event};
/// use hookbus::webhook::WebhookSink;
/// use serde_json::json;
///
/// let bus = Bus::new()?;
/// let _sub = WebhookSink::builder("https://hooks.example.com/decisions")
///     .secret("my-webhook-secret")
///     .events(["decision.low_confidence"])
///     .build()?
///     .subscribe(&bus)?;
/// bus.emit(Event::new("decision.low_confidence", json!({"decision_id": "abc123", "confidence": 0.72}))?)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WebhookSink {
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) builder: Arc<WebhookBuilder>,
    /// The sending slots of one subscription (set by `subscribe`).
    slots: Option<Arc<SendSlots>>,
    /// The rate-limit token of one subscription's next delivery (set by
    /// `subscribe` when the endpoint has a rate limit).
    token: Option<Arc<NextToken>>,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WebhookSink").field(&self.endpoint).finish()
    }
}

impl WebhookSink {
    /// Starts configuring a webhook to `url`.
    pub fn builder(url: impl Into<String>) -> WebhookBuilder {
        WebhookBuilder::new(url)
    }

    pub(crate) fn from_parts(endpoint: Arc<Endpoint>, builder: WebhookBuilder) -> WebhookSink {
        WebhookSink {
            endpoint,
            builder: Arc::new(builder),
            slots: None,
            token: None,
        }
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.endpoint.name
    }

    /// Attaches the webhook to `bus` as a subscriber with its patterns,
    /// condition, filter, batching, concurrency and mailbox settings.
    pub fn subscribe(&self, bus: &Bus) -> Result<Subscription, WebhookError> {
        let ep = &self.endpoint;
        ep.state.set_bus(bus);
        let b = &self.builder;
        let pattern = match ep.patterns.as_slice() {
            [one] => one.clone(),
            _ => Pattern::new("*")?,
        };
        let endpoint = ep.clone();
        // Sending slots are the endpoint's concurrency; the subscriber has as
        // many more for deliveries waiting for a retry, which hold none. In
        // ordered mode the one delivery keeps its slot through its retries.
        let (slots, concurrency) = if b.ordered {
            (None, 1)
        } else {
            (
                Some(Arc::new(SendSlots::new(b.concurrency))),
                b.concurrency.saturating_add(b.retry_capacity),
            )
        };
        let token = ep
            .rate_limit
            .as_ref()
            .map(|l| Arc::new(NextToken::new(l.clone(), ep.state.clone())));
        let sink = WebhookSink {
            slots,
            token,
            ..self.clone()
        };
        let mut sub = bus
            .subscriber(pattern)
            .name(ep.name.clone())
            .capacity(b.capacity)
            .overflow(b.overflow)
            .concurrency(concurrency);
        let needs_check = ep.patterns.len() != 1 || ep.condition.is_some() || ep.filter.is_some();
        if needs_check {
            sub = sub.filter(move |e| endpoint.wants(e));
        }
        if let Some((size, wait)) = b.batch {
            sub = sub.batch(size, wait);
        }
        #[cfg(feature = "durable")]
        if let Some(store) = &b.store {
            ep.state.attach_store(&ep.name, &ep.display_url, store);
            sub = sub.durable(store);
        }
        Ok(sub.sink(sink)?)
    }

    /// Delivers events now, as one request, and returns the outcome (no
    /// pattern or condition check: see [`WebhookEmitter`] for that).
    pub async fn send(&self, events: &[Arc<Event>]) -> DeliveryOutcome {
        self.endpoint.deliver(events, None, false, None).await
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> WebhookStats {
        self.endpoint.stats()
    }

    /// The newest `limit` attempts, newest first.
    pub fn deliveries(&self, limit: usize) -> Vec<DeliveryAttempt> {
        self.endpoint.state.log.recent(limit)
    }

    /// The dead letters kept now, oldest first.
    pub fn dead_letters(&self) -> Vec<super::log::DeadLetter> {
        self.endpoint.state.log.dead_letters()
    }

    /// Whether the endpoint is enabled.
    pub fn is_enabled(&self) -> bool {
        self.endpoint.state.enabled.load(SeqCst)
    }

    /// Enables the endpoint again (closes the circuit, resets the failure streak).
    pub fn enable(&self) {
        self.endpoint.state.consecutive_failures.store(0, Relaxed);
        self.endpoint.state.enabled.store(true, SeqCst);
        self.endpoint
            .state
            .persist_enabled(&self.endpoint.name, true, "");
    }

    /// Disables the endpoint: later deliveries are refused and kept for
    /// `retry_failed`.
    pub fn disable(&self) {
        self.endpoint.disable("disabled by the user");
    }
}

impl Sink for WebhookSink {
    fn deliver(&self, batch: Batch) -> SinkFuture {
        let ep = self.endpoint.clone();
        // The place in a key's chain is taken now, in dispatch order.
        let gate = ep.key_order.as_ref().map(|k| k.enter(batch.events()));
        let slot = self.slots.as_ref().map(SendSlots::slot);
        let token_taken = self.token.as_ref().is_some_and(|t| t.take());
        let delivery = async move {
            let (mut gate, mut slot) = (gate, slot);
            if let Some(g) = &mut gate
                && g.must_wait()
            {
                // Waiting for an earlier event of the same key sends nothing.
                if let Some(s) = &mut slot {
                    s.release();
                }
                g.wait().await;
            }
            let journal = batch.journal().cloned();
            let outcome = ep
                .deliver(
                    batch.events(),
                    slot.as_mut(),
                    token_taken,
                    journal.as_deref(),
                )
                .await;
            drop(gate);
            outcome
        };
        Box::pin(async move { spawn_delivery(delivery).await.into_result() })
    }

    fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        // The token first: a delivery waiting for one holds no slot.
        if let Some(token) = &self.token
            && token.poll_ready(cx).is_pending()
        {
            return std::task::Poll::Pending;
        }
        match &self.slots {
            Some(slots) => slots.poll_ready(cx),
            None => std::task::Poll::Ready(()),
        }
    }

    fn close(&self, _timeout: Duration) -> BoxFuture<u64> {
        // Nothing is buffered inside the sink: the subscriber's mailbox and
        // batch are flushed by the bus before this is called.
        Box::pin(async { 0 })
    }
}

/// A webhook called directly, without a bus, as in the Briefcase API:
/// `WebhookEmitter::new(url)?.emit(event).await` returns the outcome.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use hookbus::Event;
/// use hookbus::webhook::WebhookEmitter;
/// use serde_json::json;
///
/// let emitter = WebhookEmitter::builder("https://hooks.example.com/decisions")
///     .secret("my-webhook-secret")
///     .events(["decision.low_confidence"])
///     .build_emitter()?;
/// let outcome = emitter
///     .emit(Event::new("decision.low_confidence", json!({"decision_id": "abc123", "confidence": 0.72}))?)
///     .await;
/// println!("{:?} after {} attempt(s)", outcome.status, outcome.attempts);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct WebhookEmitter {
    sink: WebhookSink,
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

    pub(crate) fn from_sink(sink: WebhookSink) -> WebhookEmitter {
        WebhookEmitter { sink }
    }

    /// Sends one event now (with retries) unless it is not subscribed or the
    /// condition/filter turns it away, and returns how it went.
    pub async fn emit(&self, event: impl Into<Arc<Event>>) -> DeliveryOutcome {
        let event = event.into();
        if !self.sink.endpoint.wants(&event) {
            return DeliveryOutcome {
                status: DeliveryStatus::Skipped,
                attempts: 0,
                status_code: None,
                latency: Duration::ZERO,
                error: None,
                response_excerpt: None,
            };
        }
        let endpoint = self.sink.endpoint.clone();
        spawn_delivery(async move {
            endpoint
                .deliver(std::slice::from_ref(&event), None, false, None)
                .await
        })
        .await
    }

    /// Sends several events in one request (batched mode).
    pub async fn emit_batch(&self, events: Vec<Arc<Event>>) -> DeliveryOutcome {
        let events: Vec<Arc<Event>> = events
            .into_iter()
            .filter(|e| self.sink.endpoint.wants(e))
            .collect();
        let endpoint = self.sink.endpoint.clone();
        spawn_delivery(async move { endpoint.deliver(&events, None, false, None).await }).await
    }

    /// The sink behind it (stats, log, enable/disable).
    pub fn sink(&self) -> &WebhookSink {
        &self.sink
    }
}
