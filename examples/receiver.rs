//! The "custom webhook server" of the webhook guides, in Rust: verify the
//! signature over the raw body, dispatch by event type, answer
//! `{"status": "received"}` at once.
//!
//! Two endpoints:
//! - `POST /webhooks/empathy`: the Empathy guide's payload
//!   (`{"event_type", "timestamp", "data"}`) signed with
//!   `X-Empathy-Signature: <hex>`, handled by an axum handler through the
//!   `Signed<T>` extractor;
//! - `POST /events`: signed CloudEvents from hookbus webhooks (Rubric-style
//!   timestamped signatures), fed into a bus by the ingress router, where
//!   closures subscribe by event type.
//!
//! ```text
//! cargo run --example receiver                 # sends itself a few signed webhooks, then exits
//! cargo run --example receiver -- --serve      # keeps listening on 127.0.0.1:5000
//! WEBHOOK_SECRET=… cargo run --example receiver -- --serve
//! ```

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::routing::post;
use hookbus::ingress::{Ingress, Signed};
use hookbus::signature::{BodySignature, Secret, SignatureScheme};
use hookbus::verify::Verifier;
use hookbus::webhook::WebhookEmitter;
use hookbus::{Bus, Event};
use serde::Deserialize;
use serde_json::{Value, json};

/// The body the Empathy guide's webhooks carry.
#[derive(Debug, Deserialize)]
struct EmpathyWebhook {
    event_type: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    data: Value,
}

fn handle_prediction(data: &Value) {
    let confidence = data["confidence"].as_f64().unwrap_or(0.0);
    println!(
        "  prediction: {} (confidence {:.0}%)",
        data["prediction"],
        confidence * 100.0
    );
    if confidence > 0.90 {
        println!("  -> critical: alert the ops team");
    }
}

/// Verified before this runs; dispatches by event type and answers at once.
async fn empathy(Signed(hook): Signed<EmpathyWebhook>) -> Json<Value> {
    println!(
        "[empathy] {} at {}",
        hook.event_type,
        hook.timestamp.as_deref().unwrap_or("?")
    );
    match hook.event_type.as_str() {
        "level_4_prediction" => handle_prediction(&hook.data),
        "pattern_learned" => println!("  pattern: {}", hook.data["pattern_name"]),
        "trust_milestone" => println!("  trust milestone: {}", hook.data["milestone"]),
        other => println!("  (no handler for {other})"),
    }
    Json(json!({"status": "received"}))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve_forever = std::env::args().any(|a| a == "--serve");
    let secret =
        std::env::var("WEBHOOK_SECRET").unwrap_or_else(|_| "whsec_your_signing_secret".into());

    // Events received on /events go on this bus; closures react by type.
    let bus = Bus::new()?;
    bus.on("evaluation.completed", |e: &Event| {
        println!(
            "[bus] evaluation {} completed: {}",
            e.data()["evaluation_id"],
            e.data()["summary"]
        );
    })?
    .detach();
    bus.on("safety.critical", |e: &Event| {
        println!("[bus] SAFETY ALERT: {}", e.data()["message"]);
    })?
    .detach();

    let app = Router::new()
        .route("/webhooks/empathy", post(empathy))
        .with_state(Verifier::body("X-Empathy-Signature", "", secret.as_str())?)
        .merge(
            Ingress::new(bus.clone())
                .cloudevents("/events", Verifier::timestamped("Rubric", secret.as_str())?)
                .into_router(),
        );

    let addr = if serve_forever {
        "127.0.0.1:5000"
    } else {
        "127.0.0.1:0"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("listening on {base}");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    if serve_forever {
        server.await??;
        return Ok(());
    }

    // Demo: send ourselves what the senders would.
    let client = reqwest::Client::new();
    let body = json!({
        "event_type": "level_4_prediction",
        "timestamp": "2024-03-15T10:30:00Z",
        "data": {"prediction": "Schema change may break the mobile app", "confidence": 0.93, "user_id": "user_123"}
    })
    .to_string();
    let send = |sig: String, body: String| {
        client
            .post(format!("{base}/webhooks/empathy"))
            .header("content-type", "application/json")
            .header("X-Empathy-Signature", sig)
            .body(body)
            .send()
    };
    let good = BodySignature::new("X-Empathy-Signature", "")?
        .sign(&Secret::new(secret.as_str()), body.as_bytes());
    let resp = send(good.clone(), body.clone()).await?;
    println!("signed request -> {} {}", resp.status(), resp.text().await?);
    let resp = send(good, body.replace("0.93", "0.99")).await?;
    println!("tampered body  -> {} {}", resp.status(), resp.text().await?);

    // A hookbus webhook subscriber signing Rubric-style, into /events.
    let emitter = WebhookEmitter::builder(format!("{base}/events"))
        .secret(secret.as_str())
        .signature(SignatureScheme::timestamped("Rubric")?)
        .build_emitter()?;
    for event in [
        Event::new(
            "evaluation.completed",
            json!({"evaluation_id": "eval_xyz789", "summary": {"accuracy": 0.94}}),
        )?,
        Event::new(
            "safety.critical",
            json!({"message": "unsafe advice detected in sample 17"}),
        )?,
    ] {
        let outcome = emitter.emit(event).await;
        println!("hookbus webhook -> delivered: {}", outcome.is_delivered());
    }
    let report = bus.shutdown(Duration::from_secs(5)).await;
    print!("{report}");
    Ok(())
}
