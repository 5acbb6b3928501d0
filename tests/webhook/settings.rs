//! One settings shape: the subscriber settings are a `SubscriberOptions`
//! (from the builder or a config file), and bad settings are typed errors
//! that keep their source.

use std::error::Error as _;
use std::time::Duration;

use hookbus::webhook::{
    GuardError, RateLimitError, RetryPolicy, RetryPolicyError, SsrfGuard, WebhookBuilder,
    WebhookError, WebhookManager, WebhookSink,
};
use hookbus::{Bus, Event, OverflowPolicy, SubscriberOptions};
use serde_json::json;

use crate::webhook_support::Receiver;

fn ev(n: u64) -> Event {
    Event::new("order.created", json!({ "n": n })).unwrap()
}

/// The options reach the subscription: a mailbox of 1 that drops the
/// newest, behind one request that never ends, drops what does not fit.
#[tokio::test]
async fn subscriber_options_from_the_builder_and_from_a_file_apply() {
    let rx = Receiver::hanging().await;
    let bus = Bus::new().unwrap();
    let manager = WebhookManager::new(&bus);
    let options = SubscriberOptions {
        capacity: 1,
        overflow: OverflowPolicy::DropNewest,
        concurrency: 1,
        ..SubscriberOptions::default()
    };
    let from_builder = manager
        .register(
            WebhookSink::builder(&rx.url)
                .name("builder")
                .retry_capacity(0)
                .options(options),
        )
        .unwrap();
    let file: WebhookBuilder = serde_json::from_value(json!({
        "url": rx.url,
        "name": "file",
        "capacity": 1,
        "overflow": "drop_newest",
        "concurrency": 1,
        "retry_capacity": 0,
    }))
    .unwrap();
    let from_file = manager.register(file).unwrap();
    for n in 0..3 {
        bus.emit(ev(n)).unwrap();
    }
    for id in [&from_builder, &from_file] {
        let dropped = manager.stats(id).unwrap().dropped;
        assert!(dropped >= 1, "{id}: {dropped} dropped");
    }
}

#[test]
fn bad_settings_are_typed_errors_with_their_source() {
    let err = WebhookSink::builder("https://hooks.example.com/x")
        .retry(RetryPolicy::none().with_max_attempts(0))
        .build()
        .unwrap_err();
    assert_eq!(err, WebhookError::Retry(RetryPolicyError::NoAttempts));

    let err = WebhookSink::builder("https://hooks.example.com/x")
        .retry_for("payment.*", RetryPolicy::none().with_jitter(2.0))
        .build()
        .unwrap_err();
    let WebhookError::RetryFor { pattern, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(pattern, "payment.*");
    let source = err.source().expect("the policy's error is the source");
    assert!(matches!(
        source.downcast_ref::<RetryPolicyError>(),
        Some(RetryPolicyError::Jitter(_))
    ));

    let err = WebhookSink::builder("https://hooks.example.com/x")
        .rate_limit(0, Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert_eq!(err, WebhookError::RateLimit(RateLimitError::NoRequests));
    let err = WebhookSink::builder("https://hooks.example.com/x")
        .rate_limit_burst(3)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        WebhookError::RateLimit(RateLimitError::BurstWithoutRate)
    );

    let err = WebhookSink::builder("https://hooks.example.com/x")
        .options(SubscriberOptions {
            capacity: 0,
            ..SubscriberOptions::default()
        })
        .build()
        .unwrap_err();
    assert!(matches!(err, WebhookError::Subscribe(_)), "{err:?}");
    assert!(err.source().is_some());

    assert!(matches!(
        SsrfGuard::new().allow("10.0.0.0/33"),
        Err(GuardError::BadPrefix { max: 32, .. })
    ));
    assert!(matches!(
        SsrfGuard::new().allow("intranet"),
        Err(GuardError::NotARange(_))
    ));
}
