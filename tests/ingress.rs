#![cfg(all(feature = "axum", feature = "webhook"))]
//! The ingress end to end: real HTTP on 127.0.0.1, a real bus, closure
//! subscribers.

use std::sync::Arc;
use std::time::Duration;

use hookbus::ingress::Ingress;
use hookbus::signature::{BodySignature, Secret, SignRequest, SignatureScheme, SlackSignature};
use hookbus::verify::{ReplayGuard, Verifier};
use hookbus::webhook::{WebhookEmitter, WireFormat};
use hookbus::{Bus, Event, OverflowPolicy};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const GH_SECRET: &str = "It's a Secret to Everybody";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const CE_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Every event on the bus, in arrival order.
fn collect(bus: &Bus, pattern: &str) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    bus.on(pattern.to_owned(), move |e: &Event| {
        let _ = tx.send(e.clone());
    })
    .unwrap()
    .detach();
    rx
}

async fn serve(ingress: Ingress) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = ingress.into_router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn ingress(bus: &Bus) -> Ingress {
    Ingress::new(bus.clone())
        .github("/github", Verifier::github(GH_SECRET))
        .slack_commands("/slack/commands", Verifier::slack(SLACK_SECRET))
        .cloudevents("/events", Verifier::standard_webhooks(CE_SECRET).unwrap())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn github_post(
    base: &str,
    event: &str,
    delivery: &str,
    body: &str,
    secret: &str,
) -> reqwest::Response {
    let sig = BodySignature::github().sign(&Secret::new(secret), body.as_bytes());
    reqwest::Client::new()
        .post(format!("{base}/github"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sig)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn json_of(resp: reqwest::Response) -> Value {
    resp.json().await.unwrap()
}

/// A slash command as Slack sends it, signed at `ts`.
async fn slack_post(base: &str, body: &'static str, ts: i64) -> reqwest::Response {
    let ts = ts.to_string();
    reqwest::Client::new()
        .post(format!("{base}/slack/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(SlackSignature::HEADER_TIMESTAMP, &ts)
        .header(
            SlackSignature::HEADER_SIGNATURE,
            SlackSignature::sign(&Secret::new(SLACK_SECRET), &ts, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The `error` text of a refusal.
async fn error_of(resp: reqwest::Response) -> String {
    json_of(resp).await["error"]
        .as_str()
        .expect("a refusal carries {\"error\": \"…\"}")
        .to_owned()
}

/// Nothing more arrived: shutting the bus down runs every handler on what
/// was emitted, so an empty channel afterwards is final.
async fn assert_nothing_more(bus: &Bus, rx: &mut mpsc::UnboundedReceiver<Event>) {
    let report = bus.shutdown(Duration::from_secs(10)).await;
    assert!(report.is_clean(), "{report}");
    assert!(rx.try_recv().is_err(), "an unexpected event was emitted");
}

const PR_OPENED: &str = r#"{"action":"opened","number":42,"pull_request":{"title":"Add receiver","user":{"login":"octocat"}},"repository":{"full_name":"octo/repo"}}"#;

#[tokio::test]
async fn github_delivery_becomes_an_event() {
    let bus = Bus::new().unwrap();
    let mut rx = collect(&bus, "github.**");
    let base = serve(ingress(&bus)).await;
    let resp = github_post(&base, "pull_request", "72d3162e-1", PR_OPENED, GH_SECRET).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json_of(resp).await, json!({"status": "received"}));
    let e = rx.recv().await.unwrap();
    assert_eq!(e.event_type(), "github.pull_request.opened");
    assert_eq!(e.id(), "72d3162e-1");
    assert_eq!(e.source(), "github");
    assert_eq!(e.subject(), Some("octo/repo"));
    assert_eq!(e.data()["number"], 42);

    // An event without an action: github.<event>.
    let resp = github_post(
        &base,
        "push",
        "72d3162e-2",
        r#"{"ref":"refs/heads/main"}"#,
        GH_SECRET,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(rx.recv().await.unwrap().event_type(), "github.push");
}

#[tokio::test]
async fn bad_signatures_get_401_and_emit_nothing() {
    let bus = Bus::new().unwrap();
    let mut rx = collect(&bus, "*");
    let base = serve(ingress(&bus)).await;

    let resp = github_post(&base, "pull_request", "d-1", PR_OPENED, "wrong secret").await;
    assert_eq!(resp.status(), 401);
    let err = json_of(resp).await["error"].as_str().unwrap().to_owned();
    assert!(err.starts_with("signature mismatch"), "{err}");

    let resp = reqwest::Client::new()
        .post(format!("{base}/github"))
        .header("x-github-event", "pull_request")
        .body(PR_OPENED)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        json_of(resp).await["error"],
        "missing header X-Hub-Signature-256"
    );

    // A stale Slack timestamp.
    let resp = slack_post(&base, "command=%2Fempathy&text=hi", now() - 600).await;
    assert_eq!(resp.status(), 401);
    assert!(error_of(resp).await.contains("in the past"));
    assert_nothing_more(&bus, &mut rx).await;
}

#[tokio::test]
async fn malformed_bodies_get_400() {
    let bus = Bus::new().unwrap();
    let mut rx = collect(&bus, "*");
    let base = serve(ingress(&bus)).await;
    let resp = github_post(&base, "pull_request", "m-1", "{not json", GH_SECRET).await;
    assert_eq!(resp.status(), 400);
    assert!(error_of(resp).await.contains("not valid JSON"));
    // An event name that cannot be part of an event type.
    let resp = github_post(&base, "pull request", "m-2", "{}", GH_SECRET).await;
    assert_eq!(resp.status(), 400);
    assert_nothing_more(&bus, &mut rx).await;
}

#[tokio::test]
async fn bodies_past_the_limit_get_413() {
    let bus = Bus::new().unwrap();
    let mut rx = collect(&bus, "*");
    let base = serve(ingress(&bus).body_limit(1024)).await;
    let big = format!(r#"{{"action":"opened","pad":"{}"}}"#, "x".repeat(2000));
    let resp = github_post(&base, "pull_request", "big-1", &big, GH_SECRET).await;
    assert_eq!(resp.status(), 413);
    assert!(error_of(resp).await.contains("1024 bytes"));
    // Just under the limit is fine.
    let small = format!(r#"{{"action":"opened","pad":"{}"}}"#, "x".repeat(900));
    let resp = github_post(&base, "pull_request", "big-2", &small, GH_SECRET).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(rx.recv().await.unwrap().id(), "big-2");
    assert_nothing_more(&bus, &mut rx).await;
}

#[tokio::test]
async fn duplicate_deliveries_are_acknowledged_but_emitted_once() {
    let bus = Bus::new().unwrap();
    let mut rx = collect(&bus, "*");
    let base = serve(ingress(&bus)).await;
    let first = github_post(&base, "pull_request", "dup-1", PR_OPENED, GH_SECRET).await;
    assert_eq!(json_of(first).await, json!({"status": "received"}));
    let again = github_post(&base, "pull_request", "dup-1", PR_OPENED, GH_SECRET).await;
    assert_eq!(again.status(), 200);
    assert_eq!(json_of(again).await, json!({"status": "duplicate"}));
    // Another delivery (another body) is another event.
    let other = github_post(
        &base,
        "pull_request",
        "dup-2",
        &PR_OPENED.replace("42", "43"),
        GH_SECRET,
    )
    .await;
    assert_eq!(json_of(other).await, json!({"status": "received"}));
    assert_eq!(rx.recv().await.unwrap().id(), "dup-1");
    assert_eq!(rx.recv().await.unwrap().id(), "dup-2");
    assert_nothing_more(&bus, &mut rx).await;
}

#[tokio::test]
async fn a_full_bus_answers_503_with_retry_after_and_the_retry_is_not_a_duplicate() {
    let bus = Bus::builder().capacity(2).build().unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let (tx, mut rx) = mpsc::unbounded_channel();
    bus.subscriber("*")
        .capacity(1)
        .overflow(OverflowPolicy::Block)
        .on_async(move |e: Arc<Event>| {
            let g = g.clone();
            let tx = tx.clone();
            async move {
                g.acquire().await.unwrap().forget();
                let _ = tx.send(e.id().to_owned());
            }
        })
        .unwrap()
        .detach();
    let base = serve(ingress(&bus).retry_after(Duration::from_secs(7))).await;

    // Each delivery is its own pull request (a body seen before would be a
    // duplicate: GitHub signs only the body).
    let body = |i: usize| PR_OPENED.replace("42", &i.to_string());
    let mut refused = None;
    for i in 0..50 {
        let id = format!("full-{i}");
        let resp = github_post(&base, "pull_request", &id, &body(i), GH_SECRET).await;
        if resp.status() == 503 {
            assert_eq!(resp.headers()["retry-after"], "7");
            assert_eq!(json_of(resp).await["error"], "the bus is full; retry later");
            refused = Some((i, id));
            break;
        }
        assert_eq!(resp.status(), 200);
    }
    let (accepted, id) = refused.expect("the bus never reported full");
    assert!(accepted >= 2, "refused after only {accepted} events");

    // Let the subscriber go, wait until the bus has room, retry the refused one.
    gate.add_permits(1000);
    let resp = github_post(&base, "pull_request", &id, &body(accepted), GH_SECRET).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json_of(resp).await, json!({"status": "received"}));
    let mut seen = Vec::new();
    for _ in 0..=accepted {
        seen.push(rx.recv().await.unwrap());
    }
    assert_eq!(seen.last(), Some(&id));
    assert_eq!(seen.iter().filter(|s| **s == id).count(), 1);
}

#[tokio::test]
async fn slack_slash_commands_become_events() {
    let bus = Bus::new().unwrap();
    let mut rx = collect(&bus, "slack.**");
    let base = serve(ingress(&bus)).await;
    let post = |body: &'static str| slack_post(&base, body, now());
    let resp = post("team_domain=acme&channel_id=C1&user_id=U2&command=%2Fempathy&text=How+do+I+fix+this%3F&trigger_id=13345224609.738474920.8088930838d88f008e0").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        "",
        "an empty 200 is a silent ack"
    );
    let e = rx.recv().await.unwrap();
    assert_eq!(e.event_type(), "slack.command.empathy");
    assert_eq!(e.id(), "13345224609.738474920.8088930838d88f008e0");
    assert_eq!(e.source(), "slack");
    assert_eq!(e.data()["text"], "How do I fix this?");
    assert_eq!(e.data()["channel_id"], "C1");

    for bad in [
        "command=%2Fcaf%C3%A9&text=x",
        "command=%2Fa.b",
        "command=%2F",
        "text=no+command",
    ] {
        let resp = post(bad).await;
        assert_eq!(resp.status(), 400, "{bad}");
        assert!(json_of(resp).await["error"].is_string());
    }
    assert_nothing_more(&bus, &mut rx).await;
}

#[tokio::test]
async fn cloudevents_from_a_hookbus_webhook_arrive_as_they_were_sent() {
    let bus = Bus::new().unwrap();
    let mut rx = collect(&bus, "decision.**");
    let base = serve(ingress(&bus)).await;
    for format in [WireFormat::Binary, WireFormat::Structured] {
        let emitter = WebhookEmitter::builder(format!("{base}/events"))
            .secret(CE_SECRET)
            .signature(SignatureScheme::standard_webhooks())
            .format(format)
            .build_emitter()
            .unwrap();
        let sent = Event::builder("decision.low_confidence")
            .source("claims service")
            .subject("Euro € 100%")
            .extension("partitionkey", "abc 123")
            .data(json!({"decision_id": "abc123", "confidence": 0.42}))
            .build()
            .unwrap();
        let out = emitter.emit(sent.clone()).await;
        assert!(out.is_delivered(), "{format:?}: {out:?}");
        let got = rx.recv().await.unwrap();
        assert_eq!(got, sent, "{format:?}");
        // The same event again (a retry) is acknowledged, not emitted.
        assert!(emitter.emit(sent).await.is_delivered());
    }
    // Several events in one request: CloudEvents batched mode.
    let emitter = WebhookEmitter::builder(format!("{base}/events"))
        .secret(CE_SECRET)
        .signature(SignatureScheme::standard_webhooks())
        .build_emitter()
        .unwrap();
    let batch: Vec<Arc<Event>> = (0..3)
        .map(|i| Arc::new(Event::new("decision.captured", json!({"n": i})).unwrap()))
        .collect();
    assert!(emitter.emit_batch(batch.clone()).await.is_delivered());
    for sent in &batch {
        assert_eq!(&rx.recv().await.unwrap(), sent.as_ref());
    }
    assert_nothing_more(&bus, &mut rx).await;
}

fn standard_headers(id: &str, body: &[u8]) -> Vec<(String, String)> {
    SignatureScheme::standard_webhooks()
        .sign(
            &[Secret::new(CE_SECRET)],
            &SignRequest {
                id,
                timestamp: now(),
                body,
            },
        )
        .unwrap()
}

async fn post_events(base: &str, content_type: &str, id: &str, body: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/events"))
        .header("content-type", content_type)
        .body(body.to_owned());
    for (k, v) in standard_headers(id, body.as_bytes()) {
        req = req.header(k, v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn batches_and_plain_json() {
    let bus = Bus::new().unwrap();
    let mut rx = collect(&bus, "*");
    let base = serve(ingress(&bus).json_type("rubric.webhook").unwrap()).await;
    let a = Event::builder("a.one")
        .id("e1")
        .source("s")
        .build()
        .unwrap();
    let b = Event::builder("a.two")
        .id("e2")
        .source("s")
        .data(json!([1, 2]))
        .build()
        .unwrap();
    let batch = serde_json::to_string(&vec![a.clone(), b.clone()]).unwrap();
    let resp = post_events(
        &base,
        "application/cloudevents-batch+json",
        "batch-1",
        &batch,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(rx.recv().await.unwrap(), a);
    assert_eq!(rx.recv().await.unwrap(), b);

    // An empty batch is received (nothing to emit), not a duplicate.
    let resp = post_events(&base, "application/cloudevents-batch+json", "batch-2", "[]").await;
    assert_eq!(json_of(resp).await, json!({"status": "received"}));
    // Re-sending the batch: both events are duplicates.
    let resp = post_events(
        &base,
        "application/cloudevents-batch+json",
        "batch-3",
        &batch,
    )
    .await;
    assert_eq!(json_of(resp).await, json!({"status": "duplicate"}));

    // Other JSON: the configured type, the webhook-id as id.
    let body = r#"{"id":"evt_abc123","type":"evaluation.completed","data":{"evaluation_id":"eval_xyz789"}}"#;
    let resp = post_events(&base, "application/json", "msg_42", body).await;
    assert_eq!(resp.status(), 200);
    let e = rx.recv().await.unwrap();
    assert_eq!(e.event_type(), "rubric.webhook");
    assert_eq!(e.id(), "msg_42");
    assert_eq!(e.data()["data"]["evaluation_id"], "eval_xyz789");

    // Not CloudEvents, not JSON.
    let resp = post_events(&base, "text/plain", "msg_43", "hello").await;
    assert_eq!(resp.status(), 400);
    let resp = post_events(
        &base,
        "application/cloudevents+json",
        "msg_44",
        r#"{"type":"x"}"#,
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert!(error_of(resp).await.contains("specversion"));
    assert_nothing_more(&bus, &mut rx).await;
}

#[tokio::test]
async fn a_verifier_replay_guard_acknowledges_replays() {
    let bus = Bus::new().unwrap();
    let mut rx = collect(&bus, "*");
    let verifier = Verifier::standard_webhooks(CE_SECRET)
        .unwrap()
        .replay_guard(Arc::new(ReplayGuard::new(100)));
    let base = serve(Ingress::new(bus.clone()).cloudevents("/events", verifier)).await;
    let resp = post_events(&base, "application/json", "msg_1", "{}").await;
    assert_eq!(json_of(resp).await, json!({"status": "received"}));
    let resp = post_events(&base, "application/json", "msg_1", "{}").await;
    assert_eq!(json_of(resp).await, json!({"status": "duplicate"}));
    assert_eq!(rx.recv().await.unwrap().id(), "msg_1");
    assert_nothing_more(&bus, &mut rx).await;
}

#[tokio::test]
async fn the_signed_extractor_verifies_before_deserialising() {
    use axum::extract::DefaultBodyLimit;
    use axum::routing::post;
    use hookbus::ingress::{Signed, SignedBody};

    #[derive(serde::Deserialize)]
    struct Envelope {
        r#type: String,
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app =
        axum::Router::new()
            .route(
                "/typed",
                post(move |Signed(e): Signed<Envelope>| {
                    let tx = tx.clone();
                    async move {
                        tx.send(e.r#type).unwrap();
                        "ok"
                    }
                }),
            )
            .route(
                "/raw",
                post(|s: SignedBody| async move {
                    format!("{} {:?}", s.body.len(), s.verified.timestamp)
                }),
            )
            .layer(DefaultBodyLimit::max(256))
            .with_state(Verifier::timestamped("Rubric", "whsec_your_signing_secret").unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let post = |path: &'static str, body: String, secret: &'static str| {
        let base = base.clone();
        async move {
            let mut req = reqwest::Client::new()
                .post(format!("{base}{path}"))
                .body(body.clone());
            let headers = SignatureScheme::timestamped("Rubric")
                .unwrap()
                .sign(
                    &[Secret::new(secret)],
                    &SignRequest {
                        id: "",
                        timestamp: now(),
                        body: body.as_bytes(),
                    },
                )
                .unwrap();
            for (k, v) in headers {
                req = req.header(k, v);
            }
            req.send().await.unwrap()
        }
    };
    let ok = post(
        "/typed",
        r#"{"type":"evaluation.completed"}"#.into(),
        "whsec_your_signing_secret",
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(rx.recv().await.unwrap(), "evaluation.completed");
    let raw = post(
        "/raw",
        "not json at all".into(),
        "whsec_your_signing_secret",
    )
    .await;
    assert_eq!(raw.status(), 200);
    assert!(raw.text().await.unwrap().starts_with("15 Some("));

    let forged = post("/typed", r#"{"type":"x"}"#.into(), "guess").await;
    assert_eq!(forged.status(), 401);
    let not_json = post("/typed", "{".into(), "whsec_your_signing_secret").await;
    assert_eq!(not_json.status(), 400);
    assert!(
        error_of(not_json)
            .await
            .starts_with("the body is not the expected JSON")
    );
    let big = post(
        "/typed",
        format!(r#"{{"type":"{}"}}"#, "x".repeat(300)),
        "whsec_your_signing_secret",
    )
    .await;
    assert_eq!(big.status(), 413);
    assert_eq!(
        json_of(big).await["error"],
        "the request body is larger than the limit"
    );
    assert!(
        rx.try_recv().is_err(),
        "only the verified, well-formed request reached the handler"
    );
}

// ---- issue #11: a 2xx means the event is on the bus exactly once ----

async fn post_events_at(
    base: &str,
    content_type: &str,
    id: &str,
    body: &str,
    ts: i64,
) -> reqwest::Response {
    let headers = SignatureScheme::standard_webhooks()
        .sign(
            &[Secret::new(CE_SECRET)],
            &SignRequest {
                id,
                timestamp: ts,
                body: body.as_bytes(),
            },
        )
        .unwrap();
    let mut req = reqwest::Client::new()
        .post(format!("{base}/events"))
        .header("content-type", content_type)
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.send().await.unwrap()
}

/// A bus whose only subscriber blocks until the returned semaphore gets
/// permits, and sends the id of every event it handled.
fn gated_bus() -> (
    Bus,
    Arc<tokio::sync::Semaphore>,
    mpsc::UnboundedReceiver<String>,
) {
    let bus = Bus::builder().capacity(2).build().unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let (tx, rx) = mpsc::unbounded_channel();
    bus.subscriber("*")
        .capacity(1)
        .overflow(OverflowPolicy::Block)
        .on_async(move |e: Arc<Event>| {
            let g = g.clone();
            let tx = tx.clone();
            async move {
                g.acquire().await.unwrap().forget();
                let _ = tx.send(e.id().to_owned());
            }
        })
        .unwrap()
        .detach();
    (bus, gate, rx)
}

#[tokio::test]
async fn a_503_leaves_no_trace_in_the_verifiers_replay_guard() {
    // Issue #11, defect 1: the retry of a refused Standard Webhooks message
    // (same webhook-id, new timestamp) was answered "duplicate" and lost.
    let (bus, gate, mut rx) = gated_bus();
    let verifier = Verifier::standard_webhooks(CE_SECRET)
        .unwrap()
        .replay_guard(Arc::new(ReplayGuard::new(100)));
    let base = serve(Ingress::new(bus.clone()).cloudevents("/events", verifier)).await;
    let ts = now();
    let mut refused = None;
    for i in 0..50 {
        let id = format!("msg_full_{i}");
        let resp = post_events_at(&base, "application/json", &id, "{}", ts).await;
        if resp.status() == 503 {
            refused = Some((i, id));
            break;
        }
        assert_eq!(json_of(resp).await, json!({"status": "received"}));
    }
    let (accepted, id) = refused.expect("the bus never reported full");
    gate.add_permits(1000);
    // The sender's retry: same id, a new timestamp and signature.
    let resp = post_events_at(&base, "application/json", &id, "{}", ts + 1).await;
    assert_eq!(json_of(resp).await, json!({"status": "received"}));
    let mut seen = Vec::new();
    for _ in 0..=accepted {
        seen.push(rx.recv().await.unwrap());
    }
    assert_eq!(seen.last(), Some(&id));
    // And now it is a duplicate.
    let resp = post_events_at(&base, "application/json", &id, "{}", ts + 2).await;
    assert_eq!(json_of(resp).await, json!({"status": "duplicate"}));
}

const BRIEFCASE_SECRET: &str = "briefcase-secret";

async fn post_briefcase(
    base: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/events"))
        .header("content-type", content_type)
        .header(
            "X-Briefcase-Signature",
            BodySignature::default().sign(&Secret::new(BRIEFCASE_SECRET), body.as_bytes()),
        )
        .body(body.to_owned());
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn body_only_signatures_never_let_unsigned_headers_decide_the_event() {
    // Issue #11, defect 3: under a body-only signature the ce-* headers are
    // not signed, so binary mode is refused; structured mode carries the
    // attributes inside the signed body.
    let bus = Bus::new().unwrap();
    let mut rx = collect(&bus, "*");
    let base = serve(
        Ingress::new(bus.clone()).cloudevents("/events", Verifier::briefcase(BRIEFCASE_SECRET)),
    )
    .await;
    let ce = |ty: &'static str, id: &'static str| {
        vec![
            ("ce-specversion", "1.0"),
            ("ce-type", ty),
            ("ce-id", id),
            ("ce-source", "briefcase"),
        ]
    };
    let data = r#"{"decision_id":"abc123"}"#;
    let resp = post_briefcase(
        &base,
        "application/json",
        &ce("decision.captured", "d-1"),
        data,
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert!(error_of(resp).await.contains("structured"));
    // The attacker's re-send with another type and id: refused the same way.
    let resp = post_briefcase(
        &base,
        "application/json",
        &ce("payment.refund", "forged-1"),
        data,
    )
    .await;
    assert_eq!(resp.status(), 400);

    // Structured mode: the attributes are signed.
    let event = r#"{"specversion":"1.0","type":"decision.captured","id":"d-2","source":"briefcase","data":{"decision_id":"abc123"}}"#;
    let resp = post_briefcase(&base, "application/cloudevents+json", &[], event).await;
    assert_eq!(json_of(resp).await, json!({"status": "received"}));
    let e = rx.recv().await.unwrap();
    assert_eq!((e.event_type(), e.id()), ("decision.captured", "d-2"));
    // Its replay, with ce-* headers that try to override it: not emitted.
    let resp = post_briefcase(
        &base,
        "application/cloudevents+json",
        &ce("payment.refund", "forged-2"),
        event,
    )
    .await;
    assert_eq!(json_of(resp).await, json!({"status": "duplicate"}));
    // Plain JSON under a body-only signature: an unsigned webhook-id does
    // not make a replay new.
    let resp = post_briefcase(&base, "application/json", &[("webhook-id", "a")], data).await;
    assert_eq!(json_of(resp).await, json!({"status": "received"}));
    let first = rx.recv().await.unwrap();
    assert_ne!(
        first.id(),
        "a",
        "the id is not taken from an unsigned header"
    );
    let resp = post_briefcase(&base, "application/json", &[("webhook-id", "b")], data).await;
    assert_eq!(json_of(resp).await, json!({"status": "duplicate"}));
    assert_nothing_more(&bus, &mut rx).await;
}

#[tokio::test]
async fn a_github_body_replayed_under_a_new_delivery_id_is_not_emitted_again() {
    let bus = Bus::new().unwrap();
    let mut rx = collect(&bus, "*");
    let base = serve(ingress(&bus)).await;
    let resp = github_post(&base, "pull_request", "gh-1", PR_OPENED, GH_SECRET).await;
    assert_eq!(json_of(resp).await, json!({"status": "received"}));
    let resp = github_post(&base, "pull_request", "gh-forged", PR_OPENED, GH_SECRET).await;
    assert_eq!(json_of(resp).await, json!({"status": "duplicate"}));
    assert_eq!(rx.recv().await.unwrap().id(), "gh-1");
    assert_nothing_more(&bus, &mut rx).await;
}
