//! The Kafka source against a real Kafka-protocol broker.
//!
//! `./scripts/test` (or `scripts/with-kafka cargo test --all-features --test
//! kafka_source`) starts one (tansu) and sets `KAFKA_BOOTSTRAP`; set it
//! yourself to run these against Apache Kafka. Every test creates its own
//! topics and consumer groups, so they run in parallel.
//!
//! Records the sources read are produced in single-record batches
//! (`kafka_support::EXACT_OFFSETS`): these tests restart, hand over and
//! pause consumers, which then fetch from an offset that may lie inside a
//! batch, and tansu 0.6.0 skips records there. The first use of the broker
//! checks that it skips none (`kafka_support::check_offsets`).
#![cfg(feature = "kafka")]

mod kafka_support;
// The worker-process test delivers to a webhook receiver.
#[cfg(feature = "webhook")]
mod webhook_support;

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hookbus::kafka::rdkafka::ClientConfig;
use hookbus::kafka::rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use hookbus::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use hookbus::kafka::{FROM_KAFKA_EXTENSION, KafkaPublisher, KafkaSource, Mode, SourceStats};
use hookbus::{Bus, Event, EventStream, ExtensionValue, OverflowPolicy};
use kafka_support::{
    EXACT_OFFSETS, bootstrap, consume, create_topic, create_topic_with, exact_offsets,
    exact_publisher,
};
use serde_json::{Value, json};
use time::macros::datetime;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_stream::StreamExt;
#[cfg(feature = "webhook")]
use webhook_support::Receiver;

/// A bound on waits that would otherwise hang a broken test forever; a
/// passing run never comes near it.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn unique(label: &str) -> String {
    format!("hookbus-{label}-{}", uuid::Uuid::new_v4().simple())
}

/// Writes raw records (key, value, headers) and waits for them to be acknowledged.
/// A raw record: key, value, headers.
type RawRecord = (
    Option<&'static str>,
    Vec<u8>,
    Vec<(&'static str, &'static str)>,
);

async fn produce_raw(topic: &str, records: Vec<RawRecord>) {
    let topic = topic.to_owned();
    let bootstrap = bootstrap();
    tokio::task::spawn_blocking(move || {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &bootstrap)
            .set("message.max.bytes", "20000000");
        for (k, v) in EXACT_OFFSETS {
            config.set(*k, *v);
        }
        let producer: BaseProducer = config.create().expect("producer");
        for (key, value, headers) in &records {
            let mut h = OwnedHeaders::new();
            for (k, v) in headers {
                h = h.insert(Header {
                    key: k,
                    value: Some(*v),
                });
            }
            let mut record = BaseRecord::<str, [u8]>::to(&topic)
                .payload(value)
                .headers(h);
            if let Some(key) = key {
                record = record.key(*key);
            }
            producer.send(record).map_err(|(e, _)| e).expect("send");
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
    })
    .await
    .expect("producer task")
}

fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8(v.to_vec()).expect("utf-8 header"))
}

/// The next event from a stream, or a failure naming what was awaited.
async fn next(stream: &mut EventStream, what: &str) -> std::sync::Arc<Event> {
    tokio::time::timeout(HANG_GUARD, stream.next())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("stream ended waiting for {what}"))
}

/// Waits until `condition` holds for the source's stats: the source waits
/// on the broker (an external process), so this polls with a deadline.
async fn wait_for_stats(
    source: &KafkaSource,
    what: &str,
    condition: impl Fn(&SourceStats) -> bool,
) {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let stats = source.stats();
        if condition(&stats) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn source(group: &str, topic: &str) -> hookbus::kafka::KafkaSourceBuilder {
    KafkaSource::builder(bootstrap(), group).topic(topic)
}

/// An event with every attribute set.
fn full_event(i: u64, extensions: Vec<(&str, ExtensionValue)>) -> Event {
    let mut b = Event::builder("decision.captured")
        .id(format!("ev-{i}"))
        .source("svc-a")
        .subject("claims_review")
        .dataschema("https://schemas.example/decision.json")
        .time(datetime!(2024-03-15 10:30:00.123 UTC) + time::Duration::seconds(i as i64))
        .data(json!({"decision_id": format!("d-{}", i % 3), "seq": i, "nested": {"ok": true}}));
    for (name, value) in extensions {
        b = b.extension(name, value);
    }
    b.build().unwrap()
}

/// `received` is `sent` plus the source's marker and the restored key.
fn assert_same_event(sent: &Event, received: &Event, topic: &str, key: &str) {
    assert_eq!(received.id(), sent.id());
    assert_eq!(received.event_type(), sent.event_type());
    assert_eq!(received.source(), sent.source());
    assert_eq!(received.time(), sent.time());
    assert_eq!(received.subject(), sent.subject());
    assert_eq!(received.dataschema(), sent.dataschema());
    assert_eq!(received.datacontenttype(), sent.datacontenttype());
    assert_eq!(received.data(), sent.data());
    let mut expected = sent.extensions().clone();
    expected.insert(
        FROM_KAFKA_EXTENSION.into(),
        ExtensionValue::String(topic.into()),
    );
    expected
        .entry("partitionkey".into())
        .or_insert_with(|| ExtensionValue::String(key.into()));
    assert_eq!(
        received.extensions(),
        &expected,
        "extensions of {}",
        sent.id()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_binary_and_structured_between_two_buses() {
    let topic = create_topic("roundtrip", 2).await;

    // Bus A: binary mode through a bus subscriber, structured mode directly.
    let bus_a = Bus::new().unwrap();
    let binary = exact_publisher(&topic);
    bus_a
        .subscriber("decision.**")
        .options(KafkaPublisher::recommended_options())
        .sink(binary)
        .unwrap()
        .detach();
    let structured = exact_offsets(KafkaPublisher::builder(bootstrap(), &topic))
        .mode(Mode::Structured)
        .build()
        .unwrap();

    // Bus B reads them back.
    let bus_b = Bus::new().unwrap();
    let mut received = bus_b.stream("decision.**").unwrap();
    let src = source(&unique("group"), &topic).start(&bus_b).unwrap();

    let mut sent = BTreeMap::new();
    for i in 0..10 {
        // Binary headers carry text: string extensions round-trip exactly.
        let mut ext = vec![("tenant", ExtensionValue::from("acme"))];
        if i % 2 == 0 {
            ext.push(("partitionkey", ExtensionValue::from(format!("pk-{i}"))));
        }
        let e = full_event(i, ext);
        sent.insert(e.id().to_owned(), (e.clone(), Mode::Binary));
        bus_a.emit(e).unwrap();
    }
    for i in 10..20 {
        // Structured JSON keeps integer and boolean extensions.
        let e = full_event(
            i,
            vec![
                ("tenant", ExtensionValue::from("acme")),
                ("attempt", ExtensionValue::from(3)),
                ("replayed", ExtensionValue::from(true)),
            ],
        );
        sent.insert(e.id().to_owned(), (e.clone(), Mode::Structured));
        structured.emit(&e).await.unwrap();
    }

    let mut seen = BTreeMap::new();
    while seen.len() < sent.len() {
        let e = next(&mut received, "the events from Kafka").await;
        assert!(
            seen.insert(e.id().to_owned(), e.clone()).is_none(),
            "duplicate {}",
            e.id()
        );
    }
    for (id, (original, mode)) in &sent {
        let got = &seen[id];
        // The record key was the payload's decision_id (the default strategy).
        let key = original.data()["decision_id"].as_str().unwrap();
        assert_same_event(original, got, &topic, key);
        if *mode == Mode::Structured {
            assert_eq!(got.extension("attempt"), Some(&ExtensionValue::Integer(3)));
        }
    }

    let stats = src.shutdown(HANG_GUARD).await;
    assert_eq!((stats.consumed, stats.emitted), (20, 20));
    assert_eq!(
        (stats.refused, stats.dead_lettered, stats.errors),
        (0, 0, 0)
    );
    assert!(!stats.running);
    // Both partitions were handled and committed up to their position.
    let handled: i64 = stats.partitions.iter().filter_map(|p| p.position).sum();
    assert_eq!(handled, 20, "{stats:?}");
    for p in &stats.partitions {
        assert_eq!(p.committed, p.position, "{p:?}");
    }
    bus_a.shutdown(HANG_GUARD).await;
    bus_b.shutdown(HANG_GUARD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_the_committed_offset() {
    let topic = create_topic("restart", 1).await;
    let group = unique("group");
    let publisher = exact_publisher(&topic);
    for i in 0..10 {
        publisher.emit(&full_event(i, vec![])).await.unwrap();
    }

    // The first worker's only subscriber blocks after 4 events: the 5th
    // waits for room, so only the first 4 offsets may be committed.
    let bus_a = Bus::new().unwrap();
    let mut stuck = bus_a
        .subscriber("decision.**")
        .capacity(4)
        .overflow(OverflowPolicy::Block)
        .stream()
        .unwrap();
    let first = source(&group, &topic).start(&bus_a).unwrap();
    // (How many a mailbox of 4 takes before it pushes back depends on the
    // subscriber's own buffering; what matters is what was accepted.)
    wait_for_stats(&first, "the mailbox full and a record waiting", |s| {
        s.emitted >= 4 && s.consumed == s.emitted + 1
    })
    .await;
    let stats = first.shutdown(HANG_GUARD).await;
    assert!(!stats.running);
    let taken = stats.emitted;
    assert!(taken < 10, "{stats:?}");
    assert_eq!(
        stats.partitions[0].committed,
        Some(taken as i64),
        "{stats:?}"
    );
    let mut accepted = Vec::new();
    for _ in 0..taken {
        accepted.push(
            next(&mut stuck, "the accepted events")
                .await
                .id()
                .to_owned(),
        );
    }
    let expected: Vec<String> = (0..taken).map(|i| format!("ev-{i}")).collect();
    assert_eq!(accepted, expected);

    // The second worker resumes at the 5th record: nothing before it again,
    // nothing after it skipped (one partition: records arrive in order, so
    // a re-emitted earlier record would come first).
    let bus_b = Bus::new().unwrap();
    let mut resumed = bus_b.stream("decision.**").unwrap();
    let second = source(&group, &topic).start(&bus_b).unwrap();
    let mut ids = Vec::new();
    for _ in taken..10 {
        ids.push(
            next(&mut resumed, "the resumed events")
                .await
                .id()
                .to_owned(),
        );
    }
    let expected: Vec<String> = (taken..10).map(|i| format!("ev-{i}")).collect();
    assert_eq!(ids, expected);
    let stats = second.shutdown(HANG_GUARD).await;
    assert_eq!(
        (stats.consumed, stats.emitted),
        (10 - taken, 10 - taken),
        "{stats:?}"
    );
    assert_eq!(stats.partitions[0].committed, Some(10));
    bus_a.shutdown(Duration::from_secs(1)).await;
    bus_b.shutdown(HANG_GUARD).await;
}

fn binary_headers(id: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("ce_specversion", "1.0"),
        ("ce_id", id),
        ("ce_source", "raw-producer"),
        ("ce_type", "decision.captured"),
        ("content-type", "application/json"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dead_letter_topic_and_consumption_continues() {
    let topic = create_topic("poison", 1).await;
    let dead = create_topic("poison-dlq", 1).await;
    let huge = vec![b'x'; 4096];
    produce_raw(
        &topic,
        vec![
            (
                Some("k1"),
                br#"{"decision_id":"d1"}"#.to_vec(),
                binary_headers("good-1"),
            ),
            (Some("k2"), b"plain text, no headers".to_vec(), vec![]),
            (
                None,
                b"{not json".to_vec(),
                vec![("content-type", "application/cloudevents+json")],
            ),
            (
                None,
                b"{\"decision_id\":".to_vec(),
                binary_headers("bad-json"),
            ),
            (None, huge.clone(), binary_headers("huge")),
            (
                Some("k3"),
                br#"{"decision_id":"d2"}"#.to_vec(),
                binary_headers("good-2"),
            ),
        ],
    )
    .await;

    let bus = Bus::new().unwrap();
    let mut events = bus.stream("decision.**").unwrap();
    let mut refusals = bus.stream("hookbus.kafka_record_refused").unwrap();
    let src = source(&unique("group"), &topic)
        .dead_letter_topic(&dead)
        .max_record_bytes(1024)
        .start(&bus)
        .unwrap();

    let good1 = next(&mut events, "the first good record").await;
    let good2 = next(&mut events, "the good record after the poison").await;
    assert_eq!((good1.id(), good2.id()), ("good-1", "good-2"));
    assert_eq!(
        good2.extension("partitionkey"),
        Some(&ExtensionValue::from("k3"))
    );

    let mut announced = Vec::new();
    for _ in 0..4 {
        let e = next(&mut refusals, "the refusal announcements").await;
        assert_eq!(e.data()["dead_letter_topic"], json!(dead));
        announced.push((
            e.data()["offset"].as_i64().unwrap(),
            e.data()["kind"].as_str().unwrap().to_owned(),
        ));
    }
    let kinds = [
        "not-cloudevent",
        "invalid-json",
        "invalid-json",
        "too-large",
    ];
    let expected: Vec<(i64, String)> = (1..5).zip(kinds).map(|(o, k)| (o, k.to_owned())).collect();
    assert_eq!(announced, expected);

    let stats = src.shutdown(HANG_GUARD).await;
    assert_eq!(
        (
            stats.consumed,
            stats.emitted,
            stats.dead_lettered,
            stats.refused
        ),
        (6, 2, 4, 0)
    );
    assert_eq!(stats.partitions[0].committed, Some(6), "{stats:?}");

    // The dead-letter records: the originals, with the reason.
    let records = consume(&dead, 1, 4).await;
    for (record, (offset, kind)) in records.iter().zip(&expected) {
        assert_eq!(
            header(record, "hookbus-dead-letter-kind").as_deref(),
            Some(kind.as_str())
        );
        assert!(header(record, "hookbus-dead-letter-reason").is_some_and(|r| !r.is_empty()));
        assert_eq!(
            header(record, "hookbus-dead-letter-topic"),
            Some(topic.clone())
        );
        assert_eq!(
            header(record, "hookbus-dead-letter-offset"),
            Some(offset.to_string())
        );
    }
    assert_eq!(records[0].payload(), Some(&b"plain text, no headers"[..]));
    assert_eq!(records[0].key(), Some(&b"k2"[..]));
    assert_eq!(records[3].payload(), Some(&huge[..]));
    // Original headers travel along.
    assert_eq!(header(&records[2], "ce_id").as_deref(), Some("bad-json"));
    bus.shutdown(HANG_GUARD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_records_are_mapped_or_refused_and_announced() {
    let topic = create_topic("foreign", 1).await;
    produce_raw(
        &topic,
        vec![
            (Some("o-1"), br#"{"order":1}"#.to_vec(), vec![]),
            (None, b"\xff\xfe not text".to_vec(), vec![]),
            (Some("o-2"), br#"{"order":2}"#.to_vec(), vec![]),
        ],
    )
    .await;
    let bus = Bus::new().unwrap();
    let mut orders = bus.stream("legacy.order").unwrap();
    let mut refusals = bus.stream("hookbus.kafka_record_refused").unwrap();
    let src = source(&unique("group"), &topic)
        .map_foreign(|record| {
            let data: Value = serde_json::from_slice(record.value?).ok()?;
            Event::builder("legacy.order")
                .source("legacy")
                .data(data)
                .build()
                .ok()
        })
        .start(&bus)
        .unwrap();
    let first = next(&mut orders, "the first mapped record").await;
    let refused = next(&mut refusals, "the refusal").await;
    let second = next(&mut orders, "the second mapped record").await;
    assert_eq!(
        (first.data(), second.data()),
        (&json!({"order": 1}), &json!({"order": 2}))
    );
    assert_eq!(
        first.extension(FROM_KAFKA_EXTENSION),
        Some(&ExtensionValue::String(topic.clone()))
    );
    assert_eq!(
        second.extension("partitionkey"),
        Some(&ExtensionValue::from("o-2"))
    );
    assert_eq!(refused.data()["offset"], 1);
    assert_eq!(refused.data()["kind"], "not-cloudevent");
    assert_eq!(refused.data()["dead_letter_topic"], Value::Null);
    let stats = src.shutdown(HANG_GUARD).await;
    assert_eq!(
        (stats.consumed, stats.emitted, stats.mapped, stats.refused),
        (3, 2, 2, 1)
    );
    assert_eq!(stats.partitions[0].committed, Some(3));
    bus.shutdown(HANG_GUARD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_on_the_same_bus_does_not_publish_kafka_events_back() {
    let topic = create_topic("loop", 1).await;
    let mirror = create_topic("loop-mirror", 1).await;
    let bus = Bus::new().unwrap();
    // Publishes to the topic the source reads: without loop prevention,
    // every event would come back forever.
    let back = exact_publisher(&topic);
    bus.subscriber("decision.**")
        .options(KafkaPublisher::recommended_options())
        .sink(back.clone())
        .unwrap()
        .detach();
    // Told to republish: sees both the local and the Kafka events.
    let republish = KafkaPublisher::builder(bootstrap(), &mirror)
        .republish_from_kafka(true)
        .build()
        .unwrap();
    bus.subscriber("decision.**")
        .options(KafkaPublisher::recommended_options())
        .sink(republish.clone())
        .unwrap()
        .detach();
    let mut from_kafka = bus
        .subscriber("decision.**")
        .filter(|e| e.extension(FROM_KAFKA_EXTENSION).is_some())
        .stream()
        .unwrap();
    let src = source(&unique("group"), &topic).start(&bus).unwrap();

    for i in 0..2 {
        bus.emit(full_event(i, vec![])).unwrap();
    }
    for i in 0..2 {
        let e = next(&mut from_kafka, "the events coming back from Kafka").await;
        assert_eq!(e.id(), format!("ev-{i}"));
    }
    let stats = src.shutdown(HANG_GUARD).await;
    // Let every subscriber finish what it holds.
    let report = bus.shutdown(HANG_GUARD).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(back.skipped_from_kafka(), 2);
    assert_eq!(republish.skipped_from_kafka(), 0);
    // The source read only the two local events: nothing came back twice.
    assert_eq!((stats.consumed, stats.emitted), (2, 2));
    let mirrored = consume(&mirror, 1, 4).await;
    let mut marked: Vec<Option<String>> = mirrored
        .iter()
        .map(|m| header(m, "ce_hookbuskafka"))
        .collect();
    marked.sort();
    assert_eq!(
        marked,
        [None, None, Some(topic.clone()), Some(topic.clone())]
    );
}

#[tokio::test]
async fn bad_settings_fail_at_start_without_showing_secrets() {
    let bus = Bus::new().unwrap();
    let err = |b: hookbus::kafka::KafkaSourceBuilder| b.start(&bus).unwrap_err().to_string();
    assert!(err(KafkaSource::builder("localhost:9092", "g")).contains("no topic"));
    assert!(err(KafkaSource::builder("localhost:9092", " ").topic("t")).contains("group"));
    assert!(err(KafkaSource::builder("", "g").topic("t")).contains("no Kafka brokers"));
    assert!(err(KafkaSource::builder("localhost:9092", "g").topic("a b")).contains("topic"));
    assert!(
        err(KafkaSource::builder("localhost:9092", "g")
            .topic("t")
            .dead_letter_topic("t"))
        .contains("also consumed")
    );
    assert!(
        err(KafkaSource::builder("localhost:9092", "g")
            .topic("t")
            .max_record_bytes(0))
        .contains("max_record_bytes")
    );
    assert!(
        err(KafkaSource::builder("localhost:9092", "g")
            .topic("t")
            .set("enable.auto.commit", "false"))
        .contains("enable.auto.commit")
    );
    assert!(
        err(KafkaSource::builder("localhost:9092", "g")
            .topic("t")
            .set("no.such.property", "1"))
        .contains("no.such.property")
    );
    let secret = err(KafkaSource::builder("localhost:9092", "g")
        .topic("t")
        .set("sasl.password", "hunter2")
        .set("security.protocol", "hunter2"));
    assert!(secret.contains("security.protocol"), "{secret}");
    assert!(!secret.contains("hunter2"), "{secret}");
    let builder = KafkaSource::builder("localhost:9092", "g")
        .topic("t")
        .set("sasl.password", "hunter2");
    assert!(!format!("{builder:?}").contains("hunter2"));

    // The dead-letter producer's own settings and attempts.
    let dead = || {
        KafkaSource::builder("localhost:9092", "g")
            .topic("t")
            .dead_letter_topic("t.dlq")
    };
    assert!(err(dead().dead_letter_attempts(0)).contains("dead_letter_attempts"));
    let unknown = err(dead().dead_letter_set("no.such.property", "1"));
    assert!(
        unknown.contains("dead-letter producer") && unknown.contains("no.such.property"),
        "{unknown}"
    );
    assert!(
        err(dead().dead_letter_set("delivery.report.only.error", "true"))
            .contains("delivery.report.only.error")
    );
    assert!(err(dead().dead_letter_set("bootstrap.servers", "elsewhere:9092")).contains("brokers"));
    let secret = err(dead()
        .dead_letter_set("sasl.password", "hunter2")
        .dead_letter_set("security.protocol", "hunter2"));
    assert!(secret.contains("security.protocol"), "{secret}");
    assert!(!secret.contains("hunter2"), "{secret}");
    let builder = dead().dead_letter_set("sasl.password", "hunter2");
    assert!(!format!("{builder:?}").contains("hunter2"));
}

/// Both sources in one group: the second joining splits the partitions; the
/// first leaving hands its partitions over, committed up to what its bus
/// accepted, so a clean handover repeats nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_two_splits_the_partitions_and_hands_them_over() {
    let topic = create_topic("group", 4).await;
    let group = unique("group");
    let start = |bus: &Bus| {
        source(&group, &topic)
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .start(bus)
            .unwrap()
    };
    let bus_a = Bus::new().unwrap();
    let bus_b = Bus::new().unwrap();
    let mut from_a = bus_a.stream("decision.**").unwrap();
    let mut from_b = bus_b.stream("decision.**").unwrap();
    let a = start(&bus_a);
    let b = start(&bus_b);
    let assigned = |s: &SourceStats| s.partitions.iter().filter(|p| p.assigned).count();
    wait_for_stats(&a, "the group to split the partitions", |sa| {
        let sb = b.stats();
        assigned(sa) > 0 && assigned(&sb) > 0 && assigned(sa) + assigned(&sb) == 4
    })
    .await;

    let publisher = exact_publisher(&topic);
    for i in 0..40 {
        publisher.emit(&full_event(i, vec![])).await.unwrap();
    }
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut by = [0u32; 2];
    while seen.len() < 40 {
        let (e, who) = tokio::select! {
            e = next(&mut from_a, "events at a") => (e, 0),
            e = next(&mut from_b, "events at b") => (e, 1),
        };
        by[who] += 1;
        *seen.entry(e.id().to_owned()).or_default() += 1;
    }
    assert!(by[0] > 0 && by[1] > 0, "both members handled some: {by:?}");

    // The first member leaves; the second takes every partition over.
    let left = a.shutdown(HANG_GUARD).await;
    assert!(!left.running);
    for i in 40..80 {
        publisher.emit(&full_event(i, vec![])).await.unwrap();
    }
    while seen.len() < 80 {
        let e = next(&mut from_b, "events at the survivor").await;
        *seen.entry(e.id().to_owned()).or_default() += 1;
    }
    let stats = b.shutdown(HANG_GUARD).await;
    assert_eq!(assigned(&stats), 0, "left the group at shutdown");
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    assert_eq!(duplicates, 0, "a clean handover repeats nothing");
    assert_eq!(left.emitted + stats.emitted, 80, "{left:?} {stats:?}");
    bus_a.shutdown(HANG_GUARD).await;
    bus_b.shutdown(HANG_GUARD).await;
}

/// Run as a worker process by `a_killed_worker_s_records_reach_the_webhook`
/// (ignored otherwise): a bus with a webhook subscriber and a source,
/// printing its assigned partition count whenever it changes, until killed.
#[cfg(feature = "webhook")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a worker process for another test"]
async fn worker_process() {
    let Ok(name) = std::env::var("HOOKBUS_WORKER") else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    let bus = Bus::new().unwrap();
    hookbus::webhook::WebhookSink::builder(var("HOOKBUS_WORKER_URL"))
        .events(["decision.**"])
        .header("x-worker", name.clone())
        .build()
        .unwrap()
        .subscribe(&bus)
        .unwrap()
        .detach();
    let source = source(&var("HOOKBUS_WORKER_GROUP"), &var("HOOKBUS_WORKER_TOPIC"))
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        // Commits happen only at rebalances (and shutdown), never between:
        // see the test that runs this.
        .set("auto.commit.interval.ms", "600000")
        .start(&bus)
        .unwrap();
    let mut last = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let n = source
            .stats()
            .partitions
            .iter()
            .filter(|p| p.assigned)
            .count();
        if n != last {
            println!("assigned {n}");
            last = n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two worker processes in one group deliver to a webhook receiver; one is
/// SIGKILLed mid-stream. Every record still reaches the receiver (at least
/// once), the survivor takes the dead worker's partitions over, and the
/// duplicates are counted.
///
/// The workers commit only at rebalances, so the killed worker's progress
/// since the group formed is uncommitted and the survivor repeats it:
/// duplicates, never loss. (With periodic commits, an event whose offset was
/// committed while it still sat in the killed worker's mailbox would be
/// lost: "accepted" means in the mailbox; see the `source` module docs.)
///
/// Ignored by default: tansu 0.6.0, the broker `scripts/with-kafka` starts,
/// never evicts a member whose session expired (a clean leave works, see
/// `a_group_of_two_splits_the_partitions_and_hands_them_over`), so the
/// survivor would never get the partitions. Run it against Apache Kafka:
/// `KAFKA_BOOTSTRAP=host:9092 cargo test --all-features --test kafka_source -- --ignored`.
#[cfg(feature = "webhook")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a broker that evicts members whose session expired (tansu 0.6.0 does not)"]
async fn a_killed_worker_s_records_reach_the_webhook() {
    let topic = create_topic("kill", 4).await;
    let group = unique("group");
    let mut receiver = Receiver::ok().await;
    let spawn = |name: &str| {
        tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "worker_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--quiet",
            ])
            .env("HOOKBUS_WORKER", name)
            .env("HOOKBUS_WORKER_URL", &receiver.url)
            .env("HOOKBUS_WORKER_GROUP", &group)
            .env("HOOKBUS_WORKER_TOPIC", &topic)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut workers = [spawn("a"), spawn("b")];
    let mut lines_a = BufReader::new(workers[0].stdout.take().unwrap()).lines();
    let mut lines_b = BufReader::new(workers[1].stdout.take().unwrap()).lines();
    // Wait until the group has split the partitions between the two.
    let mut assigned = [0usize; 2];
    while !(assigned[0] > 0 && assigned[1] > 0 && assigned[0] + assigned[1] == 4) {
        let (line, who) = tokio::time::timeout(HANG_GUARD, async {
            tokio::select! {
                l = lines_a.next_line() => (l, 0),
                l = lines_b.next_line() => (l, 1),
            }
        })
        .await
        .expect("the workers never split the partitions");
        let line = line.unwrap().expect("a worker exited");
        if let Some(n) = line.strip_prefix("assigned ") {
            assigned[who] = n.parse().unwrap();
        }
    }

    let publisher = exact_publisher(&topic);
    for i in 0..100 {
        publisher.emit(&full_event(i, vec![])).await.unwrap();
    }
    // Mid-stream: once worker a has delivered something, kill it.
    let mut received: HashMap<String, Vec<String>> = HashMap::new();
    let record = |received: &mut HashMap<String, Vec<String>>, r: webhook_support::Received| {
        let id = r.event_id().unwrap();
        let worker = r.header("x-worker").unwrap().to_owned();
        received.entry(id).or_default().push(worker);
    };
    loop {
        let r = receiver.next().await;
        let from_a = r.header("x-worker") == Some("a");
        record(&mut received, r);
        if from_a {
            break;
        }
    }
    workers[0].kill().await.unwrap();
    for i in 100..200 {
        publisher.emit(&full_event(i, vec![])).await.unwrap();
    }
    while received.len() < 200 {
        let r = receiver.next().await;
        record(&mut received, r);
    }
    for r in receiver.drain() {
        record(&mut received, r);
    }
    workers[1].kill().await.unwrap();

    let duplicates: usize = received.values().map(|w| w.len() - 1).sum();
    eprintln!("200 records, all delivered; {duplicates} delivered twice after the kill");
    for i in 100..200 {
        let by = &received[&format!("ev-{i}")];
        assert!(
            by.iter().all(|w| w == "b"),
            "ev-{i} after the kill came from {by:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_report_high_watermark_and_lag_per_partition() {
    let topic = create_topic("lag", 1).await;
    let publisher = exact_publisher(&topic);
    for i in 0..10 {
        publisher.emit(&full_event(i, vec![])).await.unwrap();
    }
    // A subscriber nobody reads: it soon holds the source back, and the
    // statistics keep coming while the source waits.
    let bus = Bus::new().unwrap();
    let _held = bus
        .subscriber("decision.**")
        .capacity(1)
        .overflow(OverflowPolicy::Block)
        .stream()
        .unwrap();
    let src = source(&unique("group"), &topic)
        .set("statistics.interval.ms", "100")
        .start(&bus)
        .unwrap();
    wait_for_stats(&src, "a high watermark from librdkafka's statistics", |s| {
        s.partitions
            .first()
            .is_some_and(|p| p.high_watermark.is_some() && p.position.is_some())
    })
    .await;
    let stats = src.shutdown(HANG_GUARD).await;
    let p = &stats.partitions[0];
    let (high, position) = (p.high_watermark.unwrap(), p.position.unwrap());
    assert_eq!(position, stats.emitted as i64);
    assert!(position < 10, "held back: {stats:?}");
    assert_eq!(p.lag, Some((high - position).max(0)));
    bus.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_stops_when_its_bus_shuts_down() {
    let topic = create_topic("busclosed", 1).await;
    let bus = Bus::new().unwrap();
    let src = source(&unique("group"), &topic).start(&bus).unwrap();
    bus.shutdown(HANG_GUARD).await;
    let publisher = exact_publisher(&topic);
    publisher.emit(&full_event(0, vec![])).await.unwrap();
    // The record finds the bus closed: the source stops without storing
    // its offset, so a later member reads it again.
    wait_for_stats(&src, "the source to stop", |s| !s.running).await;
    let stats = src.stats();
    assert_eq!((stats.consumed, stats.emitted), (1, 0), "{stats:?}");
    assert_eq!(stats.partitions[0].committed, None, "{stats:?}");
}

/// In a batch where an event from Kafka is skipped, a failure names the
/// events that were sent, by their place in the batch the bus gave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_names_the_right_events_when_some_were_skipped() {
    let missing = unique("missing");
    let publisher = KafkaPublisher::builder(bootstrap(), &missing)
        .set("topic.metadata.propagation.max.ms", "1000")
        .build()
        .unwrap();
    let bus = Bus::new().unwrap();
    let mut failures = bus.stream("hookbus.delivery_failed").unwrap();
    bus.subscriber("decision.**")
        .name("kafka")
        .batch(2, HANG_GUARD)
        .sink(publisher.clone())
        .unwrap()
        .detach();
    let from_kafka = Event::builder("decision.captured")
        .extension(FROM_KAFKA_EXTENSION, "elsewhere")
        .build()
        .unwrap();
    let local = full_event(1, vec![]);
    bus.emit(from_kafka).unwrap();
    bus.emit(local).unwrap();
    let failure = next(&mut failures, "the delivery failure").await;
    assert_eq!(
        failure.data()["event_ids"],
        json!(["ev-1"]),
        "{:?}",
        failure.data()
    );
    let report = bus.shutdown(HANG_GUARD).await;
    let kafka = report.subscriber("kafka").unwrap();
    assert_eq!((kafka.stats.delivered, kafka.stats.failed), (1, 1));
    assert_eq!(publisher.skipped_from_kafka(), 1);
}

/// One side of `two_processes_see_each_other_s_events`, run as a child
/// process (ignored otherwise): a bus that publishes its own `b.*` events
/// to the topic and consumes the topic, printing every `a.*` event it sees
/// as one JSON line, and the ids it emitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a process for another test"]
async fn peer_process() {
    let Ok(topic) = std::env::var("HOOKBUS_PEER_TOPIC") else {
        return;
    };
    let bus = Bus::new().unwrap();
    let publisher = exact_publisher(&topic);
    bus.subscriber("b.*")
        .name("kafka")
        .overflow(OverflowPolicy::Block)
        .sink(publisher)
        .unwrap()
        .detach();
    bus.on("a.*", |e| {
        println!("saw {}", serde_json::to_string(e).unwrap());
    })
    .unwrap()
    .detach();
    let source = source(&unique("peer-b"), &topic).start(&bus).unwrap();
    for i in 0..20u64 {
        let e = Event::builder("b.pong")
            .data(json!({"i": i}))
            .extension("side", "b")
            .build()
            .unwrap();
        println!("emitted {}", e.id());
        bus.publish(e).await.unwrap();
    }
    // Until the parent has seen ours and we have seen its (it kills us).
    tokio::time::sleep(Duration::from_secs(300)).await;
    drop(source);
}

/// Two buses in two processes share a topic: each sees exactly the events
/// the other emitted (ids, types, data and extensions intact), and its own
/// come back only as Kafka copies that no publisher sends again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_see_each_other_s_events() {
    let topic = create_topic("peers", 2).await;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "peer_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--quiet",
        ])
        .env("HOOKBUS_PEER_TOPIC", &topic)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let bus = Bus::new().unwrap();
    let publisher = exact_publisher(&topic);
    bus.subscriber("a.*")
        .name("kafka")
        .overflow(OverflowPolicy::Block)
        .sink(publisher.clone())
        .unwrap()
        .detach();
    let mut theirs = bus.subscriber("b.*").capacity(1000).stream().unwrap();
    let mut echoes = bus
        .subscriber("a.*")
        .filter(|e| e.extension(FROM_KAFKA_EXTENSION).is_some())
        .capacity(1000)
        .stream()
        .unwrap();
    let _source = source(&unique("peer-a"), &topic).start(&bus).unwrap();
    let mut ours = BTreeMap::new();
    for i in 0..20u64 {
        let e = Event::builder("a.ping")
            .data(json!({"i": i}))
            .extension("side", "a")
            .extension("attempt", i as i64)
            .build()
            .unwrap();
        ours.insert(e.id().to_owned(), e.clone());
        bus.publish(e).await.unwrap();
    }
    // What the child emitted and saw, from its output.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut emitted = Vec::new();
    let mut saw = BTreeMap::new();
    let guard = tokio::time::Instant::now() + HANG_GUARD;
    while emitted.len() < 20 || saw.len() < 20 {
        let line = tokio::time::timeout_at(guard, lines.next_line())
            .await
            .expect("the peer reported everything in time")
            .unwrap()
            .expect("the peer ended early");
        if let Some((_, id)) = line.split_once("emitted ") {
            emitted.push(id.to_owned());
        } else if let Some((_, json)) = line.split_once("saw ") {
            let e: Event = serde_json::from_str(json).unwrap();
            saw.insert(e.id().to_owned(), e);
        }
    }
    // The child saw exactly our events, as they were.
    assert_eq!(
        saw.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>()
    );
    for (id, sent) in &ours {
        let got = &saw[id];
        assert_eq!(
            (got.event_type(), got.data(), got.source()),
            (sent.event_type(), sent.data(), sent.source())
        );
        assert_eq!(got.extension("side"), sent.extension("side"));
        assert_eq!(got.time(), sent.time());
    }
    // We see exactly the child's events.
    let mut got = Vec::new();
    while got.len() < 20 {
        let e = tokio::time::timeout_at(guard, theirs.next())
            .await
            .expect("the peer's events arrived in time")
            .unwrap();
        assert_eq!(e.extension("side").map(|v| v.to_string()), Some("b".into()));
        got.push(e.id().to_owned());
    }
    got.sort();
    emitted.sort();
    assert_eq!(got, emitted);
    // Our own events came back from Kafka too...
    for _ in 0..20 {
        tokio::time::timeout_at(guard, echoes.next())
            .await
            .expect("our own events came back from Kafka in time")
            .unwrap();
    }
    child.kill().await.unwrap();
    // ...and once the publisher's mailbox is drained, none was published
    // again.
    bus.shutdown(HANG_GUARD).await;
    assert_eq!(publisher.skipped_from_kafka(), 20);
}

/// A non-CloudEvents record over librdkafka's default 1 MB message limit
/// (and one over the source's 4 MiB decode limit) goes to the dead-letter
/// topic whole, and the records behind it reach the bus. (It used to stall
/// the source for good: the dead-letter producer refused the copy as too
/// large and the source retried it forever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_over_a_megabyte_is_dead_lettered_and_the_rest_flows() {
    let topic = create_topic_with("big-poison", 1, LARGE_RECORDS).await;
    let dead = create_topic_with("big-poison-dlq", 1, LARGE_RECORDS).await;
    let over_a_megabyte = vec![b'p'; 1_500_000];
    let over_the_decode_limit = vec![b'q'; 6 * 1024 * 1024];
    let mut records: Vec<RawRecord> = vec![(
        Some("big-1"),
        over_a_megabyte.clone(),
        vec![("origin", "legacy")],
    )];
    for id in ["good-0", "good-1", "good-2", "good-3", "good-4"] {
        records.push((None, br#"{"decision_id":"d"}"#.to_vec(), binary_headers(id)));
    }
    records.push((Some("big-2"), over_the_decode_limit.clone(), vec![]));
    for id in ["good-5", "good-6", "good-7", "good-8", "good-9"] {
        records.push((None, br#"{"decision_id":"d"}"#.to_vec(), binary_headers(id)));
    }
    produce_raw(&topic, records).await;

    let bus = Bus::new().unwrap();
    let mut events = bus.stream("decision.**").unwrap();
    let src = source(&unique("group"), &topic)
        .dead_letter_topic(&dead)
        .start(&bus)
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(
            next(&mut events, "the records behind the poison")
                .await
                .id()
                .to_owned(),
        );
    }
    let expected: Vec<String> = (0..10).map(|i| format!("good-{i}")).collect();
    assert_eq!(ids, expected);
    let stats = src.shutdown(HANG_GUARD).await;
    assert_eq!(
        (
            stats.consumed,
            stats.emitted,
            stats.dead_lettered,
            stats.skipped
        ),
        (12, 10, 2, 0),
        "{stats:?}"
    );
    assert_eq!(stats.partitions[0].committed, Some(12));

    let copies = consume(&dead, 1, 2).await;
    assert_eq!(copies[0].key(), Some(&b"big-1"[..]));
    assert_eq!(
        copies[0].payload().map(<[u8]>::len),
        Some(over_a_megabyte.len())
    );
    assert_eq!(header(&copies[0], "origin").as_deref(), Some("legacy"));
    assert_eq!(
        header(&copies[0], "hookbus-dead-letter-kind").as_deref(),
        Some("not-cloudevent")
    );
    assert_eq!(copies[1].key(), Some(&b"big-2"[..]));
    assert_eq!(
        copies[1].payload().map(<[u8]>::len),
        Some(over_the_decode_limit.len())
    );
    assert_eq!(
        header(&copies[1], "hookbus-dead-letter-kind").as_deref(),
        Some("too-large")
    );
    bus.shutdown(HANG_GUARD).await;
}

/// Topic settings that let a broker with Apache Kafka's defaults (1 MB per
/// record batch) take the large records of these tests; tansu takes them
/// anyway.
const LARGE_RECORDS: &[(&str, &str)] = &[("max.message.bytes", "20000000")];

/// A dead-letter topic that cannot take the record (here: it does not
/// exist, and each send times out) costs a bounded number of attempts;
/// then the record is skipped, and its headers, key, offset and reason are
/// announced. The records behind it reach the bus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_dead_letter_topic_cannot_take_is_skipped_and_announced() {
    let topic = create_topic("dlq-down", 1).await;
    let missing = unique("no-such-dlq");
    produce_raw(
        &topic,
        vec![
            (
                Some("k-poison"),
                b"not an event".to_vec(),
                vec![("origin", "legacy"), ("binary", "\u{1}\u{2}")],
            ),
            (
                None,
                br#"{"decision_id":"d"}"#.to_vec(),
                binary_headers("after-1"),
            ),
            (
                None,
                br#"{"decision_id":"d"}"#.to_vec(),
                binary_headers("after-2"),
            ),
        ],
    )
    .await;
    let bus = Bus::new().unwrap();
    let mut events = bus.stream("decision.**").unwrap();
    let mut refusals = bus.stream("hookbus.kafka_record_refused").unwrap();
    let src = source(&unique("group"), &topic)
        .dead_letter_topic(&missing)
        .dead_letter_set("message.timeout.ms", "1500")
        .dead_letter_attempts(2)
        .start(&bus)
        .unwrap();

    let skipped = next(&mut refusals, "the announcement of the skipped record").await;
    let data = skipped.data();
    assert_eq!(data["skipped"], json!(true), "{data}");
    assert_eq!(data["offset"], json!(0));
    assert_eq!(data["topic"], json!(topic));
    assert_eq!(data["kind"], json!("not-cloudevent"));
    assert!(
        data["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{data}"
    );
    assert_eq!(data["dead_letter_topic"], json!(missing));
    assert!(
        data["dead_letter_error"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{data}"
    );
    let attempts = data["dead_letter_attempts"].as_u64().unwrap();
    assert!((1..=2).contains(&attempts), "{data}");
    assert_eq!(data["key"], json!("k-poison"));
    assert_eq!(
        data["headers"],
        json!([["origin", "legacy"], ["binary", "\u{1}\u{2}"]])
    );
    let first = next(&mut events, "the first record behind it").await;
    let second = next(&mut events, "the second record behind it").await;
    assert_eq!((first.id(), second.id()), ("after-1", "after-2"));
    let stats = src.shutdown(HANG_GUARD).await;
    assert_eq!(
        (
            stats.consumed,
            stats.emitted,
            stats.dead_lettered,
            stats.skipped
        ),
        (3, 2, 0, 1),
        "{stats:?}"
    );
    // One error per failed send (a failed periodic commit would add one).
    assert!(stats.errors >= attempts, "{stats:?}");
    assert_eq!(stats.partitions[0].committed, Some(3));
    bus.shutdown(HANG_GUARD).await;
}

/// A `Block` subscriber with a mailbox of 1, paced so that the source
/// finds it full for every record: the source waits for room without
/// pausing and resuming its partitions each time (which made librdkafka
/// drop and fetch again what it had read ahead, per event: 37–66
/// records/s). Every record still arrives once, in order, and is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_block_mailbox_does_not_pause_the_source_per_event() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    const N: u64 = 150;
    let topic = create_topic("backpressure", 1).await;
    let publisher = exact_publisher(&topic);
    for i in 0..N {
        publisher.emit(&full_event(i, vec![])).await.unwrap();
    }

    let bus = Bus::new().unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let entered = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (g, en, se) = (gate.clone(), entered.clone(), seen.clone());
    let slow = bus
        .subscriber("decision.**")
        .capacity(1)
        .overflow(OverflowPolicy::Block)
        .on_async(move |e| {
            let (g, en, se) = (g.clone(), en.clone(), se.clone());
            async move {
                en.fetch_add(1, Ordering::SeqCst);
                g.acquire().await.expect("gate").forget();
                se.lock().unwrap().push(e.id().to_owned());
            }
        })
        .unwrap();
    let src = source(&unique("group"), &topic).start(&bus).unwrap();

    // Event i is in the handler, i+1 fills the mailbox, so once the source
    // has started on i+2 it is waiting for room: only then let i finish.
    for i in 0..N {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let consumed = src.stats().consumed;
            if entered.load(Ordering::SeqCst) == i + 1 && consumed >= (i + 3).min(N) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "event {i}: handler entered {} times, source {:?}",
                entered.load(Ordering::SeqCst),
                src.stats()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gate.add_permits(1);
    }
    wait_for_stats(&src, "every record emitted", |s| s.emitted == N).await;
    let stats = src.shutdown(HANG_GUARD).await;
    bus.shutdown(HANG_GUARD).await;
    drop(slow);

    let expected: Vec<String> = (0..N).map(|i| format!("ev-{i}")).collect();
    assert_eq!(*seen.lock().unwrap(), expected);
    assert_eq!(stats.consumed, N, "{stats:?}");
    assert_eq!(stats.partitions[0].committed, Some(N as i64));
    // N - 2 waits for room; at most one pause per 50 of them.
    assert!(
        stats.pauses * 50 <= N,
        "{} pauses for {N} records: {stats:?}",
        stats.pauses
    );
}

/// The broker check itself, with records batched as a default producer
/// batches them: it must fail loudly on tansu 0.6.0, which skips offsets
/// when a fetch starts inside a batch (and pass on Apache Kafka). Run by
/// hand (`--ignored`) to see what the check guards against.
#[test]
#[ignore = "diagnostic: fails on tansu 0.6.0 by design"]
fn the_broker_check_fails_on_batched_records_when_the_broker_skips() {
    kafka_support::check_offsets(
        &bootstrap(),
        &[("linger.ms", "50"), ("batch.num.messages", "10000")],
    );
}

/// A member stuck on a full `Block` mailbox holds the records it read
/// ahead; when a rebalance takes partitions away, it drops their held
/// records rather than emitting them after their new owner has. Every
/// record is handled; one repeated per revoked partition at most (the one
/// that was waiting for room, as the module docs say).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_records_of_revoked_partitions_go_to_their_new_owner_only() {
    use std::sync::{Arc, Mutex};
    const N: usize = 120;
    let topic = create_topic("revoke-held", 4).await;
    let group = unique("group");
    let publisher = exact_publisher(&topic);
    for i in 0..N {
        let event = Event::builder("decision.captured")
            .id(format!("ev-{i}"))
            .source("svc-a")
            .data(json!({"decision_id": format!("d{i}")}))
            .build()
            .unwrap();
        publisher.emit(&event).await.unwrap();
    }
    let start = |bus: &Bus| {
        source(&group, &topic)
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .start(bus)
            .unwrap()
    };

    // Member a: a mailbox of 1 behind a closed gate.
    let bus_a = Bus::new().unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let seen_a = Arc::new(Mutex::new(Vec::<String>::new()));
    let (g, sa) = (gate.clone(), seen_a.clone());
    let _stuck = bus_a
        .subscriber("decision.**")
        .capacity(1)
        .overflow(OverflowPolicy::Block)
        .on_async(move |e| {
            let (g, sa) = (g.clone(), sa.clone());
            async move {
                g.acquire().await.expect("gate").forget();
                sa.lock().unwrap().push(e.id().to_owned());
            }
        })
        .unwrap();
    let a = start(&bus_a);
    wait_for_stats(&a, "member a stuck, holding records read ahead", |s| {
        s.held >= 20
    })
    .await;

    // Member b joins: the group takes partitions from a.
    let bus_b = Bus::new().unwrap();
    let mut from_b = bus_b
        .subscriber("decision.**")
        .capacity(10 * N)
        .stream()
        .unwrap();
    let b = start(&bus_b);
    let assigned = |s: &SourceStats| s.partitions.iter().filter(|p| p.assigned).count();
    wait_for_stats(&b, "the group to split the partitions", |sb| {
        let sa = a.stats();
        assigned(sb) > 0 && assigned(&sa) > 0 && assigned(&sa) + assigned(sb) == 4
    })
    .await;
    gate.add_permits(10 * N);

    let mut seen_b = Vec::new();
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let distinct: std::collections::HashSet<String> = seen_a
            .lock()
            .unwrap()
            .iter()
            .chain(&seen_b)
            .cloned()
            .collect();
        if distinct.len() == N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {N} records handled: a {:?}, b {:?}",
            distinct.len(),
            a.stats(),
            b.stats()
        );
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), from_b.next()).await {
            seen_b.push(e.id().to_owned());
        }
    }
    let stats_a = a.shutdown(HANG_GUARD).await;
    let stats_b = b.shutdown(HANG_GUARD).await;
    // Emitted: accepted by a bus, so handled (and committed).
    let twice = (stats_a.emitted + stats_b.emitted) as usize - N;
    assert!(
        twice <= 4,
        "{twice} records emitted twice: a {stats_a:?}, b {stats_b:?}"
    );
    bus_a.shutdown(HANG_GUARD).await;
    bus_b.shutdown(HANG_GUARD).await;
}
