//! WebhookManager: register, list, get, update, enable/disable, delete, test,
//! deliveries, retry_failed, stats.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::webhook_support::{Receiver, fast_retry};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hookbus::webhook::{WebhookError, WebhookId, WebhookManager, WebhookSink, WireFormat};
use hookbus::{Bus, Event};
use serde_json::json;

/// Collects `hookbus.delivery_failed` events.
struct FailureWatch {
    rx: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>>,
    _sub: hookbus::Subscription,
}

impl FailureWatch {
    async fn wait(&self, n: usize) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut rx = self.rx.lock().await;
        while out.len() < n {
            let v = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("failure not announced within 20 s")
                .unwrap();
            out.push(v);
        }
        out
    }
}

fn failure_watch(bus: &Bus) -> FailureWatch {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let sub = bus
        .on("hookbus.delivery_failed", move |e: &Event| {
            let _ = tx.send(e.data().clone());
        })
        .unwrap();
    FailureWatch {
        rx: tokio::sync::Mutex::new(rx),
        _sub: sub,
    }
}

fn ev(n: u32) -> Event {
    Event::new("evaluation.completed", json!({"n": n})).unwrap()
}

#[tokio::test]
async fn crud() {
    let a = Receiver::ok().await;
    let b = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let m = WebhookManager::new(&bus);
    let id1 = m
        .register(
            WebhookSink::builder(&a.url)
                .name("production-notifications")
                .secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .events(["evaluation.completed", "alert.triggered"]),
        )
        .unwrap();
    let id2 = m
        .register(WebhookSink::builder(&b.url).name("other"))
        .unwrap();
    let list = m.list();
    assert_eq!(list.len(), 2);
    let info = m.get(&id1).unwrap();
    assert_eq!(info.name, "production-notifications");
    assert!(info.signed && info.enabled);
    assert_eq!(info.events, vec!["evaluation.completed", "alert.triggered"]);
    assert!(info.id.as_str().starts_with("wh_"));
    assert!(!format!("{list:?}").contains("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));

    m.update(
        &id1,
        WebhookSink::builder(&a.url)
            .name("renamed")
            .format(WireFormat::Structured),
    )
    .unwrap();
    let info = m.get(&id1).unwrap();
    assert_eq!(info.name, "renamed");
    assert_eq!(info.format, WireFormat::Structured);

    m.disable(&id1).unwrap();
    assert!(!m.get(&id1).unwrap().enabled);
    m.enable(&id1).unwrap();
    assert!(m.get(&id1).unwrap().enabled);

    m.delete(&id2).unwrap();
    assert_eq!(m.list().len(), 1);
    let missing = WebhookId::from("wh_nope");
    assert!(matches!(m.get(&missing), Err(WebhookError::NotFound(_))));
    assert!(matches!(m.delete(&id2), Err(WebhookError::NotFound(_))));
    assert!(m.register(WebhookSink::builder("ftp://x")).is_err());
}

#[tokio::test]
async fn test_send_reports_status_body_and_latency() {
    let mut rx =
        Receiver::start(|_, _| (StatusCode::ACCEPTED, r#"{"status":"ok"}"#).into_response()).await;
    let bus = Bus::new().unwrap();
    let m = WebhookManager::new(&bus);
    let id = m
        .register(WebhookSink::builder(&rx.url).events(["nothing.matches"]))
        .unwrap();
    let r = m
        .test(
            &id,
            Event::new(
                "evaluation.completed",
                json!({"evaluation_id": "eval_test", "summary": {"triage_accuracy": 0.85}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert!(r.success);
    assert_eq!(r.status_code, Some(202));
    assert_eq!(r.response_excerpt.as_deref(), Some(r#"{"status":"ok"}"#));
    assert!(r.latency > Duration::ZERO);
    assert_eq!(rx.next().await.data()["evaluation_id"], "eval_test");
    let log = m.deliveries(&id, 10).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status_code, Some(202));
}

#[tokio::test]
async fn deliveries_and_stats() {
    let rx = Receiver::start(|r, _| {
        if r.data()["n"] == 1 {
            StatusCode::BAD_REQUEST.into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let bus = Bus::new().unwrap();
    let m = WebhookManager::new(&bus);
    let id = m
        .register(
            WebhookSink::builder(&rx.url)
                .retry(fast_retry(3))
                .log_capacity(2),
        )
        .unwrap();
    for n in 0..3 {
        bus.emit(ev(n)).unwrap();
    }
    bus.shutdown(Duration::from_secs(10)).await;
    let s = m.stats(&id).unwrap();
    assert_eq!((s.delivered, s.failed, s.attempts, s.retried), (2, 1, 3, 0));
    assert!(s.p50_latency.is_some() && s.p99_latency >= s.p50_latency);
    let log = m.deliveries(&id, 100).unwrap();
    assert_eq!(log.len(), 2, "the log is bounded");
    assert!(m.deliveries(&id, 1).unwrap().len() == 1);
}

#[tokio::test]
async fn retry_failed_sends_dead_letters_again() {
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let mut rx = Receiver::start(move |_, _| {
        if h.load(Ordering::SeqCst) {
            StatusCode::OK.into_response()
        } else {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    })
    .await;
    let bus = Bus::new().unwrap();
    let failures = failure_watch(&bus);
    let m = WebhookManager::new(&bus);
    let id = m
        .register(WebhookSink::builder(&rx.url).retry(fast_retry(2)))
        .unwrap();
    let since = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let mut ids = Vec::new();
    for n in 0..4 {
        let e = ev(n);
        ids.push(e.id().to_owned());
        bus.emit(e).unwrap();
    }
    // Wait until all four are dead-lettered (announced on the bus).
    failures.wait(4).await;
    assert_eq!(rx.drain().len(), 8);
    assert_eq!(m.stats(&id).unwrap().failed, 4);
    healthy.store(true, Ordering::SeqCst);
    let report = m.retry_failed(&id, since).await.unwrap();
    assert_eq!((report.retried, report.delivered, report.failed), (4, 4, 0));
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(rx.next().await.event_id().unwrap());
    }
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    assert_eq!(m.stats(&id).unwrap().delivered, 4);
    // Nothing left to retry.
    assert_eq!(m.retry_failed(&id, since).await.unwrap().retried, 0);
}

#[tokio::test]
async fn disabled_events_are_kept_and_retried_after_enable() {
    let mut rx = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let failures = failure_watch(&bus);
    let m = WebhookManager::new(&bus);
    let id = m.register(WebhookSink::builder(&rx.url)).unwrap();
    m.disable(&id).unwrap();
    let since = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    bus.emit(ev(7)).unwrap();
    let sink = m.sink_of(&id).unwrap();
    assert_eq!(failures.wait(1).await[0]["kind"], "disabled");
    assert_eq!(m.stats(&id).unwrap().dropped, 1);
    assert_eq!(rx.requests(), 0);
    assert_eq!(sink.dead_letters().len(), 1);
    m.enable(&id).unwrap();
    let report = m.retry_failed(&id, since).await.unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(rx.next().await.data()["n"], 7);
}

#[tokio::test]
async fn a_cancelled_retry_failed_puts_back_what_it_did_not_finish() {
    // Two dead letters: the endpoint refused connections.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let bus = Bus::new().unwrap();
    let m = WebhookManager::new(&bus);
    let id = m
        .register(
            WebhookSink::builder(format!("http://{closed}/hook"))
                .retry(hookbus::webhook::RetryPolicy::none()),
        )
        .unwrap();
    let sink = m.sink_of(&id).unwrap();
    for n in 0..2 {
        assert!(!sink.send(&[Arc::new(ev(n))]).await.is_delivered());
    }
    let letters: Vec<String> = sink
        .dead_letters()
        .iter()
        .map(|l| l.events[0].id().to_owned())
        .collect();
    assert_eq!(letters.len(), 2);

    // Now it points at a receiver that takes requests and never answers;
    // retry_failed (one at a time) is dropped once the first request arrives.
    let mut rx = Receiver::hanging().await;
    m.update(
        &id,
        WebhookSink::builder(&rx.url)
            .retry(hookbus::webhook::RetryPolicy::none())
            .concurrency(1),
    )
    .unwrap();
    let since = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    tokio::select! {
        r = m.retry_failed(&id, since) => panic!("finished against a receiver that never answers: {r:?}"),
        _ = rx.next() => {}
    }
    // Neither letter finished: both are still there for a later retry
    // (before: both were gone).
    let kept = m.sink_of(&id).unwrap().dead_letters();
    assert_eq!(kept.len(), 2, "{kept:?}");
    let ids: Vec<&str> = kept.iter().map(|l| l.events[0].id()).collect();
    assert_eq!(ids, letters);
}

/// The stats count attempts by class and latency bucket, dead letters
/// without copying them, and say why an endpoint is disabled.
#[tokio::test]
async fn stats_break_attempts_down_and_say_why_an_endpoint_is_off() {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use hookbus::webhook::{LATENCY_BUCKETS_MS, RetryPolicy, WebhookSink};
    // 503, 404, then 200 for everything after.
    let mut receiver = Receiver::start(|_, n| match n {
        0 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        1 => StatusCode::NOT_FOUND.into_response(),
        _ => StatusCode::OK.into_response(),
    })
    .await;
    let bus = Bus::new().unwrap();
    let manager = WebhookManager::new(&bus);
    let id = manager
        .register(
            WebhookSink::builder(receiver.url.clone())
                .allow_http(true)
                .ordered()
                .retry(RetryPolicy::exponential(
                    3,
                    Duration::from_millis(1),
                    Duration::from_millis(1),
                )),
        )
        .unwrap();
    // First event: 503, then 404 (final: dead-lettered). Second: 200.
    bus.publish(Event::new("a.b", json!({"n": 1})).unwrap())
        .await
        .unwrap();
    bus.publish(Event::new("a.b", json!({"n": 2})).unwrap())
        .await
        .unwrap();
    for _ in 0..3 {
        receiver.next().await;
    }
    bus.shutdown(Duration::from_secs(5)).await;
    let s = manager.stats(&id).unwrap();
    let c = s.attempts_by_class;
    assert_eq!(
        (
            c.success,
            c.client_error,
            c.server_error,
            c.redirect,
            c.no_response
        ),
        (1, 1, 1, 0, 0)
    );
    assert_eq!(s.latency.count, 3);
    assert_eq!(s.latency.cumulative.len(), LATENCY_BUCKETS_MS.len());
    assert_eq!(
        *s.latency.cumulative.last().unwrap(),
        3,
        "loopback answers in under 10 s"
    );
    assert!(s.latency.cumulative.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(s.dead_letters, 1);
    assert_eq!(s.disabled_reason, None);
    manager.disable(&id).unwrap();
    let s = manager.stats(&id).unwrap();
    assert_eq!(s.disabled_reason.as_deref(), Some("disabled by the user"));
    manager.enable(&id).unwrap();
    assert_eq!(manager.stats(&id).unwrap().disabled_reason, None);
}

/// An update that changes only the route key (`key(attribute, value)`)
/// must route by the new key: the subscription is re-routed in place, not
/// left under the old route.
#[tokio::test]
async fn an_update_of_the_route_key_routes_by_the_new_key() {
    let mut rx = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let m = WebhookManager::new(&bus);
    let id = m
        .register(
            WebhookSink::builder(&rx.url)
                .name("tenant-hook")
                .key("tenant", "acme"),
        )
        .unwrap();
    m.update(
        &id,
        WebhookSink::builder(&rx.url)
            .name("tenant-hook")
            .key("tenant", "globex"),
    )
    .unwrap();
    let for_tenant = |tenant: &str| {
        Event::builder("evaluation.completed")
            .extension("tenant", tenant)
            .build()
            .unwrap()
    };
    let globex = for_tenant("globex");
    let globex_id = globex.id().to_owned();
    bus.emit(for_tenant("acme")).unwrap();
    bus.emit(globex).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), rx.next())
        .await
        .expect("the new tenant's event is delivered");
    assert_eq!(got.event_id(), Some(globex_id));
    bus.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        rx.drain().len(),
        0,
        "the old tenant's event is not delivered"
    );
}
