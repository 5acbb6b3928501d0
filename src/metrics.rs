//! Metrics through the [`metrics`](https://docs.rs/metrics) facade: the bus,
//! its subscribers, the webhooks of a [`WebhookManager`] and a durable
//! [`Store`](crate::store::Store), under Prometheus names.
//!
//! hookbus does not pick an exporter: install any `metrics` recorder
//! (`metrics-exporter-prometheus`, statsd, OpenTelemetry, ...) and the
//! numbers go there. Without a recorder, recording does nothing.
//!
//! # A sampler, not instrumentation
//!
//! The numbers already exist: [`Bus::stats`], [`Subscription::stats`](crate::Subscription::stats),
//! [`WebhookManager::stats`] and [`Store::stats`](crate::store::Store::stats)
//! keep them, consistent, for every event. This module copies those
//! snapshots into the recorder when asked; it adds nothing to
//! [`Bus::emit`] or to any delivery, so the emit path is unchanged whether
//! or not the feature is on or a recorder is installed (no benchmark is
//! needed for that: no code on that path changed). Counters are written with
//! [`Counter::absolute`](metrics::Counter::absolute), so they are exactly the
//! `stats()` values at the moment of sampling.
//!
//! Two ways to sample, for the two kinds of exporter:
//!
//! - [`Collector::record`] (or [`record`] for a bus alone), called by a
//!   pull exporter right before it renders (a `/metrics` handler): the
//!   scrape sees numbers as fresh as the scrape itself, and nothing runs
//!   between scrapes.
//! - [`Collector::spawn`], a [`MetricsReporter`] task that samples every
//!   interval, for push exporters that have no scrape to hook into. It stops
//!   when the reporter is dropped.
//!
//! # Names
//!
//! Counters end in `_total`; gauges are values now. Labels: `subscriber`
//! (its name) and `subscriber_id` (its id, unique within the bus: two
//! subscribers may share a name); `webhook` (its name) and `webhook_id`
//! (the manager's id).
//!
//! | name | kind | labels | from |
//! |---|---|---|---|
//! | `hookbus_bus_emitted_total` | counter | | [`BusStats::emitted`] |
//! | `hookbus_bus_unmatched_total` | counter | | [`BusStats::unmatched`] |
//! | `hookbus_bus_rejected_total` | counter | | [`BusStats::rejected_full`] |
//! | `hookbus_bus_subscribers` | gauge | | live subscribers |
//! | `hookbus_subscriber_received_total` | counter | subscriber, subscriber_id | [`SubscriberStats::received`] |
//! | `hookbus_subscriber_filtered_total` | counter | subscriber, subscriber_id | [`SubscriberStats::filtered`] |
//! | `hookbus_subscriber_delivered_total` | counter | subscriber, subscriber_id | [`SubscriberStats::delivered`] |
//! | `hookbus_subscriber_failed_total` | counter | subscriber, subscriber_id | [`SubscriberStats::failed`] |
//! | `hookbus_subscriber_dropped_total` | counter | subscriber, subscriber_id | [`SubscriberStats::dropped`] |
//! | `hookbus_subscriber_mailbox_depth` | gauge | subscriber, subscriber_id | [`SubscriberStats::mailbox_len`] |
//! | `hookbus_subscriber_in_flight` | gauge | subscriber, subscriber_id | [`SubscriberStats::in_flight`] |
//! | `hookbus_webhook_attempts_total` | counter | webhook, webhook_id | HTTP requests made |
//! | `hookbus_webhook_delivered_total` | counter | webhook, webhook_id | events delivered (2xx) |
//! | `hookbus_webhook_failed_total` | counter | webhook, webhook_id | events dead-lettered |
//! | `hookbus_webhook_retries_total` | counter | webhook, webhook_id | attempts after the first |
//! | `hookbus_webhook_dropped_total` | counter | webhook, webhook_id | refused while disabled, or dropped by the mailbox |
//! | `hookbus_webhook_rate_limited_total` | counter | webhook, webhook_id | requests that waited for a rate-limit token |
//! | `hookbus_webhook_enabled` | gauge | webhook, webhook_id | 1 enabled (circuit closed), 0 disabled (circuit open) |
//! | `hookbus_webhook_consecutive_failures` | gauge | webhook, webhook_id | failed deliveries in a row now |
//! | `hookbus_webhook_dead_letters` | gauge | webhook, webhook_id | dead letters kept now (for `retry_failed`) |
//! | `hookbus_webhook_waiting_retry` | gauge | webhook, webhook_id | deliveries sleeping out a backoff now |
//! | `hookbus_webhook_responses_total` | counter | webhook, webhook_id, class (`2xx`, `3xx`, `4xx`, `5xx`, `error` for no response) | HTTP attempts by how they ended |
//! | `hookbus_webhook_attempt_duration_seconds_bucket` / `_sum` / `_count` | counter (sum: gauge) | webhook, webhook_id, le | every attempt's latency since the start, in the buckets of [`LATENCY_BUCKETS_MS`](crate::webhook::LATENCY_BUCKETS_MS) (cumulative, so `histogram_quantile` works) |
//! | `hookbus_webhook_latency_seconds` | gauge | webhook, webhook_id, quantile (`0.5`, `0.99`) | over the recent attempts |
//! | `hookbus_kafka_source_{consumed,emitted,dead_lettered,refused,skipped,errors,commits,pauses}_total` | counter | group | a [`KafkaSource`](crate::kafka::KafkaSource)'s counters ([`Collector::kafka_source`]) |
//! | `hookbus_kafka_source_held` | gauge | group | records read ahead while waiting for room in the bus, not yet handled |
//! | `hookbus_kafka_source_lag` | gauge | group, topic, partition | records not yet handled, per assigned partition (when the broker reports a high watermark) |
//! | `hookbus_kafka_publisher_queued` | gauge | topic | messages still queued in librdkafka ([`Collector::kafka_publisher`]) |
//! | `hookbus_kafka_publisher_skipped_from_kafka_total` | counter | topic | events that came from Kafka and were not published back |
//! | `hookbus_kafka_publisher_produce_duration_seconds_bucket` / `_sum` / `_count` | counter (sum: gauge) | topic, le | every record's time from the publisher taking it to its delivery report, in the buckets of [`PRODUCE_LATENCY_BUCKETS_MS`](crate::kafka::PRODUCE_LATENCY_BUCKETS_MS) ([`KafkaPublisher::produce_latency`](crate::kafka::KafkaPublisher::produce_latency)) |
//! | `hookbus_kafka_publisher_produce_failed_total` | counter | topic | of those, the records that failed |
//! | `hookbus_store_appended_total` | counter | | [`StoreStats::appended`](crate::store::StoreStats::appended) |
//! | `hookbus_store_delivered_total` | counter | | [`StoreStats::delivered`](crate::store::StoreStats::delivered) |
//! | `hookbus_store_dead_lettered_total` | counter | | [`StoreStats::dead_lettered`](crate::store::StoreStats::dead_lettered) |
//! | `hookbus_store_discarded_total` | counter | | [`StoreStats::discarded`](crate::store::StoreStats::discarded) |
//! | `hookbus_store_recovered_total` | counter | | [`StoreStats::recovered`](crate::store::StoreStats::recovered) |
//! | `hookbus_store_unreadable_total` | counter | | [`StoreStats::unreadable`](crate::store::StoreStats::unreadable) |
//! | `hookbus_store_commits_total` | counter | | [`StoreStats::commits`](crate::store::StoreStats::commits) |
//! | `hookbus_store_commit_errors_total` | counter | | [`StoreStats::commit_errors`](crate::store::StoreStats::commit_errors) |
//! | `hookbus_store_failing` | gauge | | 1 while the store refuses events after a failed commit |
//!
//! The webhook rows need the `webhook` feature and [`Collector::webhooks`];
//! the store rows the `durable` feature and `Collector::store`. A
//! subscriber or webhook that goes away keeps its last values in the
//! recorder (most exporters can expire idle series, e.g.
//! `PrometheusBuilder::idle_timeout`).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use hookbus::Bus;
//! use hookbus::metrics::Collector;
//!
//! let bus = Bus::new()?;
//! let _audit = bus.subscriber("order.*").name("audit").on(|_| {})?;
//! bus.emit_json("order.created", serde_json::json!({"id": 1}))?;
//!
//! // With a pull exporter: sample right before rendering.
//! hookbus::metrics::record(&bus).await;
//!
//! // With a push exporter: sample every 10 seconds until `reporter` drops.
//! let reporter = Collector::new(&bus).spawn(Duration::from_secs(10))?;
//! drop(reporter);
//! # Ok(()) }
//! ```
//!
//! `examples/metrics.rs` serves these numbers on `/metrics` with
//! `metrics-exporter-prometheus` and axum.

use std::fmt;
#[cfg(feature = "webhook")]
use std::sync::Arc;
use std::time::Duration;

use metrics::{Label, counter, gauge};

use crate::bus::Bus;
use crate::stats::{BusStats, SubscriberStats};
#[cfg(feature = "webhook")]
use crate::webhook::WebhookManager;

/// Samples the bus (and optionally a [`WebhookManager`] and a store) into
/// the installed `metrics` recorder. See the [module docs](self) for the
/// names.
#[derive(Clone)]
pub struct Collector {
    bus: Bus,
    #[cfg(feature = "webhook")]
    webhooks: Option<Arc<WebhookManager>>,
    #[cfg(feature = "durable")]
    store: Option<crate::store::Store>,
    #[cfg(feature = "kafka")]
    kafka: Vec<KafkaSampled>,
}

/// A Kafka part the collector samples.
#[cfg(feature = "kafka")]
#[derive(Clone)]
enum KafkaSampled {
    Source {
        group: String,
        stats: std::sync::Arc<dyn Fn() -> crate::kafka::SourceStats + Send + Sync>,
    },
    Publisher(crate::kafka::KafkaPublisher),
}

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Collector");
        #[cfg(feature = "webhook")]
        d.field("webhooks", &self.webhooks.is_some());
        #[cfg(feature = "durable")]
        d.field("store", &self.store.is_some());
        d.finish_non_exhaustive()
    }
}

/// What [`Collector::spawn`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The sampling interval was zero.
    #[error("the metrics sampling interval must be longer than zero")]
    ZeroInterval,
    /// The bus has been shut down: there is nothing left to sample.
    #[error("the bus is shut down")]
    BusClosed,
}

impl Collector {
    /// A collector of `bus`'s counters and those of its subscribers.
    pub fn new(bus: &Bus) -> Collector {
        Collector {
            bus: bus.clone(),
            #[cfg(feature = "webhook")]
            webhooks: None,
            #[cfg(feature = "durable")]
            store: None,
            #[cfg(feature = "kafka")]
            kafka: Vec::new(),
        }
    }

    /// Also samples a Kafka source (the `hookbus_kafka_source_*` rows:
    /// records consumed, emitted, dead-lettered, refused, skipped, errors,
    /// commits, pauses, and per partition the lag).
    #[cfg(feature = "kafka")]
    #[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
    pub fn kafka_source(mut self, source: &crate::kafka::KafkaSource) -> Collector {
        self.kafka.push(KafkaSampled::Source {
            group: source.group_id().to_owned(),
            stats: source.stats_reader(),
        });
        self
    }

    /// Also samples a Kafka publisher (the `hookbus_kafka_publisher_*` rows:
    /// messages still queued in librdkafka, events from Kafka not published
    /// back, the produce-latency histogram).
    #[cfg(feature = "kafka")]
    #[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
    pub fn kafka_publisher(mut self, publisher: &crate::kafka::KafkaPublisher) -> Collector {
        self.kafka.push(KafkaSampled::Publisher(publisher.clone()));
        self
    }

    /// Also samples every webhook `manager` holds (the `hookbus_webhook_*`
    /// rows).
    #[cfg(feature = "webhook")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
    pub fn webhooks(mut self, manager: Arc<WebhookManager>) -> Collector {
        self.webhooks = Some(manager);
        self
    }

    /// Also samples `store` (the `hookbus_store_*` rows).
    #[cfg(feature = "durable")]
    #[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
    pub fn store(mut self, store: &crate::store::Store) -> Collector {
        self.store = Some(store.clone());
        self
    }

    /// Takes one sample of everything and writes it to the recorder.
    pub async fn record(&self) {
        record_bus(&self.bus.stats());
        #[cfg(feature = "webhook")]
        if let Some(m) = &self.webhooks {
            record_webhooks(m);
        }
        #[cfg(feature = "durable")]
        if let Some(s) = &self.store {
            record_store(&s.stats());
        }
        #[cfg(feature = "kafka")]
        for k in &self.kafka {
            record_kafka(k);
        }
    }

    /// Samples now and then every `every`, on the bus's runtime, until the
    /// returned reporter is dropped or [stopped](MetricsReporter::stop), or
    /// the bus shuts down (after one last sample).
    pub fn spawn(self, every: Duration) -> Result<MetricsReporter, MetricsError> {
        if every.is_zero() {
            return Err(MetricsError::ZeroInterval);
        }
        if self.bus.is_closed() {
            return Err(MetricsError::BusClosed);
        }
        let runtime = self.bus.runtime().clone();
        let task = runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.record().await;
                if self.bus.is_closed() {
                    break;
                }
            }
        });
        Ok(MetricsReporter { task })
    }
}

/// Samples `bus` and its subscribers once: [`Collector::new(bus).record()`](Collector::record).
pub async fn record(bus: &Bus) {
    Collector::new(bus).record().await;
}

/// The task [`Collector::spawn`] started; dropping it stops the sampling.
#[derive(Debug)]
pub struct MetricsReporter {
    task: tokio::task::JoinHandle<()>,
}

impl MetricsReporter {
    /// Stops sampling (as dropping does).
    pub fn stop(self) {}

    /// Whether the task has ended (the bus shut down).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for MetricsReporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record_bus(s: &BusStats) {
    counter!("hookbus_bus_emitted_total").absolute(s.emitted);
    counter!("hookbus_bus_unmatched_total").absolute(s.unmatched);
    counter!("hookbus_bus_rejected_total").absolute(s.rejected_full);
    gauge!("hookbus_bus_subscribers").set(s.subscribers.len() as f64);
    for sub in &s.subscribers {
        record_subscriber(sub);
    }
}

fn record_subscriber(s: &SubscriberStats) {
    let labels = [
        Label::new("subscriber", s.name.clone()),
        Label::new("subscriber_id", s.id.to_string()),
    ];
    let c = |name: &'static str, v: u64| counter!(name, labels.iter()).absolute(v);
    c("hookbus_subscriber_received_total", s.received);
    c("hookbus_subscriber_filtered_total", s.filtered);
    c("hookbus_subscriber_delivered_total", s.delivered);
    c("hookbus_subscriber_failed_total", s.failed);
    c("hookbus_subscriber_dropped_total", s.dropped);
    gauge!("hookbus_subscriber_mailbox_depth", labels.iter()).set(s.mailbox_len as f64);
    gauge!("hookbus_subscriber_in_flight", labels.iter()).set(s.in_flight as f64);
}

#[cfg(feature = "webhook")]
fn record_webhooks(manager: &WebhookManager) {
    for info in manager.list() {
        // A webhook deleted between `list` and here is skipped.
        let Ok(s) = manager.stats(&info.id) else {
            continue;
        };
        let labels = [
            Label::new("webhook", info.name.clone()),
            Label::new("webhook_id", info.id.to_string()),
        ];
        let c = |name: &'static str, v: u64| counter!(name, labels.iter()).absolute(v);
        c("hookbus_webhook_attempts_total", s.attempts);
        c("hookbus_webhook_delivered_total", s.delivered);
        c("hookbus_webhook_failed_total", s.failed);
        c("hookbus_webhook_retries_total", s.retried);
        c("hookbus_webhook_dropped_total", s.dropped);
        c("hookbus_webhook_rate_limited_total", s.rate_limited);
        let g = |name: &'static str, v: f64| gauge!(name, labels.iter()).set(v);
        g("hookbus_webhook_enabled", if s.enabled { 1.0 } else { 0.0 });
        g(
            "hookbus_webhook_consecutive_failures",
            s.consecutive_failures as f64,
        );
        g("hookbus_webhook_dead_letters", s.dead_letters as f64);
        let classes = s.attempts_by_class;
        for (class, v) in [
            ("2xx", classes.success),
            ("3xx", classes.redirect),
            ("4xx", classes.client_error),
            ("5xx", classes.server_error),
            ("error", classes.no_response),
        ] {
            let mut l = labels.to_vec();
            l.push(Label::new("class", class));
            counter!("hookbus_webhook_responses_total", l).absolute(v);
        }
        // The attempt latency histogram, as Prometheus histograms are
        // exposed: cumulative `le` buckets, a sum and a count.
        for (bound, v) in crate::webhook::LATENCY_BUCKETS_MS
            .iter()
            .map(|ms| format!("{}", *ms as f64 / 1000.0))
            .chain(std::iter::once("+Inf".to_owned()))
            .zip(
                s.latency
                    .cumulative
                    .iter()
                    .copied()
                    .chain(std::iter::once(s.latency.count)),
            )
        {
            let mut l = labels.to_vec();
            l.push(Label::new("le", bound));
            counter!("hookbus_webhook_attempt_duration_seconds_bucket", l).absolute(v);
        }
        gauge!(
            "hookbus_webhook_attempt_duration_seconds_sum",
            labels.iter()
        )
        .set(s.latency.sum.as_secs_f64());
        counter!(
            "hookbus_webhook_attempt_duration_seconds_count",
            labels.iter()
        )
        .absolute(s.latency.count);
        g("hookbus_webhook_waiting_retry", s.waiting_retry as f64);
        for (q, v) in [("0.5", s.p50_latency), ("0.99", s.p99_latency)] {
            if let Some(v) = v {
                let mut l = labels.to_vec();
                l.push(Label::new("quantile", q));
                gauge!("hookbus_webhook_latency_seconds", l).set(v.as_secs_f64());
            }
        }
    }
}

#[cfg(feature = "kafka")]
fn record_kafka(k: &KafkaSampled) {
    match k {
        KafkaSampled::Source { group, stats } => {
            let s = stats();
            let labels = [Label::new("group", group.clone())];
            let c = |name: &'static str, v: u64| counter!(name, labels.iter()).absolute(v);
            c("hookbus_kafka_source_consumed_total", s.consumed);
            c("hookbus_kafka_source_emitted_total", s.emitted);
            c("hookbus_kafka_source_dead_lettered_total", s.dead_lettered);
            c("hookbus_kafka_source_refused_total", s.refused);
            c("hookbus_kafka_source_skipped_total", s.skipped);
            c("hookbus_kafka_source_pauses_total", s.pauses);
            gauge!("hookbus_kafka_source_held", labels.iter()).set(s.held as f64);
            c("hookbus_kafka_source_errors_total", s.errors);
            c("hookbus_kafka_source_commits_total", s.commits);
            for p in s.partitions.iter().filter(|p| p.assigned) {
                if let Some(lag) = p.lag {
                    let l = [
                        Label::new("group", group.clone()),
                        Label::new("topic", p.topic.clone()),
                        Label::new("partition", p.partition.to_string()),
                    ];
                    gauge!("hookbus_kafka_source_lag", l.iter()).set(lag as f64);
                }
            }
        }
        KafkaSampled::Publisher(p) => {
            let labels = [Label::new("topic", p.topic().to_owned())];
            gauge!("hookbus_kafka_publisher_queued", labels.iter()).set(p.unflushed() as f64);
            counter!(
                "hookbus_kafka_publisher_skipped_from_kafka_total",
                labels.iter()
            )
            .absolute(p.skipped_from_kafka());
            record_produce_latency(&labels, &p.produce_latency());
        }
    }
}

/// A publisher's produce latencies as a Prometheus histogram: cumulative
/// `le` buckets, a sum and a count.
#[cfg(feature = "kafka")]
fn record_produce_latency(labels: &[Label], latency: &crate::kafka::ProduceLatency) {
    let bounds = crate::kafka::PRODUCE_LATENCY_BUCKETS_MS
        .iter()
        .map(|ms| format!("{}", *ms as f64 / 1000.0))
        .chain(std::iter::once("+Inf".to_owned()));
    let counts = latency
        .cumulative
        .iter()
        .copied()
        .chain(std::iter::once(latency.count));
    for (bound, v) in bounds.zip(counts) {
        let mut l = labels.to_vec();
        l.push(Label::new("le", bound));
        counter!("hookbus_kafka_publisher_produce_duration_seconds_bucket", l).absolute(v);
    }
    gauge!(
        "hookbus_kafka_publisher_produce_duration_seconds_sum",
        labels.iter()
    )
    .set(latency.sum.as_secs_f64());
    counter!(
        "hookbus_kafka_publisher_produce_duration_seconds_count",
        labels.iter()
    )
    .absolute(latency.count);
    counter!(
        "hookbus_kafka_publisher_produce_failed_total",
        labels.iter()
    )
    .absolute(latency.failed);
}

#[cfg(feature = "durable")]
fn record_store(s: &crate::store::StoreStats) {
    counter!("hookbus_store_appended_total").absolute(s.appended);
    counter!("hookbus_store_delivered_total").absolute(s.delivered);
    counter!("hookbus_store_dead_lettered_total").absolute(s.dead_lettered);
    counter!("hookbus_store_discarded_total").absolute(s.discarded);
    counter!("hookbus_store_recovered_total").absolute(s.recovered);
    counter!("hookbus_store_unreadable_total").absolute(s.unreadable);
    counter!("hookbus_store_commits_total").absolute(s.commits);
    counter!("hookbus_store_commit_errors_total").absolute(s.commit_errors);
    gauge!("hookbus_store_failing").set(if s.last_error.is_some() { 1.0 } else { 0.0 });
}
