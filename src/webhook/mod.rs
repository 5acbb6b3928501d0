//! Webhook subscribers: events delivered as signed CloudEvents over HTTP,
//! with retries, conditional and templated webhooks, a delivery log and a
//! management API.
//!
//! - [`WebhookSink`]: a webhook as a bus subscriber ([`WebhookSink::subscribe`]);
//! - [`WebhookEmitter`]: the same endpoint called directly, `emit(event).await`
//!   returning the [`DeliveryOutcome`];
//! - [`WebhookManager`]: register, list, update, enable/disable, delete, test,
//!   the delivery log, `retry_failed` and stats;
//! - [`presets`]: Slack, Discord, Teams, Datadog, PagerDuty, GitHub and JIRA.
//!
//! # Wire format
//! By default each event is one POST in CloudEvents 1.0 HTTP **structured
//! mode** (`application/cloudevents+json`): the whole event is the body, so
//! the signature covers every attribute whatever the scheme, and a hookbus
//! ingress gets the event exactly as sent. [`WireFormat::Binary`] sends the
//! event data as the body, with `ce-specversion`, `ce-id`, `ce-type`,
//! `ce-source`, `ce-time` (plus `ce-subject` and extensions) as headers,
//! percent-encoded as the binding requires (no scheme signs them); a batch is sent as
//! `application/cloudevents-batch+json`; [`WireFormat::Envelope`] sends the
//! `{"id", "type", "created_at", "data", "metadata"}` body of the Rubric docs;
//! a [`Template`] sends whatever JSON you shape; [`WireFormat::Raw`] sends
//! the bytes the caller (or a template) formatted, unchanged.
//!
//! # Signing
//! See [`crate::signature`]: Standard Webhooks (the default: `whsec_`
//! secrets sign `v1` HMACs, `whsk_` keys sign `v1a` ed25519 signatures),
//! Briefcase (`X-Briefcase-Signature: sha256=<hex>`, header and prefix
//! configurable), timestamped (`X-<Prefix>-Timestamp` and
//! `X-<Prefix>-Signature` over `"<ts>.<body>"`). The
//! timestamp is taken afresh on each attempt. Secrets and extra header values
//! never appear in `Debug`, logs or errors, nor does the URL's path (Slack's
//! incoming-webhook URLs are secrets).
//!
//! # Retries and endpoint health
//! See [`RetryPolicy`]: 3 attempts by default with exponential backoff and
//! jitter; connection errors, timeouts, 408, 429 and 5xx are retried,
//! honouring `Retry-After` (bounded); other 4xx are final; 3xx are never
//! followed and are final; 410 Gone disables the endpoint. After the last
//! attempt the events are dead-lettered: kept in the log (for
//! [`WebhookManager::retry_failed`]) and reported on the bus as
//! `hookbus.delivery_failed`. After [`disable_after`](WebhookBuilder::disable_after)
//! failed deliveries in a row the endpoint is disabled and
//! `hookbus.endpoint_disabled` is published.
//! [`retry_for`](WebhookBuilder::retry_for) gives some event types a policy
//! of their own (e.g. [`RetryPolicy::standard_webhooks`] for `payment.*`).
//! Every wait (backoff, `Retry-After`, pause) is cut to [`MAX_WAIT`], so no
//! setting, however large, can overflow a clock; a panic inside a delivery
//! counts as a failed delivery and dead-letters its events.
//!
//! Trouble is visible: the first failed attempt of an endpoint logs at
//! `warn` with the status, the error and the start of the receiver's answer;
//! while it keeps failing, one more `warn` per [`TROUBLE_WARN_INTERVAL`] says
//! how many failed meanwhile (the rest are at `debug`); the first success
//! after that logs once at `info`. Each scheduled retry is published on the
//! bus as `hookbus.delivery_retrying` (`webhook`, `event_id`, `attempt`,
//! `next_attempt`, `retry_in_ms`, `status`, `error`), and
//! [`WebhookStats::failing_since`] says since when an endpoint fails.
//! [`disable_after`](WebhookBuilder::disable_after) says what the defaults
//! do in an outage and how to ride one out.
//!
//! Delivery never blocks the emitter. Up to
//! [`concurrency`](WebhookBuilder::concurrency) requests (default 16) are in
//! flight per endpoint. A delivery waiting for its next attempt gives its
//! sending slot back, so retries never hold up other events; up to
//! `concurrency +` [`retry_capacity`](WebhookBuilder::retry_capacity)
//! (default 1024) deliveries may be under way at once, sending or waiting,
//! and past it a long outage fills the mailbox, whose overflow policy
//! decides. [`ordered`](WebhookBuilder::ordered)
//! (one at a time, in order) is the mode that blocks: a retrying event holds
//! up the ones behind it. [`ordered_by`](WebhookBuilder::ordered_by) orders
//! per key instead (e.g. `event.partitionkey` or `data.decision_id`): events
//! sharing a key go one at a time, in order, while other keys proceed; a
//! retrying event holds up only the later events of its key.
//!
//! [`rate_limit(n, per)`](WebhookBuilder::rate_limit) caps the requests per
//! period to an endpoint (a token bucket, retries included). A subscription
//! takes the token for its next delivery before its sending slot, so a
//! delivery waiting for a token holds none; the events behind it wait in the
//! mailbox under its overflow policy, and neither `emit` nor other endpoints
//! wait.
//!
//! [`adaptive_concurrency(true)`](WebhookBuilder::adaptive_concurrency)
//! lets the in-flight limit follow what the receiver takes (additive
//! increase, multiplicative decrease on 429/502/503/504, timeouts, failed
//! connections and rising latency), up to `concurrency`. A 429 or 503 with
//! `Retry-After` pauses the whole endpoint until then, holding no sending
//! slot; [`WebhookStats`] shows the limit and the pause.
//!
//! # Inside: a tower service stack
//! A delivery runs through a `tower` stack, outermost first: tower's
//! `Retry` (with the schedule above as its policy), a pause while the
//! endpoint is paused by a `Retry-After`, the rate limit, the concurrency
//! limit (tower's `ConcurrencyLimit`, or the adaptive layer), OAuth2,
//! tower's `Timeout`, and one attempt (payload, signature, headers, the
//! reqwest call). A bus subscription polls the stack ready before taking an
//! event from its mailbox. Ours where tower has nothing that fits: the
//! pause (tower has no layer that pauses on an answer), the rate limit
//! (tower's `RateLimit` is a fixed window per service clone; an endpoint has
//! one bucket shared by its subscription, emitter, `test`, `retry_failed`
//! and `update`, with a bounded burst), the adaptive limit (tower's limits
//! are fixed) and OAuth2.
//!
//! # Transport safety
//! https is required unless the host is loopback or
//! [`allow_http`](WebhookBuilder::allow_http) is set; TLS is verified unless
//! [`verify_ssl(false)`](WebhookBuilder::verify_ssl) (logged as a warning);
//! redirects are never followed; [`SsrfGuard`] optionally refuses internal
//! addresses after DNS resolution.
//!
//! # Receivers that want more
//! - Mutual TLS: [`client_identity_pem`](WebhookBuilder::client_identity_pem)
//!   (certificate chain and key, PEM) and
//!   [`root_certificates_pem`](WebhookBuilder::root_certificates_pem) for a
//!   private CA; bad PEM is a [`WebhookError::Tls`] at build.
//! - OAuth2: [`oauth2`](WebhookBuilder::oauth2) with
//!   [`OAuth2::client_credentials`]: one token per endpoint, shared by all
//!   its deliveries, renewed shortly before it expires and once on 401; a
//!   token endpoint that is down makes attempts retryable.
//! - Egress proxies: [`proxy(url)`](WebhookBuilder::proxy), else
//!   [`proxy_from_env(true)`](WebhookBuilder::proxy_from_env)
//!   (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), else none (the default,
//!   whatever the environment says). The SSRF guard still checks the
//!   target, before each request, since the proxy connects to it.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hookbus::{Bus, Event};
//! use hookbus::webhook::{WebhookManager, WebhookSink};
//! use serde_json::json;
//!
//! let bus = Bus::new()?;
//! let webhooks = WebhookManager::new(&bus);
//! let id = webhooks.register(
//!     WebhookSink::builder(std::env::var("SLACK_WEBHOOK_URL")?)
//!         .name("slack-high-confidence")
//!         .events(["level_4_prediction"])
//!         .filter("confidence > 0.85")
//!         .template(json!({"text": "Prediction: {prediction} ({confidence:.0%})"})),
//! )?;
//! bus.emit(Event::new("level_4_prediction", json!({"prediction": "…", "confidence": 0.9}))?)?;
//! println!("{:?}", webhooks.stats(&id)?);
//! # Ok(()) }
//! ```

mod attempt;
mod builder;
mod concurrency;
mod config;
mod delivery;
mod emitter;
mod endpoint;
mod error;
mod file_config;
pub use crate::expr::filter;
pub mod guard;
mod log;
mod manager;
mod oauth;
mod order;
pub mod presets;
mod proxy;
mod rate;
pub mod retry;
mod sink;
mod trouble;
pub use crate::expr::template;
mod tls;
pub mod wire;

pub use attempt::RESPONSE_EXCERPT_LEN;
pub use builder::{
    DEFAULT_CONCURRENCY, DEFAULT_DISABLE_AFTER, DEFAULT_RETRY_CAPACITY, DEFAULT_TIMEOUT,
    WebhookBuilder,
};
pub use delivery::{DeliveryOutcome, DeliveryStatus};
pub use emitter::WebhookEmitter;
pub use error::WebhookError;
pub use error::{
    HeaderError, HttpClientError, OAuth2Error, OptionError, PemInput, PemProblem, ProxyError,
    TlsError, UrlError,
};
#[cfg(feature = "manage")]
pub(crate) use file_config::RetryConfig;
pub use filter::{Filter, FilterError};
pub use guard::GuardError;
pub use guard::SsrfGuard;
pub use log::{
    AttemptClasses, DEFAULT_DEAD_LETTER_CAPACITY, DEFAULT_LOG_CAPACITY, DeadLetter,
    DeliveryAttempt, LATENCY_BUCKETS_MS, LatencyHistogram, WebhookStats,
};
pub use manager::{RetryReport, TestResult, WebhookId, WebhookInfo, WebhookManager};
pub use oauth::{OAuth2, OAuth2ClientAuth, TOKEN_REFRESH_MARGIN};
pub use rate::RateLimitError;
pub use retry::{Backoff, MAX_WAIT, RetryPolicy, RetryPolicyError};
pub use sink::WebhookSink;
pub use template::{Template, TemplateError};
pub use trouble::TROUBLE_WARN_INTERVAL;
pub use wire::WireFormat;
