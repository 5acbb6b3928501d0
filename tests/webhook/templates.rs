//! Templates (format specs, nesting, escaping, errors), declarative filters
//! and conditional webhooks.

use std::time::Duration;

use crate::webhook_support::Receiver;
use hookbus::webhook::{
    DeliveryStatus, Filter, Template, TemplateError, WebhookEmitter, WebhookManager, WebhookSink,
};
use hookbus::{Bus, Event, FailureKind};
use serde_json::{Value, json};

fn event() -> Event {
    Event::builder("level_4_prediction")
        .id("evt_1")
        .subject("claims")
        .extension("region", "eu")
        .data(json!({
            "prediction": "Schema \"v2\" breaks\nthe {mobile} app \\ ok",
            "confidence": 0.875,
            "count": 1234567,
            "negative": -2.5,
            "user_id": "user_123",
            "tags": ["security", "api"],
            "summary": {"triage_accuracy": 0.87, "safety_score": 0.951},
            "items": [{"name": "first"}, {"name": "second"}],
            "nothing": null,
        }))
        .build()
        .unwrap()
}

fn render(t: &str) -> Result<Value, TemplateError> {
    Template::new(Value::String(t.to_owned()))?.render(&event())
}

#[test]
fn template_table() {
    let cases: &[(&str, &str)] = &[
        ("{confidence:.0%}", "88%"),
        ("{confidence:.1%}", "87.5%"),
        ("{confidence:.2f}", "0.88"),
        ("{confidence}", "0.875"),
        ("{count:,}", "1,234,567"),
        ("{count:_d}", "1_234_567"),
        ("{count:d}", "1234567"),
        ("{negative:.2f}", "-2.50"),
        ("{negative:+.1f}", "-2.5"),
        ("{confidence:+.1f}", "+0.9"),
        ("{count:.2e}", "1.23e+06"),
        ("{user_id:>10}", "  user_123"),
        ("{user_id:*<10}", "user_123**"),
        ("{user_id:^12}", "  user_123  "),
        ("{count:012d}", "000001234567"),
        ("{user_id:.4}", "user"),
        ("{summary.triage_accuracy:.0%}", "87%"),
        ("{items[1].name}", "second"),
        ("{items.0.name}", "first"),
        ("{{data.summary.triage_accuracy | percent}}", "87%"),
        ("{{data.summary.safety_score | percent(1)}}", "95.1%"),
        ("{{ data.summary.safety_score | round(2) }}", "0.95"),
        ("{{user_id | upper}}", "USER_123"),
        ("{{data.missing | default('n/a')}}", "n/a"),
        ("{{nothing | default(\"none\")}}", "none"),
        ("{{prediction | truncate(7)}}", "Schema…"),
        ("{{event.type}}", "level_4_prediction"),
        ("{{event.id}}", "evt_1"),
        ("{{event.subject}}", "claims"),
        ("{{event.region}}", "eu"),
        ("{type}", "level_4_prediction"),
        ("{tags}", "[\"security\",\"api\"]"),
        (
            "Accuracy: {{data.summary.triage_accuracy | percent}}, user {user_id}",
            "Accuracy: 87%, user user_123",
        ),
        ("literal \\{braces\\}", "literal {braces}"),
    ];
    for (t, want) in cases {
        let got = render(t).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(got, Value::String((*want).to_owned()), "template {t}");
    }
}

#[test]
fn substituted_values_are_json_escaped() {
    let t =
        Template::new(json!({"text": "P: {prediction}", "n": 1, "nested": [{"u": "{user_id}"}]}))
            .unwrap();
    let v = t.render(&event()).unwrap();
    let text = serde_json::to_string(&v).unwrap();
    let back: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        back["text"],
        "P: Schema \"v2\" breaks\nthe {mobile} app \\ ok"
    );
    assert_eq!(back["n"], 1);
    assert_eq!(back["nested"][0]["u"], "user_123");
}

#[test]
fn json_filter_inserts_the_value_itself() {
    let t =
        Template::new(json!({"details": "{{data.summary | json}}", "c": "{{confidence | json}}"}))
            .unwrap();
    let v = t.render(&event()).unwrap();
    assert_eq!(
        v["details"],
        json!({"triage_accuracy": 0.87, "safety_score": 0.951})
    );
    assert_eq!(v["c"], json!(0.875));
}

#[test]
fn syntax_errors_are_refused_when_parsed() {
    let bad = [
        ("{unclosed", "unclosed"),
        ("{{data.x", "unclosed"),
        ("stray }", "unmatched"),
        ("{}", "empty placeholder"),
        ("{confidence:.0z}", "unsupported type"),
        ("{confidence:.}", "precision"),
        ("{{x | frobnicate}}", "unknown template filter"),
        ("{a..b}", "empty segment"),
        ("{items[x]}", "must be a number"),
        ("{a b}", "bad character"),
    ];
    for (t, needle) in bad {
        let err = Template::new(Value::String(t.to_owned()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{t}: {err}");
    }
    assert!(
        WebhookSink::builder("https://example.com")
            .template(json!({"t": "{oops"}))
            .build()
            .is_err()
    );
}

#[test]
fn render_errors_are_errors_not_panics() {
    assert_eq!(
        render("{missing}").unwrap_err(),
        TemplateError::MissingField("missing".into())
    );
    assert!(matches!(
        render("{user_id:.0%}").unwrap_err(),
        TemplateError::WrongType { .. }
    ));
    assert!(matches!(
        render("{confidence:d}").unwrap_err(),
        TemplateError::WrongType { .. }
    ));
    assert!(matches!(
        render("{{user_id | percent}}").unwrap_err(),
        TemplateError::WrongType { .. }
    ));
}

#[tokio::test]
async fn missing_field_at_delivery_is_a_recorded_error() {
    let rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .template(json!({"text": "{not_there}"}))
        .build_emitter()
        .unwrap();
    let out = e.emit(event()).await;
    assert_eq!(out.status, DeliveryStatus::Failed(FailureKind::Permanent));
    assert!(out.error.as_deref().unwrap().contains("not_there"));
    assert_eq!(rx.requests(), 0);
    let log = e.sink().deliveries(5);
    assert_eq!(log.len(), 1);
    assert!(log[0].error.as_deref().unwrap().contains("not_there"));
    assert_eq!(e.sink().stats().failed, 1);
}

#[tokio::test]
async fn templated_body_per_event_type() {
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .template_for(
            "evaluation.completed",
            json!({"text": "Evaluation completed: {{data.name}}"}),
        )
        .build_emitter()
        .unwrap();
    e.emit(Event::new("evaluation.completed", json!({"name": "Daily"})).unwrap())
        .await;
    assert_eq!(
        rx.next().await.json(),
        json!({"text": "Evaluation completed: Daily"})
    );
    // No template for this type: the default wire format.
    e.emit(Event::new("alert.triggered", json!({"a": 1})).unwrap())
        .await;
    let r = rx.next().await;
    assert_eq!(r.data(), json!({"a": 1}));
    assert_eq!(r.event_type().as_deref(), Some("alert.triggered"));
}

#[test]
fn filter_expressions() {
    let e = event();
    let yes = [
        "confidence > 0.85",
        "confidence >= 0.875 and count < 2000000",
        "tags contains security",
        "tags in [api, web]",
        "user_id in [\"user_123\", user_456]",
        "summary.triage_accuracy > 0.8",
        "event.subject == claims",
        "event.type == level_4_prediction",
        "not (confidence < 0.5)",
        "confidence < 0.5 or user_id == user_123",
        "prediction contains Schema",
        "user_id exists",
        "items.1.name == second",
    ];
    for f in yes {
        assert!(Filter::parse(f).unwrap().matches(&e), "{f}");
    }
    let no = [
        "confidence > 0.9",
        "tags contains ui",
        "missing > 1",
        "user_id > 3",
        "nothing exists",
        "user_id != user_123",
    ];
    for f in no {
        assert!(!Filter::parse(f).unwrap().matches(&e), "{f}");
    }
    for (bad, needle) in [
        ("confidence >", "expected a value"),
        ("confidence ~ 3", "expected an operator"),
        ("severity in high", "must be followed by a list"),
        ("(a > 1", "missing ')'"),
        ("a > 1 b", "unexpected"),
        ("'open", "unclosed quote"),
    ] {
        let err = Filter::parse(bad).unwrap_err().to_string();
        assert!(err.contains(needle), "{bad}: {err}");
    }
}

#[test]
fn filters_from_config_files() {
    let f: Filter = serde_json::from_value(json!({
        "projects": ["patient-triage", "symptom-checker"],
        "severity": ["high", "critical"],
        "confidence": {">": 0.85}
    }))
    .unwrap();
    let hit = Event::new(
        "alert.triggered",
        json!({"projects": "patient-triage", "severity": "critical", "confidence": 0.9}),
    )
    .unwrap();
    let miss = Event::new(
        "alert.triggered",
        json!({"projects": "other", "severity": "critical", "confidence": 0.9}),
    )
    .unwrap();
    assert!(f.matches(&hit) && !f.matches(&miss));
    let any: Filter =
        serde_json::from_value(json!({"any": ["severity == low", {"confidence": {"<": 0.1}}]}))
            .unwrap();
    assert!(!any.matches(&hit));
    assert!(serde_json::from_value::<Filter>(json!({"confidence": {"~": 1}})).is_err());
    assert!(serde_json::from_value::<Filter>(json!(42)).is_err());
    let err = WebhookSink::builder("https://example.com")
        .filter("confidence >")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("invalid filter"), "{err}");
}

#[tokio::test]
async fn conditional_webhooks_on_a_bus() {
    let mut high = Receiver::ok().await;
    let mut security = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let webhooks = WebhookManager::new(&bus);
    webhooks
        .register_conditional(
            WebhookSink::builder(&high.url)
                .events(["level_4_prediction"])
                .template(json!({"text": "HIGH CONFIDENCE ({confidence:.0%})", "attachments": [{"color": "warning", "text": "{prediction}"}]})),
            |e: &Event| e.data()["confidence"].as_f64() > Some(0.85),
        )
        .unwrap();
    webhooks
        .register(
            WebhookSink::builder(&security.url)
                .events(["level_4_prediction"])
                .filter("tags contains security")
                .template(json!({"text": "Security prediction: {prediction}", "channel": "#security-alerts"})),
        )
        .unwrap();
    let emit = |c: f64, tags: Value, p: &str| {
        bus.emit(
            Event::new(
                "level_4_prediction",
                json!({"confidence": c, "tags": tags, "prediction": p}),
            )
            .unwrap(),
        )
        .unwrap()
    };
    emit(0.5, json!([]), "low");
    emit(0.9, json!(["api"]), "high-api");
    emit(0.6, json!(["security"]), "low-security");
    emit(0.95, json!(["security"]), "high-security");
    let a = high.next().await.json();
    let b = high.next().await.json();
    let mut texts = vec![
        a["attachments"][0]["text"].clone(),
        b["attachments"][0]["text"].clone(),
    ];
    texts.sort_by_key(|v| v.to_string());
    assert_eq!(texts, vec![json!("high-api"), json!("high-security")]);
    assert!(a["text"] == "HIGH CONFIDENCE (90%)" || a["text"] == "HIGH CONFIDENCE (95%)");
    let s1 = security.next().await.json();
    let s2 = security.next().await.json();
    let mut st = vec![s1["text"].clone(), s2["text"].clone()];
    st.sort_by_key(|v| v.to_string());
    assert_eq!(
        st,
        vec![
            json!("Security prediction: high-security"),
            json!("Security prediction: low-security")
        ]
    );
    bus.shutdown(Duration::from_secs(5)).await;
    assert_eq!(high.requests(), 2);
    assert_eq!(security.requests(), 2);
}

/// A templated request carries the event's trace context as `traceparent`
/// and `tracestate`, as every other request does (the wire module's
/// promise): the body is the template's, the hop is the same.
#[tokio::test]
async fn a_templated_request_carries_the_trace_headers() {
    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut rx = Receiver::ok().await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .template(json!({"text": "{prediction}"}))
        .build_emitter()
        .unwrap();
    let traced = Event::builder("a.b")
        .extension("traceparent", PARENT)
        .extension("tracestate", "vendor=1")
        .data(json!({"prediction": "p"}))
        .build()
        .unwrap();
    assert!(emitter.emit(traced).await.is_delivered());
    let r = rx.next().await;
    assert_eq!(r.json(), json!({"text": "p"}));
    assert_eq!(r.header("traceparent"), Some(PARENT));
    assert_eq!(r.header("tracestate"), Some("vendor=1"));
}
