//! Records per second consumed from Kafka into a bus, against a raw
//! rdkafka consumer reading the same records, in the same run; and the
//! whole path producer → Kafka → source → webhook (batched) in events/s.
//!
//! - `raw_base_consumer`: an rdkafka `BaseConsumer` (what `KafkaSource`
//!   runs on; `StreamConsumer` hangs when dropped on tansu 0.6.0) in a fresh
//!   group polls every record and counts it. No decoding: the floor.
//! - `source_into_bus`: a `KafkaSource` in a fresh group decodes each record
//!   (CloudEvents binary mode), emits it with `publish`, and one subscriber
//!   (a `Block` mailbox of 4,096) counts it; offsets are stored as it goes.
//! - `source_into_bus_small_mailbox`: the same with a `Block` mailbox of 8,
//!   so the source finds it full again and again and waits for room
//!   (back-pressure). Goals: at least 0.5x `source_into_bus`, which itself
//!   stays at least 0.8x `raw_base_consumer`.
//! - `end_to_end_webhook`: a bus with a `KafkaPublisher` produces the
//!   events, a second bus with a `KafkaSource` consumes them and a webhook
//!   subscriber (batches of 100) posts them to an axum receiver on
//!   127.0.0.1, which counts events; the clock stops at the last one.
//!
//! The `consume` records are produced in single-record batches (`linger.ms=0`,
//! `batch.num.messages=1`): a source that waits for room may pause and
//! resume its partitions, and tansu 0.6.0 skips records when a fetch
//! starts inside a batch.
//!
//! One run against tansu 0.6.0 (in memory) on the 2-core machine, 20,000
//! records on 4 partitions: `raw_base_consumer` 31.2 k records/s,
//! `source_into_bus` 28.4 k records/s (0.91x raw), and end to end
//! (10,000 events: produce, consume, deliver in batches of 100 over HTTP)
//! 10.3 k events/s. Tansu is the bottleneck of all three.
//!
//! With the small mailbox (single-record batches; 2-core machine shared
//! with other builds; `--measurement-time 3 --warm-up-time 1`), the last
//! run: raw 27.9 k records/s, mailbox 4,096 23.4 k (0.84x raw), mailbox 8
//! 23.5 k (1.00x the large mailbox). Under heavier load (load average 4-6)
//! two earlier runs gave raw 25.8 k / 27.3 k, large 19.1 k / 20.6 k (0.74x /
//! 0.75x), small 21.4 k / 23.2 k (1.12x / 1.13x); raw and large alone, in
//! one run, 27.6 k and 23.6 k (0.86x), the same as before this change
//! (27.5 k and 23.6 k). Before it, a full mailbox cost a pause and a resume
//! per event: 37-66 records/s.
//!
//! Needs a broker: `scripts/with-kafka cargo bench --features kafka,webhook
//! --bench kafka_source`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hookbus::kafka::rdkafka::ClientConfig;
use hookbus::kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use hookbus::kafka::rdkafka::client::DefaultClientContext;
use hookbus::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hookbus::kafka::{KafkaPublisher, KafkaSource};
use hookbus::webhook::{WebhookSink, WireFormat};
use hookbus::{Bus, Event, OverflowPolicy};
use serde_json::json;
use tokio::sync::Notify;

const RECORDS: u64 = 20_000;
const PARTITIONS: i32 = 4;

fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "KAFKA_BOOTSTRAP is not set: run `scripts/with-kafka cargo bench --features kafka \
             --bench kafka_source` (it starts a broker) or set KAFKA_BOOTSTRAP=host:port"
        )
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn create_topic(label: &str) -> String {
    let name = format!("bench-{label}-{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let topic = NewTopic::new(&name, PARTITIONS, TopicReplication::Fixed(1));
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create_topics")
    {
        if let Err((t, code)) = r {
            panic!("could not create topic {t}: {code}");
        }
    }
    name
}

fn event(i: u64) -> Event {
    Event::new(
        "decision.captured",
        json!({"decision_id": format!("d{}", i % 1000), "confidence": 0.91, "seq": i}),
    )
    .expect("event")
}

/// Produces `n` events to `topic` through a bus with a `KafkaPublisher`
/// (single-record batches when `exact_offsets`).
async fn produce(topic: &str, n: u64, exact_offsets: bool) {
    let bus = Bus::new().expect("bus");
    let mut publisher = KafkaPublisher::builder([bootstrap()], topic);
    if exact_offsets {
        publisher = publisher
            .set("linger.ms", "0")
            .set("batch.num.messages", "1");
    }
    let publisher = publisher.build().expect("publisher");
    bus.subscriber("decision.**")
        .name("kafka")
        .options(KafkaPublisher::recommended_options())
        .overflow(OverflowPolicy::Block)
        .sink(publisher)
        .expect("subscribe")
        .detach();
    for i in 0..n {
        bus.publish(event(i)).await.expect("publish");
    }
    let report = bus.shutdown(Duration::from_secs(120)).await;
    assert!(report.is_clean(), "{report:?}");
}

fn consume(c: &mut Criterion) {
    let rt = runtime();
    let topic = rt.block_on(async {
        let topic = create_topic("consume").await;
        produce(&topic, RECORDS, true).await;
        topic
    });
    let mut group = c.benchmark_group("kafka_source/consume");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(RECORDS));

    let t = topic.clone();
    group.bench_function("raw_base_consumer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", bootstrap())
                    .set("group.id", format!("bench-raw-{}", uuid::Uuid::new_v4()))
                    .set("auto.offset.reset", "earliest")
                    .set("enable.auto.commit", "false")
                    .create()
                    .expect("consumer");
                consumer.subscribe(&[&t]).expect("subscribe");
                let start = Instant::now();
                let mut n = 0;
                while n < RECORDS {
                    if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
                        n += 1;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(120),
                        "raw: {n} records"
                    );
                }
                total += start.elapsed();
            }
            total
        })
    });

    for (name, capacity) in [
        ("source_into_bus", 4096),
        ("source_into_bus_small_mailbox", 8),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(source_into_bus(&topic, capacity));
                }
                total
            })
        });
    }
    group.finish();
}

/// How long a fresh source takes to bring every record of `topic` into a
/// bus whose one subscriber has a `Block` mailbox of `capacity`.
async fn source_into_bus(topic: &str, capacity: usize) -> Duration {
    let bus = Bus::new().expect("bus");
    let count = Arc::new(AtomicU64::new(0));
    let all = Arc::new(Notify::new());
    let (c, a) = (count.clone(), all.clone());
    // Block: the source waits for room (back-pressure) rather than the
    // subscriber dropping.
    bus.subscriber("decision.**")
        .capacity(capacity)
        .overflow(OverflowPolicy::Block)
        .on(move |_| {
            if c.fetch_add(1, Ordering::Relaxed) + 1 == RECORDS {
                a.notify_one();
            }
        })
        .expect("subscribe")
        .detach();
    let start = Instant::now();
    let source = KafkaSource::builder(bootstrap(), format!("bench-src-{}", uuid::Uuid::new_v4()))
        .topic(topic)
        .set("auto.offset.reset", "earliest")
        .start(&bus)
        .expect("source");
    if tokio::time::timeout(Duration::from_secs(60), all.notified())
        .await
        .is_err()
    {
        panic!(
            "{} of {RECORDS} records reached the bus in 60 s (mailbox {capacity}): {:?}",
            count.load(Ordering::Relaxed),
            source.stats()
        );
    }
    let elapsed = start.elapsed();
    source.shutdown(Duration::from_secs(10)).await;
    bus.shutdown(Duration::from_secs(10)).await;
    elapsed
}

fn end_to_end(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("kafka_source/end_to_end");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    const N: u64 = 10_000;
    group.throughput(Throughput::Elements(N));
    group.bench_function("producer_kafka_source_webhook_batched", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(async {
                    // The receiver counts the events in each batch.
                    let received = Arc::new(AtomicU64::new(0));
                    let all = Arc::new(Notify::new());
                    let (r, a) = (received.clone(), all.clone());
                    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
                        let (r, a) = (r.clone(), a.clone());
                        async move {
                            let v: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            let n = v.as_array().map_or(1, |a| a.len() as u64);
                            if r.fetch_add(n, Ordering::Relaxed) + n >= N {
                                a.notify_one();
                            }
                            "ok"
                        }
                    });
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind");
                    let addr = listener.local_addr().expect("addr");
                    let server = tokio::spawn(async move {
                        let _ = axum::serve(listener, app).await;
                    });
                    let topic = create_topic("e2e").await;
                    let consumer_bus = Bus::new().expect("bus");
                    let _hook = WebhookSink::builder(format!("http://{addr}/hook"))
                        .allow_http(true)
                        .events(["decision.**"])
                        .format(WireFormat::Batched)
                        .batch(100, Duration::from_millis(20))
                        .concurrency(4)
                        .capacity(N as usize)
                        .overflow(OverflowPolicy::Block)
                        .build()
                        .expect("webhook")
                        .subscribe(&consumer_bus)
                        .expect("subscribe");
                    let source = KafkaSource::builder(
                        bootstrap(),
                        format!("bench-e2e-{}", uuid::Uuid::new_v4()),
                    )
                    .topic(topic.clone())
                    .set("auto.offset.reset", "earliest")
                    .start(&consumer_bus)
                    .expect("source");
                    let start = Instant::now();
                    produce(&topic, N, false).await;
                    tokio::time::timeout(Duration::from_secs(120), all.notified())
                        .await
                        .expect("every event reached the receiver");
                    let elapsed = start.elapsed();
                    source.shutdown(Duration::from_secs(10)).await;
                    consumer_bus.shutdown(Duration::from_secs(10)).await;
                    server.abort();
                    elapsed
                });
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, consume, end_to_end);
criterion_main!(benches);
