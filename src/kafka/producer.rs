//! The engine behind a publisher: the librdkafka producer, delivery
//! tracking, and back-pressure when librdkafka's queue is full.
//!
//! Records are handed to librdkafka in the order `submit` is called, so
//! events with one key keep their order. When the queue is full
//! (`QueueFull`), the rest of the submission waits in a FIFO backlog, and
//! every later submission queues behind it; waiting callers move the backlog
//! forward as delivery reports free room. Nothing is dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::Notify;

use super::message::Encoder;
use crate::event::Event;

/// Upper bounds of the produce-latency buckets of a
/// [`KafkaPublisher`](super::KafkaPublisher), in milliseconds (the last
/// bucket takes everything above).
pub const PRODUCE_LATENCY_BUCKETS_MS: [u64; 14] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000,
];

/// Produce latencies of a [`KafkaPublisher`](super::KafkaPublisher) in
/// buckets, as a Prometheus histogram shows them: for every record, the
/// time from the publisher taking it (including any wait for room in
/// librdkafka's queue) to its delivery report (acknowledged or failed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProduceLatency {
    /// Records at or under each bound of [`PRODUCE_LATENCY_BUCKETS_MS`]
    /// (cumulative, as Prometheus's `le` buckets are).
    pub cumulative: Vec<u64>,
    /// All records with a delivery report (the `+Inf` bucket).
    pub count: u64,
    /// Of `count`: those that failed.
    pub failed: u64,
    /// The sum of their latencies.
    pub sum: Duration,
}

/// The histogram's counters, written from librdkafka's delivery callback.
#[derive(Default)]
pub(crate) struct LatencyCounters {
    /// Per bucket of PRODUCE_LATENCY_BUCKETS_MS, plus one above the last.
    buckets: [AtomicU64; PRODUCE_LATENCY_BUCKETS_MS.len() + 1],
    sum_us: AtomicU64,
    failed: AtomicU64,
}

impl LatencyCounters {
    fn record(&self, latency: Duration, ok: bool) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = PRODUCE_LATENCY_BUCKETS_MS
            .iter()
            .position(|&ms| us <= ms * 1000)
            .unwrap_or(PRODUCE_LATENCY_BUCKETS_MS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> ProduceLatency {
        let mut cumulative = Vec::with_capacity(PRODUCE_LATENCY_BUCKETS_MS.len());
        let mut total = 0;
        for bucket in &self.buckets[..PRODUCE_LATENCY_BUCKETS_MS.len()] {
            total += bucket.load(Ordering::Relaxed);
            cumulative.push(total);
        }
        total += self.buckets[PRODUCE_LATENCY_BUCKETS_MS.len()].load(Ordering::Relaxed);
        ProduceLatency {
            cumulative,
            count: total,
            failed: self.failed.load(Ordering::Relaxed),
            sum: Duration::from_micros(self.sum_us.load(Ordering::Relaxed)),
        }
    }
}

/// How long a waiting submission sleeps at most between two looks at the
/// backlog, in case a wake-up was missed.
const BACKLOG_RECHECK: Duration = Duration::from_millis(100);

/// What became of one submission: the failed records (by index) and, for the
/// first record, where it landed.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) failures: Vec<(usize, RDKafkaErrorCode)>,
    pub(crate) first: Option<(i32, i64)>,
}

/// Tracks the records of one submission until each has a delivery report.
pub(crate) struct Tracker {
    pub(crate) events: Vec<Arc<Event>>,
    /// When the publisher took the submission (its records' latency starts
    /// here).
    submitted: Instant,
    remaining: AtomicUsize,
    enqueued: AtomicBool,
    state: Mutex<Outcome>,
    done: Notify,
}

impl Tracker {
    fn new(events: Vec<Arc<Event>>) -> Arc<Tracker> {
        let n = events.len();
        let tracker = Arc::new(Tracker {
            events,
            submitted: Instant::now(),
            remaining: AtomicUsize::new(n),
            enqueued: AtomicBool::new(n == 0),
            state: Mutex::new(Outcome {
                failures: Vec::new(),
                first: None,
            }),
            done: Notify::new(),
        });
        if n == 0 {
            tracker.done.notify_one();
        }
        tracker
    }

    fn state(&self) -> MutexGuard<'_, Outcome> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn complete(&self, index: usize, result: Result<(i32, i64), RDKafkaErrorCode>) {
        match result {
            Ok(at) if index == 0 => self.state().first = Some(at),
            Ok(_) => {}
            Err(code) => self.state().failures.push((index, code)),
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // `notify_one` keeps a permit if nobody waits yet.
            self.done.notify_one();
        }
    }

    pub(crate) fn is_enqueued(&self) -> bool {
        self.enqueued.load(Ordering::Acquire)
    }

    async fn finished(&self) -> Outcome {
        while self.remaining.load(Ordering::Acquire) > 0 {
            self.done.notified().await;
        }
        let mut state = self.state();
        let mut failures = std::mem::take(&mut state.failures);
        failures.sort_unstable_by_key(|(i, _)| *i);
        Outcome {
            failures,
            first: state.first,
        }
    }
}

/// The delivery opaque: which record of which submission.
pub(crate) struct Delivery {
    index: usize,
    tracker: Arc<Tracker>,
}

/// Signals shared between the producer's context (its polling thread) and
/// submitters.
#[derive(Default)]
pub(crate) struct Signals {
    /// Woken after a delivery report while the backlog is non-empty.
    room: Notify,
    /// Whether the backlog holds anything (checked without its lock).
    congested: AtomicBool,
    /// The last client-wide error librdkafka reported (e.g. a refused
    /// connection), for healthcheck messages.
    last_error: Mutex<Option<String>>,
    /// Produce latencies, from the delivery reports.
    pub(crate) latency: LatencyCounters,
}

impl Signals {
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The producer's context: routes delivery reports to their trackers and
/// librdkafka's logs to `tracing`.
/// librdkafka's log line (already redacted) as a `tracing` event at the
/// matching level, target `librdkafka`: for every client context.
pub(crate) fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}

pub(crate) struct Context {
    signals: Arc<Signals>,
    redact: Box<dyn Fn(&str) -> String + Send + Sync>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let message = (self.redact)(message);
        log(level, fac, &message);
    }

    fn error(&self, error: RdError, reason: &str) {
        let reason = (self.redact)(reason);
        tracing::warn!(target: "librdkafka", %error, "{reason}");
        *self
            .signals
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, delivery: Box<Delivery>) {
        let outcome = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(code_of(e)),
        };
        self.signals
            .latency
            .record(delivery.tracker.submitted.elapsed(), outcome.is_ok());
        delivery.tracker.complete(delivery.index, outcome);
        if self.signals.congested.load(Ordering::Relaxed) {
            self.signals.room.notify_waiters();
        }
    }
}

pub(crate) fn code_of(e: &RdError) -> RDKafkaErrorCode {
    e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)
}

/// A submission not yet fully handed to librdkafka.
struct Job {
    tracker: Arc<Tracker>,
    next: usize,
}

/// One librdkafka producer for one topic.
pub(crate) struct Engine {
    producer: ThreadedProducer<Context>,
    topic: Arc<str>,
    encoder: Encoder,
    backlog: Mutex<VecDeque<Job>>,
    signals: Arc<Signals>,
    drop_flush: Duration,
}

impl Engine {
    pub(crate) fn new(
        config: &rdkafka::ClientConfig,
        topic: Arc<str>,
        encoder: Encoder,
        drop_flush: Duration,
        redact: Box<dyn Fn(&str) -> String + Send + Sync>,
    ) -> Result<Engine, RdError> {
        let signals = Arc::new(Signals::default());
        let producer = config.create_with_context(Context {
            signals: signals.clone(),
            redact,
        })?;
        Ok(Engine {
            producer,
            topic,
            encoder,
            backlog: Mutex::new(VecDeque::new()),
            signals,
            drop_flush,
        })
    }

    pub(crate) fn producer(&self) -> &ThreadedProducer<Context> {
        &self.producer
    }

    pub(crate) fn signals(&self) -> &Signals {
        &self.signals
    }

    fn backlog(&self) -> MutexGuard<'_, VecDeque<Job>> {
        self.backlog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `events` to librdkafka, in order, without waiting. What does
    /// not fit now waits in the backlog.
    pub(crate) fn submit(&self, events: Vec<Arc<Event>>) -> Arc<Tracker> {
        let tracker = Tracker::new(events);
        let mut job = Job {
            tracker: tracker.clone(),
            next: 0,
        };
        let mut backlog = self.backlog();
        if backlog.is_empty() && self.produce(&mut job) {
            return tracker;
        }
        backlog.push_back(job);
        self.signals.congested.store(true, Ordering::Relaxed);
        tracker
    }

    /// Produces the job's records from where it stopped; `true` once all are
    /// handed over, `false` when librdkafka's queue is full.
    fn produce(&self, job: &mut Job) -> bool {
        let events = &job.tracker.events;
        while job.next < events.len() {
            let event = &events[job.next];
            let key = self.encoder.key.key_of(event);
            let value = self.encoder.value(event);
            let record = BaseRecord::with_opaque_to(
                &self.topic,
                Box::new(Delivery {
                    index: job.next,
                    tracker: job.tracker.clone(),
                }),
            )
            .key(&*key)
            .payload(&value[..])
            .headers(self.encoder.headers(event));
            match self.producer.send(record) {
                Ok(()) => {}
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => return false,
                // Refused outright (e.g. larger than message.max.bytes).
                Err((e, _)) => {
                    self.signals
                        .latency
                        .record(job.tracker.submitted.elapsed(), false);
                    job.tracker.complete(job.next, Err(code_of(&e)));
                }
            }
            job.next += 1;
        }
        job.tracker.enqueued.store(true, Ordering::Release);
        true
    }

    /// Moves the backlog forward as far as librdkafka's queue allows.
    fn drain(&self) {
        let mut backlog = self.backlog();
        while let Some(front) = backlog.front_mut() {
            if !self.produce(front) {
                return;
            }
            backlog.pop_front();
        }
        self.signals.congested.store(false, Ordering::Relaxed);
    }

    /// Waits until every record of the submission has a delivery report.
    pub(crate) async fn wait(&self, tracker: &Tracker) -> Outcome {
        while !tracker.is_enqueued() {
            let room = self.signals.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            self.drain();
            if tracker.is_enqueued() {
                break;
            }
            let _ = tokio::time::timeout(BACKLOG_RECHECK, room).await;
        }
        tracker.finished().await
    }

    /// Records not yet delivered: in librdkafka's queue or in the backlog.
    pub(crate) fn unflushed(&self) -> u64 {
        let backlog: usize = self
            .backlog()
            .iter()
            .map(|j| j.tracker.events.len() - j.next)
            .sum();
        self.producer.in_flight_count().max(0) as u64 + backlog as u64
    }

    /// Blocks until everything is delivered or `timeout` passes; returns how
    /// many records are still undelivered.
    pub(crate) fn flush_blocking(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            let remaining = deadline.saturating_duration_since(Instant::now());
            let backlog_empty = self.backlog().is_empty();
            if backlog_empty {
                let _ = self.producer.flush(remaining);
                break;
            }
            if remaining.is_zero() {
                break;
            }
            // Let deliveries free room for the backlog.
            let _ = self.producer.flush(remaining.min(BACKLOG_RECHECK));
        }
        self.unflushed()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // librdkafka purges whatever is still queued when the producer is
        // destroyed: deliver it first, within `drop_flush`, and say so loudly
        // if that is not enough.
        if self.unflushed() == 0 {
            return;
        }
        let left = self.flush_blocking(self.drop_flush);
        if left > 0 {
            tracing::error!(
                topic = %self.topic,
                unflushed = left,
                "hookbus: Kafka publisher dropped with undelivered messages after flushing for {:?}; \
                 they are lost. Call close() (or shut the bus down) before dropping it",
                self.drop_flush
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_cumulative_buckets_with_a_sum_and_a_count() {
        let counters = LatencyCounters::default();
        counters.record(Duration::from_micros(1_000), true); // le 1 ms (inclusive)
        counters.record(Duration::from_micros(1_001), true); // le 2 ms
        counters.record(Duration::from_millis(40), false); // le 50 ms
        counters.record(Duration::from_secs(60), true); // above the last bound
        let h = counters.snapshot();
        assert_eq!(h.cumulative.len(), PRODUCE_LATENCY_BUCKETS_MS.len());
        assert_eq!(&h.cumulative[..6], &[1, 2, 2, 2, 2, 3]);
        assert_eq!(*h.cumulative.last().unwrap(), 3);
        assert_eq!((h.count, h.failed), (4, 1));
        assert_eq!(
            h.sum,
            Duration::from_micros(1_000 + 1_001 + 40_000 + 60_000_000)
        );
    }
}
