//! What the Kafka tests share: the broker's address (checked once per test
//! binary: it must not skip offsets), the producer settings of tests that
//! need exact offsets, and fresh topics.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hookbus::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hookbus::kafka::rdkafka::message::{Message, OwnedMessage};
use hookbus::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use hookbus::kafka::rdkafka::{Offset, TopicPartitionList};
use hookbus::kafka::{KafkaPublisher, KafkaPublisherBuilder};

use hookbus::kafka::rdkafka::ClientConfig;
use hookbus::kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use hookbus::kafka::rdkafka::client::DefaultClientContext;

/// The broker's address (`KAFKA_BOOTSTRAP`: the tansu `scripts/with-kafka`
/// starts, or an Apache Kafka you point it at), once the broker passed
/// [`check_offsets`] in this test binary: a test cannot pass by accident on
/// a broker that skips offsets.
pub fn bootstrap() -> String {
    let bootstrap = match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => panic!(
            "KAFKA_BOOTSTRAP is not set: the Kafka tests need a broker. Run them with \
             ./scripts/test or scripts/with-kafka (they start one), or set \
             KAFKA_BOOTSTRAP=host:port (e.g. Apache Kafka)"
        ),
    };
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let b = bootstrap.clone();
        // On a thread of its own: callers may be inside a runtime.
        std::thread::spawn(move || check_offsets(&b, EXACT_OFFSETS))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    });
    bootstrap
}

/// The producer settings of every test that needs exact offsets (a
/// restart from a committed offset, a hand-over, a source pausing under
/// back-pressure): one record per batch, sent at once. tansu 0.6.0 cannot
/// start a fetch inside a record batch (asked for an offset inside one,
/// it answers from a later batch), so a consumer that resumes or restarts
/// mid-batch skips records there. With single-record batches every offset
/// starts a batch. (Apache Kafka has no such limit; the settings are
/// harmless there.)
pub const EXACT_OFFSETS: &[(&str, &str)] = &[("linger.ms", "0"), ("batch.num.messages", "1")];

/// A publisher to `topic` with [`EXACT_OFFSETS`].
pub fn exact_publisher(topic: &str) -> KafkaPublisher {
    exact_offsets(KafkaPublisher::builder(bootstrap(), topic))
        .build()
        .expect("publisher")
}

/// `builder` with [`EXACT_OFFSETS`].
pub fn exact_offsets(mut builder: KafkaPublisherBuilder) -> KafkaPublisherBuilder {
    for (k, v) in EXACT_OFFSETS {
        builder = builder.set(*k, *v);
    }
    builder
}

/// How many numbered records [`check_offsets`] writes and reads back.
const CHECK_RECORDS: u32 = 300;

/// Fails loudly unless the broker hands back every offset: produces
/// numbered records with `producer_settings` to a fresh topic, then reads
/// them back with a consumer that pauses and resumes its partition every
/// few records (each resume fetches again from the next offset, inside a
/// batch if batches hold several records), and checks that offsets and
/// numbers run 0, 1, 2... without a gap.
pub fn check_offsets(bootstrap: &str, producer_settings: &[(&str, &str)]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let topic = runtime.block_on(create_topic_on(bootstrap, "offset-check", 1, &[]));
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (k, v) in producer_settings {
        config.set(*k, *v);
    }
    let producer: BaseProducer = config.create().expect("producer");
    for i in 0..CHECK_RECORDS {
        let value = i.to_string();
        producer
            .send(BaseRecord::<(), str>::to(&topic).payload(&value))
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("flush the numbered records");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("hookbus-offset-check-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        // A resumed fetch is not held back by a long poll in flight.
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(0))
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut expected: i64 = 0;
    let mut last_progress = Instant::now();
    while expected < i64::from(CHECK_RECORDS) {
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            assert!(
                last_progress.elapsed() < Duration::from_secs(30),
                "THE KAFKA BROKER AT {bootstrap} LOSES RECORDS: after a pause/resume, a read of \
                 {topic} expected to continue at offset {expected} of {CHECK_RECORDS} got nothing \
                 for 30 s. It cannot start a fetch inside a record batch (tansu 0.6.0 does this \
                 with batches of several records). Tests that restart, hand over or pause \
                 consumers could pass by accident on it: produce with \
                 kafka_support::EXACT_OFFSETS (single-record batches), or run the tests against \
                 Apache Kafka (KAFKA_BOOTSTRAP=host:port)."
            );
            continue;
        };
        let m = polled.expect("broker check: consume");
        let number: Option<i64> = m
            .payload()
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|p| p.parse().ok());
        assert!(
            m.offset() == expected && number == Some(expected),
            "THE KAFKA BROKER AT {bootstrap} SKIPS OFFSETS: after a pause/resume, a read of \
             {topic} expected to continue at offset {expected} got offset {} (record number \
             {number:?}). It cannot start a fetch inside a record batch (tansu 0.6.0 does this \
             with batches of several records). Tests that restart, hand over or pause consumers \
             would skip records on it and could pass by accident: produce with \
             kafka_support::EXACT_OFFSETS (single-record batches), or run the tests against \
             Apache Kafka (KAFKA_BOOTSTRAP=host:port).",
            m.offset()
        );
        expected += 1;
        last_progress = Instant::now();
        // Every few records: pause and resume, so the next fetch starts at
        // `expected`, wherever that is in the broker's batches.
        if expected % 7 == 0 {
            let assignment = consumer.assignment().expect("assignment");
            consumer.pause(&assignment).expect("pause");
            let _ = consumer.poll(Duration::ZERO);
            consumer.resume(&assignment).expect("resume");
        }
    }
}

/// Creates a topic with a unique name and returns the name.
pub async fn create_topic(label: &str, partitions: i32) -> String {
    create_topic_on(&bootstrap(), label, partitions, &[]).await
}

/// Creates a topic with a unique name and topic settings (e.g.
/// `max.message.bytes`) and returns the name.
pub async fn create_topic_with(label: &str, partitions: i32, settings: &[(&str, &str)]) -> String {
    create_topic_on(&bootstrap(), label, partitions, settings).await
}

async fn create_topic_on(
    bootstrap: &str,
    label: &str,
    partitions: i32,
    settings: &[(&str, &str)],
) -> String {
    let name = format!("hookbus-{label}-{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    for (k, v) in settings {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .expect("create_topics request");
    for r in results {
        if let Err((topic, code)) = r {
            panic!("could not create topic {topic}: {code}");
        }
    }
    name
}

/// Reads `n` records from every partition of `topic`, from offset 0. Fails
/// if the records stop coming before `n` are read.
pub async fn consume(topic: &str, partitions: i32, n: usize) -> Vec<OwnedMessage> {
    let topic = topic.to_owned();
    let bootstrap = bootstrap();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("hookbus-test-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&topic, p, Offset::Offset(0))
                .expect("partition");
        }
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::with_capacity(n);
        let mut last_progress = Instant::now();
        while out.len() < n {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    out.push(m.detach());
                    last_progress = Instant::now();
                }
                Some(Err(e)) => eprintln!("consumer: {e}"),
                None => {}
            }
            assert!(
                last_progress.elapsed() < Duration::from_secs(30),
                "only {} of {n} records arrived on {topic} (nothing new for 30 s)",
                out.len()
            );
        }
        out
    })
    .await
    .expect("consumer task")
}
