//! Kafka through librdkafka (the `kafka` feature): the subscriber that
//! publishes events to a topic, [`KafkaPublisher`], and the [`source`] that
//! reads them back into a bus in a consumer group, [`KafkaSource`].
//!
//! A [`KafkaPublisher`] is used two ways: directly, where
//! [`emit`](KafkaPublisher::emit) waits for the broker's acknowledgement and
//! returns where the record landed; or as a bus subscriber
//! ([`Sink`]), where the bus's pattern, condition, mailbox, batching and
//! concurrency apply as for any subscriber and delivery reports feed the
//! subscriber's stats.
//!
//! ```no_run
//! use hookbus::kafka::KafkaPublisher;
//! use hookbus::{Bus, Event};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let publisher = KafkaPublisher::new(["kafka-1:9092", "kafka-2:9092"], "ai-decisions")?;
//! publisher.healthcheck(Duration::from_secs(5)).await?; // fails clearly if unreachable
//!
//! // Directly: waits for the broker's acknowledgement.
//! let event = Event::new("decision.captured", json!({"decision_id": "abc123"}))?;
//! let report = publisher.emit(&event).await?;
//! println!("partition {} offset {}", report.partition, report.offset);
//!
//! // As a subscriber: every decision event goes to the topic, keyed by decision_id.
//! let bus = Bus::new()?;
//! bus.subscriber("decision.**")
//!     .name("kafka")
//!     .options(KafkaPublisher::recommended_options())
//!     .sink(publisher.clone())?
//!     .detach();
//! bus.emit(Event::new("decision.captured", json!({"decision_id": "abc124"}))?)?;
//!
//! // Flushes within the deadline; the report says how many were left unflushed.
//! let report = bus.shutdown(Duration::from_secs(30)).await;
//! assert!(report.is_clean());
//! # Ok(()) }
//! ```
//!
//! # Records
//!
//! Records follow the CloudEvents Kafka binding ([`Mode::Binary`] by default,
//! [`Mode::Structured`] as an option; see the [`message`] module). The key is
//! the payload's `decision_id` by default, so all events of one decision
//! land on one partition in order; [`KeyStrategy`] picks another field, the
//! `partitionkey` extension, the event id or a closure, and any event
//! without a key is keyed by its id.
//!
//! # No loss by default
//!
//! - `acks=all`, `enable.idempotence=true` (no duplicates from retries, order
//!   kept per partition) and `compression.type=lz4`, unless you set otherwise.
//! - When librdkafka's queue is full, sends wait for deliveries to free room
//!   (back-pressure that reaches the subscriber's mailbox, and with
//!   [`OverflowPolicy::Block`] the emitters);
//!   a message is never dropped for lack of room.
//! - A delivery that fails counts as failed in the subscriber's stats and is
//!   published on the bus as `hookbus.delivery_failed` with the event ids and
//!   the reason: kind `permanent error` for errors retrying cannot fix
//!   (message too large, unknown topic, authorisation), `retries exhausted`
//!   when librdkafka gave up after `message.timeout.ms` (librdkafka's default
//!   is 300 000 ms; unreachable brokers fail deliveries then, they never
//!   hang). Only the records that failed are counted as failed. Note that a
//!   timed-out message may still have been written by the broker.
//! - [`Bus::shutdown`](crate::Bus::shutdown) flushes within its deadline and
//!   reports what is still unflushed in
//!   [`SubscriberReport::unflushed`](crate::SubscriberReport::unflushed);
//!   [`flush`](KafkaPublisher::flush) does the same directly.
//! - Dropping the last handle of a publisher with messages still queued
//!   delivers them first (for up to [`drop_flush_timeout`](KafkaPublisherBuilder::drop_flush_timeout),
//!   30 s by default; on Tokio's blocking pool when dropped inside a
//!   runtime, else on the dropping thread) before librdkafka would purge
//!   them, and logs an error with the count if some are still undelivered.
//!
//! # Bad input
//!
//! Broker lists, topic names and every librdkafka setting are checked when
//! the publisher is built: an unknown property, a bad value or a setting that
//! conflicts with idempotence is a [`KafkaError`] then, not at the first
//! send. The librdkafka producer itself is created on the first send (or
//! [`healthcheck`](KafkaPublisher::healthcheck)). Secret settings
//! (`sasl.password`, `ssl.key.pem`, tokens…) never appear in `Debug` output
//! or error messages.

pub mod config;
pub mod error;
pub mod message;
mod producer;
pub mod source;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use config::IntoBrokers;
pub use error::KafkaError;
pub use message::{DecodeError, KeyStrategy, Mode};
pub use producer::{PRODUCE_LATENCY_BUCKETS_MS, ProduceLatency};
/// The rdkafka crate this module is built on (for its error codes and, in
/// tests, consumers).
pub use rdkafka;
pub use source::{
    FROM_KAFKA_EXTENSION, ForeignRecord, KafkaSource, KafkaSourceBuilder, PartitionStats,
    SourceStats,
};

use rdkafka::ClientConfig;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;

use crate::event::Event;
use crate::sink::{Batch, BoxFuture, DeliveryError, FailureKind, Sink, SinkFuture};
use crate::subscriber::{BatchConfig, OverflowPolicy, SubscriberOptions};
use config::Settings;
use message::Encoder;
use producer::{Engine, Outcome};

/// How long dropping a publisher waits, by default, for queued messages.
pub const DEFAULT_DROP_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Properties hookbus sets unless the user sets them: no loss, no
/// duplicates, compressed.
const DEFAULTS: [(&str, &str); 4] = [
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("compression.type", "lz4"),
    ("client.id", "hookbus"),
];

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryReport {
    /// The partition.
    pub partition: i32,
    /// The record's offset in that partition.
    pub offset: i64,
}

/// Publishes events to one Kafka topic. Cheap to clone (all clones share one
/// producer); see the [module docs](self).
#[derive(Clone)]
pub struct KafkaPublisher {
    inner: Arc<Inner>,
}

struct Inner {
    brokers: String,
    topic: Arc<str>,
    settings: Settings,
    config: ClientConfig,
    encoder: Encoder,
    drop_flush: Duration,
    republish_from_kafka: bool,
    skipped_from_kafka: AtomicU64,
    engine: OnceLock<Arc<Engine>>,
    creating: Mutex<()>,
}

impl fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("KafkaPublisher")
            .field("brokers", &i.brokers)
            .field("topic", &i.topic)
            .field("mode", &i.encoder.mode)
            .field("key", &i.encoder.key)
            .field("settings", &i.settings)
            .field("republish_from_kafka", &i.republish_from_kafka)
            .field("producer_created", &i.engine.get().is_some())
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let Some(engine) = self.engine.take() else {
            return;
        };
        if engine.unflushed() == 0 {
            return;
        }
        // Dropping the engine blocks until its queue is delivered (or
        // `drop_flush` passes). Inside a Tokio runtime, do that on the
        // blocking pool rather than stalling a runtime thread; the runtime
        // waits for it before it shuts down.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || drop(engine))),
            Err(_) => drop(engine),
        }
    }
}

/// Builds a [`KafkaPublisher`]; see [`KafkaPublisher::builder`].
#[derive(Clone)]
#[must_use]
pub struct KafkaPublisherBuilder {
    brokers: Vec<String>,
    topic: String,
    settings: Settings,
    encoder: Encoder,
    drop_flush: Duration,
    republish_from_kafka: bool,
}

impl fmt::Debug for KafkaPublisherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaPublisherBuilder")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("mode", &self.encoder.mode)
            .field("key", &self.encoder.key)
            .field("settings", &self.settings)
            .field("republish_from_kafka", &self.republish_from_kafka)
            .finish()
    }
}

impl KafkaPublisherBuilder {
    /// Sets a librdkafka producer property (see librdkafka's
    /// `CONFIGURATION.md`), e.g. `linger.ms`, `message.timeout.ms`,
    /// `security.protocol`, `sasl.username`, `sasl.password`. It overrides
    /// hookbus's defaults (`acks=all`, `enable.idempotence=true`,
    /// `compression.type=lz4`). Checked in [`build`](Self::build).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.set(key.into(), value.into());
        self
    }

    /// How the record key is chosen (default: the payload's `decision_id`).
    pub fn key(mut self, key: KeyStrategy) -> Self {
        self.encoder.key = key;
        self
    }

    /// Binary (default) or structured CloudEvents mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.encoder.mode = mode;
        self
    }

    /// How long dropping the last handle blocks to deliver queued messages
    /// before librdkafka purges them (default
    /// [`DEFAULT_DROP_FLUSH_TIMEOUT`]).
    pub fn drop_flush_timeout(mut self, timeout: Duration) -> Self {
        self.drop_flush = timeout;
        self
    }

    /// Whether, as a bus subscriber, the publisher also publishes events
    /// that came from Kafka (those carrying the [`FROM_KAFKA_EXTENSION`]
    /// extension a [`KafkaSource`] adds). Default `false`: a source and a
    /// publisher on one bus do not feed each other in a loop. Skipped
    /// events count as delivered in the subscriber's stats and in
    /// [`KafkaPublisher::skipped_from_kafka`]. [`KafkaPublisher::emit`]
    /// always publishes.
    pub fn republish_from_kafka(mut self, republish: bool) -> Self {
        self.republish_from_kafka = republish;
        self
    }

    /// Checks everything and builds the publisher. The librdkafka producer
    /// is created on the first send.
    pub fn build(self) -> Result<KafkaPublisher, KafkaError> {
        config::validate_brokers(&self.brokers)?;
        config::validate_topic(&self.topic)?;
        self.encoder.key.validate()?;
        let settings = self.settings;
        let config_error = |key: &str, reason: String| KafkaError::Config {
            key: key.to_owned(),
            reason: settings.redact(&reason),
        };

        if settings.get("bootstrap.servers").is_some()
            || settings.get("metadata.broker.list").is_some()
        {
            return Err(config_error(
                "bootstrap.servers",
                "give the brokers as the first argument of KafkaPublisher::new/builder".into(),
            ));
        }
        if let Some(v) = settings.get("delivery.report.only.error")
            && config::parse_bool(v) != Some(false)
        {
            return Err(config_error(
                "delivery.report.only.error",
                "hookbus needs every delivery report to count deliveries".into(),
            ));
        }
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.brokers.join(","));
        for (k, v) in DEFAULTS {
            config.set(k, v);
        }
        for (k, v) in settings.iter() {
            config.set(k, v);
        }
        check_idempotence(&config, &config_error)?;
        // Every property name and value, as librdkafka itself checks them.
        if let Err(e) = config.create_native_config() {
            return Err(match e {
                rdkafka::error::KafkaError::ClientConfig(_, desc, key, _value) => {
                    config_error(&key, desc)
                }
                other => config_error("(configuration)", other.to_string()),
            });
        }
        Ok(KafkaPublisher {
            inner: Arc::new(Inner {
                brokers: self.brokers.join(","),
                topic: self.topic.into(),
                settings,
                config,
                encoder: self.encoder,
                drop_flush: self.drop_flush,
                republish_from_kafka: self.republish_from_kafka,
                skipped_from_kafka: AtomicU64::new(0),
                engine: OnceLock::new(),
                creating: Mutex::new(()),
            }),
        })
    }
}

/// Idempotence needs `acks=all`, at most 5 requests in flight and retries;
/// librdkafka would refuse a conflicting value only when the producer is
/// created, so say it now.
fn check_idempotence(
    config: &ClientConfig,
    error: &impl Fn(&str, String) -> KafkaError,
) -> Result<(), KafkaError> {
    let Some(idempotent) = config.get("enable.idempotence") else {
        return Ok(());
    };
    match config::parse_bool(idempotent) {
        Some(true) => {}
        Some(false) => return Ok(()),
        None => {
            return Err(error(
                "enable.idempotence",
                format!("{idempotent:?} is not true or false"),
            ));
        }
    }
    let conflict = |key: &str, why: &str| {
        error(
            key,
            format!(
                "{why} conflicts with enable.idempotence=true (the default); set \
                 enable.idempotence=false as well to accept possible duplicates or loss"
            ),
        )
    };
    for key in ["acks", "request.required.acks"] {
        if let Some(v) = config.get(key)
            && !matches!(v.trim(), "all" | "-1")
        {
            return Err(conflict(key, &format!("{key}={v}")));
        }
    }
    for key in ["max.in.flight.requests.per.connection", "max.in.flight"] {
        if let Some(v) = config.get(key)
            && v.trim().parse::<u32>().is_ok_and(|n| n > 5)
        {
            return Err(conflict(key, &format!("{key}={v} (more than 5)")));
        }
    }
    for key in ["retries", "message.send.max.retries"] {
        if let Some(v) = config.get(key)
            && v.trim() == "0"
        {
            return Err(conflict(key, &format!("{key}=0")));
        }
    }
    Ok(())
}

impl KafkaPublisher {
    /// A publisher to `topic` on `brokers` (`"host:9092"`, `"a:9092,b:9092"`
    /// or a list) with hookbus's defaults. Checks its input; creates the
    /// producer on the first send.
    pub fn new(
        brokers: impl IntoBrokers,
        topic: impl Into<String>,
    ) -> Result<KafkaPublisher, KafkaError> {
        KafkaPublisher::builder(brokers, topic).build()
    }

    /// A builder, for librdkafka settings, the key strategy and the mode.
    ///
    /// ```
    /// use hookbus::kafka::{KafkaPublisher, KeyStrategy, Mode};
    ///
    /// let publisher = KafkaPublisher::builder("localhost:9092", "ai-decisions")
    ///     .set("linger.ms", "20")
    ///     .set("message.timeout.ms", "30000")
    ///     .key(KeyStrategy::partition_key())
    ///     .mode(Mode::Structured)
    ///     .build()?;
    ///
    /// // Mistakes are caught here, not at the first send.
    /// let err = KafkaPublisher::builder("localhost:9092", "ai-decisions")
    ///     .set("acks", "1")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("enable.idempotence"));
    /// # let _ = publisher;
    /// # Ok::<(), hookbus::kafka::KafkaError>(())
    /// ```
    pub fn builder(brokers: impl IntoBrokers, topic: impl Into<String>) -> KafkaPublisherBuilder {
        KafkaPublisherBuilder {
            brokers: brokers.into_brokers(),
            topic: topic.into(),
            settings: Settings::default(),
            encoder: Encoder::default(),
            drop_flush: DEFAULT_DROP_FLUSH_TIMEOUT,
            republish_from_kafka: false,
        }
    }

    /// Subscriber options suited to a Kafka subscriber: lossless
    /// ([`OverflowPolicy::Block`]), a mailbox of 10 000, batches of up to
    /// 1 000 events or 5 ms, 32 batches in flight (at most 32 000 records
    /// awaiting acknowledgement, well within librdkafka's default queue of
    /// 100 000). Without batching and concurrency every event would wait
    /// for its acknowledgement before the next is sent; with fewer batches
    /// in flight, throughput is bound by the broker's round trip.
    pub fn recommended_options() -> SubscriberOptions {
        SubscriberOptions {
            capacity: 10_000,
            overflow: OverflowPolicy::Block,
            batch: Some(BatchConfig {
                max_size: 1_000,
                max_wait: Duration::from_millis(5),
            }),
            concurrency: 32,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.inner.topic
    }

    /// The bootstrap brokers, comma-separated.
    pub fn brokers(&self) -> &str {
        &self.inner.brokers
    }

    /// The producer, created on first use.
    fn engine(&self) -> Result<&Arc<Engine>, KafkaError> {
        let inner = &self.inner;
        if let Some(engine) = inner.engine.get() {
            return Ok(engine);
        }
        let _creating = inner.creating.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(engine) = inner.engine.get() {
            return Ok(engine);
        }
        let settings = inner.settings.clone();
        let engine = Engine::new(
            &inner.config,
            inner.topic.clone(),
            inner.encoder.clone(),
            inner.drop_flush,
            Box::new(move |text| settings.redact(text)),
        )
        .map_err(|e| KafkaError::Create(inner.settings.redact(&e.to_string())))?;
        Ok(inner.engine.get_or_init(|| Arc::new(engine)))
    }

    /// Publishes one event and waits for the broker's acknowledgement (with
    /// the defaults: written to all in-sync replicas).
    ///
    /// Fails with [`KafkaError::Delivery`] when the record is refused or not
    /// acknowledged within `message.timeout.ms`. If the returned future is
    /// dropped early, the record is still sent.
    pub async fn emit(&self, event: &Event) -> Result<DeliveryReport, KafkaError> {
        let engine = self.engine()?;
        let tracker = engine.submit(vec![Arc::new(event.clone())]);
        let outcome = engine.wait(&tracker).await;
        if let Some(&(_, code)) = outcome.failures.first() {
            return Err(self.delivery_error(event, code));
        }
        let (partition, offset) = outcome.first.unwrap_or((-1, -1));
        Ok(DeliveryReport { partition, offset })
    }

    fn delivery_error(&self, event: &Event, code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::Delivery {
            event_id: event.id().to_owned(),
            topic: self.inner.topic.to_string(),
            code,
        }
    }

    /// Checks that a broker answers and the topic exists, within `timeout`.
    ///
    /// Fails with [`KafkaError::Unreachable`] (with librdkafka's last error,
    /// e.g. a refused connection) when no broker answers in time, and with
    /// [`KafkaError::UnknownTopic`] when the topic does not exist.
    pub async fn healthcheck(&self, timeout: Duration) -> Result<(), KafkaError> {
        let engine = self.engine()?.clone();
        let topic = self.inner.topic.clone();
        let brokers = self.inner.brokers.clone();
        let redact = self.inner.settings.clone();
        tokio::task::spawn_blocking(move || {
            let metadata = engine
                .producer()
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .map_err(|e| KafkaError::Unreachable {
                    brokers: brokers.clone(),
                    timeout,
                    reason: redact.redact(
                        &engine
                            .signals()
                            .last_error()
                            .unwrap_or_else(|| e.to_string()),
                    ),
                })?;
            let found = metadata.topics().iter().find(|t| t.name() == &*topic);
            match found {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
                _ => Err(KafkaError::UnknownTopic {
                    topic: topic.to_string(),
                    brokers,
                }),
            }
        })
        .await
        .unwrap_or_else(|e| Err(KafkaError::Create(format!("healthcheck task failed: {e}"))))
    }

    /// Waits up to `timeout` for everything sent so far to be delivered and
    /// returns how many records are still undelivered (0 when all are).
    pub async fn flush(&self, timeout: Duration) -> u64 {
        let Some(engine) = self.inner.engine.get().cloned() else {
            return 0;
        };
        tokio::task::spawn_blocking(move || engine.flush_blocking(timeout))
            .await
            .unwrap_or(0)
    }

    /// Events the publisher, as a bus subscriber, did not publish because
    /// they came from Kafka (see
    /// [`republish_from_kafka`](KafkaPublisherBuilder::republish_from_kafka)).
    pub fn skipped_from_kafka(&self) -> u64 {
        self.inner.skipped_from_kafka.load(Ordering::Relaxed)
    }

    /// For every record with a delivery report so far: the time from the
    /// publisher taking it to the broker's acknowledgement (or the
    /// failure), in the buckets of [`PRODUCE_LATENCY_BUCKETS_MS`]. Empty
    /// before the first send. Sampled as
    /// `hookbus_kafka_publisher_produce_duration_seconds` by
    /// [`Collector::kafka_publisher`](crate::metrics::Collector::kafka_publisher)
    /// (feature `metrics`).
    pub fn produce_latency(&self) -> ProduceLatency {
        self.inner.engine.get().map_or_else(
            || producer::LatencyCounters::default().snapshot(),
            |e| e.signals().latency.snapshot(),
        )
    }

    /// Records handed to the publisher but not yet delivered or failed.
    pub fn unflushed(&self) -> u64 {
        self.inner.engine.get().map_or(0, |e| e.unflushed())
    }

    fn batch_error(&self, outcome: &Outcome, events: &[Arc<Event>]) -> DeliveryError {
        let failed = outcome.failures.len();
        let permanent = outcome
            .failures
            .iter()
            .any(|(_, code)| error::is_permanent_code(*code));
        let kind = if permanent {
            FailureKind::Permanent
        } else {
            FailureKind::Exhausted
        };
        let (first_index, first_code) = outcome.failures[0];
        let mut message = format!(
            "{failed} of {} events not delivered to Kafka topic {:?}: {}",
            events.len(),
            &*self.inner.topic,
            self.delivery_error(&events[first_index], first_code)
        );
        let other = outcome
            .failures
            .iter()
            .find(|(_, code)| *code != first_code);
        if let Some(&(i, code)) = other {
            message.push_str(&format!("; also {}", self.delivery_error(&events[i], code)));
        }
        DeliveryError::new(kind, message)
            .only_events(outcome.failures.iter().map(|(i, _)| *i).collect())
    }
}

impl KafkaPublisher {
    /// The batch without the events that came from Kafka (unless told to
    /// republish them), and, when some were left out, the batch index of
    /// each event kept.
    fn without_loops(&self, events: Vec<Arc<Event>>) -> (Vec<Arc<Event>>, Option<Vec<usize>>) {
        let from_kafka = |e: &Event| e.extension(FROM_KAFKA_EXTENSION).is_some();
        if self.inner.republish_from_kafka || !events.iter().any(|e| from_kafka(e)) {
            return (events, None);
        }
        let mut kept = Vec::with_capacity(events.len());
        let mut out = Vec::with_capacity(events.len());
        for (i, e) in events.into_iter().enumerate() {
            if from_kafka(&e) {
                self.inner
                    .skipped_from_kafka
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                kept.push(i);
                out.push(e);
            }
        }
        (out, Some(kept))
    }
}

impl Sink for KafkaPublisher {
    fn deliver(&self, batch: Batch) -> SinkFuture {
        let engine = match self.engine() {
            Ok(engine) => engine.clone(),
            Err(e) => {
                let err = DeliveryError::new(e.failure_kind(), e.to_string());
                return Box::pin(async move { Err(err) });
            }
        };
        let (events, kept) = self.without_loops(batch.into_vec());
        // Handed to librdkafka now, in the order the bus calls deliver: that
        // keeps events with one key in order even with concurrency > 1.
        let tracker = engine.submit(events);
        let this = self.clone();
        Box::pin(async move {
            let outcome = engine.wait(&tracker).await;
            if outcome.failures.is_empty() {
                return Ok(());
            }
            let error = this.batch_error(&outcome, &tracker.events);
            Err(match kept {
                // Failure indices are into the events sent; the bus counts
                // them against the batch it gave.
                Some(kept) => {
                    let indices = error.failed_events().unwrap_or_default();
                    let mapped: Vec<usize> = indices
                        .iter()
                        .filter_map(|&i| kept.get(i).copied())
                        .collect();
                    error.only_events(mapped)
                }
                None => error,
            })
        })
    }

    fn close(&self, timeout: Duration) -> BoxFuture<u64> {
        let this = self.clone();
        Box::pin(async move { this.flush(timeout).await })
    }
}
