//! The Kafka source: consumes topics in a consumer group and emits each
//! record into a [`Bus`] as the event it was.
//!
//! ```no_run
//! use hookbus::kafka::KafkaSource;
//! use hookbus::Bus;
//! use std::time::Duration;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = Bus::new()?;
//! bus.on("decision.**", |e| println!("{} from Kafka: {}", e.id(), e.data()))?
//!     .detach();
//!
//! let source = KafkaSource::builder("kafka-1:9092", "webhook-workers")
//!     .topic("ai-decisions")
//!     .dead_letter_topic("ai-decisions.dead-letter")
//!     .start(&bus)?;
//!
//! // ... later: stop consuming and commit what the bus accepted.
//! let stats = source.shutdown(Duration::from_secs(10)).await;
//! println!("{} records consumed, {} emitted", stats.consumed, stats.emitted);
//! bus.shutdown(Duration::from_secs(30)).await;
//! # Ok(()) }
//! ```
//!
//! # What reaches the bus
//!
//! Records are read back with [`message::decode`](super::message::decode):
//! structured mode (`content-type: application/cloudevents+json`) and
//! binary mode (`ce_*` headers) are told apart per record. The event keeps
//! its id, type, source, time, subject, data schema, data and extensions,
//! and gains two extensions:
//!
//! - [`FROM_KAFKA_EXTENSION`] (`hookbuskafka`), the topic it was read from.
//!   A [`KafkaPublisher`](super::KafkaPublisher) on the same bus does not
//!   publish such events back (no loop) unless built with
//!   [`republish_from_kafka(true)`](super::KafkaPublisherBuilder::republish_from_kafka).
//! - `partitionkey`, the record key as text, when the event has none and
//!   the key is UTF-8 ([`restore_key`](KafkaSourceBuilder::restore_key);
//!   mapped events too): so
//!   publishing it again with [`KeyStrategy::partition_key`](super::KeyStrategy::partition_key)
//!   keys it as before. (With the default key, the payload's `decision_id`,
//!   the data itself restores the key.)
//!
//! Binary mode carries extension values as text, so integer and boolean
//! extensions come back as strings; structured mode keeps their types.
//!
//! # Records that are not CloudEvents
//!
//! A record that does not decode (no `ce_specversion` header, invalid JSON,
//! a missing attribute, larger than [`max_record_bytes`](KafkaSourceBuilder::max_record_bytes)…)
//! is never dropped silently. In this order:
//!
//! 1. the [`map_foreign`](KafkaSourceBuilder::map_foreign) closure, if set,
//!    may turn it into an event (counted as `mapped` and `emitted`);
//! 2. else, with a [`dead_letter_topic`](KafkaSourceBuilder::dead_letter_topic),
//!    the record is copied there (key, value and headers as they were) with
//!    the headers [`DEAD_LETTER_REASON_HEADER`], `hookbus-dead-letter-kind`
//!    ([`DecodeError::kind`]), `hookbus-dead-letter-topic`,
//!    `-partition` and `-offset`; its offset is stored only once the broker
//!    acknowledged the copy (counted as `dead_lettered`). Records of any
//!    size the source can receive fit: the dead-letter producer's
//!    `message.max.bytes` follows the consumer's `receive.message.max.bytes`.
//!    When the copy cannot be written (the broker refuses it as too large,
//!    the topic does not exist, or it still fails after
//!    [`dead_letter_attempts`](KafkaSourceBuilder::dead_letter_attempts)
//!    sends), the record is skipped: logged at error level and announced
//!    with its headers, key, offset, reason and the dead-letter error
//!    (`skipped: true`), and counted as `skipped`. It never stalls the
//!    source;
//! 3. else it is counted as `refused`.
//!
//! Cases 2 and 3 are announced on the bus as `hookbus.kafka_record_refused`
//! (topic, partition, offset, kind, reason, dead_letter_topic, key,
//! headers as `[name, value]` pairs; a key or value is its text when UTF-8,
//! else `{"base64": ..}`, and over 4 KiB its `size` and `base64_prefix`).
//! The announcement of a record that exists nowhere else (refused, or
//! skipped) waits for room in the bus like any event. Failures of the
//! source itself (a consume error, a dead-letter send that failed, a failed
//! commit) are announced as `hookbus.kafka_source_failed` and counted in
//! `errors`.
//!
//! # Delivery guarantee: at least once
//!
//! - Records are handled one at a time, in the order the consumer returns
//!   them (partition order). Each event is handed to the bus with the
//!   awaiting [`Bus::publish`]: it returns once the event is in the mailbox
//!   of every subscriber that matched it, waiting for room at
//!   [`OverflowPolicy::Block`](crate::OverflowPolicy::Block) subscribers.
//!   While it waits, no record after it is handled, while rebalances,
//!   statistics and the group membership are still served (every 100 ms),
//!   so a long wait does not make the member leave the group. The records
//!   the consumer returns meanwhile are held, in order; once it holds 1024
//!   of them (or 16 MiB), the source pauses its partitions (Kafka
//!   pause/resume), and resumes them once half are handled: a full
//!   mailbox costs one pause per thousand records, not one per event
//!   (counted in [`SourceStats::pauses`]). Held records of a partition
//!   revoked meanwhile are dropped, unstored: its new owner reads them.
//! - Only then is the record's offset stored; librdkafka commits stored
//!   offsets every `auto.commit.interval.ms` (5 s by default), the source
//!   commits them synchronously when partitions are revoked (rebalance) and
//!   on [`shutdown`](KafkaSource::shutdown). So a committed offset never
//!   passes a record the bus has not accepted, and no record is skipped.
//! - "Accepted" means in the subscriber's mailbox (memory). A record whose
//!   event sits in a mailbox when the process dies is committed but not yet
//!   handled: for delivery that survives a crash, give those subscribers a
//!   durable store, or handle events idempotently and rely on re-delivery
//!   (see below). Lossy subscribers (`DropOldest`, `DropNewest`) may drop
//!   events, counted and announced as always.
//! - After a crash, or when a member leaves without committing, records
//!   after the last commit are emitted again (at most
//!   `auto.commit.interval.ms` worth, plus the one in flight): events keep
//!   their ids, so receivers can deduplicate on the id.
//! - On a rebalance, revoked partitions are committed up to the last
//!   accepted record first: nothing is emitted twice by a clean rebalance,
//!   except a record that was waiting for room in the bus when its
//!   partition was revoked: the partition's new owner reads it again (at
//!   most one per revoked partition).
//!
//! # Settings
//!
//! The brokers, group id, topics and every librdkafka property are checked
//! in [`start`](KafkaSourceBuilder::start), before anything connects.
//! hookbus sets `auto.offset.reset=earliest` (a new group reads from the
//! start: nothing produced before it first ran is missed),
//! `statistics.interval.ms=1000` (for high watermarks and lag) and
//! `client.id=hookbus` unless you set them, and always
//! `enable.auto.offset.store=false` and `enable.auto.commit=true` (setting
//! either otherwise is an error: the guarantee above depends on them).
//! Secret settings never appear in `Debug` output or errors.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::producer::BaseProducer;
use tokio::sync::watch;

use super::config::{self, IntoBrokers, Settings};
use super::error::KafkaError;
use super::message::DecodeError;
use crate::bus::Bus;
use crate::event::Event;

mod context;
mod dead_letter;
mod stats;
mod worker;

use context::SourceContext;
use dead_letter::{DeadLetter, DeadLetterContext};
use stats::Shared;
pub use stats::{PartitionStats, SourceStats};
use worker::{Held, Stop, Worker};

/// The extension that marks events read from Kafka; its value is the topic.
pub const FROM_KAFKA_EXTENSION: &str = "hookbuskafka";

/// The header of a dead-letter record that says why it was refused.
pub const DEAD_LETTER_REASON_HEADER: &str = "hookbus-dead-letter-reason";

/// The default of [`KafkaSourceBuilder::max_record_bytes`]: 4 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

/// How long one poll of the consumer blocks at most: how quickly the
/// consuming thread notices a shutdown when no records come.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long a failed dead-letter send waits before it is retried, at first
/// and at most (doubling in between).
const DEAD_LETTER_RETRY: (Duration, Duration) =
    (Duration::from_millis(500), Duration::from_secs(30));

/// How long one dead-letter send may take before it counts as failed
/// (the dead-letter producer's `message.timeout.ms`, unless set with
/// [`KafkaSourceBuilder::dead_letter_set`]).
const DEAD_LETTER_TIMEOUT: Duration = Duration::from_secs(30);

/// The default of [`KafkaSourceBuilder::dead_letter_attempts`].
pub const DEFAULT_DEAD_LETTER_ATTEMPTS: u32 = 5;

/// While it waits for room in the bus, the source reads ahead up to this
/// many records (or [`HOLD_BYTES`]) before it pauses its partitions.
const HOLD_RECORDS: usize = 1024;

/// The bytes (keys, values, headers) of read-ahead records that make the
/// source pause its partitions.
const HOLD_BYTES: usize = 16 * 1024 * 1024;

/// Properties hookbus sets unless the user does.
const DEFAULTS: [(&str, &str); 3] = [
    ("auto.offset.reset", "earliest"),
    ("statistics.interval.ms", "1000"),
    ("client.id", "hookbus"),
];

/// Properties the guarantee depends on: always these values.
const FIXED: [(&str, &str, &str); 2] = [
    (
        "enable.auto.offset.store",
        "false",
        "hookbus stores each offset itself once the bus accepted the record",
    ),
    (
        "enable.auto.commit",
        "true",
        "hookbus commits the offsets it stored with librdkafka's periodic commit (set auto.commit.interval.ms to change how often)",
    ),
];

/// Properties the dead-letter producer takes over from the source's
/// settings (how to reach and authenticate to the brokers).
const SHARED_PREFIXES: [&str; 6] = [
    "security.",
    "sasl.",
    "ssl.",
    "socket.",
    "broker.",
    "client.",
];

type MapFn = dyn Fn(&ForeignRecord<'_>) -> Option<Event> + Send + Sync;

/// A record that is not a CloudEvent, as the
/// [`map_foreign`](KafkaSourceBuilder::map_foreign) closure sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct ForeignRecord<'a> {
    /// The topic it was read from.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Option<&'a [u8]>,
    /// Its value.
    pub value: Option<&'a [u8]>,
    /// Its headers, in order.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// Why it did not decode as a CloudEvent.
    pub reason: &'a DecodeError,
}

/// Builds a [`KafkaSource`]; see [`KafkaSource::builder`].
#[must_use]
pub struct KafkaSourceBuilder {
    brokers: Vec<String>,
    group: String,
    topics: Vec<String>,
    settings: Settings,
    dead_letter: Option<String>,
    dead_letter_settings: Settings,
    dead_letter_attempts: u32,
    map: Option<Arc<MapFn>>,
    restore_key: bool,
    max_record_bytes: usize,
}

impl fmt::Debug for KafkaSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSourceBuilder")
            .field("brokers", &self.brokers)
            .field("group", &self.group)
            .field("topics", &self.topics)
            .field("settings", &self.settings)
            .field("dead_letter", &self.dead_letter)
            .field("dead_letter_settings", &self.dead_letter_settings)
            .field("dead_letter_attempts", &self.dead_letter_attempts)
            .field("map_foreign", &self.map.is_some())
            .field("restore_key", &self.restore_key)
            .field("max_record_bytes", &self.max_record_bytes)
            .finish()
    }
}

impl KafkaSourceBuilder {
    /// Adds a topic to consume (at least one is needed).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push(topic.into());
        self
    }

    /// Adds several topics to consume.
    pub fn topics<T: Into<String>>(mut self, topics: impl IntoIterator<Item = T>) -> Self {
        self.topics.extend(topics.into_iter().map(Into::into));
        self
    }

    /// Sets a librdkafka consumer property (see librdkafka's
    /// `CONFIGURATION.md`), e.g. `auto.commit.interval.ms`,
    /// `session.timeout.ms`, `security.protocol`, `sasl.password`. Checked
    /// in [`start`](Self::start); see the [module docs](self#settings) for
    /// what hookbus sets.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.set(key.into(), value.into());
        self
    }

    /// Where records that are not CloudEvents go (see the
    /// [module docs](self#records-that-are-not-cloudevents)). hookbus never
    /// creates topics: create it first.
    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter = Some(topic.into());
        self
    }

    /// How many times a record is sent to the dead-letter topic before it
    /// is skipped (default [`DEFAULT_DEAD_LETTER_ATTEMPTS`]; waits of 0.5 s,
    /// 1 s, 2 s... in between). A failure retrying cannot fix (the topic
    /// refuses the record as too large, the topic does not exist, no
    /// authorisation) skips it after the first. A skipped record is logged
    /// and announced with its headers, key, offset and reason (see the
    /// [module docs](self#records-that-are-not-cloudevents)); it never
    /// stalls the source. At least 1.
    pub fn dead_letter_attempts(mut self, attempts: u32) -> Self {
        self.dead_letter_attempts = attempts;
        self
    }

    /// Sets a librdkafka property of the dead-letter producer, e.g.
    /// `message.timeout.ms` (how long one send may take, 30 000 by
    /// default) or `compression.type`. The producer already takes the
    /// source's connection and authentication settings (`security.*`,
    /// `sasl.*`, `ssl.*`, `socket.*`, `broker.*`, `client.*`), and a
    /// `message.max.bytes` that fits every record the source can receive.
    /// Checked in [`start`](Self::start).
    pub fn dead_letter_set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.dead_letter_settings.set(key.into(), value.into());
        self
    }

    /// Turns records that are not CloudEvents into events; `None` sends the
    /// record on to the dead-letter topic (or refuses it).
    ///
    /// ```
    /// use hookbus::Event;
    /// use hookbus::kafka::KafkaSource;
    ///
    /// let builder = KafkaSource::builder("localhost:9092", "workers")
    ///     .topic("legacy-orders")
    ///     .map_foreign(|record| {
    ///         let data = serde_json::from_slice(record.value?).ok()?;
    ///         Event::builder("legacy.order").source("legacy-orders").data(data).build().ok()
    ///     });
    /// # let _ = builder;
    /// ```
    pub fn map_foreign(
        mut self,
        map: impl Fn(&ForeignRecord<'_>) -> Option<Event> + Send + Sync + 'static,
    ) -> Self {
        self.map = Some(Arc::new(map));
        self
    }

    /// Whether the record key becomes the event's `partitionkey` extension
    /// when it has none and the key is UTF-8 (default `true`).
    pub fn restore_key(mut self, restore: bool) -> Self {
        self.restore_key = restore;
        self
    }

    /// Records larger than this (key, value and headers) are refused as
    /// [`DecodeError::TooLarge`] without being parsed (default
    /// [`DEFAULT_MAX_RECORD_BYTES`]).
    pub fn max_record_bytes(mut self, limit: usize) -> Self {
        self.max_record_bytes = limit;
        self
    }

    /// Checks everything, subscribes to the topics and starts consuming
    /// into `bus` on a thread of its own.
    ///
    /// ```
    /// use hookbus::Bus;
    /// use hookbus::kafka::KafkaSource;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let bus = Bus::new().unwrap();
    /// // Mistakes are caught here, before anything connects.
    /// let err = KafkaSource::builder("localhost:9092", "workers")
    ///     .topic("ai-decisions")
    ///     .set("enable.auto.offset.store", "true")
    ///     .start(&bus)
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("enable.auto.offset.store"));
    /// # }
    /// ```
    pub fn start(self, bus: &Bus) -> Result<KafkaSource, KafkaError> {
        config::validate_brokers(&self.brokers)?;
        if self.group.trim().is_empty() {
            return Err(KafkaError::Config {
                key: "group.id".into(),
                reason: "the consumer group id is empty".into(),
            });
        }
        if self.topics.is_empty() {
            return Err(KafkaError::Config {
                key: "topics".into(),
                reason: "no topic to consume: call .topic(..)".into(),
            });
        }
        for topic in self.topics.iter().chain(&self.dead_letter) {
            config::validate_topic(topic)?;
        }
        if self.dead_letter_attempts == 0 {
            return Err(KafkaError::Config {
                key: "dead_letter_attempts".into(),
                reason: "0 attempts would skip every refused record unsent".into(),
            });
        }
        if self.max_record_bytes == 0 {
            return Err(KafkaError::Config {
                key: "max_record_bytes".into(),
                reason: "0 would refuse every record".into(),
            });
        }
        if let Some(dead) = &self.dead_letter
            && self.topics.contains(dead)
        {
            return Err(KafkaError::Config {
                key: "dead_letter_topic".into(),
                reason: format!("{dead:?} is also consumed: refused records would come back"),
            });
        }
        let settings = &self.settings;
        let config_error = |key: &str, reason: String| KafkaError::Config {
            key: key.to_owned(),
            reason: settings.redact(&reason),
        };
        for key in ["bootstrap.servers", "metadata.broker.list", "group.id"] {
            if settings.get(key).is_some() {
                return Err(config_error(
                    key,
                    "give the brokers and the group id as the arguments of KafkaSource::builder"
                        .into(),
                ));
            }
        }
        for (key, required, why) in FIXED {
            if let Some(v) = settings.get(key)
                && config::parse_bool(v) != config::parse_bool(required)
            {
                return Err(config_error(key, format!("must be {required}: {why}")));
            }
        }
        let brokers = self.brokers.join(",");
        let mut consumer_config = ClientConfig::new();
        consumer_config
            .set("bootstrap.servers", &brokers)
            .set("group.id", &self.group);
        for (k, v) in DEFAULTS {
            consumer_config.set(k, v);
        }
        for (k, v) in settings.iter() {
            consumer_config.set(k, v);
        }
        for (k, v, _) in FIXED {
            consumer_config.set(k, v);
        }
        check_native(&consumer_config, &config_error)?;
        let dead_letter = match &self.dead_letter {
            Some(topic) => Some(self.dead_letter_producer(topic, &brokers, &consumer_config)?),
            None => None,
        };

        let shared = Arc::new(Shared::default());
        let consumer: BaseConsumer<SourceContext> = consumer_config
            .create_with_context(SourceContext {
                shared: shared.clone(),
                redact: settings.clone(),
            })
            .map_err(|e| KafkaError::CreateConsumer(settings.redact(&e.to_string())))?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| KafkaError::CreateConsumer(settings.redact(&e.to_string())))?;

        let stop = Arc::new(Stop::new());
        let (done_tx, done_rx) = watch::channel(false);
        shared.running.store(true, Relaxed);
        let worker = Worker {
            consumer,
            bus: bus.clone(),
            runtime: bus.runtime().clone(),
            shared: shared.clone(),
            stop: stop.clone(),
            dead_letter,
            map: self.map.clone(),
            restore_key: self.restore_key,
            max_record_bytes: self.max_record_bytes,
            held: RefCell::new(Held::default()),
            paused: Cell::new(false),
        };
        std::thread::Builder::new()
            .name("hookbus-kafka-source".into())
            .spawn(move || {
                worker.run();
                let _ = done_tx.send(true);
            })
            .map_err(|e| {
                KafkaError::CreateConsumer(format!("could not start the consuming thread: {e}"))
            })?;
        Ok(KafkaSource {
            brokers,
            group: self.group.clone(),
            topics: self.topics.clone(),
            shared,
            stop,
            done: done_rx,
        })
    }
}

impl KafkaSourceBuilder {
    /// The dead-letter producer: idempotent, `acks=all`, the source's
    /// connection settings, and a `message.max.bytes` that takes every
    /// record the source's consumer can receive.
    fn dead_letter_producer(
        &self,
        topic: &str,
        brokers: &str,
        consumer_config: &ClientConfig,
    ) -> Result<DeadLetter, KafkaError> {
        let settings = &self.settings;
        let own = &self.dead_letter_settings;
        let config_error = |key: &str, reason: String| KafkaError::Config {
            key: format!("dead-letter producer {key}"),
            reason: own.redact(&settings.redact(&reason)),
        };
        if own.get("bootstrap.servers").is_some() || own.get("metadata.broker.list").is_some() {
            return Err(config_error(
                "bootstrap.servers",
                "the dead-letter producer uses the source's brokers".into(),
            ));
        }
        if let Some(v) = own.get("delivery.report.only.error")
            && config::parse_bool(v) != Some(false)
        {
            return Err(config_error(
                "delivery.report.only.error",
                "the source waits for the delivery report of every dead-letter copy".into(),
            ));
        }
        let receive_limit =
            dead_letter::consumer_receive_limit(|key| consumer_config.get(key).map(str::to_owned));
        let mut producer_config = ClientConfig::new();
        producer_config
            .set("bootstrap.servers", brokers)
            .set("client.id", "hookbus")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set(
                "message.max.bytes",
                dead_letter::producer_message_max(receive_limit).to_string(),
            )
            .set(
                "message.timeout.ms",
                DEAD_LETTER_TIMEOUT.as_millis().to_string(),
            );
        for (k, v) in settings.iter() {
            if SHARED_PREFIXES.iter().any(|p| k.starts_with(p)) {
                producer_config.set(k, v);
            }
        }
        for (k, v) in own.iter() {
            producer_config.set(k, v);
        }
        check_native(&producer_config, &config_error)?;
        let timeout = producer_config
            .get("message.timeout.ms")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEAD_LETTER_TIMEOUT, Duration::from_millis);
        let producer: BaseProducer<DeadLetterContext> = producer_config
            .create_with_context(DeadLetterContext::default())
            .map_err(|e| KafkaError::Create(own.redact(&settings.redact(&e.to_string()))))?;
        Ok(DeadLetter {
            topic: topic.to_owned(),
            producer,
            timeout,
            attempts: self.dead_letter_attempts,
        })
    }
}

/// Every property name and value, as librdkafka itself checks them.
fn check_native(
    config: &ClientConfig,
    error: &impl Fn(&str, String) -> KafkaError,
) -> Result<(), KafkaError> {
    match config.create_native_config() {
        Ok(_) => Ok(()),
        Err(RdError::ClientConfig(_, desc, key, _value)) => Err(error(&key, desc)),
        Err(other) => Err(error("(configuration)", other.to_string())),
    }
}

/// Consumes Kafka topics in a consumer group into a bus; see the
/// [module docs](self). Dropping it stops consuming (committing what the
/// bus accepted) in the background; [`shutdown`](Self::shutdown) waits for
/// that.
pub struct KafkaSource {
    brokers: String,
    group: String,
    topics: Vec<String>,
    shared: Arc<Shared>,
    stop: Arc<Stop>,
    done: watch::Receiver<bool>,
}

impl fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSource")
            .field("brokers", &self.brokers)
            .field("group", &self.group)
            .field("topics", &self.topics)
            .field("running", &self.shared.running.load(Relaxed))
            .finish()
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

impl KafkaSource {
    /// A builder for a source reading from `brokers` (`"host:9092"`,
    /// `"a:9092,b:9092"` or a list) as a member of consumer group
    /// `group_id`.
    pub fn builder(brokers: impl IntoBrokers, group_id: impl Into<String>) -> KafkaSourceBuilder {
        KafkaSourceBuilder {
            brokers: brokers.into_brokers(),
            group: group_id.into(),
            topics: Vec::new(),
            settings: Settings::default(),
            dead_letter: None,
            dead_letter_settings: Settings::default(),
            dead_letter_attempts: DEFAULT_DEAD_LETTER_ATTEMPTS,
            map: None,
            restore_key: true,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }

    /// The consumer group.
    pub fn group_id(&self) -> &str {
        &self.group
    }

    /// The topics consumed.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// Counters, and per partition the position, committed offset, high
    /// watermark and lag (see [`SourceStats`]).
    pub fn stats(&self) -> SourceStats {
        self.shared.snapshot()
    }

    /// A way to read [`stats`](Self::stats) that outlives this handle's
    /// borrow (for samplers such as [`crate::metrics::Collector`]).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn stats_reader(&self) -> Arc<dyn Fn() -> SourceStats + Send + Sync> {
        let shared = self.shared.clone();
        Arc::new(move || shared.snapshot())
    }

    /// Stops consuming: an event waiting for room in the bus is abandoned
    /// (its record is not committed, so it is read again later), every
    /// offset the bus accepted is committed, and the consumer leaves its
    /// group (its partitions go to the other members). Waits up to
    /// `timeout` for that and returns the final stats (`running` is still
    /// `true` in them if the deadline passed first). Calling it again
    /// returns at once.
    ///
    /// Shut the source down before its bus. (A source whose bus is shut
    /// down first stops at its next record, leaving that record
    /// uncommitted for a later member to read.)
    pub async fn shutdown(&self, timeout: Duration) -> SourceStats {
        self.stop.trigger();
        let mut done = self.done.clone();
        let _ = tokio::time::timeout(timeout, done.wait_for(|d| *d)).await;
        self.shared.snapshot()
    }
}
