//! Delivery trouble is visible: the first failed attempt of an endpoint
//! logs at `warn` with the status and the receiver's answer, later ones
//! within the interval do not, a recovery logs once at `info`, and each
//! scheduled retry is announced as `hookbus.delivery_retrying`.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use hookbus::webhook::WebhookSink;
use hookbus::{Bus, Event};
use serde_json::json;
use tokio_stream::StreamExt;
use tracing::Level;

use crate::logs::capture;
use crate::webhook_support::{Receiver, fast_retry};

fn ev(n: u64) -> Event {
    Event::new("order.created", json!({ "n": n })).unwrap()
}

#[tokio::test]
async fn the_first_failure_warns_and_the_recovery_informs() {
    let log = capture();
    let mut rx = Receiver::start(|_, n| {
        if n == 0 {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream down: maintenance",
            )
                .into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let bus = Bus::new().unwrap();
    let mut retrying = bus
        .subscriber("hookbus.delivery_retrying")
        .stream()
        .unwrap();
    let sink = WebhookSink::builder(&rx.url)
        .name("warn-orders")
        .retry(fast_retry(3))
        .build()
        .unwrap();
    let _sub = sink.subscribe(&bus).unwrap();
    let event = ev(1);
    let id = event.id().to_owned();
    bus.emit(event).unwrap();

    let announced = tokio::time::timeout(Duration::from_secs(20), retrying.next())
        .await
        .expect("the retry is announced")
        .unwrap();
    let data = announced.data();
    assert_eq!(data["webhook"], "warn-orders");
    assert_eq!(data["event_id"], id.as_str());
    assert_eq!(
        (data["attempt"].clone(), data["status"].clone()),
        (json!(1), json!(503))
    );
    assert!(sink.stats().failing_since.is_some());

    rx.next().await;
    rx.next().await;
    bus.shutdown(Duration::from_secs(20)).await;
    assert_eq!(sink.stats().delivered, 1);
    assert_eq!(sink.stats().failing_since, None);

    let failing = log.lines("webhook delivery failing", "warn-orders");
    assert_eq!(failing.len(), 1, "{failing:?}");
    let first = &failing[0];
    assert_eq!(first.level, Level::WARN);
    assert_eq!(first.field("webhook"), Some("warn-orders"));
    assert_eq!(first.field("status"), Some("Some(503)"));
    assert!(
        first
            .field("response")
            .unwrap()
            .contains("upstream down: maintenance"),
        "{first:?}"
    );
    let recovered = log.lines("webhook delivery recovered", "warn-orders");
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(recovered[0].level, Level::INFO);
    assert_eq!(recovered[0].field("failed_attempts"), Some("1"));
}

/// Within the warn interval, further failures of the same endpoint are not
/// warned about again (only the dead letter is); another endpoint warns on
/// its own first failure.
#[tokio::test]
async fn later_failures_within_the_interval_do_not_warn_again() {
    let log = capture();
    let down = Receiver::start(|_, _| StatusCode::BAD_GATEWAY.into_response()).await;
    let also_down = Receiver::start(|_, _| StatusCode::BAD_GATEWAY.into_response()).await;
    let a = WebhookSink::builder(&down.url)
        .name("quiet-a")
        .retry(fast_retry(3))
        .build_emitter()
        .unwrap();
    let b = WebhookSink::builder(&also_down.url)
        .name("quiet-b")
        .retry(fast_retry(2))
        .build_emitter()
        .unwrap();
    for n in 0..2 {
        assert!(!a.emit(ev(n)).await.is_delivered());
    }
    assert!(!b.emit(ev(9)).await.is_delivered());
    let failing = log.lines("webhook delivery failing", "quiet-");
    let names: Vec<_> = failing.iter().filter_map(|l| l.field("webhook")).collect();
    assert_eq!(names, ["quiet-a", "quiet-b"], "{failing:?}");
    assert!(failing.iter().all(|l| l.level == Level::WARN));
    assert!(log.lines("still failing", "quiet-").is_empty());
    // The other six failed attempts (5 of a, 1 of b) are at debug.
    let quiet = log.lines("webhook attempt failed", "quiet-");
    assert_eq!(quiet.len(), 6, "{quiet:?}");
    assert!(quiet.iter().all(|l| l.level == Level::DEBUG));
    assert_eq!(a.sink().stats().failed, 2);
}
