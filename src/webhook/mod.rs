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
//! # Retries, health and load
//! See [`RetryPolicy`] (3 attempts by default; connection errors, timeouts,
//! 408, 429 and 5xx retried, honouring `Retry-After`; other 4xx and 3xx
//! final; 410 Gone disables the endpoint) and
//! [`retry_for`](WebhookBuilder::retry_for) for per-type policies. Given-up
//! events are dead letters (kept for [`WebhookManager::retry_failed`],
//! announced as `hookbus.delivery_failed`); after
//! [`disable_after`](WebhookBuilder::disable_after) in a row the endpoint is
//! disabled (its docs say what the defaults do in an outage). Every wait is
//! cut to [`MAX_WAIT`], so no setting can overflow a clock, and a panic
//! inside a delivery counts as failed and dead-letters its events. A failing
//! endpoint logs at `warn` once per [`TROUBLE_WARN_INTERVAL`], each retry is
//! announced as `hookbus.delivery_retrying`, and [`WebhookStats`] shows it.
//!
//! Delivery never blocks the emitter: [`concurrency`](WebhookBuilder::concurrency)
//! requests in flight per endpoint (16), a delivery waiting for a retry holds
//! no slot ([`retry_capacity`](WebhookBuilder::retry_capacity)),
//! [`ordered`](WebhookBuilder::ordered) and
//! [`ordered_by`](WebhookBuilder::ordered_by) order all or per key,
//! [`rate_limit`](WebhookBuilder::rate_limit) is one token bucket per
//! endpoint, [`adaptive_concurrency`](WebhookBuilder::adaptive_concurrency)
//! follows what the receiver takes, and a 429 or 503 with `Retry-After`
//! pauses the endpoint.
//!
//! # Inside: a tower service stack
//! A delivery runs through a `tower` stack, outermost first; each layer owns
//! its state. A bus subscription polls the stack ready before it takes an
//! event from its mailbox (pause, then a token, then a slot), and the retry
//! layer polls it ready again before each retry, so a waiting delivery holds
//! no token and no slot.
//!
//! | layer | whose |
//! |---|---|
//! | retry (the schedule, per-type policies, 410, `Retry-After`) | tower's `Retry`, our policy |
//! | pause on `Retry-After` (started by the retry policy, which sees every answer) | ours: tower has no layer that pauses on an answer |
//! | rate limit | ours: tower's `RateLimit` is a fixed window per service clone; an endpoint has one bucket shared by its subscription, emitter, `test`, `retry_failed` and `update`, with a bounded burst |
//! | concurrency | tower's `ConcurrencyLimit`; adaptive: ours (tower's limits are fixed) |
//! | OAuth2 | ours |
//! | timeout | tower's `Timeout` |
//! | one attempt (payload, signature, headers, the reqwest call) | ours |
//!
//! # Transport safety and receivers that want more
//! https is required unless the host is loopback or
//! [`allow_http`](WebhookBuilder::allow_http); TLS is verified unless
//! [`verify_ssl(false)`](WebhookBuilder::verify_ssl); redirects are never
//! followed; [`SsrfGuard`] optionally refuses internal addresses. Mutual TLS
//! ([`client_identity_pem`](WebhookBuilder::client_identity_pem)), OAuth2
//! ([`oauth2`](WebhookBuilder::oauth2)) and egress proxies
//! ([`proxy`](WebhookBuilder::proxy)) are settings of the builder.
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
