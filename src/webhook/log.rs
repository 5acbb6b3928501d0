//! The delivery log: every attempt of an endpoint (bounded), the dead letters
//! (bounded) and the counters behind [`WebhookStats`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use crate::event::Event;

/// Attempts kept per endpoint by default.
pub const DEFAULT_LOG_CAPACITY: usize = 1000;
/// Dead-lettered deliveries kept per endpoint by default.
pub const DEFAULT_DEAD_LETTER_CAPACITY: usize = 10_000;

/// One delivery attempt, as [`WebhookManager::deliveries`](super::WebhookManager::deliveries) lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryAttempt {
    /// When the attempt ended.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The (first) event id.
    pub event_id: String,
    /// The (first) event type.
    pub event_type: String,
    /// Events carried by the request.
    pub events: usize,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Whether the endpoint accepted it (2xx).
    pub success: bool,
    /// Whether this was the last attempt for these events.
    pub last: bool,
    /// The HTTP status, if a response came.
    pub status_code: Option<u16>,
    /// Time from sending to the response head (or the error).
    pub latency: Duration,
    /// What went wrong, if anything (never contains secrets).
    pub error: Option<String>,
    /// The start of the response body (up to 512 bytes).
    pub response_excerpt: Option<String>,
}

/// Events whose delivery was given up, kept for
/// [`retry_failed`](super::WebhookManager::retry_failed).
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// When it was given up.
    pub time: OffsetDateTime,
    /// The events of the failed request.
    pub events: Vec<Arc<Event>>,
    /// The last error.
    pub error: String,
}

/// Counters of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WebhookStats {
    /// Events delivered (2xx).
    pub delivered: u64,
    /// Events dead-lettered (retries exhausted or a final error).
    pub failed: u64,
    /// Retry attempts made (attempts after the first).
    pub retried: u64,
    /// Events refused because the endpoint was disabled, plus events the
    /// subscriber's mailbox dropped (when attached to a bus).
    pub dropped: u64,
    /// HTTP requests made.
    pub attempts: u64,
    /// Median latency of recent attempts.
    pub p50_latency: Option<Duration>,
    /// 99th percentile latency of recent attempts.
    pub p99_latency: Option<Duration>,
    /// Failed deliveries in a row now.
    pub consecutive_failures: u64,
    /// While the endpoint's attempts fail: when the first failed attempt of
    /// the streak ended (the first one logs at `warn`); `None` once an
    /// attempt succeeds again (logged once at `info`). Each retry scheduled
    /// meanwhile is also announced on the bus as `hookbus.delivery_retrying`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    /// Deliveries sleeping out a retry backoff now (they hold no sending
    /// slot: see [`WebhookBuilder::retry_capacity`](super::WebhookBuilder::retry_capacity)).
    /// Not counted: one whose backoff is over and that waits for a free
    /// slot, or one waiting behind an earlier event of its key.
    pub waiting_retry: u64,
    /// Deliveries (and retries) waiting for a token of the endpoint's
    /// [`rate_limit`](super::WebhookBuilder::rate_limit) now. A bus
    /// subscription waits for one delivery's token at a time, holding no
    /// sending slot; the events behind it wait in its mailbox.
    pub waiting_rate_limit: u64,
    /// Requests that had to wait for a rate-limit token, since the start.
    pub rate_limited: u64,
    /// The in-flight limit of the endpoint's bus subscription now, with
    /// [`adaptive_concurrency`](super::WebhookBuilder::adaptive_concurrency)
    /// (between 1 and `concurrency`); `None` without.
    pub concurrency_limit: Option<usize>,
    /// While the endpoint is paused after a 429 or 503 with `Retry-After`:
    /// when the pause ends. None of its deliveries is sent before then.
    #[serde(with = "time::serde::rfc3339::option")]
    pub paused_until: Option<OffsetDateTime>,
    /// Whether the endpoint is enabled.
    pub enabled: bool,
    /// Why it is disabled, while it is: "disabled by the user", "the
    /// endpoint answered 410 Gone", "50 failed deliveries in a row"...
    pub disabled_reason: Option<String>,
    /// Dead letters kept now (what
    /// [`retry_failed`](super::WebhookManager::retry_failed) would send).
    pub dead_letters: u64,
    /// HTTP attempts by how they ended, since the start.
    pub attempts_by_class: AttemptClasses,
    /// The latency of every attempt since the start, in buckets.
    pub latency: LatencyHistogram,
}

/// HTTP attempts by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AttemptClasses {
    /// 2xx.
    pub success: u64,
    /// 3xx (not followed).
    pub redirect: u64,
    /// 4xx.
    pub client_error: u64,
    /// 5xx.
    pub server_error: u64,
    /// No response: a timeout, a failed connection, a refused address.
    pub no_response: u64,
}

/// Upper bounds of the latency buckets, in milliseconds (the last bucket
/// takes everything above).
pub const LATENCY_BUCKETS_MS: [u64; 11] =
    [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/// Attempt latencies in buckets, as a Prometheus histogram shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LatencyHistogram {
    /// Attempts at or under each bound of [`LATENCY_BUCKETS_MS`]
    /// (cumulative, as Prometheus's `le` buckets are).
    pub cumulative: Vec<u64>,
    /// All attempts (the `+Inf` bucket).
    pub count: u64,
    /// The sum of their latencies.
    pub sum: Duration,
}

const LATENCY_WINDOW: usize = 1024;

/// The attempt log and the latency window, under one lock (one lock per
/// attempt on the hot path).
#[derive(Debug, Default)]
struct Recent {
    attempts: VecDeque<DeliveryAttempt>,
    latencies: VecDeque<Duration>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) delivered: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) attempts: AtomicU64,
    /// 2xx, 3xx, 4xx, 5xx, no response.
    by_class: [AtomicU64; 5],
    /// Per bucket of LATENCY_BUCKETS_MS, plus one above the last.
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    latency_sum_us: AtomicU64,
}

impl Counters {
    pub(crate) fn classes(&self) -> AttemptClasses {
        let c = |i: usize| self.by_class[i].load(Relaxed);
        AttemptClasses {
            success: c(0),
            redirect: c(1),
            client_error: c(2),
            server_error: c(3),
            no_response: c(4),
        }
    }

    pub(crate) fn latency(&self) -> LatencyHistogram {
        let mut cumulative = Vec::with_capacity(LATENCY_BUCKETS_MS.len());
        let mut total = 0;
        for bucket in &self.latency_buckets[..LATENCY_BUCKETS_MS.len()] {
            total += bucket.load(Relaxed);
            cumulative.push(total);
        }
        total += self.latency_buckets[LATENCY_BUCKETS_MS.len()].load(Relaxed);
        LatencyHistogram {
            cumulative,
            count: total,
            sum: Duration::from_micros(self.latency_sum_us.load(Relaxed)),
        }
    }
}

/// The log of one endpoint. Shared by its sink, its emitter and the manager.
#[derive(Debug)]
pub(crate) struct DeliveryLog {
    recent: Mutex<Recent>,
    dead: Mutex<VecDeque<DeadLetter>>,
    /// Attempts kept.
    pub(crate) capacity: usize,
    /// Dead letters kept.
    pub(crate) dead_capacity: usize,
    pub(crate) counters: Counters,
}

impl DeliveryLog {
    pub(crate) fn new(capacity: usize, dead_capacity: usize) -> DeliveryLog {
        DeliveryLog {
            recent: Mutex::new(Recent::default()),
            dead: Mutex::new(VecDeque::new()),
            capacity,
            dead_capacity,
            counters: Counters::default(),
        }
    }

    /// Puts attempts read back from a store into the log (oldest first),
    /// without counting them again.
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) fn restore_attempts(&self, attempts: Vec<DeliveryAttempt>) {
        let mut r = lock(&self.recent);
        for attempt in attempts {
            push_bounded(&mut r.attempts, self.capacity, attempt);
        }
    }

    pub(crate) fn record(&self, attempt: DeliveryAttempt) {
        self.counters.attempts.fetch_add(1, Relaxed);
        let class = match attempt.status_code {
            Some(200..=299) => 0,
            Some(300..=399) => 1,
            Some(400..=499) => 2,
            Some(_) => 3,
            None => 4,
        };
        self.counters.by_class[class].fetch_add(1, Relaxed);
        let ms = attempt.latency.as_millis() as u64;
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.counters.latency_buckets[bucket].fetch_add(1, Relaxed);
        self.counters
            .latency_sum_us
            .fetch_add(attempt.latency.as_micros() as u64, Relaxed);
        if attempt.attempt > 1 {
            self.counters.retried.fetch_add(1, Relaxed);
        }
        let mut r = lock(&self.recent);
        push_bounded(&mut r.latencies, LATENCY_WINDOW, attempt.latency);
        push_bounded(&mut r.attempts, self.capacity, attempt);
    }

    /// Counts the events as failed and keeps them for `retry_failed`.
    pub(crate) fn dead_letter(&self, events: &[Arc<Event>], error: &str) {
        self.counters.failed.fetch_add(events.len() as u64, Relaxed);
        self.park(events, error);
    }

    /// Keeps events that were refused (endpoint disabled) for a later retry,
    /// without counting them as failed.
    pub(crate) fn park(&self, events: &[Arc<Event>], reason: &str) {
        let letter = DeadLetter {
            time: OffsetDateTime::now_utc(),
            events: events.to_vec(),
            error: reason.to_owned(),
        };
        push_bounded(&mut lock(&self.dead), self.dead_capacity, letter);
    }

    /// Puts back dead letters taken with [`take_dead_since`](Self::take_dead_since)
    /// and not finished, in front (they are the oldest); past the capacity
    /// the oldest are dropped, as for new dead letters.
    pub(crate) fn restore(&self, letters: Vec<DeadLetter>) {
        if letters.is_empty() || self.dead_capacity == 0 {
            return;
        }
        let mut d = lock(&self.dead);
        for letter in letters.into_iter().rev() {
            if d.len() == self.dead_capacity {
                break;
            }
            d.push_front(letter);
        }
    }

    /// The newest `limit` attempts, newest first.
    pub(crate) fn recent(&self, limit: usize) -> Vec<DeliveryAttempt> {
        lock(&self.recent)
            .attempts
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }

    /// Takes the dead letters recorded at or after `since`.
    pub(crate) fn take_dead_since(&self, since: OffsetDateTime) -> Vec<DeadLetter> {
        let mut d = lock(&self.dead);
        let (keep, take): (VecDeque<_>, VecDeque<_>) = d.drain(..).partition(|x| x.time < since);
        *d = keep;
        take.into()
    }

    pub(crate) fn dead_letter_count(&self) -> u64 {
        lock(&self.dead).len() as u64
    }

    /// The dead letters now, oldest first.
    pub(crate) fn dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.dead).iter().cloned().collect()
    }

    pub(crate) fn latency_percentiles(&self) -> (Option<Duration>, Option<Duration>) {
        let mut v: Vec<Duration> = lock(&self.recent).latencies.iter().copied().collect();
        if v.is_empty() {
            return (None, None);
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        (Some(at(0.5)), Some(at(0.99)))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Appends `item`, dropping the oldest past `capacity` (0 keeps nothing).
fn push_bounded<T>(queue: &mut VecDeque<T>, capacity: usize, item: T) {
    if capacity == 0 {
        return;
    }
    if queue.len() == capacity {
        queue.pop_front();
    }
    queue.push_back(item);
}
