//! The one shape of a webhook's settings: [`WebhookBuilder`], plain data
//! and its setters. Nothing is checked here: [`build`](WebhookBuilder::build)
//! checks everything (see `config`), and a config file deserializes into
//! it (see `file_config`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::filter::{Filter, FilterError};
use super::guard::{SsrfGuard, redact_url};
use super::log::{DEFAULT_DEAD_LETTER_CAPACITY, DEFAULT_LOG_CAPACITY};
use super::oauth::OAuth2;
use super::proxy::ProxySettings;
use super::retry::RetryPolicy;
use super::tls::TlsSettings;
use super::wire::WireFormat;
use crate::event::Event;
use crate::signature::{Secret, SignatureScheme};
use crate::{BatchConfig, OverflowPolicy, SubscriberOptions};

/// A webhook's own condition (a closure).
pub(crate) type Condition = Arc<dyn Fn(&Event) -> bool + Send + Sync>;

/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default requests in flight per endpoint (a delivery waiting for its retry
/// holds none). See [`WebhookBuilder::ordered`] for ordered delivery.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Default number of deliveries an endpoint attached to a bus may have under
/// way beyond its concurrency (see [`WebhookBuilder::retry_capacity`]).
pub const DEFAULT_RETRY_CAPACITY: usize = 1024;
/// Default number of failed deliveries in a row after which the endpoint is
/// disabled.
pub const DEFAULT_DISABLE_AFTER: u32 = 50;

/// Configures a webhook endpoint; finish with [`build`](Self::build) (a
/// [`WebhookSink`](super::WebhookSink) to attach to a bus) or [`build_emitter`](Self::build_emitter)
/// (a [`WebhookEmitter`](super::WebhookEmitter) to call directly).
///
/// ```
/// use hookbus::webhook::{WebhookSink, RetryPolicy};
/// use hookbus::signature::SignatureScheme;
/// use std::time::Duration;
///
/// let sink = WebhookSink::builder("https://hooks.example.com/decisions")
///     .name("decisions")
///     .secret("my-webhook-secret")
///     .signature(SignatureScheme::timestamped("Rubric")?)
///     .events(["decision.low_confidence", "decision.drift_detected"])
///     .filter("confidence < 0.8")
///     .header("Authorization", "Bearer t0ken")
///     .timeout(Duration::from_secs(5))
///     .retry(RetryPolicy::exponential(5, Duration::from_secs(1), Duration::from_secs(60)))
///     .build()?;
/// // The token and secret never show up in Debug output.
/// let debug = format!("{sink:?}");
/// assert!(!debug.contains("t0ken") && !debug.contains("my-webhook-secret"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # From a config file
/// A builder deserializes (serde) from a config file, each key translated
/// into the setter named in the table; unknown keys are refused, and
/// [`build`](Self::build) checks the result as it checks any builder.
///
/// | key | value | setter |
/// |---|---|---|
/// | `url`, `name`, `events`, `source`, `ordered_by` | as the setters take them | same name |
/// | `secret`, `secrets` | a secret, or several during a rotation | same name |
/// | `signature` | `{"scheme": "standard_webhooks"}`, `{"scheme": "timestamped", "prefix": "Rubric"}`, `{"scheme": "briefcase", "header"?, "prefix"?}` | `signature` |
/// | `timeout_ms` | milliseconds | `timeout` |
/// | `headers` | `{"name": "value"}` | `header` |
/// | `filter` (or `filters`) | an expression or a map (see [`Filter`](super::Filter)) | `filter_parsed` |
/// | `template`, `templates` | a template; templates by event type or pattern | `template`, `template_for` |
/// | `format` | `structured`, `binary`, `batched`, `envelope`, `raw` | `format` |
/// | `retry` (or `retry_config`) | the Rubric shape: `{"max_retries": 2, "backoff": "exponential" \| "fixed" \| "standard_webhooks", "initial_delay_ms": 500, "max_delay_ms": 30000}` | `retry` |
/// | `retry_for` | `[{"events": "payment.*", "retry": {…}}]`, first match wins | `retry_for` |
/// | `capacity`, `overflow`, `concurrency`, `batch_size`, `batch_timeout_ms` (default 1000) | the [`SubscriberOptions`](crate::SubscriberOptions) fields | `options` |
/// | `retry_capacity`, `disable_after`, `allow_http`, `verify_ssl`, `ordered` | as the setters take them | same name |
/// | `rate_limit` | `{"requests": 5, "per_ms": 1000, "burst"?: 5}` | `rate_limit`, `rate_limit_burst` |
/// | `tls` | `{"client_cert_pem_file", "client_key_pem_file", "ca_pem_file", "built_in_roots"}` (files read by `build`) | `client_identity_pem`, … |
/// | `oauth2` | `{"token_url", "client_id", "client_secret", "scopes"?, "client_auth"?: "basic" \| "request_body"}` | `oauth2` |
/// | `proxy`, `proxy_from_env` | a proxy URL; use the environment's | same name |
///
/// ```
/// use hookbus::webhook::WebhookBuilder;
///
/// let builder: WebhookBuilder = serde_json::from_str(r#"{
///     "name": "production-notifications",
///     "url": "https://your-api.example.com/webhooks/rubric",
///     "events": ["evaluation.completed", "review.completed", "alert.triggered", "safety.critical"],
///     "secret": "whsec_your_signing_secret",
///     "signature": {"scheme": "timestamped", "prefix": "Rubric"},
///     "filters": {"projects": ["patient-triage", "symptom-checker"], "severity": ["high", "critical"]},
///     "retry_config": {"max_retries": 5, "backoff": "exponential", "initial_delay_ms": 1000},
///     "templates": {
///         "evaluation.completed": {"text": "Evaluation completed: {{data.name}}"}
///     }
/// }"#)?;
/// assert!(!format!("{builder:?}").contains("whsec_your_signing_secret"));
/// let sink = builder.build()?;
/// # let _ = sink;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
#[derive(Clone)]
pub struct WebhookBuilder {
    #[cfg(feature = "durable")]
    pub(crate) store: Option<crate::store::Store>,
    pub(crate) name: Option<String>,
    pub(crate) url: String,
    pub(crate) secrets: Vec<Secret>,
    pub(crate) scheme: SignatureScheme,
    pub(crate) events: Vec<String>,
    pub(crate) timeout: Duration,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) condition: Option<Condition>,
    pub(crate) filter: Option<Result<Filter, FilterError>>,
    /// The subscriber settings every subscriber kind shares (mailbox,
    /// overflow, batch, concurrency): the one place they live.
    pub(crate) options: SubscriberOptions,
    pub(crate) adaptive_concurrency: bool,
    pub(crate) retry_capacity: usize,
    pub(crate) ordered: bool,
    pub(crate) order_key: Option<String>,
    pub(crate) format: WireFormat,
    pub(crate) template: Option<Value>,
    pub(crate) templates: Vec<(String, Value)>,
    pub(crate) retry: RetryPolicy,
    pub(crate) source: Option<String>,
    pub(crate) allow_http: bool,
    pub(crate) verify_ssl: bool,
    pub(crate) guard: Option<SsrfGuard>,
    pub(crate) disable_after: Option<u32>,
    pub(crate) log_capacity: usize,
    pub(crate) dead_letter_capacity: usize,
    pub(crate) rate_limit: Option<(u32, Duration)>,
    pub(crate) rate_burst: Option<u32>,
    pub(crate) retry_rules: Vec<(String, RetryPolicy)>,
    pub(crate) tls: TlsSettings,
    pub(crate) oauth2: Option<OAuth2>,
    pub(crate) proxy: ProxySettings,
    /// The route key: only events whose extension attribute equals the
    /// value reach this webhook (see [`WebhookBuilder::key`]).
    pub(crate) route_key: Option<(String, String)>,
}

impl fmt::Debug for WebhookBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookBuilder")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("signed", &self.secrets.iter().any(|s| !s.is_empty()))
            .field("scheme", &self.scheme)
            .field("events", &self.events)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("format", &self.format)
            .field("retry", &self.retry)
            .field("retry_for", &self.retry_rules)
            .field("rate_limit", &self.rate_limit)
            .field("rate_limit_burst", &self.rate_burst)
            .field("tls", &self.tls.describe())
            .field("oauth2", &self.oauth2)
            .field("proxy", &self.proxy.describe())
            .field("adaptive_concurrency", &self.adaptive_concurrency)
            .finish_non_exhaustive()
    }
}

impl WebhookBuilder {
    pub(crate) fn new(url: impl Into<String>) -> WebhookBuilder {
        WebhookBuilder {
            name: None,
            url: url.into(),
            secrets: Vec::new(),
            scheme: SignatureScheme::default(),
            events: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            headers: Vec::new(),
            condition: None,
            filter: None,
            options: SubscriberOptions {
                concurrency: DEFAULT_CONCURRENCY,
                ..SubscriberOptions::default()
            },
            adaptive_concurrency: false,
            retry_capacity: DEFAULT_RETRY_CAPACITY,
            ordered: false,
            order_key: None,
            format: WireFormat::default(),
            template: None,
            templates: Vec::new(),
            retry: RetryPolicy::default(),
            source: None,
            allow_http: false,
            verify_ssl: true,
            guard: None,
            disable_after: Some(DEFAULT_DISABLE_AFTER),
            log_capacity: DEFAULT_LOG_CAPACITY,
            dead_letter_capacity: DEFAULT_DEAD_LETTER_CAPACITY,
            rate_limit: None,
            rate_burst: None,
            #[cfg(feature = "durable")]
            store: None,
            retry_rules: Vec::new(),
            tls: TlsSettings::new(),
            oauth2: None,
            proxy: ProxySettings::default(),
            route_key: None,
        }
    }

    /// The endpoint's name (in stats, logs and failure events). Default: the
    /// URL's host.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// The URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }
    /// The signing secret; empty means unsigned (the default).
    pub fn secret(mut self, secret: impl Into<Secret>) -> Self {
        self.secrets = vec![secret.into()];
        self
    }
    /// Several secrets while one is being rotated: Standard Webhooks sends one
    /// signature per secret; the other schemes sign with the first.
    pub fn secrets(mut self, secrets: impl IntoIterator<Item = impl Into<Secret>>) -> Self {
        self.secrets = secrets.into_iter().map(Into::into).collect();
        self
    }
    /// The signing scheme (default: Standard Webhooks, `webhook-id`,
    /// `webhook-timestamp`, `webhook-signature: v1,<base64>`; see
    /// [`SignatureScheme::default`]).
    pub fn signature(mut self, scheme: SignatureScheme) -> Self {
        self.scheme = scheme;
        self
    }
    /// The event types (or patterns such as `decision.*`) to deliver; none
    /// means all events except the bus's own `hookbus.*` events.
    pub fn events<S: Into<String>>(mut self, events: impl IntoIterator<Item = S>) -> Self {
        self.events = events.into_iter().map(Into::into).collect();
        self
    }
    /// Adds one event type or pattern.
    pub fn event(mut self, event: impl Into<String>) -> Self {
        self.events.push(event.into());
        self
    }
    /// The request timeout (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// An extra header, e.g. `Authorization: Bearer …` or `DD-API-KEY`. Its
    /// value is treated as sensitive (never logged or shown in `Debug`).
    /// It may replace `Content-Type`, `Accept` or `User-Agent`; the headers
    /// hookbus owns are refused when the webhook is built: `ce-*` (set from
    /// the event), the signature scheme's headers when signing, and the
    /// ones the HTTP client sets (`Content-Length`, `Host`, …).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// A condition closure: only events for which it returns true are
    /// delivered (a conditional webhook).
    pub fn condition(mut self, condition: impl Fn(&Event) -> bool + Send + Sync + 'static) -> Self {
        self.condition = Some(Arc::new(condition));
        self
    }
    /// A declarative filter expression, e.g. `confidence > 0.85` (see
    /// [`Filter`]); checked in [`build`](Self::build).
    pub fn filter(mut self, expression: &str) -> Self {
        self.filter = Some(Filter::parse(expression));
        self
    }
    /// A parsed filter expression.
    pub fn filter_parsed(mut self, filter: Filter) -> Self {
        self.filter = Some(Ok(filter));
        self
    }
    /// Batching: one POST carries up to `batch_size` events, waiting at most
    /// `batch_timeout` for a batch to fill.
    /// (Shorthand for the `batch` of [`options`](Self::options).)
    pub fn batch(mut self, batch_size: usize, batch_timeout: Duration) -> Self {
        self.options.batch = Some(BatchConfig {
            max_size: batch_size,
            max_wait: batch_timeout,
        });
        self
    }
    /// Requests in flight at once from one bus subscription of this webhook
    /// (default 16; [`WebhookEmitter`](super::WebhookEmitter) calls are as concurrent as their
    /// caller makes them). A delivery
    /// waiting for its next attempt gives its slot back meanwhile, so
    /// retries never hold up other events (see
    /// [`retry_capacity`](Self::retry_capacity)).
    /// (Shorthand for the `concurrency` of [`options`](Self::options).)
    pub fn concurrency(mut self, n: usize) -> Self {
        self.options.concurrency = n;
        self
    }
    /// Adaptive concurrency (off by default): the in-flight limit of a bus
    /// subscription follows what the receiver takes, between 1 and
    /// [`concurrency`](Self::concurrency), starting at 1. Additive increase,
    /// multiplicative decrease, in the style of Vector's adaptive request
    /// concurrency: the limit grows by 1 after a round of answers whose
    /// latency stayed near its baseline while the limit was in use, and
    /// falls by a tenth (at least 1) after a round that saw a 429, 502, 503,
    /// 504, a timeout or a failed connection, or whose mean latency rose
    /// above 2 × the baseline (it grows only while the latency stays within
    /// 1.5 × the baseline, the latency at limit 1 or the lowest seen since). Requests in flight when the limit falls
    /// finish; new ones wait. Against a receiver that refuses what it cannot
    /// take, the limit exceeds its capacity by at most 1.
    /// [`WebhookStats::concurrency_limit`](super::WebhookStats::concurrency_limit)
    /// shows the limit. Calls through a [`WebhookEmitter`](super::WebhookEmitter) are not limited
    /// (their caller decides how many run at once). Refused with
    /// [`ordered`](Self::ordered), which sends one request at a time.
    ///
    /// ```
    /// use hookbus::webhook::WebhookSink;
    ///
    /// let sink = WebhookSink::builder("https://hooks.example.com/orders")
    ///     .concurrency(64) // the most it may reach
    ///     .adaptive_concurrency(true)
    ///     .build()?;
    /// assert!(WebhookSink::builder("https://hooks.example.com/orders")
    ///     .ordered()
    ///     .adaptive_concurrency(true)
    ///     .build()
    ///     .is_err());
    /// # Ok::<(), hookbus::webhook::WebhookError>(())
    /// ```
    pub fn adaptive_concurrency(mut self, on: bool) -> Self {
        self.adaptive_concurrency = on;
        self
    }
    /// How many deliveries may be under way beyond
    /// [`concurrency`](Self::concurrency) when attached to a bus (default
    /// 1024): at most `concurrency + retry_capacity` deliveries are under way
    /// at once, sending or waiting for a retry (a waiting one holds no
    /// sending slot). Past that, new events wait in the mailbox even if a
    /// slot is free: a long outage then fills it and its overflow policy
    /// decides. 0 lets retries hold up fresh events as if each waited in its
    /// slot. [`WebhookStats::waiting_retry`](super::WebhookStats::waiting_retry)
    /// tells how many are waiting.
    pub fn retry_capacity(mut self, n: usize) -> Self {
        self.retry_capacity = n;
        self
    }
    /// Ordered mode: one delivery at a time, in order (concurrency 1). This
    /// mode blocks: a retrying event holds up every later event of this
    /// endpoint until it is delivered or dead-lettered.
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self.concurrency(1)
    }
    /// Ordered mode per key: events whose value at `path` (as in filters:
    /// `data.decision_id`, `event.partitionkey`, `event.subject`…) is the same
    /// are delivered one after the other, in order; other keys and events
    /// without the key are not held up. A retrying event holds up the later
    /// events of its key; they wait without a sending slot, among the
    /// [`retry_capacity`](Self::retry_capacity) waiting deliveries.
    pub fn ordered_by(mut self, path: impl Into<String>) -> Self {
        self.order_key = Some(path.into());
        self
    }
    /// The subscriber settings of its bus subscription, as any subscriber
    /// takes them ([`SubscriberOptions`]: mailbox capacity, overflow
    /// policy, batching, concurrency), e.g. from a config file. Defaults:
    /// those of [`SubscriberOptions::default`], except a concurrency of 16.
    /// [`capacity`](Self::capacity), [`overflow`](Self::overflow),
    /// [`batch`](Self::batch) and [`concurrency`](Self::concurrency) set
    /// one field of it each.
    ///
    /// ```
    /// use hookbus::webhook::WebhookSink;
    /// use hookbus::{OverflowPolicy, SubscriberOptions};
    ///
    /// let options = SubscriberOptions {
    ///     capacity: 10_000,
    ///     overflow: OverflowPolicy::DropNewest,
    ///     concurrency: 32,
    ///     ..SubscriberOptions::default()
    /// };
    /// let sink = WebhookSink::builder("https://hooks.example.com/orders")
    ///     .options(options)
    ///     .build()?;
    /// # let _ = sink;
    /// # Ok::<(), hookbus::webhook::WebhookError>(())
    /// ```
    pub fn options(mut self, options: SubscriberOptions) -> Self {
        self.options = options;
        self
    }
    /// Mailbox capacity when attached to a bus (default 1024). (Shorthand
    /// for the `capacity` of [`options`](Self::options).)
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.options.capacity = capacity;
        self
    }
    /// What the mailbox does when full (default drop oldest). (Shorthand
    /// for the `overflow` of [`options`](Self::options).)
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.options.overflow = policy;
        self
    }
    /// The wire format (default CloudEvents structured mode: the signature
    /// covers every attribute; see [`WireFormat`]).
    pub fn format(mut self, format: WireFormat) -> Self {
        self.format = format;
        self
    }
    /// A payload template for every event (see [`Template`](super::Template)); checked in
    /// [`build`](Self::build).
    pub fn template(mut self, template: Value) -> Self {
        self.template = Some(template);
        self
    }
    /// A payload template for events matching `pattern` (tried in the order
    /// given, before the template for every event).
    pub fn template_for(mut self, pattern: impl Into<String>, template: Value) -> Self {
        self.templates.push((pattern.into(), template));
        self
    }
    /// The retry policy (default: 3 attempts, exponential backoff with jitter).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }
    /// The retry policy for events whose type matches `pattern` (e.g.
    /// `payment.*`). Rules are tried in the order given and the first match
    /// wins; events no rule matches get [`retry`](Self::retry)'s policy. A
    /// batch follows the policy of its first event. Each policy and pattern
    /// is checked in [`build`](Self::build).
    ///
    /// ```
    /// use hookbus::webhook::{RetryPolicy, WebhookSink};
    /// use std::time::Duration;
    ///
    /// let sink = WebhookSink::builder("https://hooks.example.com/ledger")
    ///     // Payments are worth days of retries; metrics are stale in a minute.
    ///     .retry_for("payment.*", RetryPolicy::standard_webhooks())
    ///     .retry_for("metrics.*", RetryPolicy::none())
    ///     .retry(RetryPolicy::exponential(5, Duration::from_secs(1), Duration::from_secs(60)))
    ///     .build()?;
    /// # let _ = sink;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retry_for(mut self, pattern: impl Into<String>, policy: RetryPolicy) -> Self {
        self.retry_rules.push((pattern.into(), policy));
        self
    }
    /// Sets only the number of attempts (of the default policy, not of the
    /// [`retry_for`](Self::retry_for) ones).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.retry.max_attempts = n;
        self
    }
    /// The `ce-source` header (binary mode) and envelope `metadata.source` for
    /// events emitted without a source of their own (default: the bus's
    /// source, `hookbus`). Structured and batched bodies are the event's cached
    /// JSON and carry the event's own source: set it for the whole bus with
    /// [`BusBuilder::source`](crate::BusBuilder::source).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }
    /// Allows plain http to hosts that are not loopback.
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }
    /// Whether to verify TLS certificates (default true). Turning it off is
    /// logged as a warning.
    pub fn verify_ssl(mut self, verify: bool) -> Self {
        self.verify_ssl = verify;
        self
    }
    /// Turns on the SSRF guard: internal addresses (private, loopback,
    /// link-local, metadata…) are refused after DNS resolution, except what the
    /// guard's allow-list permits. With a [`proxy`](Self::proxy), the target
    /// is resolved and checked before each request (refused if any of its
    /// addresses is internal), since the proxy connects to it; the proxy's
    /// own host is not checked.
    pub fn ssrf_guard(mut self, guard: SsrfGuard) -> Self {
        self.guard = Some(guard);
        self
    }
    /// Disable the endpoint after `n` failed deliveries in a row (default 50);
    /// `None` never disables it (410 Gone still does).
    ///
    /// What the defaults do in an outage: each event gets 3 attempts over
    /// about 1.5 s (500 ms then 1 s, ±20 %), then is dead-lettered (kept for
    /// [`retry_failed`](super::WebhookManager::retry_failed), announced as
    /// `hookbus.delivery_failed`); after 50 dead-lettered deliveries in a
    /// row the endpoint is disabled (announced as
    /// `hookbus.endpoint_disabled`) and later events are refused and kept
    /// for `retry_failed` until [`enable`](super::WebhookManager::enable).
    /// Under a steady stream a few seconds of 5xx are enough. To ride out
    /// an outage instead, give the events a longer schedule
    /// ([`RetryPolicy::standard_webhooks`](super::RetryPolicy::standard_webhooks):
    /// 8 attempts over about 27 h), a durable store, and/or
    /// `disable_after(None)`; the first failed attempt of the endpoint logs
    /// at `warn`, and each retry is announced as `hookbus.delivery_retrying`.
    pub fn disable_after(mut self, n: Option<u32>) -> Self {
        self.disable_after = n;
        self
    }
    /// Attempts kept in the delivery log (default 1000).
    pub fn log_capacity(mut self, n: usize) -> Self {
        self.log_capacity = n;
        self
    }
    /// Dead-lettered deliveries kept for `retry_failed` (default 10,000).
    pub fn dead_letter_capacity(mut self, n: usize) -> Self {
        self.dead_letter_capacity = n;
        self
    }

    /// `n` requests per `per` to this endpoint on average (a token bucket),
    /// with bursts of up to `n` at once unless
    /// [`rate_limit_burst`](Self::rate_limit_burst) says otherwise. The
    /// bound in any window of length `per` is `n + burst − 1` requests
    /// (`2n − 1` with the default burst: a full burst after an idle spell,
    /// then the steady rate); set `rate_limit_burst(1)` for at most `n` in
    /// any window (evenly spaced requests). Every request counts, retries
    /// included. The limit is the endpoint's, one bucket: its bus
    /// subscription, its emitter,
    /// [`retry_failed`](super::WebhookManager::retry_failed),
    /// [`test`](super::WebhookManager::test) and the endpoint an
    /// [`update`](super::WebhookManager::update) puts in its place share it.
    ///
    /// Waiting for a token blocks neither `emit` nor other endpoints: a bus
    /// subscription takes the token for its next delivery before it takes a
    /// sending slot, and the events behind it wait in its mailbox, where its
    /// [`overflow`](Self::overflow) policy applies. A retry waits for its
    /// token without its slot. [`WebhookStats::waiting_rate_limit`](super::WebhookStats::waiting_rate_limit)
    /// and [`rate_limited`](super::WebhookStats::rate_limited) show the
    /// waits. `n`, `per` and the burst must be more than zero (checked in
    /// [`build`](Self::build)).
    ///
    /// ```
    /// use hookbus::webhook::WebhookSink;
    /// use std::time::Duration;
    ///
    /// // 5 requests a second, and no more than 2 back to back.
    /// let sink = WebhookSink::builder("https://hooks.example.com/slow")
    ///     .rate_limit(5, Duration::from_secs(1))
    ///     .rate_limit_burst(2)
    ///     .build()?;
    /// # let _ = sink;
    /// // A zero anywhere is refused.
    /// assert!(WebhookSink::builder("https://hooks.example.com/slow")
    ///     .rate_limit(0, Duration::from_secs(1))
    ///     .build()
    ///     .is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rate_limit(mut self, n: u32, per: Duration) -> Self {
        self.rate_limit = Some((n, per));
        self
    }
    /// The largest burst [`rate_limit`](Self::rate_limit) lets through at
    /// once, after the endpoint was idle (default: its `n`); 1 spaces every
    /// request evenly.
    pub fn rate_limit_burst(mut self, burst: u32) -> Self {
        self.rate_burst = Some(burst);
        self
    }

    /// A client certificate for receivers that require mutual TLS: the
    /// certificate chain (PEM, the leaf first) and its private key (PEM:
    /// PKCS#8, PKCS#1 or SEC1). Both are checked in [`build`](Self::build):
    /// no certificate, no key, malformed PEM or a key the certificate does
    /// not match are [`WebhookError::Tls`](super::WebhookError::Tls) errors saying which.
    ///
    /// ```no_run
    /// use hookbus::webhook::WebhookSink;
    ///
    /// let sink = WebhookSink::builder("https://partner.example.com/hooks")
    ///     .client_identity_pem(std::fs::read("client.crt")?, std::fs::read("client.key")?)
    ///     // The partner's private CA, trusted on top of the built-in roots.
    ///     .root_certificates_pem(std::fs::read("partner-ca.pem")?)
    ///     .build()?;
    /// # let _ = sink;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Bad PEM is refused when the webhook is built:
    ///
    /// ```
    /// use hookbus::webhook::{WebhookError, WebhookSink};
    ///
    /// let err = WebhookSink::builder("https://partner.example.com/hooks")
    ///     .client_identity_pem("not a certificate", "not a key")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, WebhookError::Tls(_)), "{err}");
    /// ```
    pub fn client_identity_pem(
        mut self,
        cert_chain: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
    ) -> Self {
        let pem = |b: &[u8]| super::tls::Pem::Bytes(b.to_vec());
        self.tls.identity = Some((pem(cert_chain.as_ref()), pem(key.as_ref())));
        self
    }
    /// Trusts the root certificates in `pem` (one or more CERTIFICATE
    /// blocks) for this endpoint, besides the built-in ones (see
    /// [`tls_built_in_roots`](Self::tls_built_in_roots)): a receiver with a
    /// private CA, or a test server on `https://127.0.0.1` (its certificate
    /// needs the IP in its subject alternative names). May be called several
    /// times; checked in [`build`](Self::build).
    pub fn root_certificates_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.tls
            .roots
            .push(super::tls::Pem::Bytes(pem.as_ref().to_vec()));
        self
    }
    /// Whether the built-in root certificates (Mozilla's, via webpki-roots)
    /// are trusted (default true). `false` trusts only
    /// [`root_certificates_pem`](Self::root_certificates_pem), which must
    /// then be given.
    pub fn tls_built_in_roots(mut self, trust: bool) -> Self {
        self.tls.built_in_roots = trust;
        self
    }
    /// Authenticates with an OAuth2 bearer token from the client
    /// credentials grant (see [`OAuth2`]). The token is fetched by the first
    /// delivery that needs it and shared by all the endpoint's deliveries
    /// (one fetch, whatever the concurrency), kept until 30 s before its
    /// `expires_in` (at most half its lifetime early; a token without
    /// `expires_in` is kept until refused; an `expires_in` of zero or less
    /// means the token serves one request: it is fetched anew before each
    /// later use), and fetched anew once when the
    /// receiver answers 401, the request then sent once more. A token
    /// endpoint that is down or answers 5xx, 429 or 408 makes the attempt
    /// fail as retryable (the [`retry`](Self::retry) policy applies); other
    /// answers (401 `invalid_client`, …) make it final. The token URL obeys
    /// the same rules as the webhook URL (https, or http to loopback unless
    /// [`allow_http`](Self::allow_http)), goes through the same
    /// [`ssrf_guard`](Self::ssrf_guard) and [`proxy`](Self::proxy), and the
    /// same client certificate is offered. The secret and the token never
    /// appear in `Debug`, logs or errors. Refuses an
    /// [`header`](Self::header) `Authorization` (the token is that header).
    ///
    /// ```
    /// use hookbus::webhook::{OAuth2, OAuth2ClientAuth, WebhookSink};
    ///
    /// let sink = WebhookSink::builder("https://api.example.com/events")
    ///     .oauth2(
    ///         OAuth2::client_credentials("https://login.example.com/token", "my-client", "s3cret")
    ///             .scope("events.write")
    ///             // For servers that want the credentials in the form body.
    ///             .client_auth(OAuth2ClientAuth::RequestBody),
    ///     )
    ///     .build()?;
    /// assert!(!format!("{sink:?}").contains("s3cret"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn oauth2(mut self, oauth2: OAuth2) -> Self {
        self.oauth2 = Some(oauth2);
        self
    }
    /// Sends every request of this endpoint (and of its OAuth2 token
    /// fetches) through the HTTP(S) proxy at `url` (`http://proxy:3128`;
    /// credentials may be in the URL, `http://user:pass@proxy:3128`); https
    /// targets are tunnelled with CONNECT. An explicit proxy wins over
    /// [`proxy_from_env`](Self::proxy_from_env), and `NO_PROXY` does not
    /// apply to it. Checked in [`build`](Self::build) (http or https
    /// scheme, a host). With an [`ssrf_guard`](Self::ssrf_guard), the
    /// target's host is resolved and checked before each request, since the
    /// proxy, not hookbus, connects to it.
    ///
    /// ```
    /// use hookbus::webhook::WebhookSink;
    ///
    /// let sink = WebhookSink::builder("https://hooks.example.com/in")
    ///     .proxy("http://egress.internal:3128")
    ///     .build()?;
    /// # let _ = sink;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy.explicit = Some(url.into());
        self
    }
    /// Whether to use the proxy the environment names when no
    /// [`proxy`](Self::proxy) is given (default false: no proxy, whatever
    /// the environment says). When true, `HTTPS_PROXY` (for https targets)
    /// and `HTTP_PROXY` (for http ones), lower case first, and `NO_PROXY`
    /// are read when the webhook is built; `HTTP_PROXY` in upper case is
    /// ignored under CGI (`REQUEST_METHOD` set). Precedence: explicit proxy,
    /// then the environment, then none.
    pub fn proxy_from_env(mut self, use_env: bool) -> Self {
        self.proxy.from_env = use_env;
        self
    }

    /// Keeps this webhook's pending deliveries in `store` when it is
    /// attached to a bus with [`WebhookSink::subscribe`](super::WebhookSink::subscribe): they survive a
    /// crash or restart, retry schedules included (see
    /// [`store`](crate::store)). The webhook's [`name`](Self::name) is the
    /// key to its pending events: keep it stable across restarts.
    #[cfg(feature = "durable")]
    #[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
    pub fn durable(mut self, store: &crate::store::Store) -> Self {
        self.store = Some(store.clone());
        self
    }

    /// Routes only events whose extension attribute `attribute` equals
    /// `value` to this webhook when [`WebhookSink::subscribe`](super::WebhookSink::subscribe) attaches it
    /// (e.g. `key("tenant", "acme")`): the bus indexes the route by the
    /// value (see [`SubscriberBuilder::key`](crate::SubscriberBuilder::key)),
    /// so other tenants' events never reach it and cost it nothing.
    pub fn key(mut self, attribute: impl Into<String>, value: impl Into<String>) -> Self {
        self.route_key = Some((attribute.into(), value.into()));
        self
    }

    /// Whether a subscription attached with `self` can serve `other` (then
    /// an update swaps the endpoint and re-routes the subscription in
    /// place): the same subscriber options (mailbox, batch, concurrency),
    /// limits, ordering and store. The events, the condition, the filter
    /// expression and the route key may differ: re-routing changes them.
    pub(crate) fn same_subscription(&self, other: &WebhookBuilder) -> bool {
        fn key(b: &WebhookBuilder) -> impl PartialEq + '_ {
            let limits = (b.adaptive_concurrency, b.retry_capacity, b.rate_limit);
            (
                b.store_path(),
                &b.options,
                limits,
                b.rate_burst,
                b.ordered,
                &b.order_key,
            )
        }
        key(self) == key(other)
    }

    /// The path of the store that keeps the webhook's deliveries, if any.
    pub(crate) fn store_path(&self) -> Option<&std::path::Path> {
        #[cfg(feature = "durable")]
        return self.store.as_ref().map(|s| s.path());
        #[cfg(not(feature = "durable"))]
        None
    }
}
