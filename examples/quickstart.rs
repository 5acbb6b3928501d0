//! The bus at work on embedded defaults: closure subscribers with wildcards, a
//! condition, a batch, a typed subscriber, a failing handler, a slow subscriber
//! that drops, events emitted, and the final stats and shutdown report.
//!
//! Run it with `cargo run --example quickstart`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hookbus::{Bus, Event, OverflowPolicy, Typed, TypedEvent};
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
    let bus = Bus::builder().source("quickstart").build()?;

    // 1. Every decision event, one segment deep.
    bus.subscriber("decision.*")
        .name("log")
        .on(|e| println!("[log]      {:<24} {}", e.event_type(), e.data()))?
        .detach();

    // 2. A typed subscriber: the data arrives as a Rust value.
    bus.on_typed(|d: Typed<DecisionCaptured>| {
        println!(
            "[typed]    {} from {} at {:.0}%",
            d.decision_id,
            d.function_name,
            d.confidence * 100.0
        )
    })?
    .detach();

    // 3. Only confident decisions, in batches of up to 3 (or every 100 ms).
    bus.subscriber("decision.**")
        .name("confident-batch")
        .filter(|e| e.data()["confidence"].as_f64() > Some(0.85))
        .batch(3, Duration::from_millis(100))
        .on_batch(|batch| {
            let ids: Vec<_> = batch
                .iter()
                .map(|e| e.data()["decision_id"].clone())
                .collect();
            println!("[batch]    {} confident decisions: {ids:?}", batch.len());
        })?
        .detach();

    // 4. A handler that fails now and then: counted, announced, never fatal.
    bus.subscriber("decision.captured")
        .name("flaky")
        .on(|e| {
            if e.data()["confidence"].as_f64() < Some(0.5) {
                return Err(format!("refusing decision {}", e.data()["decision_id"]));
            }
            Ok(())
        })?
        .detach();

    // 5. The bus reports its own troubles as events too.
    bus.on("hookbus.**", |e| {
        println!("[hookbus]  {} {}", e.event_type(), e.data())
    })?
    .detach();

    // 6. A slow subscriber with a small mailbox: it drops the oldest events
    //    instead of slowing anyone down.
    let slow_seen = Arc::new(AtomicUsize::new(0));
    let seen = slow_seen.clone();
    bus.subscriber("decision.*")
        .name("slow-audit")
        .capacity(2)
        .overflow(OverflowPolicy::DropOldest)
        .on_async(move |_e| {
            let seen = seen.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                seen.fetch_add(1, Ordering::SeqCst);
            }
        })?
        .detach();

    // Emit: typed and dynamic events. `emit` never blocks.
    let decisions = [
        ("abc123", "claims_review", 0.91),
        ("abc124", "claims_review", 0.42),
        ("abc125", "triage", 0.97),
        ("abc126", "triage", 0.88),
        ("abc127", "claims_review", 0.60),
    ];
    for (id, function, confidence) in decisions {
        bus.emit(DecisionCaptured {
            decision_id: id.into(),
            function_name: function.into(),
            confidence,
        })?;
    }
    bus.emit(Event::new(
        "decision.low_confidence",
        json!({"decision_id": "abc124", "confidence": 0.42}),
    )?)?;
    bus.emit(Event::new(
        "decision.drift_detected",
        json!({"window": "1h", "drift_score": 0.18, "decision_id": "-", "confidence": 0.99}),
    )?)?;
    // Nobody listens to this one: it costs almost nothing and is only counted.
    bus.emit(Event::new("metrics.tick", json!({"n": 1}))?)?;

    // Let every subscriber take in what was emitted, then look at the stats.
    let stats = bus.stats();
    println!(
        "\nstats: emitted {}, unmatched {}",
        stats.emitted, stats.unmatched
    );

    // Shut down: drain mailboxes, flush partial batches, wait for handlers.
    let report = bus.shutdown(Duration::from_secs(5)).await;
    println!("\n{report}");
    println!(
        "slow-audit handled {} events; the rest were dropped and reported",
        slow_seen.load(Ordering::SeqCst)
    );
    Ok(())
}
