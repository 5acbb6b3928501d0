//! 10,000 events to a receiver that fails 30 % of requests at random.
//!
//! - With enough attempts, every event id arrives and none is lost.
//! - With the default 3 attempts, delivered + dead-lettered = emitted: each
//!   event is either accepted by the receiver or in the dead-letter log, never
//!   both, never neither. `hookbus.delivery_failed` announcements name only
//!   dead-lettered events (they are best-effort in the bus core: an internal
//!   event meeting a full bus channel, or one raised after shutdown began, is
//!   not published).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::webhook_support::Receiver;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hookbus::webhook::{RetryPolicy, WebhookSink};
use hookbus::{Bus, Event, OverflowPolicy};
use rand::Rng;
use serde_json::json;

const EVENTS: usize = 10_000;

struct Flaky {
    rx: Receiver,
    accepted: Arc<Mutex<HashSet<String>>>,
}

async fn flaky_receiver() -> Flaky {
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let acc = accepted.clone();
    let rx = Receiver::start(move |r, _| {
        if rand::thread_rng().gen_bool(0.3) {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        } else {
            acc.lock().unwrap().insert(r.event_id().unwrap());
            StatusCode::OK.into_response()
        }
    })
    .await;
    Flaky { rx, accepted }
}

struct Run {
    ids: Vec<String>,
    flaky: Flaky,
    stats: hookbus::webhook::WebhookStats,
    announced: HashSet<String>,
    dead: HashSet<String>,
}

async fn run(policy: RetryPolicy) -> Run {
    let mut flaky = flaky_receiver().await;
    let bus = Bus::new().unwrap();
    let announced = Arc::new(Mutex::new(HashSet::new()));
    let ann = announced.clone();
    let _failures = bus
        .subscriber("hookbus.delivery_failed")
        .overflow(OverflowPolicy::Block)
        .capacity(EVENTS)
        .on(move |e: &Event| {
            for id in e.data()["event_ids"].as_array().unwrap() {
                ann.lock().unwrap().insert(id.as_str().unwrap().to_owned());
            }
        })
        .unwrap();
    let sink = WebhookSink::builder(&flaky.rx.url)
        .name("flaky")
        .events(["load.*"])
        .retry(policy)
        .overflow(OverflowPolicy::Block)
        .concurrency(32)
        .build()
        .unwrap();
    let _sub = sink.subscribe(&bus).unwrap();
    let mut ids = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        let e = Event::new("load.test", json!({"i": i})).unwrap();
        ids.push(e.id().to_owned());
        bus.publish(e).await.unwrap();
    }
    let report = bus.shutdown(Duration::from_secs(300)).await;
    for s in &report.subscribers {
        assert_eq!(s.stats.dropped, 0, "{s:?}");
    }
    let _ = flaky.rx.drain();
    let stats = sink.stats();
    let announced = announced.lock().unwrap().clone();
    let dead = sink
        .dead_letters()
        .iter()
        .flat_map(|d| d.events.iter().map(|e| e.id().to_owned()))
        .collect();
    Run {
        ids,
        flaky,
        stats,
        announced,
        dead,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enough_attempts_lose_nothing() {
    let policy = RetryPolicy::exponential(40, Duration::from_millis(1), Duration::from_millis(2))
        .with_jitter(0.5);
    let Run {
        ids,
        flaky,
        stats,
        announced,
        dead,
    } = run(policy).await;
    let accepted = flaky.accepted.lock().unwrap();
    assert!(dead.is_empty());
    let missing = ids.iter().filter(|id| !accepted.contains(*id)).count();
    assert_eq!(missing, 0, "every event id arrives at least once");
    assert_eq!(stats.delivered, EVENTS as u64);
    assert_eq!(stats.failed, 0);
    assert!(announced.is_empty());
    assert!(stats.retried > 0, "the receiver did fail some requests");
    assert_eq!(stats.attempts, EVENTS as u64 + stats.retried);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_attempts_account_for_every_event() {
    let mut policy =
        RetryPolicy::exponential(3, Duration::from_millis(1), Duration::from_millis(2))
            .with_jitter(0.5);
    policy.max_attempts = RetryPolicy::default().max_attempts;
    let Run {
        ids,
        flaky,
        stats,
        announced,
        dead,
    } = run(policy).await;
    let accepted = flaky.accepted.lock().unwrap();
    assert_eq!(
        stats.delivered + stats.failed,
        EVENTS as u64,
        "delivered + dead-lettered = emitted"
    );
    assert_eq!(dead.len() as u64, stats.failed);
    assert_eq!(accepted.len() as u64, stats.delivered);
    for id in &ids {
        assert!(
            accepted.contains(id) ^ dead.contains(id),
            "event {id} is either delivered or dead-lettered, exactly one"
        );
    }
    assert!(announced.is_subset(&dead));
    // 0.3^3 ≈ 2.7 % of 10,000: far from zero and far from everything.
    assert!(stats.failed > 0 && stats.failed < 1000, "{stats:?}");
}
