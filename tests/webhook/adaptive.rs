//! Adaptive concurrency and Retry-After pauses against real receivers on
//! 127.0.0.1.
//!
//! The capacity test runs on the real clock (the receiver's latency is
//! real time) and asserts only on counts and maxima; the pause test runs
//! under tokio's paused clock, so its times are virtual.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use crate::webhook_support::{Receiver, fast_retry};
use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use hookbus::webhook::WebhookSink;
use hookbus::{Bus, Event};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// A receiver that takes `capacity` requests at once and answers 503 at
/// once to the rest; an accepted request takes 20 ms plus 50 µs per request
/// it shares the receiver with (mild growth, as a server's under load; 20 ms
/// so that a busy test machine's scheduling noise stays small beside it).
struct Capacity {
    url: String,
    /// Requests inside the handler now, refused ones included.
    inside: AtomicUsize,
    most_inside: AtomicUsize,
    accepted: AtomicUsize,
    refused: AtomicUsize,
    permits: Semaphore,
    target: usize,
    done: Notify,
}

impl Capacity {
    async fn start(capacity: usize, target: usize) -> Arc<Capacity> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rx = Arc::new(Capacity {
            url: format!("http://{addr}/hook"),
            inside: AtomicUsize::new(0),
            most_inside: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            permits: Semaphore::new(capacity),
            target,
            done: Notify::new(),
        });
        let r = rx.clone();
        let app = Router::new().fallback(move || {
            let r = r.clone();
            async move { r.handle().await }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        rx
    }

    async fn handle(&self) -> StatusCode {
        let now = self.inside.fetch_add(1, SeqCst) + 1;
        self.most_inside.fetch_max(now, SeqCst);
        let status = match self.permits.try_acquire() {
            Err(_) => {
                self.refused.fetch_add(1, SeqCst);
                StatusCode::SERVICE_UNAVAILABLE
            }
            Ok(_permit) => {
                let sharing = self.inside.load(SeqCst) as u32;
                tokio::time::sleep(Duration::from_millis(20) + Duration::from_micros(50) * sharing)
                    .await;
                StatusCode::OK
            }
        };
        self.inside.fetch_sub(1, SeqCst);
        if status == StatusCode::OK && self.accepted.fetch_add(1, SeqCst) + 1 == self.target {
            self.done.notify_one();
        }
        status
    }
}

/// Capacity 20, concurrency up to 64, 2000 events at once: every event is
/// delivered, the receiver never has more than 22 requests inside (its
/// capacity plus the documented margin of two), and the limit ends near
/// the capacity (between half of it and the margin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_settles_near_the_receivers_capacity() {
    const EVENTS: usize = 2000;
    let rx = Capacity::start(20, EVENTS).await;
    let bus = Bus::new().unwrap();
    let sink = WebhookSink::builder(&rx.url)
        .concurrency(64)
        .adaptive_concurrency(true)
        .capacity(EVENTS)
        .retry(fast_retry(50))
        .build()
        .unwrap();
    assert_eq!(sink.stats().concurrency_limit, None, "not subscribed yet");
    let _sub = sink.subscribe(&bus).unwrap();
    assert_eq!(sink.stats().concurrency_limit, Some(1), "starts at 1");
    let done = rx.done.notified();
    for n in 0..EVENTS {
        bus.emit(Event::new("load.test", json!({ "n": n })).unwrap())
            .unwrap();
    }
    // A guard against a hang, not a synchronisation: the receiver signals.
    tokio::time::timeout(Duration::from_secs(120), done)
        .await
        .expect("the receiver got every event");
    let limit = sink.stats().concurrency_limit.unwrap();
    let most = rx.most_inside.load(SeqCst);
    let refused = rx.refused.load(SeqCst);
    eprintln!("limit {limit}, most inside {most}, refused {refused}");
    assert_eq!(rx.accepted.load(SeqCst), EVENTS);
    assert!(most <= 22, "the receiver had {most} requests inside");
    assert!((10..=22).contains(&limit), "the limit ended at {limit}");
    // It did probe the capacity (and backed off each time).
    assert!(refused > 0);
    assert_eq!(sink.stats().dropped, 0);
}

/// A 503 with `Retry-After: 10` pauses the whole endpoint: every other
/// event waits 10 s (virtual), and the stats show the pause meanwhile.
#[tokio::test(start_paused = true)]
async fn retry_after_pauses_the_whole_endpoint() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let mut rx = Receiver::start(move |r, n| {
        s.lock()
            .unwrap()
            .push((r.data()["n"].as_u64().unwrap(), Instant::now()));
        if n == 0 {
            let mut resp = StatusCode::SERVICE_UNAVAILABLE.into_response();
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("10"));
            resp
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let bus = Bus::new().unwrap();
    let sink = WebhookSink::builder(&rx.url)
        .concurrency(4)
        .timeout(Duration::from_secs(3600))
        .retry(fast_retry(1))
        .build()
        .unwrap();
    let _sub = sink.subscribe(&bus).unwrap();
    assert_eq!(sink.stats().paused_until, None);
    let start = Instant::now();
    let first = sink
        .send(&[Arc::new(Event::new("a.b", json!({ "n": 0 })).unwrap())])
        .await;
    assert_eq!(first.status_code, Some(503));
    assert!(sink.stats().paused_until.is_some(), "the pause is visible");
    for n in 1..=4 {
        bus.emit(Event::new("a.b", json!({ "n": n })).unwrap())
            .unwrap();
    }
    for _ in 0..5 {
        rx.next().await;
    }
    let seen = seen.lock().unwrap().clone();
    let mut ns: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
    ns.sort_unstable();
    assert_eq!(ns, [0, 1, 2, 3, 4]);
    for (n, at) in &seen[1..] {
        assert!(
            at.duration_since(start) >= Duration::from_secs(10),
            "event {n} went out {:?} after the 503",
            at.duration_since(start)
        );
    }
    assert_eq!(sink.stats().paused_until, None, "the pause is over");
}
