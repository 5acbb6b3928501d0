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
//!    acknowledged the copy (counted as `dead_lettered`);
//! 3. else it is counted as `refused`.
//!
//! Cases 2 and 3 are announced on the bus as `hookbus.kafka_record_refused`
//! (topic, partition, offset, kind, reason, dead_letter_topic). Failures of
//! the source itself (a consume error, a dead-letter send that failed and is
//! being retried, a failed commit) are announced as
//! `hookbus.kafka_source_failed` and counted in `errors`.
//!
//! # Delivery guarantee: at least once
//!
//! - Records are handled one at a time, in the order the consumer returns
//!   them (partition order). Each event is handed to the bus with the
//!   awaiting [`Bus::publish`]: it returns once the event is in the mailbox
//!   of every subscriber that matched it, waiting for room at
//!   [`OverflowPolicy::Block`](crate::OverflowPolicy::Block) subscribers.
//!   While it waits, the source pauses its partitions (Kafka pause/resume):
//!   no record after it is handled, while rebalances, statistics and the
//!   group membership are still served, so a long wait does not make the
//!   member leave the group.
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

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError as RdError, KafkaResult};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::config::{self, IntoBrokers, Settings};
use super::error::KafkaError;
use super::message::{DecodeError, decode};
use crate::bus::Bus;
use crate::event::{Event, ExtensionValue};
use crate::hub::EmitError;
use crate::sink::BoxFuture;

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

/// How long one dead-letter send may take before it counts as failed.
const DEAD_LETTER_TIMEOUT: Duration = Duration::from_secs(30);

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
            Some(topic) => {
                let mut producer_config = ClientConfig::new();
                producer_config
                    .set("bootstrap.servers", &brokers)
                    .set("client.id", "hookbus")
                    .set("acks", "all")
                    .set("enable.idempotence", "true")
                    .set(
                        "message.timeout.ms",
                        DEAD_LETTER_TIMEOUT.as_millis().to_string(),
                    );
                for (k, v) in settings.iter() {
                    if SHARED_PREFIXES.iter().any(|p| k.starts_with(p)) {
                        producer_config.set(k, v);
                    }
                }
                check_native(&producer_config, &config_error)?;
                let producer: BaseProducer<DeadLetterContext> = producer_config
                    .create_with_context(DeadLetterContext::default())
                    .map_err(|e| KafkaError::Create(settings.redact(&e.to_string())))?;
                Some(DeadLetter {
                    topic: topic.clone(),
                    producer,
                })
            }
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
            map: self.map,
            restore_key: self.restore_key,
            max_record_bytes: self.max_record_bytes,
            held: RefCell::new(VecDeque::new()),
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
            group: self.group,
            topics: self.topics,
            shared,
            stop,
            done: done_rx,
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

    /// Stops consuming: an event waiting for room in the bus is abandoned
    /// (its record is not committed, so it is read again later), every
    /// offset the bus accepted is committed, and the consumer leaves its
    /// group (its partitions go to the other members). Waits up to
    /// `timeout` for that and returns the final stats (`running` is still
    /// `true` in them if the deadline passed first). Calling it again
    /// returns at once.
    pub async fn shutdown(&self, timeout: Duration) -> SourceStats {
        self.stop.trigger();
        let mut done = self.done.clone();
        let _ = tokio::time::timeout(timeout, done.wait_for(|d| *d)).await;
        self.shared.snapshot()
    }
}

/// What a [`KafkaSource`] has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceStats {
    /// Records read from Kafka.
    pub consumed: u64,
    /// Events the bus accepted (decoded or mapped).
    pub emitted: u64,
    /// Of `emitted`: events made by the `map_foreign` closure.
    pub mapped: u64,
    /// Records copied to the dead-letter topic.
    pub dead_lettered: u64,
    /// Records that were not CloudEvents, with no dead-letter topic to go to.
    pub refused: u64,
    /// The source's own failures (consume errors, failed dead-letter sends,
    /// failed commits), each also announced as `hookbus.kafka_source_failed`.
    pub errors: u64,
    /// Successful offset commits.
    pub commits: u64,
    /// Whether the source is still consuming.
    pub running: bool,
    /// The partitions this member has been assigned, by topic and number.
    pub partitions: Vec<PartitionStats>,
}

/// One partition in [`SourceStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionStats {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
    /// Whether it is assigned to this member now.
    pub assigned: bool,
    /// The offset after the last record handled (the next to read), once
    /// one was.
    pub position: Option<i64>,
    /// The last offset committed for the group, as this member saw it.
    pub committed: Option<i64>,
    /// The partition's high watermark from librdkafka's statistics (every
    /// `statistics.interval.ms`; `None` until the first report, or when
    /// statistics are off). Some brokers report it late or wrong.
    pub high_watermark: Option<i64>,
    /// `high_watermark - position` (or `- committed` before the first
    /// record): records not yet handled, when both are known.
    pub lag: Option<i64>,
}

#[derive(Default)]
struct PartitionState {
    assigned: bool,
    position: Option<i64>,
    committed: Option<i64>,
    high_watermark: Option<i64>,
}

/// State shared by the handle, the consuming thread and librdkafka's
/// callbacks (which run on that thread, inside `poll`).
#[derive(Default)]
struct Shared {
    consumed: AtomicU64,
    emitted: AtomicU64,
    mapped: AtomicU64,
    dead_lettered: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
    commits: AtomicU64,
    running: AtomicBool,
    /// By topic, then partition (looked up with a borrowed topic name on
    /// every record, so without allocating).
    partitions: Mutex<PartitionMap>,
}

type PartitionMap = BTreeMap<String, BTreeMap<i32, PartitionState>>;

impl Shared {
    fn partitions(&self) -> MutexGuard<'_, PartitionMap> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_partition(&self, topic: &str, partition: i32, f: impl FnOnce(&mut PartitionState)) {
        let mut map = self.partitions();
        match map.get_mut(topic) {
            Some(partitions) => f(partitions.entry(partition).or_default()),
            None => f(map
                .entry(topic.to_owned())
                .or_default()
                .entry(partition)
                .or_default()),
        }
    }

    fn snapshot(&self) -> SourceStats {
        let partitions = self
            .partitions()
            .iter()
            .flat_map(|(topic, partitions)| partitions.iter().map(move |(p, s)| (topic, p, s)))
            .map(|(topic, partition, s)| {
                let handled = s.position.or(s.committed);
                PartitionStats {
                    topic: topic.clone(),
                    partition: *partition,
                    assigned: s.assigned,
                    position: s.position,
                    committed: s.committed,
                    high_watermark: s.high_watermark,
                    lag: match (s.high_watermark, handled) {
                        (Some(high), Some(at)) => Some((high - at).max(0)),
                        _ => None,
                    },
                }
            })
            .collect();
        SourceStats {
            consumed: self.consumed.load(Relaxed),
            emitted: self.emitted.load(Relaxed),
            mapped: self.mapped.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            refused: self.refused.load(Relaxed),
            errors: self.errors.load(Relaxed),
            commits: self.commits.load(Relaxed),
            running: self.running.load(Relaxed),
            partitions,
        }
    }
}

/// The stop signal, for both sides: the consuming thread waits on it
/// blocking (between dead-letter retries), the event it is publishing
/// waits on it asynchronously.
struct Stop {
    flag: Mutex<bool>,
    changed: Condvar,
    watch: watch::Sender<bool>,
}

impl Stop {
    fn new() -> Stop {
        Stop {
            flag: Mutex::new(false),
            changed: Condvar::new(),
            watch: watch::Sender::new(false),
        }
    }

    fn trigger(&self) {
        *self.flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.changed.notify_all();
        self.watch.send_replace(true);
    }

    fn is_set(&self) -> bool {
        *self.flag.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout`; `true` if stopped meanwhile.
    fn wait(&self, timeout: Duration) -> bool {
        let flag = self.flag.lock().unwrap_or_else(|e| e.into_inner());
        let (flag, _) = self
            .changed
            .wait_timeout_while(flag, timeout, |stopped| !*stopped)
            .unwrap_or_else(|e| e.into_inner());
        *flag
    }
}

/// The consumer's context: rebalances, commits, statistics and logs.
struct SourceContext {
    shared: Arc<Shared>,
    redact: Settings,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let message = self.redact.redact(message);
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

    fn error(&self, error: RdError, reason: &str) {
        let reason = self.redact.redact(reason);
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }

    fn stats(&self, statistics: Statistics) {
        let mut map = self.shared.partitions();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || p.hi_offset < 0 {
                    continue;
                }
                if let Some(state) = map.get_mut(topic).and_then(|t| t.get_mut(partition)) {
                    state.high_watermark = Some(p.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Records are handled one at a time on the thread that runs this
            // callback, so every record read so far is settled: commit them
            // all before another member takes the partitions over.
            commit(consumer, &self.shared);
            for e in tpl.elements() {
                self.shared
                    .with_partition(e.topic(), e.partition(), |s| s.assigned = false);
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            for e in tpl.elements() {
                self.shared
                    .with_partition(e.topic(), e.partition(), |s| s.assigned = true);
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.shared.commits.fetch_add(1, Relaxed);
                for e in offsets.elements() {
                    if let Offset::Offset(at) = e.offset() {
                        self.shared
                            .with_partition(e.topic(), e.partition(), |s| s.committed = Some(at));
                    }
                }
            }
            // Nothing stored since the last commit: nothing to do.
            Err(RdError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.shared.errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "hookbus: Kafka source offset commit failed; it is retried with the next commit");
            }
        }
    }
}

/// Commits the stored offsets now (the commit callback records the result).
fn commit(consumer: &BaseConsumer<SourceContext>, shared: &Shared) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(RdError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            shared.errors.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, "hookbus: Kafka source offset commit failed");
        }
    }
}

/// The dead-letter producer's context: keeps the outcome of the one send
/// in flight.
#[derive(Default)]
struct DeadLetterContext {
    outcome: Mutex<Option<Result<(), String>>>,
}

impl ClientContext for DeadLetterContext {}

impl ProducerContext for DeadLetterContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let outcome = result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string());
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    }
}

struct DeadLetter {
    topic: String,
    producer: BaseProducer<DeadLetterContext>,
}

impl DeadLetter {
    /// Sends one copy and waits for the broker's acknowledgement.
    fn send(
        &self,
        message: &impl Message,
        headers: &[(&str, &[u8])],
        reason: &DecodeError,
    ) -> Result<(), String> {
        let reason_text = reason.to_string();
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let mut out = OwnedHeaders::new_with_capacity(headers.len() + 5);
        for (key, value) in headers {
            out = out.insert(Header {
                key,
                value: Some(*value),
            });
        }
        for (key, value) in [
            (DEAD_LETTER_REASON_HEADER, reason_text.as_str()),
            ("hookbus-dead-letter-kind", reason.kind()),
            ("hookbus-dead-letter-topic", message.topic()),
            ("hookbus-dead-letter-partition", &partition),
            ("hookbus-dead-letter-offset", &offset),
        ] {
            out = out.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic).headers(out);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(value) = message.payload() {
            record = record.payload(value);
        }
        *self
            .producer
            .context()
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        self.producer.send(record).map_err(|(e, _)| e.to_string())?;
        // Blocks this (the source's own) thread until the delivery report.
        let _ = self
            .producer
            .flush(DEAD_LETTER_TIMEOUT + Duration::from_secs(5));
        self.producer
            .context()
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| Err("no delivery report within the timeout".into()))
    }
}

/// An event waiting for room in the bus: `None` when the source was
/// stopped first.
type Waiting = BoxFuture<Option<Result<(), EmitError>>>;

/// What to do after a record.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// The consuming thread.
struct Worker {
    consumer: BaseConsumer<SourceContext>,
    bus: Bus,
    runtime: tokio::runtime::Handle,
    shared: Arc<Shared>,
    stop: Arc<Stop>,
    dead_letter: Option<DeadLetter>,
    map: Option<Arc<MapFn>>,
    restore_key: bool,
    max_record_bytes: usize,
    /// Records read while the source waited for room in the bus, to handle
    /// next, in order.
    held: RefCell<VecDeque<OwnedMessage>>,
}

impl Worker {
    fn run(self) {
        while !self.stop.is_set() {
            let held = self.held.borrow_mut().pop_front();
            if let Some(message) = held {
                if self.handle(&message) == Flow::Stop {
                    break;
                }
                continue;
            }
            match self.consumer.poll(POLL_INTERVAL) {
                None => {}
                Some(Err(e)) => self.failed("consume", &e.to_string()),
                Some(Ok(message)) if self.handle(&message) == Flow::Stop => break,
                Some(Ok(_)) => {}
            }
        }
        self.finish();
    }

    /// One record: decode (or map, or refuse), hand to the bus, store its
    /// offset.
    fn handle(&self, message: &impl Message) -> Flow {
        self.shared.consumed.fetch_add(1, Relaxed);
        let headers: Vec<(&str, &[u8])> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key, h.value.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let size = message.key().map_or(0, <[u8]>::len)
            + message.payload().map_or(0, <[u8]>::len)
            + headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        let decoded = if size > self.max_record_bytes {
            Err(DecodeError::TooLarge {
                size,
                limit: self.max_record_bytes,
            })
        } else {
            decode(message.payload(), headers.iter().copied())
        };
        let event = match decoded {
            Ok(event) => Some(event),
            Err(reason) => match self.map_foreign(message, &headers, &reason) {
                Some(event) => {
                    self.shared.mapped.fetch_add(1, Relaxed);
                    Some(event)
                }
                None => {
                    if self.refuse(message, &headers, &reason) == Flow::Stop {
                        return Flow::Stop;
                    }
                    None
                }
            },
        };
        if let Some(mut event) = event {
            self.restore_key(&mut event, message.key());
            event.set_extension(
                FROM_KAFKA_EXTENSION,
                ExtensionValue::String(message.topic().to_owned()),
            );
            if self.publish(event) == Flow::Stop {
                return Flow::Stop;
            }
            self.shared.emitted.fetch_add(1, Relaxed);
        }
        self.store(message.topic(), message.partition(), message.offset() + 1);
        Flow::Continue
    }

    fn restore_key(&self, event: &mut Event, key: Option<&[u8]>) {
        if !self.restore_key || event.extension("partitionkey").is_some() {
            return;
        }
        if let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok())
            && !key.is_empty()
        {
            event.set_extension("partitionkey", ExtensionValue::String(key.to_owned()));
        }
    }

    fn map_foreign(
        &self,
        message: &impl Message,
        headers: &[(&str, &[u8])],
        reason: &DecodeError,
    ) -> Option<Event> {
        let map = self.map.as_ref()?;
        let record = ForeignRecord {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            value: message.payload(),
            headers,
            reason,
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map(&record))) {
            Ok(event) => event,
            Err(panic) => {
                let message = crate::sink::panic_message(&panic);
                self.failed(
                    "map_foreign",
                    &format!("the map_foreign closure panicked: {message}"),
                );
                None
            }
        }
    }

    /// Waits until the bus accepted the event (room in every `Block`
    /// subscriber that takes it), or the source is stopped.
    ///
    /// Usually the bus takes the event at once, on the first poll. When a
    /// `Block` subscriber is full, the wait moves to a task on the bus's
    /// runtime and this thread keeps serving the consumer with its
    /// partitions paused: rebalances, statistics and the group membership
    /// (`max.poll.interval.ms`) go on; records of partitions assigned
    /// meanwhile are held back, in order, for after this one.
    fn publish(&self, event: Event) -> Flow {
        let bus = self.bus.clone();
        let mut stop = self.stop.watch.subscribe();
        let mut waiting: Waiting = Box::pin(async move {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => None,
                r = bus.publish(event) => Some(r),
            }
        });
        let outcome = match waiting
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => self.wait_paused(waiting),
        };
        match outcome {
            Some(Ok(())) => Flow::Continue,
            // Stopped while waiting (the event went to nobody), or the bus
            // is shut down: leave the offset unstored so the record is read
            // again later.
            None | Some(Err(EmitError::Closed(_))) => Flow::Stop,
            Some(Err(e)) => {
                self.failed("publish", &e.to_string());
                Flow::Stop
            }
        }
    }

    fn wait_paused(&self, waiting: Waiting) -> Option<Result<(), EmitError>> {
        let (done, outcome) = sync_channel(1);
        self.runtime.spawn(async move {
            let _ = done.send(waiting.await);
        });
        self.pause(true);
        let result = loop {
            match outcome.recv_timeout(POLL_INTERVAL) {
                Ok(result) => break result,
                // The runtime dropped the task (it is shutting down).
                Err(RecvTimeoutError::Disconnected) => break None,
                Err(RecvTimeoutError::Timeout) => {
                    while let Some(polled) = self.consumer.poll(Duration::ZERO) {
                        match polled {
                            Ok(message) => self.held.borrow_mut().push_back(message.detach()),
                            Err(e) => self.failed("consume", &e.to_string()),
                        }
                    }
                }
            }
        };
        self.pause(false);
        result
    }

    /// Pauses (or resumes) fetching for every partition assigned now.
    fn pause(&self, pause: bool) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let result = if pause {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, pause, "hookbus: Kafka source could not pause/resume its partitions");
        }
    }

    /// A record that is neither a CloudEvent nor mapped: dead-letter it (or
    /// count it as refused) and say so on the bus.
    fn refuse(
        &self,
        message: &impl Message,
        headers: &[(&str, &[u8])],
        reason: &DecodeError,
    ) -> Flow {
        let dead_letter_topic = self.dead_letter.as_ref().map(|d| d.topic.as_str());
        let announcement = json!({
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "kind": reason.kind(),
            "reason": reason.to_string(),
            "dead_letter_topic": dead_letter_topic,
        });
        match &self.dead_letter {
            Some(dead) => {
                let mut wait = DEAD_LETTER_RETRY.0;
                loop {
                    match dead.send(message, headers, reason) {
                        Ok(()) => break,
                        Err(e) => {
                            self.failed(
                                "dead_letter",
                                &format!(
                                    "could not copy {}/{}@{} to dead-letter topic {:?}: {e}; retrying in {wait:?}",
                                    message.topic(),
                                    message.partition(),
                                    message.offset(),
                                    dead.topic
                                ),
                            );
                            if self.stop.wait(wait) {
                                return Flow::Stop;
                            }
                            wait = (wait * 2).min(DEAD_LETTER_RETRY.1);
                        }
                    }
                }
                self.shared.dead_lettered.fetch_add(1, Relaxed);
                self.announce("hookbus.kafka_record_refused", announcement);
                Flow::Continue
            }
            None => {
                self.shared.refused.fetch_add(1, Relaxed);
                tracing::warn!(
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    reason = %reason,
                    "hookbus: Kafka record is not a CloudEvent and there is no dead-letter topic; refused"
                );
                // The announcement is the only trace of the record: wait for
                // room like any event.
                match Event::builder("hookbus.kafka_record_refused")
                    .source("hookbus")
                    .data(announcement)
                    .build()
                {
                    Ok(event) => self.publish(event),
                    Err(_) => Flow::Continue,
                }
            }
        }
    }

    fn store(&self, topic: &str, partition: i32, next: i64) {
        let mut tpl = TopicPartitionList::with_capacity(1);
        let stored = tpl
            .add_partition_offset(topic, partition, Offset::Offset(next))
            .and_then(|()| self.consumer.store_offsets(&tpl));
        match stored {
            Ok(()) => self
                .shared
                .with_partition(topic, partition, |s| s.position = Some(next)),
            // The partition was taken away meanwhile (e.g. after
            // max.poll.interval.ms): its new owner reads the record again.
            Err(e) => self.failed(
                "store_offset",
                &format!("offset {next} of {topic}/{partition} not stored: {e}"),
            ),
        }
    }

    fn failed(&self, kind: &str, error: &str) {
        self.shared.errors.fetch_add(1, Relaxed);
        tracing::warn!(kind, error, "hookbus: Kafka source failure");
        self.announce(
            "hookbus.kafka_source_failed",
            json!({"kind": kind, "error": error}),
        );
    }

    /// Emits one of the source's `hookbus.*` events without waiting.
    fn announce(&self, ty: &'static str, data: Value) {
        if !self.bus.has_subscribers(ty) {
            return;
        }
        if let Ok(event) = Event::builder(ty).source("hookbus").data(data).build()
            && let Err(e) = self.bus.emit(event)
        {
            tracing::warn!(event_type = ty, error = %e, "hookbus: Kafka source announcement not emitted");
        }
    }

    /// Commits what the bus accepted and leaves the group.
    fn finish(self) {
        commit(&self.consumer, &self.shared);
        self.consumer.unsubscribe();
        for state in self
            .shared
            .partitions()
            .values_mut()
            .flat_map(BTreeMap::values_mut)
        {
            state.assigned = false;
        }
        drop(self.consumer);
        self.shared.running.store(false, Relaxed);
    }
}
