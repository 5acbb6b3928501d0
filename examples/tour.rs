//! The whole system on embedded defaults, nothing external needed:
//!
//! 1. a webhook receiver started in this process (axum on 127.0.0.1), which
//!    verifies every signature with `hookbus::signature`;
//! 2. a bus installed as the default bus with `hookbus::setup`, with closure
//!    subscribers: wildcards, a condition, a batch, and the bus's own
//!    `hookbus.*` events;
//! 3. a conditional, Briefcase-signed webhook (only low-confidence
//!    decisions), a Standard-Webhooks-signed webhook to an endpoint that fails
//!    twice before accepting (retried), and one to an endpoint that is down
//!    (retried, then dead-lettered and announced);
//! 4. Kafka, only when `KAFKA_BOOTSTRAP` is set and the `kafka` feature is on;
//! 5. events from the standard catalogs, emitted with `hookbus::emit*`;
//! 6. the final report: the bus's shutdown report, each webhook's counters and
//!    what the receiver saw.
//!
//! Run it with `cargo run --example tour`; with `-- --dashboard` it stops
//! before the end and serves the live dashboard on 127.0.0.1 (the URL is
//! printed) until Ctrl-C.
//! With Kafka: `KAFKA_BOOTSTRAP=localhost:9092 cargo run --example tour --features kafka`
//! (the topic, `KAFKA_TOPIC` or `ai-decisions`, is created if missing), or
//! `scripts/with-kafka cargo run --example tour --features kafka` to start a
//! local broker for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hookbus::catalog::decision::{DecisionCaptured, LowConfidence};
use hookbus::catalog::evaluation::{SafetyCritical, SafetyIssue};
use hookbus::catalog::interaction::{Level4Prediction, PatternLearned};
use hookbus::signature::{BodySignature, Secret, SignatureScheme, StandardWebhooks};
use hookbus::webhook::{RetryPolicy, WebhookManager, WebhookSink};
use hookbus::{Bus, Setup};
use serde_json::json;
use time::OffsetDateTime;

const BRIEFCASE_SECRET: &str = "tour-briefcase-secret";
const STANDARD_SECRET: &str = "whsec_dG91ci1zdGFuZGFyZC13ZWJob29rcy1zZWNyZXQ=";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A receiver in this process.
    let receiver = Receiver::start().await?;
    println!("[receiver] listening on http://{}", receiver.addr);

    // 2. The bus, installed as the process-wide default bus.
    let bus = Bus::builder().source("hookbus-tour").build()?;
    hookbus::setup(Setup::event_bus(bus.clone()))?;

    // Wildcards: every decision event, one segment deep.
    bus.subscriber("decision.*")
        .name("decision-log")
        .on(|e| println!("[decision.*]      {:<24} {}", e.event_type(), e.data()))?
        .detach();
    // `**.critical` matches `safety.critical` and any depth before `critical`.
    bus.subscriber("**.critical")
        .name("pager")
        .on(|e| {
            println!(
                "[**.critical]     PAGE ON-CALL: {}",
                e.data()["issue"]["description"]
            )
        })?
        .detach();
    // A condition: only confident level 4 predictions.
    bus.subscriber("level_4_prediction")
        .name("confident-predictions")
        .filter(|e| e.data()["confidence"].as_f64() > Some(0.85))
        .on(|e| {
            println!(
                "[condition]       confident prediction: {}",
                e.data()["prediction"]
            )
        })?
        .detach();
    // A batch: everything (except the bus's own events), up to 4 at a time or every 100 ms.
    bus.subscriber("*")
        .name("audit-batch")
        .filter(|e| !e.event_type().starts_with("hookbus."))
        .batch(4, Duration::from_millis(100))
        .on_batch(|batch| {
            let types: Vec<_> = batch.iter().map(|e| e.event_type()).collect();
            println!("[batch]           {} events: {types:?}", batch.len());
        })?
        .detach();
    // The bus reports its own troubles as events: here, a dead-lettered delivery.
    let dead_lettered = Arc::new(tokio::sync::Notify::new());
    let notify = dead_lettered.clone();
    bus.on("hookbus.**", move |e| {
        println!("[hookbus.**]      {} {}", e.event_type(), e.data());
        if e.event_type() == "hookbus.delivery_failed" {
            notify.notify_one();
        }
    })?
    .detach();

    // 3. Webhooks. Fast retries so the tour finishes in a second.
    let quick_retry = |attempts| {
        RetryPolicy::exponential(
            attempts,
            Duration::from_millis(50),
            Duration::from_millis(200),
        )
    };
    // Conditional and signed: only decisions with confidence below 0.8.
    // A manager holds them (and the dashboard shows them, with --dashboard).
    let webhooks = Arc::new(WebhookManager::new(&bus));
    let review = webhooks.register(
        WebhookSink::builder(receiver.url("/decisions"))
            .name("review-webhook")
            .secret(BRIEFCASE_SECRET)
            .signature(SignatureScheme::briefcase())
            .events(["decision.*"])
            .condition(|e| e.data()["confidence"].as_f64().is_some_and(|c| c < 0.8))
            .retry(quick_retry(3)),
    )?;
    // Standard Webhooks signatures, to an endpoint that fails twice per event.
    let flaky = webhooks.register(
        WebhookSink::builder(receiver.url("/flaky"))
            .name("flaky-webhook")
            .secret(STANDARD_SECRET) // Standard Webhooks: the default scheme
            .events(["level_4_prediction", "pattern_learned"])
            .retry(quick_retry(4)),
    )?;
    // An endpoint that is down: three attempts, then a dead letter.
    let down = webhooks.register(
        WebhookSink::builder(receiver.url("/down"))
            .name("down-webhook")
            .events(["safety.critical"])
            .retry(quick_retry(3)),
    )?;

    // 4. Kafka joins only when asked.
    attach_kafka(&bus).await?;

    // 5. Emit, from anywhere: the helpers publish to the default bus.
    let now = OffsetDateTime::now_utc();
    println!("\n-- emitting --");
    hookbus::emit_event(DecisionCaptured {
        decision_id: "abc123".into(),
        function_name: Some("claims_review".into()),
        confidence: Some(0.91),
    })?;
    hookbus::emit_event(LowConfidence {
        decision_id: "abc124".into(),
        confidence: 0.72,
        threshold: Some(0.8),
    })?;
    hookbus::global::emit_low_confidence(json!({"decision_id": "abc125", "confidence": 0.55}))?;
    hookbus::global::emit_drift_detected(json!({"window": "1h", "drift_score": 0.18}))?;
    hookbus::emit_event(Level4Prediction {
        user_id: "user_123".into(),
        prediction: "Schema modification may break mobile app".into(),
        confidence: 0.87,
        timestamp: now,
        tags: vec!["api".into()],
        severity: Some("high".into()),
        recommendation: None,
    })?;
    hookbus::emit_event(Level4Prediction {
        user_id: "user_123".into(),
        prediction: "Cache hit rate may drop next week".into(),
        confidence: 0.61,
        timestamp: now,
        tags: vec![],
        severity: None,
        recommendation: None,
    })?;
    hookbus::emit_event(PatternLearned {
        pattern_id: "p_17".into(),
        pattern_name: "sql_injection_detection".into(),
        confidence: 0.95,
        user_id: "user_123".into(),
    })?;
    hookbus::emit_event(SafetyCritical {
        sample_id: "s_42".into(),
        issue: SafetyIssue {
            kind: "missed_emergency".into(),
            description: "chest pain triaged as routine".into(),
            details: Default::default(),
        },
    })?;
    // No webhook wants this one; only the catch-all `*` batch sees it.
    hookbus::emit("metrics.tick", json!({"n": 1}))?;

    // Let the down endpoint's retries run out while the bus is still open, so
    // its `hookbus.delivery_failed` announcement is seen (bounded wait).
    let _ = tokio::time::timeout(Duration::from_secs(10), dead_lettered.notified()).await;

    // With --dashboard: look around (and retry the dead letter) before the end.
    if std::env::args().any(|a| a == "--dashboard") {
        serve_dashboard(&bus, webhooks.clone()).await?;
    }

    // 6. Shut down: drain mailboxes, flush batches, finish retries; then report.
    let report = hookbus::shutdown(Duration::from_secs(10)).await?;
    println!("\n-- report --\n{report}");
    let (review, flaky, down) = (
        webhooks.sink_of(&review)?,
        webhooks.sink_of(&flaky)?,
        webhooks.sink_of(&down)?,
    );
    for sink in [&review, &flaky, &down] {
        let s = sink.stats();
        println!(
            "{:<16} delivered {}, retried {}, failed {}, requests {}",
            sink.name(),
            s.delivered,
            s.retried,
            s.failed,
            s.attempts
        );
    }
    for letter in down.dead_letters() {
        println!(
            "dead letter: {} event(s) of {}: {}",
            letter.events.len(),
            down.name(),
            letter.error
        );
    }
    let seen = receiver.tally.lock().map(|t| t.clone()).unwrap_or_default();
    println!(
        "receiver: {} requests, {} signatures verified, {} bad, {} unsigned, {} failures injected",
        seen.requests, seen.verified, seen.bad, seen.unsigned, seen.injected
    );

    // The tour checks itself, so running it is also a smoke test.
    let as_described = seen.bad == 0
        && review.stats().delivered == 2
        && flaky.stats().delivered == 3
        && flaky.stats().retried == 6
        && down.stats().failed == 1
        && report
            .subscribers
            .iter()
            .all(|s| s.completed && s.pending == 0);
    if !as_described {
        return Err("the tour did not go as its comments describe; see the report above".into());
    }
    Ok(())
}

#[cfg(feature = "kafka")]
async fn attach_kafka(bus: &Bus) -> Result<(), Box<dyn std::error::Error>> {
    use hookbus::kafka::KafkaPublisher;
    let Ok(brokers) = std::env::var("KAFKA_BOOTSTRAP") else {
        println!("[kafka]           KAFKA_BOOTSTRAP is not set: Kafka sits this tour out");
        return Ok(());
    };
    let topic = std::env::var("KAFKA_TOPIC").unwrap_or_else(|_| "ai-decisions".into());
    create_topic_if_missing(&brokers, &topic).await;
    let publisher = KafkaPublisher::new(brokers.as_str(), topic.clone())?;
    if let Err(e) = publisher.healthcheck(Duration::from_secs(10)).await {
        println!("[kafka]           skipped: {e}");
        return Ok(());
    }
    bus.subscriber("decision.**")
        .name("kafka")
        .options(KafkaPublisher::recommended_options())
        .sink(publisher)?
        .detach();
    println!("[kafka]           decision events also go to {topic} on {brokers}");
    Ok(())
}

/// Creates the tour's topic (one partition) unless it exists; a failure
/// shows up in the healthcheck that follows.
#[cfg(feature = "kafka")]
async fn create_topic_if_missing(brokers: &str, topic: &str) {
    use hookbus::kafka::rdkafka::ClientConfig;
    use hookbus::kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use hookbus::kafka::rdkafka::client::DefaultClientContext;
    let Ok(admin) = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create::<AdminClient<DefaultClientContext>>()
    else {
        return;
    };
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    // "Already exists" is fine; anything else is reported by the healthcheck.
    let _ = admin.create_topics([&new_topic], &options).await;
}

#[cfg(not(feature = "kafka"))]
async fn attach_kafka(_bus: &Bus) -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("KAFKA_BOOTSTRAP").is_some() {
        println!(
            "[kafka]           KAFKA_BOOTSTRAP is set but the `kafka` feature is off: add --features kafka"
        );
    }
    Ok(())
}

/// What the receiver saw.
#[derive(Debug, Default, Clone)]
struct Tally {
    requests: u64,
    verified: u64,
    bad: u64,
    unsigned: u64,
    injected: u64,
}

/// The in-process webhook receiver.
struct Receiver {
    addr: SocketAddr,
    tally: Arc<Mutex<Tally>>,
}

#[derive(Clone)]
struct ReceiverState {
    tally: Arc<Mutex<Tally>>,
    /// Attempts seen per `webhook-id` on /flaky.
    attempts: Arc<Mutex<HashMap<String, u32>>>,
}

impl ReceiverState {
    fn count(&self, f: impl FnOnce(&mut Tally)) {
        if let Ok(mut t) = self.tally.lock() {
            t.requests += 1;
            f(&mut t);
        }
    }
}

/// The event type of a delivery: the body's `type` (CloudEvents structured
/// mode, the default).
fn event_type(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

impl Receiver {
    async fn start() -> std::io::Result<Receiver> {
        let state = ReceiverState {
            tally: Arc::default(),
            attempts: Arc::default(),
        };
        let tally = state.tally.clone();
        let app = Router::new()
            .route("/decisions", post(decisions))
            .route("/flaky", post(flaky))
            .route("/down", post(down))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Receiver { addr, tally })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Briefcase signatures: the HMAC of the raw body, checked in constant time.
async fn decisions(State(s): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = header(&headers, "X-Briefcase-Signature");
    let ok = BodySignature::default().verify(&Secret::new(BRIEFCASE_SECRET), &body, signature);
    println!(
        "[receiver]        /decisions {:<24} signature {}",
        event_type(&body),
        if ok { "ok" } else { "BAD" }
    );
    s.count(|t| if ok { t.verified += 1 } else { t.bad += 1 });
    if ok {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// Standard Webhooks signatures; each message fails twice before it is accepted.
async fn flaky(State(s): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let id = header(&headers, "webhook-id");
    let ok = StandardWebhooks::verify(
        &Secret::new(STANDARD_SECRET),
        id,
        header(&headers, "webhook-timestamp"),
        &body,
        header(&headers, "webhook-signature"),
    )
    .unwrap_or(false);
    let attempt = s
        .attempts
        .lock()
        .map(|mut a| {
            let n = a.entry(id.to_owned()).or_insert(0);
            *n += 1;
            *n
        })
        .unwrap_or(1);
    let fail = ok && attempt <= 2;
    println!(
        "[receiver]        /flaky     {:<24} signature {}, attempt {attempt}: {}",
        event_type(&body),
        if ok { "ok" } else { "BAD" },
        if fail { "503 (injected)" } else { "200" }
    );
    s.count(|t| {
        if ok {
            t.verified += 1
        } else {
            t.bad += 1
        }
        if fail {
            t.injected += 1
        }
    });
    match (ok, fail) {
        (false, _) => StatusCode::UNAUTHORIZED,
        (true, true) => StatusCode::SERVICE_UNAVAILABLE,
        (true, false) => StatusCode::OK,
    }
}

/// An endpoint that is down.
async fn down(State(s): State<ReceiverState>, body: Bytes) -> StatusCode {
    println!(
        "[receiver]        /down      {:<24} 500 (down)",
        event_type(&body)
    );
    s.count(|t| {
        t.unsigned += 1;
        t.injected += 1
    });
    StatusCode::INTERNAL_SERVER_ERROR
}

/// Serves the dashboard for the tour's bus and webhooks until Ctrl-C.
#[cfg(feature = "dashboard")]
async fn serve_dashboard(
    bus: &Bus,
    webhooks: Arc<WebhookManager>,
) -> Result<(), Box<dyn std::error::Error>> {
    use hookbus::dashboard::{self, DashboardConfig};
    let server = dashboard::serve(bus, webhooks, DashboardConfig::with_random_token()).await?;
    println!("\n[dashboard] {}  (Ctrl-C finishes the tour)", server.url());
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}

#[cfg(not(feature = "dashboard"))]
async fn serve_dashboard(
    _bus: &Bus,
    _webhooks: Arc<WebhookManager>,
) -> Result<(), Box<dyn std::error::Error>> {
    eprintln!("--dashboard needs the `dashboard` feature (on by default through `cli`)");
    Ok(())
}
