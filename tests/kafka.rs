//! The Kafka subscriber against a real Kafka-protocol broker.
//!
//! `./scripts/test` starts one (tansu) and sets `KAFKA_BOOTSTRAP`; set it
//! yourself to run these against another broker (e.g. Apache Kafka). Every
//! test creates its own topic, so they run in parallel.
#![cfg(feature = "kafka")]

mod kafka_support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use hookbus::kafka::rdkafka::message::{Headers, Message, OwnedMessage};
use hookbus::kafka::rdkafka::types::RDKafkaErrorCode;
use hookbus::kafka::{KafkaError, KafkaPublisher, KeyStrategy, Mode};
use hookbus::{Batch, Bus, Event, OverflowPolicy, Sink};
use kafka_support::{bootstrap, consume, create_topic};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// A bound on waits that would otherwise hang a broken test forever; a
/// passing run never comes near it.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8(v.to_vec()).expect("utf-8 header"))
}

fn key(m: &OwnedMessage) -> String {
    String::from_utf8(m.key().expect("keyed record").to_vec()).expect("utf-8 key")
}

fn value_json(m: &OwnedMessage) -> Value {
    serde_json::from_slice(m.payload().expect("a value")).expect("JSON value")
}

fn decision(decision_id: &str, seq: u64) -> Event {
    Event::builder("decision.captured")
        .source("hookbus-tests")
        .data(json!({"decision_id": decision_id, "seq": seq, "confidence": 0.91}))
        .build()
        .expect("event")
}

/// Subscribes to `hookbus.delivery_failed` and hands over each event's data.
fn failures(bus: &Bus) -> mpsc::UnboundedReceiver<Value> {
    let (tx, rx) = mpsc::unbounded_channel();
    bus.on("hookbus.delivery_failed", move |e| {
        let _ = tx.send(e.data().clone());
    })
    .expect("subscribe")
    .detach();
    rx
}

async fn guarded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(HANG_GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

#[tokio::test]
async fn emit_publishes_a_binary_mode_record_keyed_by_decision_id() {
    let topic = create_topic("emit", 1).await;
    let publisher = KafkaPublisher::new(bootstrap(), &topic).expect("publisher");
    publisher
        .healthcheck(Duration::from_secs(30))
        .await
        .expect("healthcheck");

    let event = Event::builder("decision.captured")
        .source("claims-service")
        .subject("claims_review")
        .extension("tenant", "acme")
        .data(json!({"decision_id": "abc123", "function_name": "claims_review"}))
        .build()
        .expect("event");
    let report = publisher.emit(&event).await.expect("delivered");
    assert_eq!(report.partition, 0);
    assert!(report.offset >= 0);

    let records = consume(&topic, 1, 1).await;
    let m = &records[0];
    assert_eq!(m.offset(), report.offset);
    assert_eq!(key(m), "abc123");
    assert_eq!(value_json(m), *event.data());
    assert_eq!(
        header(m, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(header(m, "ce_specversion").as_deref(), Some("1.0"));
    assert_eq!(header(m, "ce_id").as_deref(), Some(event.id()));
    assert_eq!(header(m, "ce_type").as_deref(), Some("decision.captured"));
    assert_eq!(header(m, "ce_source").as_deref(), Some("claims-service"));
    assert_eq!(header(m, "ce_time"), Some(event.time_rfc3339()));
    assert_eq!(header(m, "ce_subject").as_deref(), Some("claims_review"));
    assert_eq!(header(m, "ce_tenant").as_deref(), Some("acme"));
}

#[tokio::test]
async fn structured_mode_and_partitionkey_strategy() {
    let topic = create_topic("structured", 1).await;
    let publisher = KafkaPublisher::builder(bootstrap(), &topic)
        .mode(Mode::Structured)
        .key(KeyStrategy::partition_key())
        .build()
        .expect("publisher");
    let keyed = Event::builder("decision.captured")
        .extension("partitionkey", "claim-7")
        .data(json!({"decision_id": "ignored-here"}))
        .build()
        .unwrap();
    let unkeyed = Event::new("decision.captured", json!({"decision_id": "x"})).unwrap();
    publisher.emit(&keyed).await.expect("delivered");
    publisher.emit(&unkeyed).await.expect("delivered");

    let records = consume(&topic, 1, 2).await;
    assert_eq!(key(&records[0]), "claim-7");
    assert_eq!(
        key(&records[1]),
        unkeyed.id(),
        "no partitionkey: keyed by event id"
    );
    for (m, sent) in records.iter().zip([&keyed, &unkeyed]) {
        assert_eq!(
            header(m, "content-type").as_deref(),
            Some("application/cloudevents+json; charset=UTF-8")
        );
        assert_eq!(
            header(m, "ce_id"),
            None,
            "structured mode has no ce_ headers"
        );
        let back: Event = serde_json::from_slice(m.payload().unwrap()).expect("CloudEvents JSON");
        assert_eq!(back.id(), sent.id());
        assert_eq!(back.data(), sent.data());
        assert_eq!(back.extensions(), sent.extensions());
    }
}

#[tokio::test]
async fn bus_subscriber_keeps_count_keys_values_and_order_per_key() {
    const PARTITIONS: i32 = 3;
    const KEYS: u64 = 12;
    const PER_KEY: u64 = 250;
    let topic = create_topic("order", PARTITIONS).await;
    let publisher = KafkaPublisher::new(bootstrap(), &topic).expect("publisher");

    let bus = Bus::new().unwrap();
    let mut failed = failures(&bus);
    bus.subscriber("decision.**")
        .name("kafka")
        .options(KafkaPublisher::recommended_options())
        .sink(publisher)
        .unwrap()
        .detach();
    // Not a decision: the pattern keeps it out of Kafka.
    bus.on("other.*", |_| ()).unwrap().detach();
    bus.emit(Event::new("other.thing", json!({})).unwrap())
        .unwrap();

    let mut sent = HashMap::new();
    for seq in 0..PER_KEY {
        for k in 0..KEYS {
            let e = decision(&format!("decision-{k}"), seq);
            sent.insert(e.id().to_owned(), e.data().clone());
            bus.publish(e).await.unwrap();
        }
    }
    let report = guarded("shutdown", bus.shutdown(HANG_GUARD)).await;
    let kafka = report.subscriber("kafka").expect("kafka subscriber");
    assert_eq!(kafka.stats.delivered, KEYS * PER_KEY);
    assert_eq!(kafka.stats.failed, 0);
    assert_eq!((kafka.pending, kafka.unflushed), (0, 0));
    assert!(kafka.completed);
    assert!(failed.try_recv().is_err(), "no delivery failed");

    let records = consume(&topic, PARTITIONS, (KEYS * PER_KEY) as usize).await;
    let mut last_seq: HashMap<String, (i32, i64)> = HashMap::new();
    let mut ids = HashSet::new();
    for m in &records {
        let id = header(m, "ce_id").expect("ce_id");
        assert!(ids.insert(id.clone()), "duplicate record for event {id}");
        let value = value_json(m);
        assert_eq!(Some(&value), sent.get(&id), "value of event {id}");
        let k = key(m);
        assert_eq!(value["decision_id"], k.as_str(), "keyed by decision_id");
        let seq = value["seq"].as_i64().unwrap();
        if let Some((partition, prev)) = last_seq.insert(k.clone(), (m.partition(), seq)) {
            assert_eq!(partition, m.partition(), "one key, one partition");
            assert!(seq > prev, "order of {k}: {seq} after {prev}");
        }
    }
    assert_eq!(ids.len() as u64, KEYS * PER_KEY);
    assert_eq!(last_seq.len() as u64, KEYS);
}

#[tokio::test]
async fn a_hundred_thousand_events_through_the_bus_none_lost() {
    const N: u64 = 100_000;
    const PARTITIONS: i32 = 4;
    let topic = create_topic("100k", PARTITIONS).await;
    let publisher = KafkaPublisher::new(bootstrap(), &topic).expect("publisher");
    let bus = Bus::new().unwrap();
    bus.subscriber("decision.captured")
        .name("kafka")
        .options(KafkaPublisher::recommended_options())
        .sink(publisher)
        .unwrap()
        .detach();
    for seq in 0..N {
        bus.publish(decision(&format!("d{}", seq % 1000), seq))
            .await
            .unwrap();
    }
    let report = guarded("shutdown", bus.shutdown(HANG_GUARD)).await;
    let kafka = report.subscriber("kafka").unwrap();
    assert_eq!(kafka.stats.received, N);
    assert_eq!(kafka.stats.delivered, N);
    assert_eq!(
        (
            kafka.stats.failed,
            kafka.stats.dropped,
            kafka.pending,
            kafka.unflushed
        ),
        (0, 0, 0, 0)
    );

    let records = consume(&topic, PARTITIONS, N as usize).await;
    let seqs: HashSet<i64> = records
        .iter()
        .map(|m| value_json(m)["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs.len() as u64, N, "every event exactly once");
}

#[tokio::test]
async fn a_full_librdkafka_queue_is_back_pressure_not_loss() {
    const N: i64 = 3_000;
    let topic = create_topic("queue-full", 1).await;
    // Room for 5 records: almost every send meets QueueFull and must wait.
    let publisher = KafkaPublisher::builder(bootstrap(), &topic)
        .set("queue.buffering.max.messages", "5")
        .build()
        .unwrap();
    let bus = Bus::new().unwrap();
    bus.subscriber("decision.*")
        .name("kafka")
        .options(KafkaPublisher::recommended_options())
        .sink(publisher)
        .unwrap()
        .detach();
    for seq in 0..N {
        bus.publish(decision(&format!("d{}", seq % 7), seq as u64))
            .await
            .unwrap();
    }
    let report = guarded("shutdown", bus.shutdown(HANG_GUARD)).await;
    let kafka = report.subscriber("kafka").unwrap();
    assert_eq!(
        (kafka.stats.delivered, kafka.stats.failed),
        (N as u64, 0),
        "{report}"
    );
    // One partition: the records are in exactly the order they were emitted.
    let seqs: Vec<i64> = consume(&topic, 1, N as usize)
        .await
        .iter()
        .map(|m| value_json(m)["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (0..N).collect::<Vec<_>>());
}

#[tokio::test]
async fn shutdown_flushes_what_is_still_queued() {
    let topic = create_topic("shutdown", 1).await;
    // A long linger keeps records in librdkafka's queue when shutdown starts.
    let publisher = KafkaPublisher::builder(bootstrap(), &topic)
        .set("linger.ms", "500")
        .build()
        .unwrap();
    let bus = Bus::new().unwrap();
    bus.subscriber("decision.*")
        .name("kafka")
        .options(KafkaPublisher::recommended_options())
        .sink(publisher.clone())
        .unwrap()
        .detach();
    for seq in 0..500 {
        bus.emit(decision("d", seq)).unwrap();
    }
    let report = guarded("shutdown", bus.shutdown(Duration::from_secs(60))).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.subscriber("kafka").unwrap().stats.delivered, 500);
    assert_eq!(publisher.unflushed(), 0);
    assert_eq!(consume(&topic, 1, 500).await.len(), 500);
}

#[tokio::test]
async fn dropping_the_publisher_flushes_before_librdkafka_purges() {
    let topic = create_topic("drop", 1).await;
    let publisher = KafkaPublisher::builder(bootstrap(), &topic)
        .set("linger.ms", "1000")
        .build()
        .unwrap();
    let events: Vec<Arc<Event>> = (0..200).map(|i| Arc::new(decision("d", i))).collect();
    // Hand the records over and walk away without waiting for them.
    drop(publisher.deliver(Batch::new(events)));
    assert!(publisher.unflushed() > 0, "records still queued");
    drop(publisher);
    assert_eq!(consume(&topic, 1, 200).await.len(), 200);
}

#[tokio::test]
async fn a_record_too_large_fails_alone_and_reaches_the_dead_letter_path() {
    let topic = create_topic("too-large", 1).await;
    let publisher = KafkaPublisher::builder(bootstrap(), &topic)
        .set("message.max.bytes", "10000")
        .build()
        .unwrap();
    let bus = Bus::new().unwrap();
    let mut failed = failures(&bus);
    bus.subscriber("decision.*")
        .name("kafka")
        .batch(3, Duration::from_secs(60))
        .concurrency(1)
        .overflow(OverflowPolicy::Block)
        .sink(publisher)
        .unwrap()
        .detach();
    let big = Event::new(
        "decision.captured",
        json!({"decision_id": "big", "blob": "x".repeat(50_000)}),
    )
    .unwrap();
    let big_id = big.id().to_owned();
    bus.emit(decision("small", 1)).unwrap();
    bus.emit(big).unwrap();
    bus.emit(decision("small", 2)).unwrap();

    let failure = guarded("delivery_failed", failed.recv()).await.unwrap();
    assert_eq!(failure["kind"], "permanent error");
    assert_eq!(failure["event_ids"], json!([big_id]));
    assert!(
        failure["error"].as_str().unwrap().contains("too large"),
        "{failure}"
    );
    let report = bus.shutdown(HANG_GUARD).await;
    let kafka = report.subscriber("kafka").unwrap();
    assert_eq!((kafka.stats.delivered, kafka.stats.failed), (2, 1));
    let records = consume(&topic, 1, 2).await;
    assert!(records.iter().all(|m| key(m) == "small"));
}

#[tokio::test]
async fn a_missing_topic_is_a_permanent_failure_on_the_dead_letter_path() {
    let topic = format!("hookbus-missing-{}", uuid::Uuid::new_v4().simple());
    let publisher = KafkaPublisher::builder(bootstrap(), &topic)
        // Give up waiting for the topic to appear after 1 s (default 30 s).
        .set("topic.metadata.propagation.max.ms", "1000")
        .build()
        .unwrap();
    let bus = Bus::new().unwrap();
    let mut failed = failures(&bus);
    bus.subscriber("decision.*")
        .name("kafka")
        .options(KafkaPublisher::recommended_options())
        .sink(publisher)
        .unwrap()
        .detach();
    let event = decision("abc123", 1);
    let id = event.id().to_owned();
    bus.emit(event).unwrap();
    let failure = guarded("delivery_failed", failed.recv()).await.unwrap();
    assert_eq!(failure["kind"], "permanent error", "{failure}");
    assert_eq!(failure["event_ids"], json!([id]));
    let report = bus.shutdown(HANG_GUARD).await;
    let kafka = report.subscriber("kafka").unwrap();
    assert_eq!((kafka.stats.delivered, kafka.stats.failed), (0, 1));
}

#[tokio::test]
async fn healthcheck_names_a_missing_topic() {
    let publisher = KafkaPublisher::new(bootstrap(), "hookbus-no-such-topic-7f3a").unwrap();
    let err = publisher
        .healthcheck(Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, KafkaError::UnknownTopic { .. }), "{err}");
    assert!(err.to_string().contains("create it first"), "{err}");
}

/// A port on 127.0.0.1 nobody listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_broker_gives_clear_errors_and_never_hangs() {
    let brokers = format!("127.0.0.1:{}", closed_port());
    let publisher = KafkaPublisher::builder(brokers.as_str(), "ai-decisions")
        .set("message.timeout.ms", "1500")
        .drop_flush_timeout(Duration::from_millis(100))
        .build()
        .unwrap();

    let err = guarded("healthcheck", publisher.healthcheck(Duration::from_secs(2)))
        .await
        .unwrap_err();
    assert!(matches!(err, KafkaError::Unreachable { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&brokers) && text.contains("unreachable"),
        "{text}"
    );
    assert!(!err.is_permanent());

    let event = decision("abc123", 1);
    let err = guarded("emit", publisher.emit(&event)).await.unwrap_err();
    match &err {
        KafkaError::Delivery { event_id, code, .. } => {
            assert_eq!(event_id, event.id());
            assert_eq!(*code, RDKafkaErrorCode::MessageTimedOut);
        }
        other => panic!("expected a delivery error, got {other}"),
    }

    // Through the bus: failed, announced as retries exhausted, not hung.
    let bus = Bus::new().unwrap();
    let mut failed = failures(&bus);
    bus.subscriber("decision.*")
        .name("kafka")
        .options(KafkaPublisher::recommended_options())
        .sink(publisher)
        .unwrap()
        .detach();
    let event = decision("abc124", 2);
    let id = event.id().to_owned();
    bus.emit(event).unwrap();
    let failure = guarded("delivery_failed", failed.recv()).await.unwrap();
    assert_eq!(failure["kind"], "retries exhausted");
    assert_eq!(failure["event_ids"], json!([id]));
    let report = bus.shutdown(HANG_GUARD).await;
    let kafka = report.subscriber("kafka").unwrap();
    assert_eq!((kafka.stats.delivered, kafka.stats.failed), (0, 1));
}

#[test]
fn bad_settings_fail_at_construction_without_showing_secrets() {
    let secret = "hunter2-very-secret";
    let unknown = KafkaPublisher::builder("localhost:9092", "t")
        .set("sasl.password", secret)
        .set("no.such.property", "1")
        .build()
        .unwrap_err();
    assert!(
        matches!(&unknown, KafkaError::Config { key, .. } if key == "no.such.property"),
        "{unknown}"
    );
    let bad_value = KafkaPublisher::builder("localhost:9092", "t")
        .set("sasl.password", secret)
        .set("compression.type", "brotli")
        .build()
        .unwrap_err();
    assert!(
        bad_value.to_string().contains("compression.type"),
        "{bad_value}"
    );
    let conflict = KafkaPublisher::builder("localhost:9092", "t")
        .set("acks", "1")
        .build()
        .unwrap_err();
    assert!(
        conflict.to_string().contains("enable.idempotence"),
        "{conflict}"
    );
    assert!(
        KafkaPublisher::builder("localhost:9092", "t")
            .set("acks", "1")
            .set("enable.idempotence", "false")
            .build()
            .is_ok()
    );
    assert!(matches!(
        KafkaPublisher::new("", "t").unwrap_err(),
        KafkaError::NoBrokers
    ));
    assert!(matches!(
        KafkaPublisher::new("localhost:9092", "bad topic").unwrap_err(),
        KafkaError::InvalidTopic { .. }
    ));
    assert!(matches!(
        KafkaPublisher::builder("localhost:9092", "t")
            .key(KeyStrategy::field("a..b"))
            .build()
            .unwrap_err(),
        KafkaError::Config { .. }
    ));

    let builder = KafkaPublisher::builder("localhost:9092", "t")
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", "svc")
        .set("sasl.password", secret);
    let publisher = builder.clone().build().unwrap();
    for text in [
        unknown.to_string(),
        bad_value.to_string(),
        format!("{unknown:?}"),
        format!("{builder:?}"),
        format!("{publisher:?}"),
    ] {
        assert!(!text.contains(secret), "secret shown in {text}");
    }
    assert!(format!("{publisher:?}").contains("sasl.username"));
}
