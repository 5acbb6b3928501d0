//! One event, three webhooks: Slack, Datadog (API key header) and an internal
//! API (bearer token, timestamped signature, Rubric-style envelope).
//!
//! ```text
//! cargo run --example multi_webhook
//! ```
//! Set `SLACK_WEBHOOK_URL`, `DATADOG_API_KEY` (+ `DATADOG_URL` to override),
//! `INTERNAL_API_URL`, `INTERNAL_API_TOKEN` and `WEBHOOK_SECRET` to use real
//! services; anything unset goes to a local stand-in that prints what it gets.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use hookbus::signature::SignatureScheme;
use hookbus::webhook::{WebhookManager, WebhookSink, WireFormat, presets};
use hookbus::{Bus, Event};
use serde_json::json;

async fn local_receiver(label: &'static str) -> String {
    let app = Router::new().fallback(move |headers: HeaderMap, body: Bytes| async move {
        let shown: Vec<String> = headers
            .iter()
            .filter(|(k, _)| {
                let k = k.as_str();
                k.starts_with("x-")
                    || k.starts_with("dd-")
                    || k == "authorization"
                    || k.starts_with("ce-")
            })
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
            .collect();
        println!(
            "[{label}] {shown:?}\n[{label}] {}",
            String::from_utf8_lossy(&body)
        );
        "ok"
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/{label}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn env_or_local(var: &str, label: &'static str) -> String {
    match std::env::var(var) {
        Ok(v) => v,
        Err(_) => local_receiver(label).await,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bus = Bus::new()?;
    let webhooks = WebhookManager::new(&bus);

    // 1. Slack.
    let slack = env_or_local("SLACK_WEBHOOK_URL", "slack").await;
    webhooks.register(
        presets::slack(&slack, "🔮 Prediction: {prediction}").events(["level_4_prediction"]),
    )?;

    // 2. Datadog event, with tags built from the data.
    let dd_url = env_or_local("DATADOG_URL", "datadog").await;
    let dd_key = std::env::var("DATADOG_API_KEY").unwrap_or_else(|_| "local-dd-key".into());
    webhooks.register(
        presets::datadog(&dd_key, "Empathy Level 4 Prediction", "{prediction}")
            .url(dd_url)
            .events(["level_4_prediction"])
            .template(json!({
                "title": "Empathy Level 4 Prediction",
                "text": "{prediction}",
                "priority": "normal",
                "tags": ["empathy:level4", "confidence:{confidence}", "user:{user_id}"],
                "alert_type": "info",
            })),
    )?;

    // 3. Internal API: bearer token, signed, envelope body.
    let internal = env_or_local("INTERNAL_API_URL", "internal").await;
    let token = std::env::var("INTERNAL_API_TOKEN").unwrap_or_else(|_| "local-token".into());
    let secret = std::env::var("WEBHOOK_SECRET").unwrap_or_else(|_| "local-secret".into());
    let internal_id = webhooks.register(
        WebhookSink::builder(internal)
            .name("internal-api")
            .events(["level_4_prediction"])
            .header("Authorization", format!("Bearer {token}"))
            .secret(secret)
            .signature(SignatureScheme::timestamped("Empathy")?)
            .format(WireFormat::Envelope),
    )?;

    bus.emit(Event::new(
        "level_4_prediction",
        json!({
            "prediction": "Merging this PR may break the auth flow",
            "confidence": 0.91,
            "user_id": "user_123",
        }),
    )?)?;

    bus.shutdown(Duration::from_secs(10)).await;
    for w in webhooks.list() {
        let s = webhooks.stats(&w.id)?;
        println!(
            "{:<14} {:<28} delivered {} failed {}",
            w.name, w.url, s.delivered, s.failed
        );
    }
    println!(
        "internal-api log: {:?}",
        webhooks
            .deliveries(&internal_id, 1)?
            .first()
            .map(|d| d.status_code)
    );
    Ok(())
}
