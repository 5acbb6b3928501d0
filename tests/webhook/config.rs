//! Webhooks from a config file: filters, templates, signing, retries.

use std::time::Duration;

use crate::webhook_support::{Receiver, hmac_hex};
use hookbus::webhook::{WebhookBuilder, WebhookManager};
use hookbus::{Bus, Event};
use serde_json::json;

#[tokio::test]
async fn a_config_file_webhook_end_to_end() {
    let mut rx = Receiver::ok().await;
    let config: WebhookBuilder = serde_json::from_value(json!({
        "name": "slack-notifications",
        "url": rx.url,
        "events": ["evaluation.completed", "alert.triggered"],
        "secret": "whsec_your_signing_secret",
        "signature": {"scheme": "timestamped", "prefix": "Rubric"},
        "filters": {"project_id": ["patient-triage", "symptom-checker"], "severity": ["high", "critical"]},
        "retry_config": {"max_retries": 5, "backoff": "exponential", "initial_delay_ms": 1},
        "templates": {
            "evaluation.completed": {
                "text": "Evaluation completed: {{data.name}}",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn",
                    "text": "*{{data.name}}* completed\nAccuracy: {{data.summary.triage_accuracy | percent}}\nSafety: {{data.summary.safety_score | percent}}"}}]
            }
        }
    }))
    .unwrap();
    let bus = Bus::new().unwrap();
    let m = WebhookManager::new(&bus);
    let id = m.register(config).unwrap();
    let data = |project: &str, severity: &str| {
        json!({"project_id": project, "severity": severity, "name": "Daily Evaluation - March 15",
               "summary": {"triage_accuracy": 0.87, "safety_score": 0.95}})
    };
    bus.emit(Event::new("evaluation.completed", data("other", "high")).unwrap())
        .unwrap();
    bus.emit(Event::new("evaluation.completed", data("patient-triage", "low")).unwrap())
        .unwrap();
    bus.emit(Event::new("sample.scored", data("patient-triage", "high")).unwrap())
        .unwrap();
    bus.emit(Event::new("evaluation.completed", data("patient-triage", "critical")).unwrap())
        .unwrap();
    let r = rx.next().await;
    let body = r.json();
    assert_eq!(
        body["text"],
        "Evaluation completed: Daily Evaluation - March 15"
    );
    assert_eq!(
        body["blocks"][0]["text"]["text"],
        "*Daily Evaluation - March 15* completed\nAccuracy: 87%\nSafety: 95%"
    );
    let ts = r.header("x-rubric-timestamp").unwrap();
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&r.body);
    assert_eq!(
        r.header("x-rubric-signature").unwrap(),
        format!("sha256={}", hmac_hex(b"whsec_your_signing_secret", &signed))
    );
    bus.shutdown(Duration::from_secs(5)).await;
    assert_eq!(rx.requests(), 1, "the other three were filtered out");
    assert_eq!(m.get(&id).unwrap().name, "slack-notifications");
}

#[test]
fn config_mistakes_are_refused() {
    let unknown =
        serde_json::from_value::<WebhookBuilder>(json!({"url": "https://x.example", "retires": 3}));
    assert!(unknown.unwrap_err().to_string().contains("retires"));
    let bad_filter = serde_json::from_value::<WebhookBuilder>(
        json!({"url": "https://x.example", "filter": "confidence >"}),
    );
    assert!(bad_filter.unwrap_err().to_string().contains("bad filter"));
    let bad_backoff = serde_json::from_value::<WebhookBuilder>(
        json!({"url": "https://x.example", "retry": {"backoff": "sideways"}}),
    );
    assert!(bad_backoff.unwrap_err().to_string().contains("sideways"));
    let half_identity = serde_json::from_value::<WebhookBuilder>(
        json!({"url": "https://x.example", "tls": {"client_cert_pem_file": "c.pem"}}),
    );
    let err = half_identity.unwrap_err().to_string();
    assert!(err.contains("go together"), "{err}");
    let bad_template: WebhookBuilder =
        serde_json::from_value(json!({"url": "https://x.example", "template": {"t": "{oops"}}))
            .unwrap();
    assert!(
        bad_template
            .build()
            .unwrap_err()
            .to_string()
            .contains("unclosed")
    );
    let ordered_but_parallel: WebhookBuilder = serde_json::from_value(
        json!({"url": "https://x.example", "ordered": true, "concurrency": 4}),
    )
    .unwrap();
    let err = ordered_but_parallel.build().unwrap_err().to_string();
    assert!(err.contains("concurrency is 4"), "{err}");
}

#[test]
fn retry_rules_and_rate_limits_in_a_config_file() {
    let config: WebhookBuilder = serde_json::from_value(json!({
        "url": "https://x.example",
        "retry_for": [
            {"events": "payment.*", "retry": {"backoff": "standard_webhooks"}},
            {"events": "metrics.*", "retry": {"max_retries": 0}}
        ],
        "rate_limit": {"requests": 5, "burst": 5},
        "format": "raw"
    }))
    .unwrap();
    let debug = format!("{config:?}");
    assert!(
        debug.contains("payment.*")
            && debug.contains("rate_limit: Some((5, 1s))")
            && debug.contains("format: Raw"),
        "{debug}"
    );
    assert!(config.build().is_ok());
    let bad = serde_json::from_value::<WebhookBuilder>(json!({
        "url": "https://x.example",
        "retry_for": [{"events": "payment.*", "retry": {"backoff": "sideways"}}]
    }));
    assert!(bad.unwrap_err().to_string().contains("sideways"));
    let typo = serde_json::from_value::<WebhookBuilder>(json!({
        "url": "https://x.example",
        "retry_for": [{"event": "payment.*", "retry": {}}]
    }));
    assert!(typo.unwrap_err().to_string().contains("event"));
}

/// A webhook attached with `bus.subscriber(..).sink(..)` takes the same
/// events as one attached with `subscribe`: its own event list, condition
/// and filter apply, after the subscriber's filter.
#[tokio::test]
async fn a_webhook_attached_as_a_plain_sink_keeps_its_own_event_choice() {
    let mut receiver = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let sink = hookbus::webhook::WebhookSink::builder(receiver.url.clone())
        .allow_http(true)
        .events(["order.*"])
        .filter("amount > 100")
        .build()
        .unwrap();
    let sub = bus
        .subscriber("*")
        .name("plain")
        .filter(|e| e.data()["region"] != "eu")
        .sink(sink)
        .unwrap();
    for (ty, amount, region) in [
        ("audit.read", 500, "us"),   // not one of its events
        ("order.placed", 50, "us"),  // its filter says no
        ("order.placed", 500, "eu"), // the subscriber's filter says no
        ("order.placed", 500, "us"), // taken
    ] {
        bus.emit(Event::new(ty, json!({"amount": amount, "region": region})).unwrap())
            .unwrap();
    }
    let r = receiver.next().await;
    assert_eq!(r.event_type().as_deref(), Some("order.placed"));
    bus.shutdown(Duration::from_secs(5)).await;
    let stats = sub.stats();
    assert_eq!((stats.received, stats.filtered, stats.delivered), (4, 3, 1));
    assert!(receiver.drain().is_empty());
}
