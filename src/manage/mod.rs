//! Webhooks as a service, embedded: [`Manage`] is an axum [`Router`](axum::Router) the
//! application mounts, through which its customers (tenants) register,
//! inspect, test and retry their own webhook endpoints over HTTP, and post
//! events for them.
//!
//! The paths are fixed and the field names follow the Rubric guide:
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /v1/webhooks` `{name, url, events, secret?, filters?, retry_config?, format?, templates?}` | `201` the webhook with its `secret` (generated as `whsec_…` when not given; returned only here) |
//! | `GET /v1/webhooks` | `200 {"data": [...]}` (no secrets) |
//! | `GET /v1/webhooks/{id}` | `200` the webhook |
//! | `PATCH /v1/webhooks/{id}` (the same fields, each optional) | `200` the webhook |
//! | `DELETE /v1/webhooks/{id}` | `204` |
//! | `POST /v1/webhooks/{id}/disable`, `/enable` | `200` the webhook |
//! | `POST /v1/webhooks/{id}/test` `{event_type, payload}` | `200 {status, response_code, response_body}` |
//! | `GET /v1/webhooks/{id}/deliveries?limit=N&cursor=C` | `200 {"data": [{event_id, event_type, success, response_code, attempts, at}], "next_cursor"}` |
//! | `POST /v1/webhooks/{id}/retry_failed` `{since}` | `202 {"retried": n}` |
//! | `POST /v1/webhooks/{id}/rotate_secret` `{secret?, grace_seconds?}` | `200 {id, secret, previous_valid_until}`: the old secret keeps signing alongside (Standard Webhooks sends one signature per secret) for the grace, a day by default |
//! | `POST /v1/webhooks/{id}/replay` `{since}` | `202 {"retried": n}`: the events delivered since then, again (needs a store that keeps delivered events; else 409) |
//! | `POST /v1/events` `{type, data, subject?, id?}` or a structured CloudEvent | `202 {"id"}`: emitted on the bus for the caller's tenant |
//! | `GET /v1/openapi.json` (no caller needed) | `200` the OpenAPI 3.1 document of all this |
//!
//! Errors are RFC 9457 problem details ([`Problem`],
//! `application/problem+json`) naming the field at fault: 400 (not JSON),
//! 401 (no caller), 404, 409 (the tenant's endpoint limit), 413 (body too
//! large), 422 (a field's value), 429 (the tenant's rate limit, with
//! `Retry-After`).
//!
//! # Tenants
//! The application says who the caller is: [`ManageBuilder::identify`]
//! takes a closure from the request's head to a tenant id (from a token, a
//! session, a header set by its own auth layer); a request it answers `None`
//! for gets 401. Every webhook belongs to the tenant that created it; another
//! tenant asking for it by id gets 404, as for an id that does not exist, and
//! can neither change, test, retry nor delete it.
//!
//! Events posted to `/v1/events` carry the CloudEvents extension attribute
//! `tenant` (see [`TENANT_ATTRIBUTE`]) set to the caller's tenant, whatever
//! the body says, and each webhook is subscribed with the route key
//! `tenant = <its tenant>` ([`WebhookBuilder::key`](crate::webhook::WebhookBuilder::key)):
//! the bus routes an event to its tenant's webhooks only, by an index on the
//! value, not by a filter run on every endpoint; within its tenant, by its
//! `events` (patterns in the bus's routing table, shown as such on the
//! dashboard). A `PATCH` of any field updates the webhook in place
//! ([`WebhookManager::update`](crate::webhook::WebhookManager::update)):
//! its one subscription is re-routed to the new events, durable ones too,
//! so no event emitted meanwhile misses it or reaches it twice. The
//! application emits for a tenant the same way: an event with the `tenant`
//! extension.
//!
//! The bus's own events (`hookbus.delivery_failed`, `hookbus.dropped`, …)
//! carry no tenant. A webhook whose `events` name a `hookbus.` pattern
//! (`hookbus.**`, `hookbus.delivery_failed`) is therefore routed by its
//! patterns alone, with a condition that takes its tenant's events and
//! those of the bus's events that are about one of its tenant's webhooks
//! (named by their `subscriber` or `webhook` field); bus events about
//! another tenant's webhook or about no webhook (a store, a Kafka source)
//! never reach it. Patterns that do not name `hookbus` (`*`, `**`) never
//! take the bus's events.
//!
//! # Safety
//! Endpoints must be https, and the SSRF guard refuses internal addresses
//! (private, loopback, link-local, metadata); [`ManageBuilder::allow_loopback`]
//! lets them target http on 127.0.0.1/`localhost` for local testing. A
//! tenant has at most [`ManageBuilder::max_endpoints`] webhooks; a body is at
//! most [`ManageBuilder::max_body`] bytes. With
//! [`ManageBuilder::rate_limit`], each tenant has a request budget of its
//! own (every route but the OpenAPI document, `/v1/events` included): past
//! it the answer is a 429 problem with `Retry-After`. Secrets never appear in `Debug`,
//! logs, errors or any answer but the creation's.
//!
//! # Persistence
//! With the `durable` feature, [`ManageBuilder::durable`] keeps the webhook
//! definitions in the store (a table of their own), their secrets in a file
//! only the process user can read (mode 0600), and makes every webhook
//! durable: its pending deliveries, enabled state, delivery log and dead
//! letters survive a restart. [`ManageBuilder::build`] registers the
//! webhooks found there again.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hookbus::Bus;
//! use hookbus::manage::Manage;
//!
//! let bus = Bus::new()?;
//! let manage = Manage::builder(&bus)
//!     // Who is calling: here a fixed header; use your own authentication.
//!     .identify(|req: &axum::http::request::Parts| {
//!         req.headers.get("x-tenant")?.to_str().ok().map(str::to_owned)
//!     })
//!     .max_endpoints(20)
//!     .build()?;
//! let app = axum::Router::new().merge(manage.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

mod limit;
mod openapi;
#[cfg(feature = "durable")]
mod persist;
mod problem;
mod routes;
mod service;

use std::fmt;
use std::sync::Arc;

use axum::http::request::Parts;

pub use problem::{PROBLEM_JSON, Problem};

use crate::bus::Bus;

/// The CloudEvents extension attribute that names an event's tenant.
pub const TENANT_ATTRIBUTE: &str = "tenant";

/// The default most webhooks one tenant may have.
pub const DEFAULT_MAX_ENDPOINTS: usize = 100;

/// The default largest request body, in bytes.
pub const DEFAULT_MAX_BODY: usize = 256 * 1024;

/// How the application says who is calling: a tenant id from the request's
/// head, or `None` (answered 401).
pub type Identify = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// Why a [`Manage`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManageError {
    /// No [`identify`](ManageBuilder::identify) closure was given: without
    /// it no caller has a tenant.
    #[error("the management API needs identify(..): a closure that says which tenant is calling")]
    NoIdentify,
    /// An option is out of range.
    #[error("invalid management option: {0}")]
    InvalidOption(&'static str),
    /// The store could not be read.
    #[cfg(feature = "durable")]
    #[error("cannot read the webhook definitions from the store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The secrets file could not be read or written (the secrets
    /// themselves are never in the message).
    #[error("the secrets file {path}: {reason}")]
    Secrets {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Settings of a [`Manage`]; see [`Manage::builder`].
#[must_use]
pub struct ManageBuilder {
    bus: Bus,
    identify: Option<Identify>,
    max_endpoints: usize,
    max_body: usize,
    allow_loopback: bool,
    rate: Option<(u32, std::time::Duration)>,
    burst: Option<u32>,
    #[cfg(feature = "durable")]
    durable: Option<(crate::store::Store, std::path::PathBuf)>,
}

impl fmt::Debug for ManageBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManageBuilder")
            .field("identify", &self.identify.is_some())
            .field("max_endpoints", &self.max_endpoints)
            .field("max_body", &self.max_body)
            .field("allow_loopback", &self.allow_loopback)
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl ManageBuilder {
    /// Who is calling: `f` gets the request's head (method, URI, headers,
    /// extensions set by the application's own layers) and returns the
    /// caller's tenant id, or `None` for 401. Required.
    pub fn identify(
        mut self,
        f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.identify = Some(Arc::new(f));
        self
    }

    /// The most webhooks one tenant may have (default
    /// [`DEFAULT_MAX_ENDPOINTS`]); creating one more is a 409.
    pub fn max_endpoints(mut self, n: usize) -> Self {
        self.max_endpoints = n;
        self
    }

    /// The largest request body in bytes (default [`DEFAULT_MAX_BODY`]);
    /// a larger one is a 413.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Lets webhooks target plain http on loopback (127.0.0.0/8, ::1,
    /// `localhost`), for local testing. Off by default: only https, and the
    /// SSRF guard refuses loopback and other internal addresses.
    pub fn allow_loopback(mut self, allow: bool) -> Self {
        self.allow_loopback = allow;
        self
    }

    /// At most `requests` requests per `per` from each tenant (every route
    /// but `GET /v1/openapi.json`; `/v1/events` too), in bursts of up to
    /// [`rate_burst`](Self::rate_burst) (default: `requests`). A request past
    /// it is answered 429 (problem details, `Retry-After` in seconds) and
    /// does nothing. Off by default.
    pub fn rate_limit(mut self, requests: u32, per: std::time::Duration) -> Self {
        self.rate = Some((requests, per));
        self
    }

    /// The most requests a tenant may make at once, above the steady rate
    /// of [`rate_limit`](Self::rate_limit) (default: its `requests`).
    pub fn rate_burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// Keeps the webhook definitions in `store` and their secrets in the
    /// file `secrets` (created with mode 0600; a file others can read is
    /// made 0600 again), and makes every webhook durable in `store`.
    #[cfg(feature = "durable")]
    #[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
    pub fn durable(
        mut self,
        store: &crate::store::Store,
        secrets: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.durable = Some((store.clone(), secrets.into()));
        self
    }

    /// Checks the settings and, with [`durable`](Self::durable), registers
    /// the webhooks kept in the store again.
    pub fn build(self) -> Result<Manage, ManageError> {
        let identify = self.identify.ok_or(ManageError::NoIdentify)?;
        if self.max_body == 0 {
            return Err(ManageError::InvalidOption("max_body must be at least 1"));
        }
        let rate = match (self.rate, self.burst) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ManageError::InvalidOption(
                    "rate_burst is set without rate_limit",
                ));
            }
            (Some((n, per)), burst) => Some(
                limit::TenantLimit::new(n, per, burst.unwrap_or(n)).ok_or(
                    ManageError::InvalidOption(
                        "rate_limit needs at least 1 request per period of more than a nanosecond each, and a burst of at least 1",
                    ),
                )?,
            ),
        };
        let inner = service::Inner::new(
            &self.bus,
            identify,
            service::Limits {
                max_endpoints: self.max_endpoints,
                max_body: self.max_body,
                allow_loopback: self.allow_loopback,
                rate,
            },
        );
        #[cfg(feature = "durable")]
        let inner = match self.durable {
            Some((store, secrets)) => inner.with_store(store, secrets)?,
            None => inner,
        };
        let inner = Arc::new(inner);
        // Previous secrets kept signing across a restart end on time.
        inner.expire_all();
        Ok(Manage { inner })
    }
}

/// The webhook management API of one bus: see the [module docs](self).
#[derive(Clone)]
pub struct Manage {
    inner: Arc<service::Inner>,
}

impl fmt::Debug for Manage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manage")
            .field("webhooks", &self.inner.count())
            .finish_non_exhaustive()
    }
}

impl Manage {
    /// Settings for a management API over `bus`.
    pub fn builder(bus: &Bus) -> ManageBuilder {
        ManageBuilder {
            bus: bus.clone(),
            identify: None,
            max_endpoints: DEFAULT_MAX_ENDPOINTS,
            max_body: DEFAULT_MAX_BODY,
            allow_loopback: false,
            rate: None,
            burst: None,
            #[cfg(feature = "durable")]
            durable: None,
        }
    }

    /// The router to mount (its paths start with `/v1/`).
    pub fn router(&self) -> axum::Router {
        routes::router(self.inner.clone())
    }

    /// The webhooks of every tenant, as the bus runs them (for an
    /// operator's view: `hookbus::dashboard`, `hookbus::metrics`).
    /// Each is named by its webhook id; change them through the API, not
    /// here, or the kept definitions will not follow.
    pub fn webhooks(&self) -> Arc<crate::webhook::WebhookManager> {
        self.inner.webhooks.clone()
    }

    /// How many webhooks are registered, all tenants together.
    pub fn len(&self) -> usize {
        self.inner.count()
    }

    /// Whether no webhook is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
