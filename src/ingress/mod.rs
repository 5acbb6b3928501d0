//! Receiving webhooks into a [`Bus`] over HTTP (feature `axum`).
//!
//! - [`Signed<T>`] and [`SignedBody`]: axum extractors that verify the raw body
//!   with a [`Verifier`] before anything parses it.
//! - [`Ingress`]: a ready [`Router`] whose routes verify, turn each request
//!   into events and emit them on a bus:
//!
//! | route | accepts | becomes |
//! |---|---|---|
//! | [`cloudevents`](Ingress::cloudevents) | CloudEvents binary mode (`ce-*` headers), structured (`application/cloudevents+json`) and batched (`application/cloudevents-batch+json`); any other JSON | the events as they are; other JSON under [`json_type`](Ingress::json_type) (default `webhook.received`) |
//! | [`github`](Ingress::github) | GitHub deliveries | `github.<X-GitHub-Event>.<action>` (e.g. `github.pull_request.opened`; `github.push` without an action), id `X-GitHub-Delivery`, subject the repository |
//! | [`slack_commands`](Ingress::slack_commands) | Slack slash commands (form-encoded) | `slack.command.<name>` (`/empathy` → `slack.command.empathy`), the form fields as data, id `trigger_id` |
//!
//! Answers, so senders know what to do:
//!
//! | status | when |
//! |---|---|
//! | 200 `{"status":"received"}` | the bus accepted the event(s); those a durable subscriber took are on its store's disk (the answer waits for the commit, as `publish` does) |
//! | 200 `{"status":"duplicate"}` | the signed request was already accepted (see below), or every event in it was already received inside the [dedupe window](Ingress::dedupe) (same source and id): acknowledged, not emitted twice |
//! | 400 | malformed body or headers (not JSON, not a CloudEvent, a command name that cannot be an event type, binary mode under a body-only signature); with `validate_catalog(true)` (feature `schema`), a catalog event whose data breaks its JSON Schema, the body naming the path of the first error |
//! | 401 | bad signature: missing or malformed signature headers, mismatch, timestamp outside tolerance |
//! | 413 | body past the [limit](Ingress::body_limit) (default 1 MiB) |
//! | 503 + `Retry-After` | the bus is full (a `Block` subscriber is behind), a durable subscriber's store is behind or has failed, or the bus is shut down, or a copy of the same request is being processed right now, or a durable subscriber's store failed to commit the request's events (taken in memory, not on disk); the body's `accepted` lists the ids of the request's events that were emitted before the refusal (see below) |
//!
//! **Batches** are emitted event by event, in order, and not refused whole
//! in advance (whether a store or a mailbox has room is known only when an
//! event is offered). When the bus refuses one, the request is answered 503
//! and the events before it stay on the bus: `accepted` names them, and the
//! sender's retry of the whole batch is safe, as they are duplicates in it
//! (same source and id, inside the [dedupe window](Ingress::dedupe)).
//!
//! A handler responds as soon as the bus accepted the event: the work happens
//! in subscribers, so senders never time out waiting for it.
//!
//! ## Exactly once per 2xx
//!
//! A request answered 2xx has its events on the bus exactly once; a request
//! that does not verify, or repeats one already accepted, puts nothing on
//! the bus. Two checks, both reserved while the request is processed and
//! committed only once the bus took the events, so a refused request (400,
//! 503) leaves no trace and its retry is not mistaken for a duplicate:
//!
//! - **the signed request**: the route's verifier's [`ReplayGuard`] (one
//!   shared by the ingress if the verifier has none), keyed by sender (the
//!   verifier's keys) and what the signature covers (the Standard Webhooks
//!   `webhook-id`, else the timestamp and MAC, or for body-only schemes the
//!   body's MAC; see [`crate::verify`](crate::verify#replays)). A copy of an
//!   accepted request is a duplicate whatever its unsigned headers say; the
//!   same `webhook-id` from another route's sender is a message of its own.
//! - **each event**: its route, source and id, for
//!   [`dedupe`](Ingress::dedupe)'s window, so a sender's retry with a fresh
//!   signature is not emitted twice (and two routes' senders cannot
//!   suppress each other's events by reusing an id).
//!   Plain JSON takes its id only from signed material (the Standard
//!   Webhooks `webhook-id`), never from an unsigned header; a GitHub
//!   `X-GitHub-Delivery` is unsigned (GitHub signs only the body), so the
//!   request check above is what stops a replay under a new delivery id.
//!
//! **Unsigned headers and body-only signatures.** None of the schemes signs
//! the `ce-*` headers of CloudEvents binary mode. Under a scheme that signs a
//! timestamp, a changed copy of an accepted request is stopped by the
//! request check; under a body-only scheme (Briefcase, Empathy) it could be
//! re-sent with another `ce-type` or `ce-id` once the window has passed, so
//! the CloudEvents route **refuses binary mode for body-only schemes** (400):
//! send structured or batched mode (a hookbus webhook's default), where the
//! attributes are in the signed body. The GitHub route takes the event name
//! from `X-GitHub-Event`, which GitHub does not sign either. What a
//! body-only signature does and does not protect:
//! [`crate::verify`](crate::verify#what-a-body-only-signature-protects).
//!
//! ## Trace context
//!
//! Every route keeps an event's distributed-tracing extension
//! (`traceparent`, `tracestate`) as it came; a malformed one makes the event
//! malformed (400). An event without it takes the request's W3C
//! `traceparent` (and `tracestate`) header when that is valid; a malformed
//! header is ignored, as W3C Trace Context says. That header is not signed,
//! so it can only give a trace context to an event that has none, never
//! change one. The events are emitted inside a `hookbus.ingress` span that
//! records the trace id and, with the feature `trace`, continues the trace
//! (same trace id, a new span id, the sender's span as parent). See
//! [`crate::trace`].
//!
//! ## Events without `time`
//!
//! CloudEvents makes `time` optional; GitHub deliveries, Slack commands and
//! plain JSON have none. Such events get the time they were received as
//! `time`, and the extension `receivedtime` (the same instant, RFC 3339) so a
//! consumer can tell a received time from a sender's. A sender's own
//! `receivedtime` is kept only when it also sent `time`.
//!
//! ```
//! use hookbus::Bus;
//! use hookbus::ingress::Ingress;
//! use hookbus::signature::{BodySignature, Secret};
//! use hookbus::verify::Verifier;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = Bus::new()?;
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! bus.on("github.pull_request.*", move |e| {
//!     tx.send((e.event_type().to_owned(), e.id().to_owned())).unwrap();
//! })?
//! .detach();
//!
//! let app = Ingress::new(bus.clone())
//!     .github("/webhooks/github", Verifier::github("gh-secret"))
//!     .into_router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! // What GitHub sends when a pull request is opened.
//! let body = r#"{"action":"opened","number":42,"repository":{"full_name":"octo/repo"}}"#;
//! let sig = BodySignature::github().sign(&Secret::new("gh-secret"), body.as_bytes());
//! let request = format!(
//!     "POST /webhooks/github HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
//!      X-GitHub-Event: pull_request\r\nX-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958\r\n\
//!      X-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
//!     body.len()
//! );
//! let mut stream = tokio::net::TcpStream::connect(addr).await?;
//! stream.write_all(request.as_bytes()).await?;
//! let mut response = String::new();
//! stream.read_to_string(&mut response).await?;
//! assert!(response.starts_with("HTTP/1.1 200"));
//! assert!(response.ends_with(r#"{"status":"received"}"#));
//!
//! let (ty, id) = rx.recv().await.unwrap();
//! assert_eq!(ty, "github.pull_request.opened");
//! assert_eq!(id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
//! # Ok(()) }
//! ```

pub(crate) mod convert;
mod extract;
mod label;

pub use extract::{Rejection, Signed, SignedBody};
pub use label::EventLabel;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderValue, StatusCode, header};

use crate::bus::{Bus, EmitError};
use crate::event::{EventError, ExtensionValue, validate_type};
use crate::signature::SignatureScheme;
use crate::trace::{TRACEPARENT, TRACESTATE, TraceParent, TraceState};
use crate::verify::{Admission, ReplayGuard, Verifier, VerifyError};
use convert::Incoming;
use extract::json_response;

/// Default body limit of the ingress routes: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Default dedupe window: 5 minutes, as long as the default signature tolerance.
pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(300);
/// Default type for JSON that is not a CloudEvent.
pub const DEFAULT_JSON_TYPE: &str = "webhook.received";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    CloudEvents,
    GitHub,
    SlackCommands,
}

/// Builds a [`Router`] that receives webhooks and emits them on a [`Bus`].
/// See the [module docs](self) for the routes and status codes.
pub struct Ingress {
    bus: Bus,
    routes: Vec<(String, Kind, Verifier)>,
    body_limit: usize,
    dedupe_capacity: usize,
    dedupe_window: Duration,
    json_type: String,
    retry_after: Duration,
    /// Extension attributes set on every event received, over the sender's.
    stamp: Vec<(String, ExtensionValue)>,
    #[cfg(feature = "schema")]
    validate_catalog: bool,
}

impl fmt::Debug for Ingress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ingress")
            .field(
                "routes",
                &self
                    .routes
                    .iter()
                    .map(|(p, k, _)| format!("{k:?} {p}"))
                    .collect::<Vec<_>>(),
            )
            .field("body_limit", &self.body_limit)
            .field("dedupe_window", &self.dedupe_window)
            .field("json_type", &self.json_type)
            .finish_non_exhaustive()
    }
}

impl Ingress {
    /// An ingress feeding `bus`, with no routes yet.
    pub fn new(bus: Bus) -> Ingress {
        Ingress {
            bus,
            routes: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            dedupe_capacity: crate::verify::DEFAULT_REPLAY_CAPACITY,
            dedupe_window: DEFAULT_DEDUPE_WINDOW,
            json_type: DEFAULT_JSON_TYPE.to_owned(),
            retry_after: Duration::from_secs(1),
            stamp: Vec::new(),
            #[cfg(feature = "schema")]
            validate_catalog: false,
        }
    }

    /// Sets the extension attribute `name` to `value` on every event this
    /// ingress receives, over any value the sender gave: what the routes'
    /// senders may not choose themselves (e.g. the tenant an event belongs
    /// to, as `hookbus serve` routes by it). An invalid or reserved name is
    /// an error.
    pub fn extension(
        mut self,
        name: &str,
        value: impl Into<String>,
    ) -> Result<Ingress, EventError> {
        crate::event::validate_extension_name(name)?;
        self.stamp.retain(|(n, _)| n != name);
        self.stamp
            .push((name.to_owned(), ExtensionValue::String(value.into())));
        Ok(self)
    }

    /// A POST route for CloudEvents (binary, structured, batched) and other
    /// JSON, verified by `verifier` (e.g. the scheme your hookbus webhook
    /// subscribers sign with: [`Verifier::for_scheme`]).
    pub fn cloudevents(mut self, path: &str, verifier: Verifier) -> Ingress {
        self.routes
            .push((path.to_owned(), Kind::CloudEvents, verifier));
        self
    }

    /// A POST route for GitHub webhook deliveries ([`Verifier::github`]).
    pub fn github(mut self, path: &str, verifier: Verifier) -> Ingress {
        self.routes.push((path.to_owned(), Kind::GitHub, verifier));
        self
    }

    /// A POST route for Slack slash commands ([`Verifier::slack`]).
    pub fn slack_commands(mut self, path: &str, verifier: Verifier) -> Ingress {
        self.routes
            .push((path.to_owned(), Kind::SlackCommands, verifier));
        self
    }

    /// The event type for JSON bodies that are not CloudEvents (default
    /// [`DEFAULT_JSON_TYPE`]).
    pub fn json_type(mut self, event_type: &str) -> Result<Ingress, EventError> {
        validate_type(event_type)?;
        self.json_type = event_type.to_owned();
        Ok(self)
    }

    /// The largest body accepted, in bytes (default [`DEFAULT_BODY_LIMIT`]);
    /// past it the answer is 413.
    pub fn body_limit(mut self, bytes: usize) -> Ingress {
        self.body_limit = bytes;
        self
    }

    /// How long, and for how many ids at most, a received event id is
    /// remembered to acknowledge redeliveries without emitting them again
    /// (default 5 minutes, 100,000 ids). The capacity also sizes the guard
    /// the ingress gives routes whose verifier has no
    /// [`replay_guard`](Verifier::replay_guard) of its own.
    pub fn dedupe(mut self, window: Duration, capacity: usize) -> Ingress {
        self.dedupe_window = window;
        self.dedupe_capacity = capacity;
        self
    }

    /// The `Retry-After` sent with 503 when the bus is full (default 1 s).
    pub fn retry_after(mut self, delay: Duration) -> Ingress {
        self.retry_after = delay;
        self
    }

    /// Checks the data of every received event whose type is in the
    /// [catalog](crate::catalog) against its JSON Schema (default off). A
    /// request with an event that breaks it is answered 400 with the path
    /// of the first error (`{"error": .., "event_type": .., "path":
    /// "/confidence"}`, a JSON Pointer into the event's data) and puts
    /// nothing on the bus; events of other types pass unchecked. See
    /// [`catalog::validate`](crate::catalog::validate).
    ///
    /// ```
    /// use hookbus::Bus;
    /// use hookbus::ingress::Ingress;
    /// use hookbus::verify::Verifier;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let app = Ingress::new(Bus::new()?)
    ///     .cloudevents("/events", Verifier::briefcase("s3cret"))
    ///     .validate_catalog(true)
    ///     .into_router();
    /// # let _ = app;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "schema")]
    #[cfg_attr(docsrs, doc(cfg(feature = "schema")))]
    pub fn validate_catalog(mut self, on: bool) -> Ingress {
        self.validate_catalog = on;
        self
    }

    /// The router. Serve it with `axum::serve`, or nest it into your own.
    pub fn into_router(self) -> Router {
        let requests = Arc::new(ReplayGuard::new(self.dedupe_capacity));
        let shared = Arc::new(Shared {
            bus: self.bus,
            dedupe: Arc::new(ReplayGuard::new(self.dedupe_capacity)),
            dedupe_window: self.dedupe_window,
            json_type: self.json_type,
            retry_after: self.retry_after,
            body_limit: self.body_limit,
            stamp: self.stamp,
            #[cfg(feature = "schema")]
            validate_catalog: self.validate_catalog,
        });
        let mut router = Router::new();
        for (path, kind, mut verifier) in self.routes {
            if !verifier.has_replay_guard() {
                verifier = verifier.replay_guard(requests.clone());
            }
            let state = RouteState {
                shared: shared.clone(),
                path: Arc::from(path.as_str()),
                kind,
                verifier,
            };
            router = router.route(&path, post(receive).with_state(state));
        }
        router.layer(DefaultBodyLimit::max(self.body_limit))
    }
}

struct Shared {
    bus: Bus,
    dedupe: Arc<ReplayGuard>,
    dedupe_window: Duration,
    json_type: String,
    retry_after: Duration,
    body_limit: usize,
    stamp: Vec<(String, ExtensionValue)>,
    #[cfg(feature = "schema")]
    validate_catalog: bool,
}

#[derive(Clone)]
struct RouteState {
    shared: Arc<Shared>,
    /// The route's path: its senders' namespace in the event dedupe.
    path: Arc<str>,
    kind: Kind,
    verifier: Verifier,
}

impl FromRef<RouteState> for Verifier {
    fn from_ref(state: &RouteState) -> Verifier {
        state.verifier.clone()
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn status(status: &str) -> Response {
    json_response(StatusCode::OK, serde_json::json!({ "status": status }))
}

async fn receive(State(route): State<RouteState>, req: Request) -> Response {
    let shared = &route.shared;
    let headers = req.headers().clone();
    let body = match extract::read_body(req, Some(shared.body_limit)).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // Reserved, not yet remembered: every early return below drops it, so a
    // request that was not accepted leaves no trace.
    let pending = match route.verifier.verify_pending(&headers, &body) {
        Ok(p) => p,
        // The same signed request was accepted before: acknowledge, emit nothing.
        Err(VerifyError::Replay) => return status("duplicate"),
        Err(VerifyError::InFlight) => return unavailable(shared, (Refused::InFlight, Vec::new())),
        Err(e) => return Rejection::Signature(e).into_response(),
    };
    // The transport's W3C trace context: a malformed value is ignored.
    let hop = crate::trace::lenient(
        headers.get("traceparent").and_then(|v| v.to_str().ok()),
        headers.get("tracestate").and_then(|v| v.to_str().ok()),
    );
    let converted = match route.kind {
        Kind::CloudEvents => convert::cloudevents(
            &headers,
            &body,
            pending.verified(),
            matches!(route.verifier.scheme(), SignatureScheme::Body(_)),
            &shared.json_type,
        ),
        Kind::GitHub => convert::github(&headers, &body),
        Kind::SlackCommands => convert::slack_command(&body),
    };
    let mut incoming = match converted {
        Ok(events) => events,
        Err(e) => return e.into_response(),
    };
    for inc in incoming.iter_mut() {
        for (name, value) in &shared.stamp {
            inc.event.set_extension(name, value.clone());
        }
    }
    let span = trace_incoming(&mut incoming, hop);
    // Before anything is emitted: a request is taken whole or not at all.
    #[cfg(feature = "schema")]
    if shared.validate_catalog
        && let Some(violation) = incoming.iter().find_map(|inc| {
            crate::catalog::validate(inc.event.event_type(), inc.event.data()).err()
        })
    {
        return Rejection::Schema(violation).into_response();
    }
    let mut commits = Vec::new();
    let mut accepted = Vec::new();
    let emitted =
        span.in_scope(|| emit_all(shared, &route.path, incoming, &mut accepted, &mut commits));
    // Acknowledged once on disk for the durable subscribers (a refusal's
    // accepted events too).
    let answer = match (emitted, on_disk(commits).await) {
        (Ok(emitted), Ok(())) => Ok(emitted),
        (Err(refused), _) | (Ok(_), Err(refused)) => Err((refused, accepted)),
    };
    if answer.is_ok() {
        pending.accept();
    }
    match (answer, route.kind) {
        // Slack shows a slash command's response body to the user: an empty
        // 200 is a silent acknowledgement.
        (Ok(_), Kind::SlackCommands) => StatusCode::OK.into_response(),
        (Ok(Emitted { new: 0, duplicates }), _) if duplicates > 0 => status("duplicate"),
        (Ok(_), _) => status("received"),
        (Err(refused), _) => unavailable(shared, refused),
    }
}

/// Continues the sender's trace. Each event keeps the distributed-tracing
/// extension it came with; one without it takes the transport's valid
/// `traceparent` (and `tracestate`). The returned `hookbus.ingress` span,
/// inside which the events are emitted, records the trace id, and with the
/// feature `trace` carries a context continuing the transport's trace (else
/// the first event's): same trace id, a new span id.
fn trace_incoming(
    incoming: &mut [Incoming],
    hop: Option<(TraceParent, Option<TraceState>)>,
) -> tracing::Span {
    if let Some((parent, state)) = &hop {
        for inc in incoming.iter_mut() {
            if inc.event.extension(TRACEPARENT).is_none() {
                inc.event
                    .set_extension(TRACEPARENT, ExtensionValue::String(parent.to_string()));
                if let Some(state) = state {
                    inc.event
                        .set_extension(TRACESTATE, ExtensionValue::String(state.to_string()));
                }
            }
        }
    }
    let continued = hop.or_else(|| {
        let first = &incoming.first()?.event;
        let state = first.tracestate().and_then(|s| TraceState::parse(s).ok());
        Some((first.traceparent()?, state))
    });
    let Some((parent, state)) = continued else {
        return tracing::info_span!("hookbus.ingress", trace_id = tracing::field::Empty);
    };
    let span = tracing::info_span!("hookbus.ingress", trace_id = %parent.trace_id());
    crate::trace::continue_in(&span, &parent, state);
    span
}

/// How many events of a request were emitted, and how many were duplicates.
#[derive(Debug, Clone, Copy)]
struct Emitted {
    new: usize,
    duplicates: usize,
}

/// Waits until the durable subscribers that took the events have them on
/// disk; an error when a commit failed (the events were taken in memory,
/// and are delivered from there while the process lives).
async fn on_disk(commits: Vec<crate::hub::Commit>) -> Result<(), Refused> {
    for commit in commits {
        if commit.await.is_err() {
            return Err(Refused::Store);
        }
    }
    Ok(())
}

/// Emits every event not seen inside the window, or says why the bus refused
/// one. An event's id is reserved while it is emitted and committed once the
/// bus took it; the refused one is released again, so the sender's retry is
/// not mistaken for a duplicate (the events before it are on the bus, and
/// are duplicates in the retry). Ids are kept per route (`path`): the same
/// id from the senders of two routes names two events.
///
/// `commits` gets the commits of the durable subscribers that took them:
/// the answer waits for them (as `/v1/events` of the management API waits
/// for `publish`), so an event acknowledged to a sender is on disk.
/// `accepted` gets the ids of the events emitted.
fn emit_all(
    shared: &Shared,
    path: &str,
    incoming: Vec<Incoming>,
    accepted: &mut Vec<String>,
    commits: &mut Vec<crate::hub::Commit>,
) -> Result<Emitted, Refused> {
    let now = unix_now();
    let window = i64::try_from(shared.dedupe_window.as_secs()).unwrap_or(i64::MAX);
    let expires = now.saturating_add(window);
    let mut emitted = Emitted {
        new: 0,
        duplicates: 0,
    };
    for inc in incoming {
        let reservation = match inc.dedupe_key() {
            None => None,
            Some(k) => match shared.dedupe.reserve(&format!("{path}\n{k}"), expires, now) {
                Admission::New(r) => Some(r),
                Admission::Seen => {
                    emitted.duplicates += 1;
                    continue;
                }
                Admission::InFlight => return Err(Refused::InFlight),
            },
        };
        let id = inc.event.id().to_owned();
        match shared.bus.emit_into(inc.event, commits) {
            Ok(()) => {
                accepted.push(id);
                emitted.new += 1;
                if let Some(r) = reservation {
                    r.commit();
                }
            }
            Err(err) => {
                return Err(match err {
                    EmitError::Full(_) => Refused::Full,
                    EmitError::Closed(_) => Refused::Closed,
                    EmitError::Store(..) => Refused::Store,
                    _ => Refused::Invalid,
                });
            }
        }
    }
    Ok(emitted)
}

/// Why the bus did not take an event.
#[derive(Debug, Clone, Copy)]
enum Refused {
    Full,
    Closed,
    /// A durable subscriber's store is behind or has failed.
    Store,
    Invalid,
    /// A copy of the same request or event is being processed right now.
    InFlight,
}

fn unavailable(shared: &Shared, (refused, accepted): (Refused, Vec<String>)) -> Response {
    let reason = match refused {
        Refused::Full => "the bus is full; retry later",
        Refused::Store => "a durable subscriber's store cannot take events now; retry later",
        Refused::Closed => "the bus is shut down",
        Refused::InFlight => "this request is already being processed; retry later",
        Refused::Invalid => {
            return Rejection::Malformed("invalid event".into()).into_response();
        }
    };
    let mut resp = json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({ "error": reason, "accepted": accepted }),
    );
    let secs = shared.retry_after.as_secs().max(1);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}
