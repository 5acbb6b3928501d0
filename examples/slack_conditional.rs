//! A conditional Slack webhook: only high-confidence predictions (> 85 %)
//! reach the channel, formatted with a template.
//!
//! ```text
//! cargo run --example slack_conditional                      # local stand-in receiver
//! SLACK_WEBHOOK_URL=https://hooks.slack.com/services/… cargo run --example slack_conditional
//! ```

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use hookbus::webhook::{WebhookManager, presets};
use hookbus::{Bus, Event};
use serde_json::json;

/// A stand-in for Slack on 127.0.0.1 that prints what it receives.
async fn local_receiver(label: &'static str) -> String {
    let app = Router::new().fallback(move |body: Bytes| async move {
        println!("[{label}] received {}", String::from_utf8_lossy(&body));
        "ok"
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = match std::env::var("SLACK_WEBHOOK_URL") {
        Ok(u) => u,
        Err(_) => local_receiver("slack").await,
    };
    let bus = Bus::new()?;
    let webhooks = WebhookManager::new(&bus);
    let id = webhooks.register_conditional(
        presets::slack(
            &url,
            "⚠️ *HIGH CONFIDENCE PREDICTION* ({confidence:.0%})\n*Prediction:* {prediction}\n*User:* {user_id}",
        )
        .name("slack-high-confidence")
        .events(["level_4_prediction"]),
        |e: &Event| e.data()["confidence"].as_f64() > Some(0.85),
    )?;

    for (prediction, confidence) in [
        ("Schema modification may break the mobile app", 0.87),
        ("A flaky test may hide a regression", 0.55),
        ("SQL injection vulnerability detected", 0.95),
    ] {
        bus.emit(Event::new(
            "level_4_prediction",
            json!({"prediction": prediction, "confidence": confidence, "user_id": "user_123"}),
        )?)?;
    }

    bus.shutdown(Duration::from_secs(10)).await;
    let stats = webhooks.stats(&id)?;
    println!(
        "delivered {} (the 55 % prediction was filtered out), failed {}",
        stats.delivered, stats.failed
    );
    for d in webhooks.deliveries(&id, 10)? {
        println!(
            "{} {} {} {:?} in {:?}",
            if d.success { "OK  " } else { "FAIL" },
            d.event_type,
            d.event_id,
            d.status_code,
            d.latency
        );
    }
    Ok(())
}
