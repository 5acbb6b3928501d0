//! Each signing scheme, checked by recomputing the HMAC in the test.

use crate::webhook_support::{Receiver, hmac_b64, hmac_hex};
use base64::Engine;
use hookbus::Event;
use hookbus::signature::SignatureScheme;
use hookbus::webhook::{WebhookEmitter, WireFormat};
use serde_json::json;

fn event() -> Event {
    Event::new(
        "decision.low_confidence",
        json!({"decision_id": "abc123", "confidence": 0.72}),
    )
    .unwrap()
}

#[tokio::test]
async fn briefcase_signature_is_hmac_of_body() {
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .secret("my-webhook-secret")
        .signature(SignatureScheme::briefcase())
        .build_emitter()
        .unwrap();
    let out = e.emit(event()).await;
    assert!(out.is_delivered(), "{out:?}");
    let r = rx.next().await;
    let expected = format!("sha256={}", hmac_hex(b"my-webhook-secret", &r.body));
    assert_eq!(r.header("x-briefcase-signature"), Some(expected.as_str()));
    assert_eq!(
        r.header("content-type"),
        Some("application/cloudevents+json")
    );
}

#[tokio::test]
async fn unsigned_when_secret_is_empty() {
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .secret("")
        .build_emitter()
        .unwrap();
    assert!(e.emit(event()).await.is_delivered());
    let r = rx.next().await;
    assert!(r.header("x-briefcase-signature").is_none());
    assert!(r.headers.keys().all(|k| !k.as_str().contains("signature")));
}

#[tokio::test]
async fn empathy_header_without_prefix() {
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .secret("s3cret")
        .signature(SignatureScheme::body("X-Empathy-Signature", "").unwrap())
        .build_emitter()
        .unwrap();
    assert!(e.emit(event()).await.is_delivered());
    let r = rx.next().await;
    assert_eq!(
        r.header("x-empathy-signature"),
        Some(hmac_hex(b"s3cret", &r.body).as_str())
    );
}

#[tokio::test]
async fn timestamped_signature_covers_timestamp_and_body() {
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .secret("whsec_your_signing_secret")
        .signature(SignatureScheme::timestamped("Rubric").unwrap())
        .build_emitter()
        .unwrap();
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(e.emit(event()).await.is_delivered());
    let r = rx.next().await;
    let ts = r.header("x-rubric-timestamp").unwrap().to_owned();
    let ts_num: i64 = ts.parse().unwrap();
    assert!((ts_num - before).abs() <= 5);
    let mut signed = ts.into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(&r.body);
    let expected = format!("sha256={}", hmac_hex(b"whsec_your_signing_secret", &signed));
    assert_eq!(r.header("x-rubric-signature"), Some(expected.as_str()));
}

#[tokio::test]
async fn standard_webhooks_signature_and_rotation() {
    let key1 = b"0123456789abcdef0123456789abcdef";
    let key2 = b"another-key-of-24-bytes!";
    let b64 = base64::engine::general_purpose::STANDARD;
    let s1 = format!("whsec_{}", b64.encode(key1));
    let s2 = format!("whsec_{}", b64.encode(key2));
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .secrets([s1.as_str(), s2.as_str()])
        .signature(SignatureScheme::standard_webhooks())
        .build_emitter()
        .unwrap();
    let ev = event();
    let id = ev.id().to_owned();
    assert!(e.emit(ev).await.is_delivered());
    let r = rx.next().await;
    assert_eq!(r.header("webhook-id"), Some(id.as_str()));
    let ts = r.header("webhook-timestamp").unwrap();
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(&r.body);
    let sigs: Vec<&str> = r.header("webhook-signature").unwrap().split(' ').collect();
    assert_eq!(
        sigs,
        vec![
            format!("v1,{}", hmac_b64(key1, &signed)),
            format!("v1,{}", hmac_b64(key2, &signed))
        ]
    );
}

#[test]
fn bad_standard_secret_is_refused_at_construction() {
    let err = WebhookEmitter::builder("https://example.com/hook")
        .secret("whsec_not base64!!")
        .signature(SignatureScheme::standard_webhooks())
        .build_emitter()
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("whsec_"), "{msg}");
    assert!(!msg.contains("not base64!!"), "the secret leaked: {msg}");
}

#[test]
fn github_documented_vector_through_the_body_scheme() {
    // GitHub's X-Hub-Signature-256 is the body scheme under another header.
    let scheme = hookbus::signature::BodySignature::new("X-Hub-Signature-256", "sha256=").unwrap();
    let sig = scheme.sign(&"It's a Secret to Everybody".into(), b"Hello, World!");
    assert_eq!(
        sig,
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[test]
fn secrets_are_redacted() {
    let s = hookbus::signature::Secret::new("hunter2");
    assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    assert_eq!(format!("{s}"), "<redacted>");
    let sink = hookbus::WebhookSink::builder("https://hooks.slack.com/services/T0/B0/SECRETPATH")
        .secret("hunter2")
        .header("Authorization", "Bearer tok-123")
        .build()
        .unwrap();
    let d = format!("{sink:?}");
    assert!(
        !d.contains("hunter2") && !d.contains("tok-123") && !d.contains("SECRETPATH"),
        "{d}"
    );
}

#[tokio::test]
async fn a_signature_prefix_http_cannot_carry_is_refused_not_sent_unsigned() {
    // The prefix ends in a newline: no header value can hold it. Before,
    // build accepted it and every request went out without a signature.
    let rx = Receiver::ok().await;
    let scheme = SignatureScheme::body("X-Sig", "sha256=\n").unwrap();
    let built = WebhookEmitter::builder(&rx.url)
        .secret("s3cret")
        .signature(scheme)
        .build_emitter();
    match built {
        Err(hookbus::webhook::WebhookError::InvalidHeader { name, reason }) => {
            assert_eq!(name, "X-Sig");
            assert_eq!(reason, hookbus::webhook::HeaderError::SignaturePrefix);
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(e) => {
            let out = e.emit(event()).await;
            panic!(
                "built; the delivery went {:?} with {} request(s) received",
                out.status,
                rx.requests()
            );
        }
    }
}

#[tokio::test]
async fn an_id_the_webhook_id_header_cannot_carry_fails_instead_of_going_unsigned() {
    // Standard Webhooks signs "<id>.<ts>.<body>" and sends the id in
    // `webhook-id`. An event id with a control character cannot be a header
    // value: the delivery must fail as a recorded error, not be sent without
    // the header (which no receiver can verify).
    let rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .signature(SignatureScheme::standard_webhooks())
        .build_emitter()
        .unwrap();
    let ev = Event::builder("decision.low_confidence")
        .id("evt\n1")
        .data(json!({"confidence": 0.5}))
        .build()
        .unwrap();
    let out = e.emit(ev).await;
    assert_eq!(
        out.status,
        hookbus::webhook::DeliveryStatus::Failed(hookbus::FailureKind::Permanent),
        "{out:?}"
    );
    assert!(
        out.error.as_deref().unwrap_or("").contains("webhook-id"),
        "{out:?}"
    );
    // emit has returned: a request it had sent would have been answered.
    assert_eq!(rx.requests(), 0);
    let log = e.sink().deliveries(10);
    assert_eq!(log.len(), 1);
    assert!(!log[0].success && log[0].last);
}

#[test]
fn secret_equality_compares_contents() {
    use hookbus::signature::Secret;
    assert_eq!(Secret::new("hunter2"), Secret::new(b"hunter2"));
    assert_ne!(Secret::new("hunter2"), Secret::new("hunter3"));
    assert_ne!(Secret::new("hunter2"), Secret::new("hunter"));
    assert_ne!(Secret::new(""), Secret::new("x"));
}

/// An extra header may replace Content-Type; the signature still covers the
/// body and the CloudEvents headers stay hookbus's.
#[tokio::test]
async fn an_extra_content_type_replaces_the_default_and_the_rest_stays() {
    let mut rx = Receiver::ok().await;
    let e = WebhookEmitter::builder(&rx.url)
        .secret("my-webhook-secret")
        .signature(SignatureScheme::briefcase())
        .format(WireFormat::Binary)
        .header("Content-Type", "application/vnd.acme+json")
        .build_emitter()
        .unwrap();
    let ev = event();
    let id = ev.id().to_owned();
    assert!(e.emit(ev).await.is_delivered());
    let r = rx.next().await;
    let types: Vec<_> = r.headers.get_all("content-type").iter().collect();
    assert_eq!(types, ["application/vnd.acme+json"]);
    let expected = format!("sha256={}", hmac_hex(b"my-webhook-secret", &r.body));
    assert_eq!(r.header("x-briefcase-signature"), Some(expected.as_str()));
    assert_eq!(r.header("ce-id"), Some(id.as_str()));
}
