//! A durable Kafka subscriber killed with SIGKILL mid-stream: a new process
//! on the same store publishes what was pending, so every event whose
//! `publish` returned reaches the topic at least once.
#![cfg(all(feature = "kafka", feature = "durable"))]

mod kafka_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hookbus::kafka::KafkaPublisher;
use hookbus::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hookbus::kafka::rdkafka::message::{Headers, Message};
use hookbus::kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use hookbus::store::Store;
use hookbus::{Bus, Event, OverflowPolicy};
use kafka_support::{bootstrap, create_topic};
use serde_json::json;

const CHILD_ENV: &str = "HOOKBUS_KAFKA_CRASH_CHILD";

fn durable_publisher(bus: &Bus, store: &Store, topic: &str) -> hookbus::Subscription {
    let publisher = KafkaPublisher::new([bootstrap()], topic).unwrap();
    bus.subscriber("order.*")
        .name("kafka")
        .options(KafkaPublisher::recommended_options())
        .capacity(50_000)
        .overflow(OverflowPolicy::Block)
        .durable(store)
        .sink(publisher)
        .unwrap()
}

/// The child: publishes up to 20,000 events (fsync mode) and prints
/// `accepted <id>` for each, until it is killed.
#[test]
#[ignore = "run by the crash test as a child process"]
fn kafka_crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (path, topic) = spec.split_once('|').unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        use std::io::Write;
        let store = Store::open(path).unwrap();
        let bus = Bus::new().unwrap();
        let _sub = durable_publisher(&bus, &store, topic);
        let mut out = std::io::stdout().lock();
        for i in 0..20_000u64 {
            let e = Event::new("order.placed", json!({"n": i})).unwrap();
            let id = e.id().to_owned();
            bus.publish(e).await.unwrap();
            writeln!(out, "accepted {id}").unwrap();
            out.flush().unwrap();
        }
        std::future::pending::<()>().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_published_event_reaches_the_topic_after_a_sigkill() {
    let topic = create_topic("durable", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let accepted = tokio::task::block_in_place(|| {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "kafka_crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{}|{topic}", path.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut accepted = Vec::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let Ok(line) = line else { break };
            // The harness may print its own words ahead on the first line.
            if let Some((_, id)) = line.split_once("accepted ") {
                accepted.push(id.to_owned());
            }
            if accepted.len() >= 1_500 {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        accepted
    });
    assert_eq!(accepted.len(), 1_500);

    // The restart: what was pending is published first.
    let store = Store::open(&path).unwrap();
    let bus = Bus::new().unwrap();
    let _sub = durable_publisher(&bus, &store, &topic);
    let recovered = store.stats().recovered;
    let report = bus.shutdown(Duration::from_secs(60)).await;
    assert!(report.is_clean(), "{report:?}");
    store.sync().await.unwrap();
    assert_eq!(store.pending("kafka").unwrap(), 0);

    // Read the topic back until every accepted id is there.
    let bootstrap = bootstrap();
    let seen = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("hookbus-test-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(0))
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut last_progress = Instant::now();
        while !accepted.iter().all(|id| seen.contains_key(id)) {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let id = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == "ce_id"))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap();
                *seen.entry(id).or_default() += 1;
                last_progress = Instant::now();
            }
            let missing = accepted.iter().filter(|id| !seen.contains_key(*id)).count();
            assert!(
                last_progress.elapsed() < Duration::from_secs(30),
                "{missing} of {} accepted events never reached the topic ({recovered} recovered)",
                accepted.len()
            );
        }
        seen
    })
    .await
    .unwrap();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "kafka durable: {} records read, all {} accepted present, {duplicates} duplicates, {recovered} recovered",
        seen.values().sum::<usize>(),
        1_500
    );
}
