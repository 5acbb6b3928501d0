//! Retries, Retry-After, timeouts, 410, redirects, dead letters and the circuit.

use std::sync::Arc;
use std::time::Duration;

use crate::webhook_support::{Receiver, fast_retry};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hookbus::webhook::{DeliveryStatus, WebhookEmitter, WebhookSink};
use hookbus::{Bus, Event, FailureKind};
use serde_json::json;
use tokio::sync::mpsc;

fn ev() -> Event {
    Event::new("decision.captured", json!({"decision_id": "abc123"})).unwrap()
}

#[tokio::test]
async fn fails_twice_then_succeeds_with_the_same_ce_id() {
    let mut rx = Receiver::start(|_, n| {
        if n < 2 {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let e = WebhookEmitter::builder(&rx.url)
        .secret("k")
        .retry(fast_retry(3))
        .build_emitter()
        .unwrap();
    let event = ev();
    let id = event.id().to_owned();
    let out = e.emit(event).await;
    assert_eq!(out.status, DeliveryStatus::Delivered);
    assert_eq!(out.attempts, 3);
    for _ in 0..3 {
        assert_eq!(rx.next().await.event_id().as_deref(), Some(id.as_str()));
    }
    let s = e.sink().stats();
    assert_eq!((s.delivered, s.failed, s.retried, s.attempts), (1, 0, 2, 3));
    let log = e.sink().deliveries(10);
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].attempt, 3);
    assert!(log[0].success && log[0].last);
    assert_eq!(log[2].status_code, Some(503));
}

#[tokio::test]
async fn default_policy_makes_three_attempts_then_dead_letters() {
    let rx = Receiver::start(|_, _| StatusCode::INTERNAL_SERVER_ERROR.into_response()).await;
    let mut policy = fast_retry(3);
    policy.max_attempts = hookbus::webhook::RetryPolicy::default().max_attempts;
    let e = WebhookEmitter::builder(&rx.url)
        .retry(policy)
        .build_emitter()
        .unwrap();
    let out = e.emit(ev()).await;
    assert_eq!(out.status, DeliveryStatus::Failed(FailureKind::Exhausted));
    assert_eq!(out.attempts, 3);
    assert_eq!(rx.requests(), 3);
    assert_eq!(e.sink().dead_letters().len(), 1);
    assert!(out.error.unwrap().contains("HTTP 500 after 3 attempt"));
}

#[tokio::test]
async fn retry_after_is_honoured_and_each_attempt_is_signed_afresh() {
    let mut rx = Receiver::start(|_, n| {
        if n == 0 {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let e = WebhookEmitter::builder(&rx.url)
        .secret("k")
        .signature(hookbus::signature::SignatureScheme::timestamped("Rubric").unwrap())
        .retry(fast_retry(2))
        .build_emitter()
        .unwrap();
    assert!(e.emit(ev()).await.is_delivered());
    let first = rx.next().await;
    let second = rx.next().await;
    // A lower bound only: the retry waited for Retry-After, not the 1 ms backoff.
    assert!(second.at.duration_since(first.at) >= Duration::from_millis(950));
    let ts = |r: &crate::webhook_support::Received| -> i64 {
        r.header("x-rubric-timestamp").unwrap().parse().unwrap()
    };
    assert!(
        ts(&second) > ts(&first),
        "the timestamp is taken afresh on each attempt"
    );
    for r in [&first, &second] {
        let mut signed = format!("{}.", ts(r)).into_bytes();
        signed.extend_from_slice(&r.body);
        assert_eq!(
            r.header("x-rubric-signature").unwrap(),
            format!("sha256={}", crate::webhook_support::hmac_hex(b"k", &signed))
        );
    }
}

#[tokio::test]
async fn timeout_is_a_retryable_failure() {
    let rx = Receiver::hanging().await;
    let e = WebhookEmitter::builder(&rx.url)
        .timeout(Duration::from_millis(100))
        .retry(fast_retry(2))
        .build_emitter()
        .unwrap();
    let out = e.emit(ev()).await;
    assert_eq!(out.status, DeliveryStatus::Failed(FailureKind::Exhausted));
    assert_eq!(out.attempts, 2);
    assert_eq!(rx.requests(), 2);
    assert!(
        out.error.as_deref().unwrap().contains("timed out"),
        "{out:?}"
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_is_announced() {
    let rx = Receiver::start(|_, _| StatusCode::GONE.into_response()).await;
    let bus = Bus::new().unwrap();
    let (tx, mut announced) = mpsc::unbounded_channel();
    let _watch = bus
        .on("hookbus.endpoint_disabled", move |e: &Event| {
            let _ = tx.send(e.data().clone());
        })
        .unwrap();
    let sink = WebhookSink::builder(&rx.url)
        .name("gone")
        .retry(fast_retry(5))
        .build()
        .unwrap();
    let _sub = sink.subscribe(&bus).unwrap();
    bus.emit(ev()).unwrap();
    let data = tokio::time::timeout(Duration::from_secs(20), announced.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(data["webhook"], "gone");
    assert!(data["reason"].as_str().unwrap().contains("410"));
    assert!(!sink.is_enabled());
    assert_eq!(rx.requests(), 1, "410 is final");
    // Later events are refused without a request, kept for retry_failed.
    let out = sink.send(&[Arc::new(ev())]).await;
    assert_eq!(out.status, DeliveryStatus::Failed(FailureKind::Disabled));
    assert_eq!(rx.requests(), 1);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = Receiver::ok().await;
    let target_url = target.url.clone();
    let rx = Receiver::start(move |_, _| {
        (StatusCode::FOUND, [("location", target_url.clone())]).into_response()
    })
    .await;
    let e = WebhookEmitter::builder(&rx.url)
        .retry(fast_retry(3))
        .build_emitter()
        .unwrap();
    let out = e.emit(ev()).await;
    assert_eq!(out.status, DeliveryStatus::Failed(FailureKind::Permanent));
    assert_eq!(out.status_code, Some(302));
    assert_eq!(out.attempts, 1);
    assert!(out.error.unwrap().contains("redirect"));
    assert_eq!(target.requests(), 0);
}

#[tokio::test]
async fn client_errors_are_final_and_reported_on_the_bus() {
    let rx =
        Receiver::start(|_, _| (StatusCode::BAD_REQUEST, "missing field x").into_response()).await;
    let bus = Bus::new().unwrap();
    let (tx, mut failed) = mpsc::unbounded_channel();
    let _watch = bus
        .on("hookbus.delivery_failed", move |e: &Event| {
            let _ = tx.send(e.data().clone());
        })
        .unwrap();
    let sink = WebhookSink::builder(&rx.url)
        .name("strict")
        .secret("topsecret")
        .retry(fast_retry(5))
        .build()
        .unwrap();
    let _sub = sink.subscribe(&bus).unwrap();
    let e = ev();
    let id = e.id().to_owned();
    bus.emit(e).unwrap();
    let data = tokio::time::timeout(Duration::from_secs(20), failed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(data["subscriber"], "strict");
    assert_eq!(data["event_id"], id);
    assert_eq!(data["kind"], "permanent error");
    assert!(!data.to_string().contains("topsecret"));
    assert_eq!(rx.requests(), 1);
    let log = sink.deliveries(1);
    assert_eq!(log[0].response_excerpt.as_deref(), Some("missing field x"));
}

#[tokio::test]
async fn consecutive_failures_open_the_circuit() {
    let rx = Receiver::start(|_, _| StatusCode::BAD_GATEWAY.into_response()).await;
    let e = WebhookEmitter::builder(&rx.url)
        .retry(fast_retry(1))
        .disable_after(Some(3))
        .build_emitter()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            e.emit(ev()).await.status,
            DeliveryStatus::Failed(FailureKind::Exhausted)
        );
    }
    assert!(!e.sink().is_enabled());
    assert_eq!(
        e.emit(ev()).await.status,
        DeliveryStatus::Failed(FailureKind::Disabled)
    );
    assert_eq!(rx.requests(), 3);
    e.sink().enable();
    assert_eq!(e.emit(ev()).await.attempts, 1);
    assert_eq!(rx.requests(), 4);
}

#[tokio::test]
async fn connection_refused_is_retried_then_exhausted() {
    // Bind then drop a listener: nothing listens on that port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = WebhookEmitter::builder(format!("http://127.0.0.1:{port}/x"))
        .retry(fast_retry(2))
        .build_emitter()
        .unwrap();
    let out = e.emit(ev()).await;
    assert_eq!(out.status, DeliveryStatus::Failed(FailureKind::Exhausted));
    assert_eq!(out.attempts, 2);
    assert!(out.error.unwrap().contains("connection failed"));
}

#[tokio::test]
async fn a_retrying_event_does_not_hold_up_others() {
    // The first request fails and its retry is 10 s away; the second event
    // must go out meanwhile.
    let mut rx = Receiver::start(|_, n| {
        if n == 0 {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let bus = Bus::new().unwrap();
    let policy = hookbus::webhook::RetryPolicy::exponential(
        2,
        Duration::from_secs(10),
        Duration::from_secs(10),
    )
    .with_jitter(0.0);
    let _sub = WebhookSink::builder(&rx.url)
        .retry(policy)
        .build()
        .unwrap()
        .subscribe(&bus)
        .unwrap();
    bus.emit(Event::new("a.b", json!({"n": 0})).unwrap())
        .unwrap();
    assert_eq!(rx.next().await.data()["n"], 0);
    bus.emit(Event::new("a.b", json!({"n": 1})).unwrap())
        .unwrap();
    assert_eq!(rx.next().await.data()["n"], 1);
    assert_eq!(rx.requests(), 2, "the first event's retry is still waiting");
}

/// Per-key ordering: a2 waits for a1 (which fails once and is retried),
/// while b1 goes out meanwhile.
#[tokio::test]
async fn ordered_by_key_holds_only_the_same_key() {
    use axum::body::Bytes;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::sync::Notify;

    #[derive(Default)]
    struct State {
        log: Mutex<Vec<(String, u16)>>,
        b_seen: AtomicBool,
        b_arrived: Notify,
        a1_failed: AtomicBool,
    }
    let state = Arc::new(State::default());
    let (done_tx, mut done) = mpsc::unbounded_channel::<()>();
    let st = state.clone();
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let st = st.clone();
        let done_tx = done_tx.clone();
        async move {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            // Structured mode (the default): the data is under "data".
            let name = v["data"]["name"].as_str().unwrap().to_owned();
            let status = if name == "a1" && !st.a1_failed.swap(true, Ordering::SeqCst) {
                // Hold a1's first answer until b1 has arrived, then fail it.
                while !st.b_seen.load(Ordering::SeqCst) {
                    let n = st.b_arrived.notified();
                    if st.b_seen.load(Ordering::SeqCst) {
                        break;
                    }
                    n.await;
                }
                503
            } else {
                if name == "b1" {
                    st.b_seen.store(true, Ordering::SeqCst);
                    st.b_arrived.notify_waiters();
                }
                200
            };
            st.log.lock().unwrap().push((name, status));
            let _ = done_tx.send(());
            StatusCode::from_u16(status).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let bus = Bus::new().unwrap();
    let _sub = WebhookSink::builder(&url)
        .ordered_by("data.key")
        .retry(fast_retry(3))
        .build()
        .unwrap()
        .subscribe(&bus)
        .unwrap();
    for (name, key) in [("a1", "A"), ("a2", "A"), ("b1", "B")] {
        bus.emit(Event::new("a.b", json!({"name": name, "key": key})).unwrap())
            .unwrap();
    }
    for _ in 0..4 {
        tokio::time::timeout(Duration::from_secs(20), done.recv())
            .await
            .unwrap()
            .unwrap();
    }
    let log = state.log.lock().unwrap().clone();
    let names: Vec<&str> = log.iter().map(|(n, _)| n.as_str()).collect();
    let pos = |n: &str, s: u16| log.iter().position(|(x, st)| x == n && *st == s).unwrap();
    assert!(
        pos("b1", 200) < pos("a1", 200),
        "b1 is not held up by key A: {names:?}"
    );
    assert!(
        pos("a1", 200) < pos("a2", 200),
        "a2 waits for a1's retry: {names:?}"
    );
    assert_eq!(log.len(), 4, "{names:?}");
}

/// A shutdown deadline abandons a delivery waiting for its retry: the bus
/// reports it pending and the retry never goes out.
#[tokio::test]
async fn shutdown_deadline_abandons_a_waiting_retry() {
    let mut rx = Receiver::start(|_, _| StatusCode::SERVICE_UNAVAILABLE.into_response()).await;
    let bus = Bus::new().unwrap();
    let policy = hookbus::webhook::RetryPolicy::exponential(
        3,
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    )
    .with_jitter(0.0);
    let sink = WebhookSink::builder(&rx.url)
        .name("slow-retry")
        .retry(policy)
        .build()
        .unwrap();
    let _sub = sink.subscribe(&bus).unwrap();
    bus.emit(ev()).unwrap();
    rx.next().await;
    let report = bus.shutdown(Duration::from_millis(200)).await;
    let s = report.subscriber("slow-retry").unwrap();
    assert_eq!(s.pending, 1, "{report}");
    assert!(!s.completed);
    assert_eq!(sink.stats().delivered + sink.stats().failed, 0);
    assert_eq!(rx.requests(), 1);
}

/// With two sending slots, four events waiting an hour for their retries
/// must not hold up the events behind them: a waiting retry gives its slot
/// back. (Before, each kept its slot through the wait, and nothing else
/// went out for an hour.)
#[tokio::test]
async fn retries_waiting_for_their_next_attempt_hold_no_sending_slot() {
    let mut rx = Receiver::start(|r, _| {
        if r.data()["fail"] == true {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let bus = Bus::new().unwrap();
    let hour = Duration::from_secs(3600);
    let sink = WebhookSink::builder(&rx.url)
        .name("two-slots")
        .concurrency(2)
        .retry(hookbus::webhook::RetryPolicy::exponential(3, hour, hour).with_jitter(0.0))
        .build()
        .unwrap();
    let _sub = sink.subscribe(&bus).unwrap();
    for n in 0..4 {
        bus.emit(Event::new("a.b", json!({"n": n, "fail": true})).unwrap())
            .unwrap();
    }
    for n in 4..9 {
        bus.emit(Event::new("a.b", json!({"n": n, "fail": false})).unwrap())
            .unwrap();
    }
    let mut good = Vec::new();
    while good.len() < 5 {
        let r = rx.next().await;
        if r.data()["fail"] == false {
            good.push(r.data()["n"].as_u64().unwrap());
        }
    }
    good.sort_unstable();
    assert_eq!(good, [4, 5, 6, 7, 8]);
    assert_eq!(
        rx.requests(),
        9,
        "one attempt each; the retries are an hour away"
    );
    // The four are counted as waiting once their first answers are in.
    tokio::time::timeout(Duration::from_secs(20), async {
        while sink.stats().waiting_retry < 4 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("four deliveries wait for a retry");
    let report = bus.shutdown(Duration::from_millis(100)).await;
    let s = report.subscriber("two-slots").unwrap();
    assert_eq!((s.stats.delivered, s.pending), (5, 4), "{report}");
}

/// `ordered()` is the opt-in mode that does block: the second event waits
/// until the first one's retries are done.
#[tokio::test]
async fn ordered_mode_holds_later_events_until_a_retry_is_done() {
    let mut rx = Receiver::start(|_, n| {
        if n < 2 {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let bus = Bus::new().unwrap();
    let sink = WebhookSink::builder(&rx.url)
        .ordered()
        .retry(hookbus::webhook::RetryPolicy::exponential(
            3,
            Duration::from_millis(20),
            Duration::from_millis(20),
        ))
        .build()
        .unwrap();
    let _sub = sink.subscribe(&bus).unwrap();
    for n in 0..2 {
        bus.emit(Event::new("a.b", json!({ "n": n })).unwrap())
            .unwrap();
    }
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(rx.next().await.data()["n"].as_u64().unwrap());
    }
    assert_eq!(order, [0, 0, 0, 1]);
    bus.shutdown(Duration::from_secs(20)).await;
    assert_eq!(sink.stats().delivered, 2);
}

#[test]
fn ordered_mode_refuses_a_concurrency_above_one() {
    let err = WebhookSink::builder("http://127.0.0.1:9/hook")
        .ordered()
        .concurrency(4)
        .build()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("ordered() sends one request at a time") && msg.contains("ordered_by"),
        "{msg}"
    );
}

/// A concurrency above what a semaphore holds (e.g. `usize::MAX` for "no
/// limit", which a subscriber accepts) must still subscribe and deliver, not
/// panic while making the sending slots.
#[tokio::test]
async fn a_concurrency_of_usize_max_subscribes_and_delivers() {
    let mut rx = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let sink = WebhookSink::builder(&rx.url)
        .concurrency(usize::MAX)
        .build()
        .unwrap();
    let _sub = sink.subscribe(&bus).unwrap();
    bus.emit(ev()).unwrap();
    assert_eq!(rx.next().await.data()["decision_id"], "abc123");
    bus.shutdown(Duration::from_secs(20)).await;
    assert_eq!(sink.stats().delivered, 1);
}

/// A receiver that always answers 503 and notes the virtual time and type
/// of each request.
async fn failing_timed() -> (
    Receiver,
    Arc<std::sync::Mutex<Vec<(String, tokio::time::Instant)>>>,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let rx = Receiver::start(move |r, _| {
        let ty = r.event_type().unwrap_or_default();
        s.lock().unwrap().push((ty, tokio::time::Instant::now()));
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    })
    .await;
    (rx, seen)
}

/// Longer than any wait in these tests, so the paused clock never reaches a
/// request timeout.
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// `retry_for` picks the policy by event type, the first matching rule
/// winning; other events get the default.
#[tokio::test(start_paused = true)]
async fn retry_for_chooses_the_policy_by_event_type() {
    use hookbus::webhook::RetryPolicy;
    let (rx, seen) = failing_timed().await;
    let second = Duration::from_secs(1);
    let e = WebhookEmitter::builder(&rx.url)
        .timeout(WEEK)
        .retry_for("metrics.*", RetryPolicy::none())
        .retry_for(
            "payment.*",
            RetryPolicy::exponential(4, second, second).with_jitter(0.0),
        )
        // Never reached: payment.* matches first.
        .retry_for("payment.refund", RetryPolicy::none())
        .retry(RetryPolicy::exponential(2, second * 10, second * 10).with_jitter(0.0))
        .build_emitter()
        .unwrap();
    let attempts = |ty: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == ty)
            .map(|(_, at)| *at)
            .collect::<Vec<_>>()
    };
    for (ty, n, gap) in [
        ("payment.refund", 4, second),
        ("metrics.cpu", 1, Duration::ZERO),
        ("decision.captured", 2, second * 10),
    ] {
        let out = e.emit(Event::new(ty, json!({})).unwrap()).await;
        assert_eq!(out.attempts, n, "{ty}");
        let times = attempts(ty);
        assert_eq!(times.len(), n as usize, "{ty}");
        for w in times.windows(2) {
            assert_eq!(w[1] - w[0], gap, "{ty}: {times:?}");
        }
    }
    let err = WebhookSink::builder(&rx.url)
        .retry_for("payment.*", RetryPolicy::none().with_max_attempts(0))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("retry_for(\"payment.*\")"), "{err}");
    let err = WebhookSink::builder(&rx.url)
        .retry_for("payment..x", RetryPolicy::none())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, hookbus::webhook::WebhookError::Pattern(_)),
        "{err}"
    );
}

/// The Standard Webhooks preset under the paused clock: 8 attempts, each
/// wait within ±20 % of 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
#[tokio::test(start_paused = true)]
async fn standard_webhooks_preset_follows_its_schedule() {
    let (rx, seen) = failing_timed().await;
    let e = WebhookEmitter::builder(&rx.url)
        .timeout(WEEK)
        .retry(hookbus::webhook::RetryPolicy::standard_webhooks())
        .build_emitter()
        .unwrap();
    let start = tokio::time::Instant::now();
    let out = e.emit(ev()).await;
    assert_eq!(out.status, DeliveryStatus::Failed(FailureKind::Exhausted));
    assert_eq!(out.attempts, 8);
    let times: Vec<_> = seen.lock().unwrap().iter().map(|(_, t)| *t).collect();
    assert_eq!(times.len(), 8);
    assert_eq!(times[0], start, "the first attempt is immediate");
    let schedule = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];
    for (w, secs) in times.windows(2).zip(schedule) {
        let gap = (w[1] - w[0]).as_secs_f64();
        let base = f64::from(secs);
        assert!(
            gap >= base * 0.8 && gap <= base * 1.2,
            "waited {gap} s where the schedule says {base} s ± 20 %"
        );
    }
    let total = (times[7] - start).as_secs_f64();
    assert!(
        (0.8 * 99_305.0..=1.2 * 99_305.0).contains(&total),
        "{total} s in all"
    );
}

/// The policy's arithmetic, no I/O.
mod policy {
    use hookbus::webhook::retry::{
        MAX_WAIT, RetryPolicy, StatusClass, classify, parse_retry_after,
    };
    use std::time::Duration;

    #[test]
    fn exponential_doubles_and_caps() {
        let p = RetryPolicy::exponential(6, Duration::from_millis(100), Duration::from_millis(350));
        assert_eq!(p.base_delay(2), Duration::from_millis(100));
        assert_eq!(p.base_delay(3), Duration::from_millis(200));
        assert_eq!(p.base_delay(4), Duration::from_millis(350));
    }

    #[test]
    fn svix_schedule() {
        let p = RetryPolicy::standard_webhooks();
        assert_eq!(p.base_delay(2), Duration::from_secs(5));
        assert_eq!(p.base_delay(3), Duration::from_secs(300));
        assert_eq!(p.base_delay(8), Duration::from_secs(36000));
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let p = RetryPolicy::exponential(3, Duration::from_secs(10), Duration::from_secs(10));
        for _ in 0..200 {
            let d = p.delay(2, None);
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(12),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_bounded() {
        let p = RetryPolicy::exponential(3, Duration::from_millis(1), Duration::from_millis(1))
            .with_jitter(0.0);
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(3600))),
            Duration::from_secs(300)
        );
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn huge_delays_and_unchecked_jitter_do_not_panic() {
        // "No cap": Duration::MAX as the longest delay, with the default
        // ±20 %, saturates at MAX_WAIT (so `now + delay` cannot overflow).
        let p = RetryPolicy::exponential(5, Duration::MAX, Duration::MAX);
        assert_eq!(p.delay(2, None), MAX_WAIT);
        assert_eq!(p.delay(2, Some(Duration::MAX)), MAX_WAIT);
        let unbounded = RetryPolicy {
            max_retry_after: Duration::MAX,
            ..RetryPolicy::none()
        };
        assert_eq!(
            unbounded.retry_after(Duration::from_secs(u64::MAX)),
            MAX_WAIT
        );
        assert!(std::time::SystemTime::now().checked_add(MAX_WAIT).is_some());
        // Fields set directly, without validate().
        for jitter in [5.0, -1.0, f64::INFINITY, f64::NAN] {
            let p = RetryPolicy::exponential(3, Duration::from_secs(1), Duration::from_secs(1))
                .with_jitter(jitter);
            let d = p.delay(2, None);
            assert!(d <= Duration::from_secs(2), "{jitter}: {d:?}");
        }
    }

    #[test]
    fn classes() {
        assert_eq!(classify(204), StatusClass::Success);
        assert_eq!(classify(429), StatusClass::Retryable);
        assert_eq!(classify(503), StatusClass::Retryable);
        assert_eq!(classify(410), StatusClass::Gone);
        assert_eq!(classify(302), StatusClass::Final);
        assert_eq!(classify(400), StatusClass::Final);
    }
}
