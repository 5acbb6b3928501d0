//! Per-endpoint rate limits against a real receiver on 127.0.0.1, under
//! tokio's paused clock: arrival times are virtual, so the assertions are
//! about the schedule, not about how fast the machine is.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::webhook_support::Receiver;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hookbus::webhook::{WebhookBuilder, WebhookEmitter, WebhookSink};
use hookbus::{Bus, Event};
use serde_json::json;
use tokio::time::Instant;

/// Long enough that the paused clock never reaches a request timeout.
const HOUR: Duration = Duration::from_secs(3600);

/// A receiver that notes the virtual time of each request (and its `n`).
async fn timed() -> (Receiver, Arc<Mutex<Vec<(u64, Instant)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let rx = Receiver::start(move |r, _| {
        let n = r.json()["n"].as_u64().unwrap_or(u64::MAX);
        s.lock().unwrap().push((n, Instant::now()));
        StatusCode::OK.into_response()
    })
    .await;
    (rx, seen)
}

fn ev(n: u64) -> Event {
    Event::new("a.b", json!({ "n": n })).unwrap()
}

/// 5/s with a burst of 5: five requests at once, then one every 200 ms;
/// another endpoint on the same bus gets all its events at once meanwhile.
#[tokio::test(start_paused = true)]
async fn five_per_second_with_a_burst_of_five() {
    let (mut slow, slow_seen) = timed().await;
    let (mut fast, fast_seen) = timed().await;
    let bus = Bus::new().unwrap();
    let limited = WebhookSink::builder(&slow.url)
        .name("limited")
        .timeout(HOUR)
        .rate_limit(5, Duration::from_secs(1))
        .rate_limit_burst(5)
        .build()
        .unwrap();
    let _a = limited.subscribe(&bus).unwrap();
    let unlimited = WebhookSink::builder(&fast.url)
        .name("unlimited")
        .timeout(HOUR)
        .build()
        .unwrap();
    let _b = unlimited.subscribe(&bus).unwrap();
    let start = Instant::now();
    for n in 0..10 {
        bus.emit(ev(n)).unwrap();
    }
    for _ in 0..5 {
        slow.next().await;
    }
    // The sixth waits for its token, in the open: counted, holding no slot.
    assert_eq!(limited.stats().waiting_rate_limit, 1);
    for _ in 5..10 {
        slow.next().await;
    }
    for _ in 0..10 {
        fast.next().await;
    }
    let at = |seen: &Mutex<Vec<(u64, Instant)>>| {
        let mut v: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(n, t)| (*n, t.duration_since(start)))
            .collect();
        v.sort_by_key(|(_, t)| *t);
        v
    };
    let slow_at = at(&slow_seen);
    assert_eq!(slow_at.len(), 10);
    for (i, (n, t)) in slow_at.iter().enumerate() {
        let i = i as u32;
        let due = Duration::from_millis(200) * i.saturating_sub(4);
        assert!(
            *t >= due,
            "request {i} (event {n}) came at {t:?}, before {due:?}"
        );
        assert!(
            *t < due + Duration::from_millis(200),
            "request {i} (event {n}) came at {t:?}, long after {due:?}: {slow_at:?}"
        );
    }
    let fast_at = at(&fast_seen);
    assert_eq!(fast_at.len(), 10);
    assert!(
        fast_at.iter().all(|(_, t)| *t < Duration::from_millis(200)),
        "the other endpoint was held up: {fast_at:?}"
    );
    bus.shutdown(Duration::from_secs(5)).await;
    let s = limited.stats();
    assert_eq!((s.delivered, s.waiting_rate_limit), (10, 0));
    assert_eq!(s.rate_limited, 5, "the last five waited for their token");
    assert_eq!(unlimited.stats().rate_limited, 0);
}

/// A full mailbox while waiting for tokens is the overflow policy's to
/// decide: `emit` never waits for the endpoint.
#[tokio::test(start_paused = true)]
async fn waiting_for_tokens_never_blocks_emit() {
    let (mut rx, _seen) = timed().await;
    let bus = Bus::new().unwrap();
    let sink = WebhookSink::builder(&rx.url)
        .name("one-a-minute")
        .timeout(HOUR)
        .rate_limit(1, Duration::from_secs(60))
        .capacity(4)
        .build()
        .unwrap();
    let _sub = sink.subscribe(&bus).unwrap();
    let start = Instant::now();
    for n in 0..100 {
        bus.emit(ev(n)).unwrap();
    }
    assert_eq!(Instant::now(), start, "emit did not wait");
    rx.next().await;
    let report = bus.shutdown(Duration::from_millis(10)).await;
    let s = report.subscriber("one-a-minute").unwrap();
    assert!(s.stats.dropped >= 90, "{report}");
}

/// The emitter (no bus) waits for its token in `emit`; retries take tokens
/// too.
#[tokio::test(start_paused = true)]
async fn the_emitter_and_its_retries_take_tokens() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let rx = Receiver::start(move |_, n| {
        s.lock().unwrap().push(Instant::now());
        if n == 0 {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let e = WebhookEmitter::builder(&rx.url)
        .timeout(HOUR)
        .rate_limit(2, Duration::from_secs(1))
        .rate_limit_burst(1)
        .retry(hookbus::webhook::RetryPolicy::exponential(
            3,
            Duration::ZERO,
            Duration::ZERO,
        ))
        .build_emitter()
        .unwrap();
    let start = Instant::now();
    let (a, b) = tokio::join!(e.emit(ev(0)), e.emit(ev(1)));
    assert!(a.is_delivered() && b.is_delivered());
    let times: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.duration_since(start))
        .collect();
    assert_eq!(times.len(), 3, "two events, one retry");
    for (i, t) in times.iter().enumerate() {
        let due = Duration::from_millis(500) * i as u32;
        assert!(
            *t >= due && *t < due + Duration::from_millis(500),
            "{times:?}"
        );
    }
    assert_eq!(e.sink().stats().rate_limited, 2);
}

#[test]
fn invalid_rate_limits_are_refused_at_build() {
    let url = "https://hooks.example.com/x";
    let second = Duration::from_secs(1);
    for (builder, words) in [
        (
            WebhookSink::builder(url).rate_limit(0, second),
            "at least 1 request",
        ),
        (
            WebhookSink::builder(url).rate_limit(5, Duration::ZERO),
            "period of more than zero",
        ),
        (
            WebhookSink::builder(url)
                .rate_limit(5, second)
                .rate_limit_burst(0),
            "burst must be at least 1",
        ),
        (
            WebhookSink::builder(url).rate_limit_burst(3),
            "without rate_limit",
        ),
        (
            WebhookSink::builder(url).rate_limit(10, Duration::from_nanos(5)),
            "more than one request per nanosecond",
        ),
    ] {
        let err = builder.build().unwrap_err().to_string();
        assert!(err.contains(words), "{err}");
    }
    let most = WebhookSink::builder(url)
        .rate_limit(u32::MAX, Duration::from_secs(3600))
        .rate_limit_burst(u32::MAX);
    assert!(most.build().is_ok());
    let config: WebhookBuilder = serde_json::from_value(
        json!({"url": url, "rate_limit": {"requests": 5, "per_ms": 1000, "burst": 2}}),
    )
    .unwrap();
    assert!(config.build().is_ok());
    let zero: WebhookBuilder =
        serde_json::from_value(json!({"url": url, "rate_limit": {"requests": 0}})).unwrap();
    let err = zero.build().unwrap_err().to_string();
    assert!(err.contains("at least 1 request"), "{err}");
    let typo = serde_json::from_value::<WebhookBuilder>(
        json!({"url": url, "rate_limit": {"requests": 5, "brust": 2}}),
    );
    assert!(typo.unwrap_err().to_string().contains("brust"));
}
