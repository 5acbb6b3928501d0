//! The seed scenario: decisions captured by a service go to the Kafka topic
//! `ai-decisions`, keyed by `decision_id` so each decision's events stay on
//! one partition, in order.
//!
//! Run it against a broker (a topic `ai-decisions` must exist):
//!
//! ```sh
//! KAFKA_BOOTSTRAP=kafka-1:9092,kafka-2:9092 cargo run --example kafka --features kafka
//! ```
//!
//! Without `KAFKA_BOOTSTRAP` it uses `localhost:9092`.

use std::time::Duration;

use hookbus::kafka::KafkaPublisher;
use hookbus::{Bus, Event, TypedEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A typed event: the Rust type carries its event type.
#[derive(Debug, Serialize, Deserialize)]
struct DecisionCaptured {
    decision_id: String,
    function_name: String,
    confidence: f64,
}

impl TypedEvent for DecisionCaptured {
    const TYPE: &'static str = "decision.captured";
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let brokers = std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "localhost:9092".into());
    let brokers: Vec<&str> = brokers.split(',').collect(); // a brokers list, as Briefcase takes it
    let publisher = KafkaPublisher::new(brokers, "ai-decisions")?;

    // Fail early and clearly if the cluster or the topic is not there.
    publisher.healthcheck(Duration::from_secs(10)).await?;

    // 1. Directly: one event, acknowledged by the broker.
    let event = Event::builder("decision.captured")
        .source("claims-service")
        .data(json!({"decision_id": "abc123", "function_name": "claims_review"}))
        .build()?;
    let report = publisher.emit(&event).await?;
    println!(
        "[direct] {} -> ai-decisions partition {} offset {}",
        event.id(),
        report.partition,
        report.offset
    );

    // 2. As a bus subscriber: every decision event goes to Kafka.
    let bus = Bus::builder().source("claims-service").build()?;
    bus.subscriber("decision.**")
        .name("kafka:ai-decisions")
        .options(KafkaPublisher::recommended_options())
        .sink(publisher.clone())?
        .detach();
    // Failed deliveries come back on the bus (the dead-letter path).
    bus.on("hookbus.delivery_failed", |e| {
        eprintln!("[failed] {}", e.data())
    })?
    .detach();

    for (i, function) in ["claims_review", "triage", "claims_review"]
        .iter()
        .enumerate()
    {
        bus.emit(DecisionCaptured {
            decision_id: format!("abc12{}", i + 4),
            function_name: (*function).into(),
            confidence: 0.9,
        })?;
    }

    // Shutdown flushes Kafka within the deadline and reports what is left.
    let report = bus.shutdown(Duration::from_secs(30)).await;
    print!("\n{report}");
    let kafka = report.subscriber("kafka:ai-decisions").expect("subscriber");
    println!("unflushed at shutdown: {}", kafka.unflushed);
    Ok(())
}
