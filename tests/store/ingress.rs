//! The ingress in front of a durable subscriber whose store is behind or
//! has failed: 503 with `Retry-After` (a sender retries it; a 400 it would
//! not), saying which events of a batch were accepted, and the sender's
//! retries deliver every event exactly once; and an event acknowledged
//! is on disk.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookbus::ingress::Ingress;
use hookbus::signature::{Secret, SignRequest, SignatureScheme};
use hookbus::store::Store;
use hookbus::verify::Verifier;
use hookbus::{Bus, Event};
use serde_json::{Value, json};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn serve(bus: &Bus) -> String {
    let ingress = Ingress::new(bus.clone())
        .cloudevents("/events", Verifier::standard_webhooks(SECRET).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = ingress.into_router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Posts a CloudEvents batch, signed with a fresh message id (as a sender's
/// retry is).
async fn post_batch(base: &str, msg_id: &str, events: &[Event]) -> reqwest::Response {
    let body = serde_json::to_string(events).unwrap();
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let headers = SignatureScheme::standard_webhooks()
        .sign(
            &[Secret::new(SECRET)],
            &SignRequest {
                id: msg_id,
                timestamp,
                body: body.as_bytes(),
            },
        )
        .unwrap();
    let mut req = reqwest::Client::new()
        .post(format!("{base}/events"))
        .header("content-type", "application/cloudevents-batch+json")
        .body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.send().await.unwrap()
}

fn batch(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::builder("order.placed")
                .id(format!("order-{i}"))
                .source("shop")
                .data(json!({"n": i}))
                .build()
                .unwrap()
        })
        .collect()
}

/// The store found losing 1,984 of a 2,000-event batch: its buffer full,
/// the ingress answered 400 and the sender gave up.
#[tokio::test]
async fn a_store_behind_answers_503_with_the_accepted_ids_and_retries_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Commits of one write, only when someone asks: the write buffer (16
    // writes) fills within the first batch.
    let store = Store::builder(dir.path().join("outbox.redb"))
        .commit_max(1)
        .commit_interval(Duration::from_secs(3600))
        .open()
        .unwrap();
    let bus = Bus::new().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let _durable = bus
        .subscriber("order.*")
        .name("orders")
        .durable(&store)
        .on(move |e| s.lock().unwrap().push(e.id().to_owned()))
        .unwrap();
    let base = serve(&bus).await;
    let events = batch(100);

    let mut accepted_total = HashSet::new();
    let mut answers_503 = 0;
    for attempt in 0.. {
        assert!(attempt < 100, "the batch never went through");
        let resp = post_batch(&base, &format!("msg-{attempt}"), &events).await;
        if resp.status() == 200 {
            break;
        }
        assert_eq!(resp.status(), 503, "{:?}", resp.text().await);
        assert_eq!(resp.headers()["retry-after"], "1");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("store"), "{body}");
        let accepted: Vec<String> = body["accepted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        // The accepted ones are the next events of the batch, in order.
        let start = accepted_total.len();
        let expected: Vec<String> = events[start..start + accepted.len()]
            .iter()
            .map(|e| e.id().to_owned())
            .collect();
        assert_eq!(accepted, expected);
        accepted_total.extend(accepted);
        answers_503 += 1;
        // The sender waits Retry-After; meanwhile the disk catches up.
        store.sync().await.unwrap();
    }
    assert!(answers_503 > 0, "the store was never behind");
    bus.shutdown(Duration::from_secs(10)).await;
    // Every event once: the retries' already accepted events were
    // duplicates, not emitted again.
    let seen = seen.lock().unwrap();
    let ids: Vec<String> = events.iter().map(|e| e.id().to_owned()).collect();
    assert_eq!(*seen, ids);
}

#[tokio::test]
async fn a_failed_store_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    // The writer's first commit panics: the store fails.
    let store = Store::builder(dir.path().join("outbox.redb"))
        .inject_writer_panic_after(0)
        .open()
        .unwrap();
    let bus = Bus::new().unwrap();
    let _durable = bus
        .subscriber("order.*")
        .name("orders")
        .durable(&store)
        .on(|_| ())
        .unwrap();
    assert!(bus.publish(batch(1).remove(0)).await.is_err());
    let base = serve(&bus).await;
    let resp = post_batch(&base, "msg-1", &batch(3)).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], json!([]), "{body}");
    bus.shutdown(Duration::ZERO).await;
}

/// The ingress acknowledges events once their durable subscribers have them
/// on disk, as `/v1/events` of the management API does (it publishes):
/// with commits only when someone asks, the 200 comes after one.
#[tokio::test]
async fn the_ingress_answers_once_durable_events_are_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder(dir.path().join("outbox.redb"))
        .commit_interval(Duration::from_secs(3600))
        .open()
        .unwrap();
    let bus = Bus::new().unwrap();
    // Held: nothing is delivered (so nothing leaves the store) meanwhile.
    let (_open, open_rx) = tokio::sync::watch::channel(false);
    let _durable = bus
        .subscriber("order.*")
        .name("orders")
        .durable(&store)
        .on_async(move |_| {
            let mut open = open_rx.clone();
            async move {
                let _ = open.wait_for(|o| *o).await;
            }
        })
        .unwrap();
    let base = serve(&bus).await;
    let resp = post_batch(&base, "msg-1", &batch(3)).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    // Committed before the answer: no commit would have come for an hour.
    assert_eq!(store.pending("orders").unwrap(), 3);
    bus.shutdown(Duration::ZERO).await;
}
