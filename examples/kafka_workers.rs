//! Webhook delivery scaled out over a Kafka consumer group.
//!
//! Producers emit decision events to Kafka (keyed by `decision_id`, so one
//! decision's events live on one partition, in order). N workers, each with
//! its own bus, run a `KafkaSource` in one consumer group: Kafka spreads the
//! partitions over them, and each worker's subscriber (a webhook when
//! `WEBHOOK_URL` is set, else a closure) handles the events of its
//! partitions, in order per decision. In production each worker is its own
//! process; here they are tasks of one, to keep the example runnable.
//!
//! ```sh
//! scripts/with-kafka cargo run --example kafka_workers --features kafka
//! KAFKA_BOOTSTRAP=kafka-1:9092 WORKERS=4 WEBHOOK_URL=http://127.0.0.1:8080/hook \
//!     cargo run --example kafka_workers --features kafka
//! ```
//!
//! It creates the topic `TOPIC` (default `hookbus-workers-demo`, 6
//! partitions) if it does not exist.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hookbus::kafka::rdkafka::ClientConfig;
use hookbus::kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use hookbus::kafka::rdkafka::client::DefaultClientContext;
use hookbus::kafka::rdkafka::types::RDKafkaErrorCode;
use hookbus::kafka::{KafkaPublisher, KafkaSource};
use hookbus::webhook::WebhookSink;
use hookbus::{Bus, Event};
use serde_json::json;

const EVENTS: u64 = 60;
const GROUP: &str = "hookbus-webhook-workers";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let brokers = std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "localhost:9092".into());
    let topic = std::env::var("TOPIC").unwrap_or_else(|_| "hookbus-workers-demo".into());
    let workers: usize = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(3);
    let webhook_url = std::env::var("WEBHOOK_URL").ok();
    create_topic(&brokers, &topic, 6).await?;

    // The workers: one bus, one source, one subscriber each.
    let handled = Arc::new(AtomicU64::new(0));
    let mut running = Vec::new();
    for n in 0..workers {
        let bus = Bus::builder().source(format!("worker-{n}")).build()?;
        match &webhook_url {
            Some(url) => {
                WebhookSink::builder(url.clone())
                    .name(format!("worker-{n}-webhook"))
                    .events(["decision.**"])
                    .ordered_by("data.decision_id")
                    .build()?
                    .subscribe(&bus)?
                    .detach();
                // Counts what the worker took in; the webhook's own stats
                // count deliveries.
                let handled = handled.clone();
                bus.on("decision.**", move |_| {
                    handled.fetch_add(1, Ordering::Relaxed);
                })?
                .detach();
            }
            None => {
                let handled = handled.clone();
                bus.on("decision.**", move |e| {
                    handled.fetch_add(1, Ordering::Relaxed);
                    println!(
                        "[worker-{n}] {} {} seq {} (key {})",
                        e.event_type(),
                        e.data()["decision_id"],
                        e.data()["seq"],
                        e.extension("partitionkey")
                            .map(|k| k.to_string())
                            .unwrap_or_default(),
                    );
                })?
                .detach();
            }
        }
        let source = KafkaSource::builder(brokers.as_str(), GROUP)
            .topic(&topic)
            .set("session.timeout.ms", "10000")
            .start(&bus)?;
        running.push((bus, source));
    }

    // Let the group settle: every worker holding some of the partitions
    // (members join one after another, each join is a rebalance).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let assigned: Vec<Vec<i32>> = running
            .iter()
            .map(|(_, source)| {
                let stats = source.stats();
                stats
                    .partitions
                    .iter()
                    .filter(|p| p.assigned)
                    .map(|p| p.partition)
                    .collect()
            })
            .collect();
        let total: usize = assigned.iter().map(Vec::len).sum();
        let settled = total == 6 && assigned.iter().all(|a| !a.is_empty() || workers > 6);
        if settled || Instant::now() > deadline {
            println!("partitions per worker: {assigned:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The producers: a service's bus with a Kafka subscriber.
    let producer = Bus::builder().source("claims-service").build()?;
    producer
        .subscriber("decision.**")
        .options(KafkaPublisher::recommended_options())
        .sink(KafkaPublisher::new(brokers.as_str(), &topic)?)?
        .detach();
    for seq in 0..EVENTS {
        producer.emit(Event::new(
            "decision.captured",
            json!({"decision_id": format!("d-{}", seq % 8), "seq": seq}),
        )?)?;
    }
    let report = producer.shutdown(Duration::from_secs(30)).await;
    println!("produced {EVENTS} events (clean: {})", report.is_clean());

    // Wait for the group to take them all in (the workers first join the
    // group and split the partitions; that takes a few seconds).
    let deadline = Instant::now() + Duration::from_secs(60);
    while handled.load(Ordering::Relaxed) < EVENTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for (n, (bus, source)) in running.into_iter().enumerate() {
        let stats = source.shutdown(Duration::from_secs(10)).await;
        let partitions: Vec<i32> = stats
            .partitions
            .iter()
            .filter(|p| p.position.is_some())
            .map(|p| p.partition)
            .collect();
        println!(
            "worker-{n}: {} events from partitions {partitions:?}, {} commits",
            stats.emitted, stats.commits
        );
        bus.shutdown(Duration::from_secs(30)).await;
    }
    println!(
        "{} of {EVENTS} events handled (at least once: a rebalance or a crash may repeat some; ids are stable for deduplication)",
        handled.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> Result<(), Box<dyn std::error::Error>> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics([&new], &opts).await? {
        match result {
            Ok(_) => println!("created topic {topic} with {partitions} partitions"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("could not create {name}: {code}").into()),
        }
    }
    Ok(())
}
