//! Events per second into Kafka: through the bus (a `KafkaPublisher`
//! subscriber, CloudEvents binary mode) beside a raw rdkafka producer
//! (`ThreadedProducer` with a counting delivery callback, the fastest raw
//! path) on the same broker, in the same run, with the same producer
//! settings (hookbus's defaults: acks=all, idempotence, lz4).
//!
//! Every side builds each event's JSON, keys it by `decision_id`, and counts
//! an event only once the broker acknowledged it. `raw_rdkafka_same_records`
//! sends exactly what the bus sends (CloudEvents binary-mode headers
//! included) and is the baseline for hookbus's own cost;
//! `raw_rdkafka_no_headers` shows what the headers cost.
//!
//! One run against tansu 0.6.0 (in memory) on the 2-core development
//! machine, 20,000 events per iteration, 4 partitions, shared with other
//! builds (so expect ±20% between runs):
//!
//! | function | events/s |
//! |---|---|
//! | `raw_rdkafka_same_records` | 180 k |
//! | `raw_rdkafka_no_headers` | 759 k |
//! | `bus_kafka_publisher` (binary mode) | 230 k (1.28× raw, same records) |
//! | `bus_kafka_publisher_structured` | 252 k |
//!
//! The gap to `raw_rdkafka_no_headers` is the CloudEvents headers (six per
//! record; with fixed header values the raw producer reaches about 290 k/s,
//! so their bytes roughly halve throughput on librdkafka and the broker) and
//! making a fresh UUID v7 id and RFC 3339 time per event.
//!
//! Needs a broker: `scripts/with-kafka cargo bench --features kafka --bench kafka`
//! starts one, or set `KAFKA_BOOTSTRAP=host:port`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hookbus::kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use hookbus::kafka::rdkafka::client::DefaultClientContext;
use hookbus::kafka::rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use hookbus::kafka::rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use hookbus::kafka::rdkafka::{ClientConfig, ClientContext};
use hookbus::kafka::{KafkaPublisher, Mode};
use hookbus::{Bus, Event};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

/// Events per measured iteration.
const EVENTS: u64 = 20_000;
const PARTITIONS: i32 = 4;

fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "KAFKA_BOOTSTRAP is not set: run `scripts/with-kafka cargo bench --features kafka \
             --bench kafka` (it starts a broker) or set KAFKA_BOOTSTRAP=host:port"
        )
    })
}

fn create_topic(rt: &tokio::runtime::Runtime, name: &str) {
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .create()
            .expect("admin client");
        let topic = NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1));
        let results = admin
            .create_topics([&topic], &AdminOptions::new())
            .await
            .expect("create_topics");
        for r in results {
            if let Err((t, code)) = r {
                panic!("could not create topic {t}: {code}");
            }
        }
    });
}

fn payload(seq: u64) -> serde_json::Value {
    json!({
        "decision_id": format!("d{}", seq % 1000),
        "function_name": "claims_review",
        "confidence": 0.91,
        "seq": seq,
    })
}

/// The CloudEvents binary-mode headers of one `decision.captured` event,
/// built by hand with the raw API.
fn cloudevents_headers() -> OwnedHeaders {
    let id = uuid::Uuid::now_v7().to_string();
    let time = time::OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let mut headers = OwnedHeaders::new_with_capacity(6);
    for (key, value) in [
        ("content-type", "application/json"),
        ("ce_specversion", "1.0"),
        ("ce_id", id.as_str()),
        ("ce_source", "hookbus"),
        ("ce_type", "decision.captured"),
        ("ce_time", time.as_str()),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}

/// Counts acknowledged deliveries and wakes the waiter at the target (only
/// then, so the callback costs an atomic add per message, as a lean raw
/// producer's would).
struct Acks {
    done: AtomicU64,
    failed: AtomicU64,
    target: AtomicU64,
    lock: Mutex<()>,
    changed: Condvar,
}

/// The raw producer's context: counts into shared [`Acks`].
struct Counting(Arc<Acks>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let acks = &self.0;
        if result.is_err() {
            acks.failed.fetch_add(1, Ordering::SeqCst);
        }
        let done = acks.done.fetch_add(1, Ordering::SeqCst) + 1;
        if done >= acks.target.load(Ordering::SeqCst) {
            let _guard = acks.lock.lock().unwrap();
            acks.changed.notify_all();
        }
    }
}

impl Acks {
    fn new() -> Acks {
        Acks {
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            lock: Mutex::new(()),
            changed: Condvar::new(),
        }
    }

    fn wait_for(&self, target: u64) {
        self.target.store(target, Ordering::SeqCst);
        let mut guard = self.lock.lock().unwrap();
        while self.done.load(Ordering::SeqCst) < target {
            guard = self.changed.wait(guard).unwrap();
        }
        self.target.store(u64::MAX, Ordering::SeqCst);
    }
}

fn raw_producer(acks: Arc<Acks>) -> ThreadedProducer<Counting> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("client.id", "hookbus-bench-raw");
    config
        .create_with_context(Counting(acks))
        .expect("raw producer")
}

fn kafka(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let raw_topic = format!("bench-raw-{run}");
    let bus_topic = format!("bench-bus-{run}");
    create_topic(&rt, &raw_topic);
    create_topic(&rt, &bus_topic);

    let mut group = c.benchmark_group("kafka_publish");
    group
        .throughput(Throughput::Elements(EVENTS))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(15));

    // Baselines: rdkafka's callback producer, no bus. The first sends the
    // same records the bus sends (key, JSON value, CloudEvents binary-mode
    // headers); the second leaves the headers out, to show what the
    // CloudEvents binding itself costs.
    let acks = Arc::new(Acks::new());
    let producer = raw_producer(acks.clone());
    let mut sent = 0u64;
    for with_headers in [true, false] {
        let name = if with_headers {
            "raw_rdkafka_same_records"
        } else {
            "raw_rdkafka_no_headers"
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    for seq in 0..EVENTS {
                        let data = payload(seq);
                        let key = data["decision_id"].as_str().unwrap().to_owned();
                        let value = serde_json::to_vec(&data).unwrap();
                        let mut record = BaseRecord::to(&raw_topic).key(&key).payload(&value);
                        if with_headers {
                            record = record.headers(cloudevents_headers());
                        }
                        loop {
                            match producer.send(record) {
                                Ok(()) => break,
                                Err((_, back)) => {
                                    // QueueFull: let deliveries free room.
                                    record = back;
                                    producer.poll(Duration::from_millis(1));
                                }
                            }
                        }
                        sent += 1;
                    }
                    acks.wait_for(sent);
                }
                start.elapsed()
            })
        });
    }
    assert_eq!(
        acks.failed.load(Ordering::Relaxed),
        0,
        "raw deliveries failed"
    );
    producer.flush(Duration::from_secs(30)).unwrap();

    // Through the bus: emit -> subscriber (recommended options) -> KafkaPublisher,
    // in binary mode (the default) and in structured mode.
    for mode in [Mode::Binary, Mode::Structured] {
        let publisher = KafkaPublisher::builder(bootstrap(), &bus_topic)
            .mode(mode)
            .build()
            .expect("publisher");
        rt.block_on(publisher.healthcheck(Duration::from_secs(30)))
            .expect("healthcheck");
        let name = match mode {
            Mode::Binary => "bus_kafka_publisher",
            Mode::Structured => "bus_kafka_publisher_structured",
        };
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let publisher = publisher.clone();
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let bus = Bus::new().unwrap();
                        bus.subscriber("decision.captured")
                            .name("kafka")
                            .options(KafkaPublisher::recommended_options())
                            .sink(publisher.clone())
                            .unwrap()
                            .detach();
                        for seq in 0..EVENTS {
                            let event = Event::new("decision.captured", payload(seq)).unwrap();
                            bus.publish(event).await.unwrap();
                        }
                        // Shutdown returns once every event is acknowledged.
                        let report = bus.shutdown(Duration::from_secs(120)).await;
                        let kafka = report.subscriber("kafka").unwrap();
                        assert_eq!(kafka.stats.delivered, EVENTS, "{report}");
                    }
                    start.elapsed()
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, kafka);
criterion_main!(benches);
