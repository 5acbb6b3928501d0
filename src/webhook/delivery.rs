//! Delivery as a tower `Service` stack ([`stack`]; the layers are listed
//! in the [module docs](super)): the innermost service is one attempt
//! ([`Post`]), each layer owns its state. What stays outside the stack, in
//! [`deliver`]: the payload (built once per delivery), the per-key order, a
//! recovered retry's rest of backoff, and the end (counted delivered, or
//! dead-lettered; a panic is contained and dead-letters its events).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use time::OffsetDateTime;

use tower::BoxError;
use tower::layer::layer_fn;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::retry::{Policy, RetryLayer};
use tower::timeout::{TimeoutLayer, error::Elapsed};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};

use super::attempt::{Attempt, Request, Verdict};
use super::concurrency::{Adaptive, AdaptiveLimit, Pause};
use super::endpoint::{Endpoint, Post};
use super::log::DeliveryAttempt;
use super::oauth::OAuth;
use super::order::Gate;
use super::rate::RateLimit;
use super::retry::RetryPolicy;
use super::trouble::Failure;
use crate::event::Event;
use crate::hub::journal::{Journal, Resume};
use crate::sink::{DeliveryError, FailureKind};

/// How one delivery (one event, or one batch) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// The endpoint answered 2xx.
    Delivered,
    /// Not sent: the event is not subscribed, or the condition or the filter expression said no.
    Skipped,
    /// Given up; the events are dead-lettered.
    Failed(FailureKind),
}

/// The outcome of one delivery, as [`WebhookEmitter::emit`](super::WebhookEmitter::emit) returns it.
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
    /// Nothing sent: the endpoint does not take the event, or there was
    /// nothing to send.
    pub(crate) fn skipped() -> DeliveryOutcome {
        DeliveryOutcome {
            status: DeliveryStatus::Skipped,
            error: None,
            ..DeliveryOutcome::failed(FailureKind::Permanent, 0, String::new())
        }
    }

    /// The outcome whose last attempt was `r`.
    fn of(status: DeliveryStatus, r: &Attempt) -> DeliveryOutcome {
        DeliveryOutcome {
            status,
            attempts: r.number,
            status_code: r.status,
            latency: r.latency,
            error: r.error.clone(),
            response_excerpt: r.excerpt.clone(),
        }
    }

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
        let mut r = Attempt::refused(error);
        r.number = attempts;
        DeliveryOutcome::of(DeliveryStatus::Failed(kind), &r)
    }
}

fn log_attempt(ep: &Endpoint, events: &[Arc<Event>], attempt: u32, r: &Attempt, last: bool) {
    let attempt = DeliveryAttempt {
        time: OffsetDateTime::now_utc(),
        event_id: events[0].id().to_owned(),
        event_type: events[0].event_type().to_owned(),
        events: events.len(),
        attempt,
        success: r.verdict == Verdict::Delivered,
        last,
        status_code: r.status,
        latency: r.latency,
        error: r.error.clone(),
        response_excerpt: r.excerpt.clone(),
    };
    ep.state.persist_attempt(&ep.name, &attempt);
    ep.state.log.record(attempt);
}

/// The delivery stack, boxed: a [`Request`] in, the last [`Attempt`] out.
pub(crate) type Svc = BoxCloneSyncService<Request, Attempt, BoxError>;

/// The concurrency limit of a bus subscription's stack (the emitter, `test`
/// and `retry_failed` have none).
#[derive(Clone)]
pub(crate) enum Limit {
    /// At most this many in flight: tower's `ConcurrencyLimit` on it.
    Fixed(Arc<tokio::sync::Semaphore>),
    /// The adaptive limit (its own layer).
    Adaptive(Arc<AdaptiveLimit>),
}

/// Builds `ep`'s delivery stack, outermost first: retry (the policy:
/// schedule, per-type policies, 410, `Retry-After`), pause, rate limit,
/// concurrency, OAuth2, timeout, and the attempt itself. `retry: false`
/// leaves out the retry and pause layers (one attempt: `test`).
pub(crate) fn stack(ep: &Arc<Endpoint>, limit: Option<&Limit>, retry: bool) -> Svc {
    let timeout = ep.settings.timeout;
    let (fixed, adaptive) = match limit {
        Some(Limit::Fixed(s)) => (Some(s.clone()), None),
        Some(Limit::Adaptive(a)) => (None, Some(a.clone())),
        None => (None, None),
    };
    let pressure = ep.state.pressure.clone();
    let rate = ep.rate_limit.clone();
    let waits = ep.state.rate.clone();
    let attempt = ServiceBuilder::new()
        .option_layer(rate.map(|l| layer_fn(move |s| RateLimit::new(s, l.clone(), waits.clone()))))
        .option_layer(fixed.map(GlobalConcurrencyLimitLayer::with_semaphore))
        .option_layer(adaptive.map(|a| layer_fn(move |s| Adaptive::new(s, a.clone()))))
        .option_layer(ep.oauth.clone().map(|source| {
            layer_fn(move |inner| OAuth {
                inner,
                source: source.clone(),
            })
        }))
        .map_result(move |r: Result<Attempt, BoxError>| match r {
            Err(e) if e.is::<Elapsed>() => Ok(Attempt::timed_out(timeout)),
            r => r,
        })
        .layer(TimeoutLayer::new(timeout))
        .service(Post(ep.clone()));
    if !retry {
        return BoxCloneSyncService::new(attempt);
    }
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(RetryLayer::new(Schedule(ep.clone())))
            .layer(layer_fn(move |s| Pause::new(s, pressure.clone())))
            .service(attempt),
    )
}

/// The retry layer's policy (tower's `Retry` runs it): after each attempt
/// it logs it, tells the failure streak, pauses the endpoint on a 429 or
/// 503 with `Retry-After` (the pause layer waits), and decides from the
/// verdict, the attempt's number and the event's policy; a retry is
/// announced on the bus, persisted in a durable subscriber's journal, and
/// waited for holding no token and no slot (the layers inside are polled
/// ready again after).
#[derive(Clone)]
pub(crate) struct Schedule(Arc<Endpoint>);

impl Policy<Request, Attempt, BoxError> for Schedule {
    type Future = futures_util::future::BoxFuture<'static, ()>;

    fn retry(
        &mut self,
        req: &mut Request,
        result: &mut Result<Attempt, BoxError>,
    ) -> Option<Self::Future> {
        let Ok(r) = result else { return None };
        r.number = req.attempt;
        if r.verdict == Verdict::Disabled {
            return None;
        }
        let (ep, events, attempt) = (&self.0, &req.events[..], req.attempt);
        let policy = ep.retry_policy(&events[0]);
        ep.state.pressure.observe(r, policy.max_retry_after);
        let next = decide(r, attempt, policy.max_attempts.max(1), policy);
        log_attempt(ep, events, attempt, r, !matches!(next, Next::Retry(_)));
        note_trouble(ep, events, r, &next);
        let Next::Retry(delay) = next else {
            return None;
        };
        announce_retrying(ep, events, attempt, r, delay);
        if let Some(journal) = &req.journal {
            let at = std::time::SystemTime::now() + delay;
            journal.retrying(
                events,
                Resume {
                    attempt: attempt + 1,
                    at,
                },
            );
        }
        req.attempt += 1;
        let state = ep.state.clone();
        Some(Box::pin(async move {
            let _waiting = Waiting::new(&state.waiting_retry);
            tokio::time::sleep(delay).await;
        }))
    }

    fn clone_request(&mut self, req: &Request) -> Option<Request> {
        Some(req.clone())
    }
}

/// Delivers `events` in one request through `svc` (a stack from
/// [`stack`]), as a task of its own: the HTTP work of many concurrent
/// deliveries then spreads over the runtime's threads instead of being
/// polled from one task (the subscriber's or the caller's). Dropping the
/// returned future (a shutdown deadline passed, the caller gave up) aborts
/// the delivery.
///
/// `ready` says `svc` was polled ready already (it holds its token and
/// slot). While it waits first, for an earlier event of its key (`gate`)
/// or for the rest of a recovered retry's backoff, it holds neither. With
/// a durable subscriber's `journal`, a recovered delivery resumes its
/// schedule (attempt number, the rest of its backoff) and every scheduled
/// retry is persisted.
pub(crate) async fn deliver(
    ep: Arc<Endpoint>,
    events: Arc<[Arc<Event>]>,
    svc: (Svc, bool),
    gate: Option<Gate>,
    journal: Option<Arc<dyn Journal>>,
) -> DeliveryOutcome {
    let delivery = run_delivery(ep.clone(), events.clone(), svc, gate, journal);
    spawned(&ep, &events, delivery).await
}

/// Runs `delivery` as its own task. A panic anywhere in it is caught (as
/// tokio catches a task's): the delivery counts as failed
/// ([`FailureKind::Panic`]) and its events are dead-lettered with the
/// panic's message, so `retry_failed` can send them again.
async fn spawned(
    ep: &Endpoint,
    events: &[Arc<Event>],
    delivery: impl std::future::Future<Output = DeliveryOutcome> + Send + 'static,
) -> DeliveryOutcome {
    let mut task = AbortOnDrop(tokio::spawn(tracing::Instrument::in_current_span(delivery)));
    let panic = match (&mut task.0).await {
        Ok(outcome) => return outcome,
        Err(e) if e.is_panic() => e.into_panic(),
        Err(_) => {
            let error = "webhook delivery was cancelled".to_owned();
            return DeliveryOutcome::failed(FailureKind::Handler, 0, error);
        }
    };
    let error = format!(
        "webhook delivery panicked: {}",
        crate::sink::panic_message(&panic)
    );
    if !events.is_empty() {
        give_up(ep, events, &error, None);
    }
    DeliveryOutcome::failed(FailureKind::Panic, 0, error)
}

async fn run_delivery(
    ep: Arc<Endpoint>,
    events: Arc<[Arc<Event>]>,
    (mut svc, mut ready): (Svc, bool),
    mut gate: Option<Gate>,
    journal: Option<Arc<dyn Journal>>,
) -> DeliveryOutcome {
    let n = events.len() as u64;
    if n == 0 {
        return DeliveryOutcome::skipped();
    }
    if !ep.state.enabled.load(SeqCst) {
        return refuse_disabled(&ep, &events, 0);
    }
    let payload = match ep.build_payload(&events) {
        Ok(p) => p,
        Err(msg) => return template_failed(&ep, &events, msg, true),
    };
    let policy = ep.retry_policy(&events[0]);
    let max = policy.max_attempts.max(1);
    let mut attempt = 1;
    let resume = journal.as_ref().and_then(|j| j.resume(&events[0]));
    let mut backoff_left = None;
    if let Some(resume) = resume {
        // Recovered after a restart with a retry scheduled: wait for what
        // is left of its backoff, then go on counting.
        attempt = resume.attempt.clamp(1, max);
        backoff_left = resume.at.duration_since(std::time::SystemTime::now()).ok();
    }
    if ready && (backoff_left.is_some() || gate.as_ref().is_some_and(Gate::must_wait)) {
        // Waiting sends nothing: the token and the slot go back.
        svc = svc.clone();
        ready = false;
    }
    if let Some(g) = &mut gate {
        g.wait().await;
    }
    if let Some(left) = backoff_left {
        let _waiting = Waiting::new(&ep.state.waiting_retry);
        tokio::time::sleep(left).await;
    }
    if !ready && let Err(e) = svc.ready().await {
        return DeliveryOutcome::failed(FailureKind::Handler, attempt - 1, e.to_string());
    }
    let req = Request {
        events: events.clone(),
        payload: Arc::new(payload),
        attempt,
        journal,
        bearer: None,
        even_disabled: false,
    };
    // Every layer answers with an attempt; an error is a bug of ours.
    let r = svc
        .call(req)
        .await
        .unwrap_or_else(|e| Attempt::refused(e.to_string()));
    drop(gate);
    if r.verdict == Verdict::Disabled {
        return refuse_disabled(&ep, &events, r.number.saturating_sub(1));
    }
    let outcome = |status| DeliveryOutcome::of(status, &r);
    match decide(&r, r.number, r.number, policy) {
        Next::Delivered => {
            ep.state.log.counters.delivered.fetch_add(n, Relaxed);
            ep.state.consecutive_failures.store(0, Relaxed);
            outcome(DeliveryStatus::Delivered)
        }
        Next::GiveUp { kind, message } => {
            if r.verdict == Verdict::Gone {
                ep.disable("the endpoint answered 410 Gone");
            }
            give_up(&ep, &events, &message, r.excerpt.as_deref());
            // The outcome carries the dead-letter message.
            DeliveryOutcome {
                error: Some(message),
                ..outcome(DeliveryStatus::Failed(kind))
            }
        }
        Next::Retry(_) => unreachable!("decide gives up at the last attempt"),
    }
}

/// A template that cannot render: nothing is sent (dead-lettered unless
/// it is a `test`).
fn template_failed(
    ep: &Endpoint,
    events: &[Arc<Event>],
    msg: String,
    dead: bool,
) -> DeliveryOutcome {
    let error = format!("template: {msg}");
    if dead {
        let failed = Attempt::refused(error.clone());
        log_attempt(ep, events, 0, &failed, true);
        give_up(ep, events, &error, None);
    }
    DeliveryOutcome::failed(FailureKind::Permanent, 0, error)
}

/// One attempt, no retry, no dead letter, even while disabled (for
/// `WebhookManager::test`): the stack without its retry and pause layers.
pub(crate) async fn send_once(ep: &Arc<Endpoint>, events: &[Arc<Event>]) -> DeliveryOutcome {
    let payload = match ep.build_payload(events) {
        Ok(p) => p,
        Err(msg) => return template_failed(ep, events, msg, false),
    };
    let req = Request {
        events: events.into(),
        payload: Arc::new(payload),
        attempt: 1,
        journal: None,
        bearer: None,
        even_disabled: true,
    };
    let r = (stack(ep, None, false).oneshot(req).await)
        .unwrap_or_else(|e| Attempt::refused(e.to_string()));
    log_attempt(ep, events, 1, &r, true);
    let status = match r.verdict {
        Verdict::Delivered => DeliveryStatus::Delivered,
        _ => DeliveryStatus::Failed(FailureKind::Permanent),
    };
    DeliveryOutcome::of(status, &Attempt { number: 1, ..r })
}

/// Tells the endpoint's failure streak how the attempt went (the first
/// failure warns, a recovery informs).
fn note_trouble(ep: &Endpoint, events: &[Arc<Event>], r: &Attempt, next: &Next) {
    if let Next::Delivered = next {
        ep.state.trouble.delivered(&ep.name, &ep.display_url);
        return;
    }
    ep.state.trouble.failed(&Failure {
        webhook: &ep.name,
        url: &ep.display_url,
        event_id: events[0].id(),
        answer: r,
        retry_in: match next {
            Next::Retry(d) => Some(*d),
            _ => None,
        },
    });
}

/// Publishes `hookbus.delivery_retrying`: an attempt failed and another
/// is scheduled.
fn announce_retrying(
    ep: &Endpoint,
    events: &[Arc<Event>],
    attempt: u32,
    r: &Attempt,
    delay: Duration,
) {
    if let Some(bus) = ep.state.bus() {
        bus.announce(crate::catalog::bus::DeliveryRetrying {
            webhook: ep.name.clone(),
            url: ep.display_url.clone(),
            event_id: events[0].id().to_owned(),
            event_type: events[0].event_type().to_owned(),
            event_ids: events.iter().map(|e| e.id().to_owned()).collect(),
            attempt,
            next_attempt: attempt + 1,
            retry_in_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            status: r.status,
            error: r.error.clone(),
        });
    }
}

fn refuse_disabled(ep: &Endpoint, events: &[Arc<Event>], attempts: u32) -> DeliveryOutcome {
    ep.state
        .log
        .counters
        .dropped
        .fetch_add(events.len() as u64, Relaxed);
    // Kept with the dead letters, so retry_failed can send them once the
    // endpoint is enabled again.
    ep.state.log.park(events, "endpoint disabled");
    DeliveryOutcome::failed(
        FailureKind::Disabled,
        attempts,
        format!("webhook {:?} is disabled", ep.name),
    )
}

fn give_up(ep: &Endpoint, events: &[Arc<Event>], error: &str, response: Option<&str>) {
    let response = response.map(|r| r.chars().take(200).collect::<String>());
    tracing::warn!(webhook = %ep.name, url = %ep.display_url, event_id = %events[0].id(), events = events.len(), error, response = ?response, "hookbus: webhook delivery dead-lettered");
    ep.state.log.dead_letter(events, error);
    let streak = ep.state.consecutive_failures.fetch_add(1, Relaxed) + 1;
    if let Some(limit) = ep.settings.disable_after
        && streak >= u64::from(limit)
    {
        ep.disable(&format!("{streak} failed deliveries in a row"));
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

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a delivery does after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Next {
    Delivered,
    /// Attempt again after this delay.
    Retry(Duration),
    /// Dead-letter the events with this message.
    GiveUp {
        kind: FailureKind,
        message: String,
    },
}

/// Decides from an attempt's verdict, its number and the policy: the whole
/// retry logic, with no I/O.
fn decide(r: &Attempt, attempt: u32, max: u32, policy: &RetryPolicy) -> Next {
    let error = r.error.as_deref();
    match r.verdict {
        Verdict::Delivered => Next::Delivered,
        Verdict::Disabled => Next::GiveUp {
            kind: FailureKind::Disabled,
            message: "endpoint disabled".to_owned(),
        },
        Verdict::Gone => Next::GiveUp {
            kind: FailureKind::Permanent,
            message: format!(
                "{} (attempt {attempt}); endpoint disabled",
                error.unwrap_or("410 Gone")
            ),
        },
        Verdict::Final => Next::GiveUp {
            kind: FailureKind::Permanent,
            message: format!(
                "{} (attempt {attempt}, not retryable)",
                error.unwrap_or("failed")
            ),
        },
        Verdict::Retry { .. } if attempt >= max => Next::GiveUp {
            kind: FailureKind::Exhausted,
            message: format!("{} after {attempt} attempt(s)", error.unwrap_or("failed")),
        },
        Verdict::Retry { after } => Next::Retry(policy.delay(attempt + 1, after)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_delivery_is_counted_failed_and_dead_lettered() {
        let sink = crate::webhook::WebhookSink::builder("http://127.0.0.1:9/x")
            .build()
            .unwrap();
        let ep = &sink.endpoint;
        let event = Arc::new(Event::new("a.b", serde_json::json!({})).unwrap());
        let outcome = spawned(ep, std::slice::from_ref(&event), async {
            panic!("boom");
        })
        .await;
        assert_eq!(outcome.status, DeliveryStatus::Failed(FailureKind::Panic));
        assert!(outcome.error.as_deref().unwrap().contains("boom"));
        assert_eq!(sink.stats().failed, 1);
        let dead = sink.dead_letters();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].events[0].id(), event.id());
    }

    fn attempt(verdict: Verdict) -> Attempt {
        Attempt {
            verdict,
            status: None,
            latency: Duration::ZERO,
            error: Some("HTTP 503".into()),
            excerpt: None,
            number: 0,
        }
    }

    #[test]
    fn decide_follows_the_verdict_and_the_policy() {
        let policy = RetryPolicy::exponential(3, Duration::from_secs(1), Duration::from_secs(60))
            .with_jitter(0.0);
        assert_eq!(
            decide(&attempt(Verdict::Delivered), 1, 3, &policy),
            Next::Delivered
        );
        assert_eq!(
            decide(&attempt(Verdict::Retry { after: None }), 1, 3, &policy),
            Next::Retry(policy.delay(2, None))
        );
        // Retry-After is honoured.
        let after = Some(Duration::from_secs(30));
        assert_eq!(
            decide(&attempt(Verdict::Retry { after }), 2, 3, &policy),
            Next::Retry(policy.delay(3, after))
        );
        let Next::GiveUp { kind, message } =
            decide(&attempt(Verdict::Retry { after: None }), 3, 3, &policy)
        else {
            panic!("the last attempt gives up");
        };
        assert_eq!(kind, FailureKind::Exhausted);
        assert_eq!(message, "HTTP 503 after 3 attempt(s)");
        let Next::GiveUp { kind, message } = decide(&attempt(Verdict::Final), 1, 3, &policy) else {
            panic!("final");
        };
        assert_eq!(kind, FailureKind::Permanent);
        assert!(message.contains("not retryable"), "{message}");
        let Next::GiveUp { message, .. } = decide(&attempt(Verdict::Gone), 2, 3, &policy) else {
            panic!("gone");
        };
        assert!(
            message.ends_with("(attempt 2); endpoint disabled"),
            "{message}"
        );
    }
}
