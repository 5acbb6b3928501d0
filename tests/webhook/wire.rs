//! CloudEvents HTTP binding: binary headers and percent-encoding, structured
//! mode, batched mode (by size and by time), the Rubric envelope.

use std::sync::Arc;
use std::time::Duration;

use crate::webhook_support::Receiver;
use hookbus::signature::SignatureScheme;
use hookbus::webhook::{WebhookEmitter, WebhookSink, WireFormat};
use hookbus::{Bus, Event};
use serde_json::json;

#[tokio::test]
async fn binary_mode_headers_are_percent_encoded() {
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .format(WireFormat::Binary)
        .build_emitter()
        .unwrap();
    let ev = Event::builder("decision.captured")
        .source("claims review/€ \"x\" 100%")
        .subject("Zoë")
        .extension("partitionkey", "a b")
        .data(json!({"decision_id": "abc123", "confidence": 0.91}))
        .build()
        .unwrap();
    let id = ev.id().to_owned();
    let time = ev.time_rfc3339();
    assert!(e.emit(ev).await.is_delivered());
    let r = rx.next().await;
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("ce-specversion"), Some("1.0"));
    assert_eq!(r.header("ce-type"), Some("decision.captured"));
    assert_eq!(r.header("ce-id"), Some(id.as_str()));
    assert_eq!(
        r.header("ce-source"),
        Some("claims%20review/%E2%82%AC%20%22x%22%20100%25")
    );
    assert_eq!(r.header("ce-subject"), Some("Zo%C3%AB"));
    assert_eq!(r.header("ce-partitionkey"), Some("a%20b"));
    assert_eq!(r.header("ce-time"), Some(time.as_str()));
    assert_eq!(
        r.json(),
        json!({"decision_id": "abc123", "confidence": 0.91})
    );
}

#[tokio::test]
async fn default_and_configured_source() {
    let mut rx = Receiver::ok().await;
    let plain = WebhookEmitter::new(&rx.url).unwrap();
    let custom = WebhookEmitter::builder(&rx.url)
        .source("briefcase-ai")
        .build_emitter()
        .unwrap();
    plain.emit(Event::new("a.b", json!({})).unwrap()).await;
    assert_eq!(rx.next().await.json()["source"], "hookbus");
    custom.emit(Event::new("a.b", json!({})).unwrap()).await;
    assert_eq!(rx.next().await.json()["source"], "briefcase-ai");
}

#[tokio::test]
async fn structured_mode() {
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .format(WireFormat::Structured)
        .build_emitter()
        .unwrap();
    let ev = Event::new("decision.captured", json!({"x": 1})).unwrap();
    let id = ev.id().to_owned();
    assert!(e.emit(ev).await.is_delivered());
    let r = rx.next().await;
    assert_eq!(
        r.header("content-type"),
        Some("application/cloudevents+json")
    );
    assert!(r.header("ce-id").is_none());
    let v = r.json();
    assert_eq!(v["specversion"], "1.0");
    assert_eq!(v["id"], id);
    assert_eq!(v["type"], "decision.captured");
    assert_eq!(v["data"], json!({"x": 1}));
}

#[tokio::test]
async fn rubric_envelope() {
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .format(WireFormat::Envelope)
        .build_emitter()
        .unwrap();
    let ev = Event::builder("evaluation.completed")
        .id("evt_abc123")
        .extension("modelversion", "triage-v2.4")
        .data(json!({"evaluation_id": "eval_xyz789", "summary": {"triage_accuracy": 0.87}}))
        .build()
        .unwrap();
    let created = ev.time_rfc3339();
    assert!(e.emit(ev).await.is_delivered());
    let v = rx.next().await.json();
    assert_eq!(v["id"], "evt_abc123");
    assert_eq!(v["type"], "evaluation.completed");
    assert_eq!(v["created_at"], created);
    assert_eq!(v["data"]["summary"]["triage_accuracy"], 0.87);
    assert_eq!(v["metadata"]["modelversion"], "triage-v2.4");
    assert_eq!(v["metadata"]["source"], "hookbus");
}

#[tokio::test]
async fn batching_by_size_uses_batched_mode() {
    let mut rx = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let _sub = WebhookSink::builder(&rx.url)
        .events(["order.*"])
        .batch(5, Duration::from_secs(3600))
        .build()
        .unwrap()
        .subscribe(&bus)
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        let e = Event::new("order.placed", json!({"n": i})).unwrap();
        ids.push(e.id().to_owned());
        bus.emit(e).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        let r = rx.next().await;
        assert_eq!(
            r.header("content-type"),
            Some("application/cloudevents-batch+json")
        );
        let arr = r.json();
        let arr = arr.as_array().unwrap();
        assert_eq!(arr.len(), 5);
        got.extend(arr.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
    }
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
}

#[tokio::test]
async fn batching_by_time_flushes_a_partial_batch() {
    let mut rx = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let _sub = WebhookSink::builder(&rx.url)
        .batch(100, Duration::from_millis(50))
        .build()
        .unwrap()
        .subscribe(&bus)
        .unwrap();
    for i in 0..3 {
        bus.emit(Event::new("order.placed", json!({"n": i})).unwrap())
            .unwrap();
    }
    let r = rx.next().await;
    let v = r.json();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3, "one request carrying the three events");
    assert_eq!(rx.requests(), 1);
}

#[tokio::test]
async fn emit_batch_envelopes() {
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .format(WireFormat::Envelope)
        .build_emitter()
        .unwrap();
    let events: Vec<Arc<Event>> = (0..3)
        .map(|i| Arc::new(Event::new("a.b", json!({"i": i})).unwrap()))
        .collect();
    assert!(e.emit_batch(events).await.is_delivered());
    let v = rx.next().await.json();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[2]["data"]["i"], 2);
}

#[tokio::test]
async fn subscribed_events_filter_the_emitter() {
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .events(["decision.low_confidence"])
        .build_emitter()
        .unwrap();
    let skipped = e
        .emit(Event::new("decision.captured", json!({})).unwrap())
        .await;
    assert_eq!(skipped.status, hookbus::webhook::DeliveryStatus::Skipped);
    assert!(
        e.emit(Event::new("decision.low_confidence", json!({})).unwrap())
            .await
            .is_delivered()
    );
    assert_eq!(
        rx.next().await.event_type().as_deref(),
        Some("decision.low_confidence")
    );
    assert_eq!(rx.requests(), 1);
}

#[tokio::test]
async fn an_extra_header_given_twice_is_sent_with_both_values() {
    // `header()` appends; before, only the last value of a repeated name
    // reached the receiver.
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .header("X-Tag", "first")
        .header("X-Tag", "second")
        .build_emitter()
        .unwrap();
    assert!(
        e.emit(Event::new("decision.captured", json!({})).unwrap())
            .await
            .is_delivered()
    );
    let r = rx.next().await;
    let tags: Vec<&str> = r
        .headers
        .get_all("x-tag")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(tags, ["first", "second"]);
}

#[tokio::test]
async fn binary_mode_sends_non_json_data_as_its_bytes() {
    // Issue #11 / HTTP binding §3.1.2: the body is the data. The conformance
    // suite's minimum events: text/plain and application/xml data.
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .format(WireFormat::Binary)
        .build_emitter()
        .unwrap();
    for (ct, data, body) in [
        (
            "text/plain; charset=us-ascii",
            json!("Hello, World!\n"),
            &b"Hello, World!\n"[..],
        ),
        (
            "application/xml; charset=utf-8",
            json!("<msg>Hello, 🌎!</msg>\n"),
            "<msg>Hello, 🌎!</msg>\n".as_bytes(),
        ),
        (
            "application/json; charset=utf-8",
            json!("Hello, 🌎!"),
            "\"Hello, 🌎!\"".as_bytes(),
        ),
        ("application/cloudevents+json", json!("x"), &b"\"x\""[..]),
    ] {
        let ev = Event::builder("io.cloudevents.minimum")
            .datacontenttype(ct)
            .data(data)
            .build()
            .unwrap();
        assert!(e.emit(ev).await.is_delivered());
        let r = rx.next().await;
        assert_eq!(r.header("content-type"), Some(ct));
        assert_eq!(&r.body[..], body, "{ct}");
    }
}

#[tokio::test]
async fn batched_mode_for_a_single_event() {
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .format(WireFormat::Batched)
        .build_emitter()
        .unwrap();
    let ev = Event::new("decision.captured", json!({"x": 1})).unwrap();
    let id = ev.id().to_owned();
    assert!(e.emit(ev).await.is_delivered());
    let r = rx.next().await;
    assert_eq!(
        r.header("content-type"),
        Some("application/cloudevents-batch+json")
    );
    let v = r.json();
    assert_eq!(v[0]["id"], id);
    assert_eq!(v.as_array().unwrap().len(), 1);
}

/// Raw payloads: the bytes the caller formatted arrive unchanged (no quotes,
/// no escaping, no `ce-*` headers), with the event's content type, and the
/// signature over them verifies.
#[tokio::test]
async fn raw_payload_sends_the_callers_bytes_unchanged_and_signed() {
    use hookbus::signature::SignatureScheme;
    use hookbus::verify::Verifier;
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .signature(SignatureScheme::standard_webhooks())
        .format(WireFormat::Raw)
        .build_emitter()
        .unwrap();
    let formatted = "<order id=\"42\" note='a \"quoted\" \\ thing'>Grüße\n</order>";
    let event = Event::builder("order.created")
        .data(json!(formatted))
        .datacontenttype("application/xml")
        .build()
        .unwrap();
    assert!(e.emit(event).await.is_delivered());
    let r = rx.next().await;
    assert_eq!(&r.body[..], formatted.as_bytes());
    assert_eq!(r.header("content-type"), Some("application/xml"));
    assert!(r.header("ce-id").is_none() && r.header("ce-type").is_none());
    Verifier::standard_webhooks("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .unwrap()
        .verify(&r.headers, &r.body)
        .expect("the signature over the raw bytes verifies");
    // Data that is not a string goes as its JSON, and a Content-Type header
    // overrides the event's.
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .secret("k")
        .signature(SignatureScheme::briefcase())
        .format(WireFormat::Raw)
        .header("Content-Type", "application/vnd.legacy+json")
        .build_emitter()
        .unwrap();
    assert!(
        e.emit(Event::new("a.b", json!({"x": 1})).unwrap())
            .await
            .is_delivered()
    );
    let r = rx.next().await;
    assert_eq!(&r.body[..], br#"{"x":1}"#);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.legacy+json")
    );
    assert_eq!(
        r.header("x-briefcase-signature").unwrap(),
        format!("sha256={}", crate::webhook_support::hmac_hex(b"k", &r.body))
    );
}

/// A template that renders to a string sends that string as it is, through
/// a bus subscription too; raw mode refuses batching.
#[tokio::test]
async fn raw_payload_from_a_template_string() {
    let mut rx = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let sink = WebhookSink::builder(&rx.url)
        .secret("k")
        .signature(SignatureScheme::briefcase())
        .format(WireFormat::Raw)
        .template(json!("ORDER|{order_id}|{amount:.2f}|{event.type}"))
        .build()
        .unwrap();
    let _sub = sink.subscribe(&bus).unwrap();
    bus.emit(Event::new("order.paid", json!({"order_id": "A-7", "amount": 12.5})).unwrap())
        .unwrap();
    let r = rx.next().await;
    assert_eq!(&r.body[..], b"ORDER|A-7|12.50|order.paid");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.header("x-briefcase-signature").unwrap(),
        format!("sha256={}", crate::webhook_support::hmac_hex(b"k", &r.body))
    );
    bus.shutdown(Duration::from_secs(5)).await;
    let err = WebhookSink::builder(&rx.url)
        .format(WireFormat::Raw)
        .batch(10, Duration::from_secs(1))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("one event per request"), "{err}");
}

#[test]
fn raw_payload_of_several_events_is_one_body_a_line() {
    use hookbus::webhook::wire::payload;
    let events: Vec<Arc<Event>> = [json!("a,1"), json!({"b": 2})]
        .into_iter()
        .map(|d| Arc::new(Event::new("t", d).unwrap()))
        .collect();
    let p = payload(&events, WireFormat::Raw, None);
    assert_eq!(&p.body[..], b"a,1\n{\"b\":2}");
    let one = payload(&events[..1], WireFormat::Raw, None);
    assert_eq!(&one.body[..], b"a,1");
}
