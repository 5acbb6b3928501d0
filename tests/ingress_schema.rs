#![cfg(all(feature = "axum", feature = "schema", feature = "webhook"))]
//! The ingress validating catalog events against their JSON Schemas:
//! real HTTP on 127.0.0.1, a real bus.

use hookbus::catalog::decision::LowConfidence;
use hookbus::ingress::Ingress;
use hookbus::signature::{BodySignature, Secret};
use hookbus::verify::Verifier;
use hookbus::{Bus, Event};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const SECRET: &str = "s3cret";

async fn serve(bus: &Bus, validate: bool) -> String {
    let app = Ingress::new(bus.clone())
        .cloudevents("/events", Verifier::briefcase(SECRET))
        .validate_catalog(validate)
        .into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/events")
}

fn collect(bus: &Bus) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    bus.on("**", move |e: &Event| {
        let _ = tx.send(e.clone());
    })
    .unwrap()
    .detach();
    rx
}

fn cloudevent(id: &str, event_type: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "tests", "type": event_type, "data": data})
}

/// POSTs `body` signed, as `content_type`; the status and the JSON answer.
async fn post(url: &str, content_type: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let signature = BodySignature::default().sign(&Secret::new(SECRET), body.as_bytes());
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .header("x-briefcase-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn post_event(url: &str, event: &Value) -> (u16, Value) {
    post(url, "application/cloudevents+json", event).await
}

#[tokio::test]
async fn a_valid_catalog_event_is_accepted() {
    let bus = Bus::new().unwrap();
    let mut received = collect(&bus);
    let url = serve(&bus, true).await;
    let data: Value = serde_json::from_str(LowConfidence::EXAMPLE).unwrap();
    let (status, answer) = post_event(
        &url,
        &cloudevent("e-1", "decision.low_confidence", data.clone()),
    )
    .await;
    assert_eq!((status, answer), (200, json!({"status": "received"})));
    let event = received.recv().await.unwrap();
    assert_eq!(event.event_type(), "decision.low_confidence");
    assert_eq!(event.data(), &data);
}

/// A catalog event whose data breaks its schema: 400 naming the path, and
/// nothing on the bus; the corrected event with the same id then goes
/// through (the refused request left no trace).
#[tokio::test]
async fn an_invalid_catalog_event_gets_400_with_the_path() {
    let bus = Bus::new().unwrap();
    let mut received = collect(&bus);
    let url = serve(&bus, true).await;

    let bad = json!({"decision_id": "abc123", "confidence": "high", "threshold": 0.8});
    let (status, answer) =
        post_event(&url, &cloudevent("e-1", "decision.low_confidence", bad)).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["path"], "/confidence");
    assert_eq!(answer["event_type"], "decision.low_confidence");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("/confidence: expected number, found string"),
        "{error}"
    );

    // Nested paths, and a missing field.
    let mut review: Value =
        serde_json::from_str(hookbus::catalog::evaluation::ReviewCompleted::EXAMPLE).unwrap();
    review["review"]["ai_correct"] = json!("yes");
    let (status, answer) = post_event(&url, &cloudevent("e-2", "review.completed", review)).await;
    assert_eq!(
        (status, &answer["path"]),
        (400, &json!("/review/ai_correct"))
    );
    let (status, answer) = post_event(
        &url,
        &cloudevent(
            "e-3",
            "decision.low_confidence",
            json!({"decision_id": "abc"}),
        ),
    )
    .await;
    assert_eq!((status, &answer["path"]), (400, &json!("")));
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("the required field \"confidence\" is missing"),
        "{answer}"
    );

    let good: Value = serde_json::from_str(LowConfidence::EXAMPLE).unwrap();
    let (status, _) = post_event(&url, &cloudevent("e-1", "decision.low_confidence", good)).await;
    assert_eq!(status, 200);
    let event = received.recv().await.unwrap();
    assert_eq!(event.id(), "e-1");
    assert!(
        received.try_recv().is_err(),
        "only the valid event was emitted"
    );
}

/// A batch with one invalid catalog event is refused whole.
#[tokio::test]
async fn a_batch_with_an_invalid_event_is_refused_whole() {
    let bus = Bus::new().unwrap();
    let mut received = collect(&bus);
    let url = serve(&bus, true).await;
    let good: Value = serde_json::from_str(LowConfidence::EXAMPLE).unwrap();
    let batch = json!([
        cloudevent("b-1", "decision.low_confidence", good),
        cloudevent(
            "b-2",
            "decision.drift_detected",
            json!({"window": "1h", "drift_score": null})
        ),
    ]);
    let (status, answer) = post(&url, "application/cloudevents-batch+json", &batch).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["path"], "/drift_score");
    assert_eq!(answer["event_type"], "decision.drift_detected");
    let bus_stats = bus.stats();
    assert_eq!(bus_stats.emitted, 0);
    assert!(received.try_recv().is_err());
}

/// Types outside the catalog pass unchecked, and without
/// `validate_catalog` nothing is checked.
#[tokio::test]
async fn other_types_and_validation_off_are_untouched() {
    let bus = Bus::new().unwrap();
    let mut received = collect(&bus);
    let url = serve(&bus, true).await;
    let (status, _) =
        post_event(&url, &cloudevent("o-1", "orders.placed", json!("anything"))).await;
    assert_eq!(status, 200);
    assert_eq!(received.recv().await.unwrap().event_type(), "orders.placed");
    // Plain JSON becomes webhook.received, which is not a catalog type.
    let (status, _) = post(&url, "application/json", &json!({"confidence": "high"})).await;
    assert_eq!(status, 200);
    assert_eq!(
        received.recv().await.unwrap().event_type(),
        "webhook.received"
    );

    let off = Bus::new().unwrap();
    let mut received = collect(&off);
    let url = serve(&off, false).await;
    let bad = json!({"decision_id": "abc123", "confidence": "high", "threshold": 0.8});
    let (status, _) = post_event(&url, &cloudevent("e-1", "decision.low_confidence", bad)).await;
    assert_eq!(status, 200);
    assert_eq!(received.recv().await.unwrap().data()["confidence"], "high");
}
