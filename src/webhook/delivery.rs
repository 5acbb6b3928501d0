//! One delivery: prepare the request, attempt it, decide (delivered, retry
//! after a delay, or give up), as many times as the retry policy allows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use time::OffsetDateTime;

use super::attempt::{Attempt, Verdict};
use super::endpoint::Endpoint;
use super::log::DeliveryAttempt;
use super::retry::RetryPolicy;
use super::slots::Slot;
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
    /// Not sent: the event is not subscribed or the condition/filter said no.
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
            attempts: 0,
            status_code: None,
            latency: Duration::ZERO,
            error: None,
            response_excerpt: None,
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

/// Delivers `events` in one request, retrying as the policy says. With a
/// `slot`, each attempt first takes a sending slot, and the wait between
/// attempts gives it back. With a rate limit, each attempt first takes a
/// token (before its slot), except a first attempt whose token the
/// subscription took already (`token_taken`).
///
/// With a durable subscriber's `journal`, a recovered delivery resumes
/// its schedule (attempt number, the rest of its backoff) and every
/// scheduled retry is persisted.
///
/// A panic anywhere in it is caught: the delivery counts as failed
/// ([`FailureKind::Panic`]) and its events are dead-lettered, so
/// `retry_failed` can send them again.
pub(crate) async fn deliver(
    ep: &Endpoint,
    events: &[Arc<Event>],
    slot: Option<&mut Slot>,
    token_taken: bool,
    journal: Option<&dyn Journal>,
) -> DeliveryOutcome {
    contain_panic(
        ep,
        events,
        run_delivery(ep, events, slot, token_taken, journal),
    )
    .await
}

/// Runs `delivery`; if it panics, the events are dead-lettered (and
/// counted as failed) with the panic's message.
pub(crate) async fn contain_panic(
    ep: &Endpoint,
    events: &[Arc<Event>],
    delivery: impl std::future::Future<Output = DeliveryOutcome>,
) -> DeliveryOutcome {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(delivery).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".to_owned());
            let error = format!("webhook delivery panicked: {what}");
            if !events.is_empty() {
                give_up(ep, events, &error, None);
            }
            DeliveryOutcome::failed(FailureKind::Panic, 0, error)
        }
    }
}

async fn run_delivery(
    ep: &Endpoint,
    events: &[Arc<Event>],
    mut slot: Option<&mut Slot>,
    mut token_taken: bool,
    journal: Option<&dyn Journal>,
) -> DeliveryOutcome {
    let n = events.len() as u64;
    if n == 0 {
        return DeliveryOutcome::skipped();
    }
    if !ep.state.enabled.load(SeqCst) {
        return refuse_disabled(ep, events, 0);
    }
    let payload = match ep.build_payload(events) {
        Ok(p) => p,
        Err(msg) => {
            let error = format!("template: {msg}");
            ep.state.log.record(DeliveryAttempt {
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
            give_up(ep, events, &error, None);
            return DeliveryOutcome::failed(FailureKind::Permanent, 0, error);
        }
    };
    let policy = ep.retry_policy(&events[0]);
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
            let _waiting = Waiting::new(&ep.state.waiting_retry);
            tokio::time::sleep(left).await;
        }
    }
    loop {
        // A Retry-After paused the whole endpoint: no slot meanwhile.
        wait_if_paused(ep, slot.as_deref_mut()).await;
        if let Some(limiter) = &ep.rate_limit
            && !std::mem::take(&mut token_taken)
        {
            // Waiting for a token sends nothing: no slot meanwhile.
            if let Some(slot) = slot.as_deref_mut() {
                slot.release();
            }
            limiter.acquire(&ep.state.rate).await;
        }
        if let Some(slot) = slot.as_deref_mut() {
            slot.take().await;
        }
        // Checked again after any wait: the endpoint may have been
        // disabled meanwhile.
        if !ep.state.enabled.load(SeqCst) {
            return refuse_disabled(ep, events, attempt - 1);
        }
        let r = ep.attempt(&payload).await;
        feedback(ep, slot.as_deref(), &r, policy);
        let next = decide(&r, attempt, max, policy);
        log_attempt(ep, events, attempt, &r, !matches!(next, Next::Retry(_)));
        note_trouble(ep, events, attempt, &r, &next);
        let outcome = |status| DeliveryOutcome {
            status,
            attempts: attempt,
            status_code: r.status,
            latency: r.latency,
            error: r.error.clone(),
            response_excerpt: r.excerpt.clone(),
        };
        match next {
            Next::Delivered => {
                ep.state.log.counters.delivered.fetch_add(n, Relaxed);
                ep.state.consecutive_failures.store(0, Relaxed);
                return outcome(DeliveryStatus::Delivered);
            }
            Next::GiveUp { kind, message } => {
                if r.verdict == Verdict::Gone {
                    ep.disable("the endpoint answered 410 Gone");
                }
                give_up(ep, events, &message, r.excerpt.as_deref());
                // The outcome carries the dead-letter message.
                return DeliveryOutcome {
                    error: Some(message),
                    ..outcome(DeliveryStatus::Failed(kind))
                };
            }
            Next::Retry(delay) => {
                announce_retrying(ep, events, attempt, &r, delay);
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
                let _waiting = Waiting::new(&ep.state.waiting_retry);
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

/// One attempt, no retry, no dead letter (for `WebhookManager::test`).
pub(crate) async fn send_once(ep: &Endpoint, events: &[Arc<Event>]) -> DeliveryOutcome {
    if let Some(limiter) = &ep.rate_limit {
        limiter.acquire(&ep.state.rate).await;
    }
    let payload = match ep.build_payload(events) {
        Ok(p) => p,
        Err(msg) => {
            return DeliveryOutcome::failed(FailureKind::Permanent, 0, format!("template: {msg}"));
        }
    };
    let r = ep.attempt(&payload).await;
    log_attempt(ep, events, 1, &r, true);
    DeliveryOutcome {
        status: if r.verdict == Verdict::Delivered {
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

/// Tells the endpoint's failure streak how the attempt went (the first
/// failure warns, a recovery informs).
fn note_trouble(ep: &Endpoint, events: &[Arc<Event>], attempt: u32, r: &Attempt, next: &Next) {
    if let Next::Delivered = next {
        ep.state.trouble.delivered(&ep.name, &ep.display_url);
        return;
    }
    ep.state.trouble.failed(&Failure {
        webhook: &ep.name,
        url: &ep.display_url,
        event_id: events[0].id(),
        attempt,
        status: r.status,
        error: r.error.as_deref(),
        excerpt: r.excerpt.as_deref(),
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
    if let Some(limit) = ep.disable_after
        && streak >= u64::from(limit)
    {
        ep.disable(&format!("{streak} failed deliveries in a row"));
    }
}

/// After each attempt: tells the adaptive limit (through the slot), and
/// pauses the endpoint on a 429 or 503 with `Retry-After` (at most the
/// policy's `max_retry_after`).
pub(crate) fn feedback(ep: &Endpoint, slot: Option<&Slot>, r: &Attempt, policy: &RetryPolicy) {
    if let Some(slot) = slot {
        slot.feedback(r);
    }
    if let (Verdict::Retry { after: Some(after) }, Some(429 | 503)) = (r.verdict, r.status)
        && !after.is_zero()
    {
        let after = policy.retry_after(after);
        tracing::debug!(webhook = %ep.name, ?after, "hookbus: webhook endpoint paused (Retry-After)");
        ep.state.pressure.pause(after);
    }
}

/// Waits while the endpoint is paused, without a sending slot.
pub(crate) async fn wait_if_paused(ep: &Endpoint, mut slot: Option<&mut Slot>) {
    while let Some(until) = ep.state.pressure.paused_until() {
        if let Some(slot) = slot.as_deref_mut() {
            slot.release();
        }
        tokio::time::sleep_until(until).await;
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
pub(crate) async fn spawn_delivery(
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
        let outcome = contain_panic(ep, std::slice::from_ref(&event), async {
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
