//! Values at the edge of what the API accepts, and the defects found by
//! probing them: no setting or answer panics a delivery, `update` swaps in
//! place (durable webhooks too, one rate-limit bucket), and the OAuth2
//! token endpoint's odd answers are handled.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use hookbus::webhook::{
    DeliveryStatus, OAuth2, RetryPolicy, SsrfGuard, WebhookManager, WebhookSink,
};
use hookbus::{Bus, Event, FailureKind, WebhookEmitter};
use serde_json::json;

use crate::webhook_support::{Receiver, fast_retry};

fn ev(n: u64) -> Event {
    Event::new("order.created", json!({ "n": n })).unwrap()
}

/// Longer than any wait here, so the paused clock never reaches a request
/// timeout.
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// A 429 whose `Retry-After` is `u64::MAX` seconds, obeyed without a cap
/// (`max_retry_after: Duration::MAX`): the pause saturates instead of
/// overflowing the clock, and the event is counted and dead-lettered.
#[tokio::test]
async fn an_unbounded_retry_after_saturates_instead_of_panicking() {
    let rx = Receiver::start(|_, _| {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "18446744073709551615")],
        )
            .into_response()
    })
    .await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .retry(RetryPolicy {
            max_retry_after: Duration::MAX,
            ..fast_retry(1)
        })
        .build_emitter()
        .unwrap();
    let outcome = emitter.emit(ev(1)).await;
    assert_eq!(
        outcome.status,
        DeliveryStatus::Failed(FailureKind::Exhausted),
        "{outcome:?}"
    );
    let stats = emitter.sink().stats();
    assert_eq!(stats.failed, 1);
    assert_eq!(stats.dead_letters, 1);
    // Paused for as long as asked, within what the clock can hold.
    let until = stats.paused_until.expect("the endpoint is paused");
    assert!(until > time::OffsetDateTime::now_utc() + time::Duration::days(365));
    let dead = emitter.sink().dead_letters();
    assert!(!dead[0].error.contains("panic"), "{}", dead[0].error);
}

/// A durable webhook whose backoff is `Duration::MAX`: the retry is
/// scheduled (and persisted) at the far end of the clock, not a panic, and
/// the event stays pending in the store for a restart.
#[cfg(feature = "durable")]
#[tokio::test]
async fn a_durable_backoff_of_duration_max_is_kept_pending() {
    use tokio_stream::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let store = hookbus::store::Store::open(dir.path().join("hooks.redb")).unwrap();
    let mut rx = Receiver::start(|_, _| StatusCode::SERVICE_UNAVAILABLE.into_response()).await;
    let bus = Bus::new().unwrap();
    let mut retrying = bus
        .subscriber("hookbus.delivery_retrying")
        .stream()
        .unwrap();
    let sink = WebhookSink::builder(&rx.url)
        .name("forever")
        .retry(RetryPolicy::exponential(3, Duration::MAX, Duration::MAX))
        .durable(&store)
        .build()
        .unwrap();
    let _sub = sink.subscribe(&bus).unwrap();
    let event = ev(1);
    let id = event.id().to_owned();
    bus.emit(event).unwrap();
    rx.next().await;
    let announced = tokio::time::timeout(Duration::from_secs(20), retrying.next())
        .await
        .expect("the retry is announced")
        .unwrap();
    assert_eq!(announced.data()["event_id"], id.as_str());
    assert_eq!(announced.data()["next_attempt"], 2);
    let stats = sink.stats();
    assert_eq!(stats.failed, 0, "waiting for its retry, not failed");
    assert_eq!(stats.dead_letters, 0);
    bus.shutdown(Duration::from_millis(200)).await;
    store.sync().await.unwrap();
    assert_eq!(store.pending("forever").unwrap(), 1);
    assert_eq!(store.dead_letter_count().unwrap(), 0);
}

/// `update` on a durable webhook swaps the endpoint in place: the same
/// name, the same store records (a dead letter stays, and `retry_failed`
/// sends it to the new URL), one subscription.
#[cfg(feature = "durable")]
#[tokio::test]
async fn a_durable_webhook_is_updated_in_place() {
    use tokio_stream::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let store = hookbus::store::Store::open(dir.path().join("hooks.redb")).unwrap();
    let mut old = Receiver::start(|_, _| StatusCode::BAD_REQUEST.into_response()).await;
    let mut new = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let mut failed = bus.subscriber("hookbus.delivery_failed").stream().unwrap();
    let manager = WebhookManager::new(&bus);
    let id = manager
        .register(
            WebhookSink::builder(&old.url)
                .name("orders")
                .retry(fast_retry(1))
                .durable(&store),
        )
        .unwrap();
    bus.emit(ev(1)).unwrap();
    old.next().await;
    tokio::time::timeout(Duration::from_secs(20), failed.next())
        .await
        .expect("the 400 is dead-lettered")
        .unwrap();
    // No name given: the webhook keeps its own.
    manager
        .update(
            &id,
            WebhookSink::builder(&new.url)
                .retry(fast_retry(1))
                .durable(&store),
        )
        .expect("a durable webhook updates in place");
    assert_eq!(manager.get(&id).unwrap().name, "orders");
    assert_eq!(bus.stats().subscribers.len(), 2, "one webhook subscription");
    store.sync().await.unwrap();
    assert_eq!(store.dead_letters(Some("orders"), 10).unwrap().len(), 1);

    bus.emit(ev(2)).unwrap();
    assert_eq!(new.next().await.data()["n"], 2);
    let report = manager
        .retry_failed(&id, time::OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap();
    assert_eq!((report.retried, report.delivered), (1, 1));
    assert_eq!(new.next().await.data()["n"], 1);
    store.sync().await.unwrap();
    assert_eq!(store.dead_letters(Some("orders"), 10).unwrap().len(), 0);
    assert_eq!(old.requests(), 1);

    // Its events change in place (re-routed); its mailbox-side settings
    // cannot, on a durable webhook.
    manager
        .update(
            &id,
            WebhookSink::builder(&new.url)
                .events(["order.*"])
                .durable(&store),
        )
        .expect("new events re-route the durable webhook in place");
    let err = manager
        .update(
            &id,
            WebhookSink::builder(&new.url)
                .events(["order.*"])
                .concurrency(3)
                .durable(&store),
        )
        .unwrap_err();
    assert!(
        matches!(err, hookbus::webhook::WebhookError::DurableResubscribe(ref n) if n == "orders"),
        "{err}"
    );
}

/// An `update` of a durable webhook that changes its event types re-routes
/// its one subscription in place while an emitter thread races it: every
/// event is routed by the old types or the new ones, never neither and
/// never both, so the receiver gets exactly the old type's events up to a
/// cut and the new type's from it, each once; the name, the subscription
/// and the store stay; `stats()` and `get` show the new pattern list.
#[cfg(feature = "durable")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_webhook_changes_its_event_types_in_place_while_events_flow() {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    const AFTER: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let store = hookbus::store::Store::open(dir.path().join("hooks.redb")).unwrap();
    let mut rx = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let manager = WebhookManager::new(&bus);
    let url = rx.url.clone();
    let builder = |events: &[&str]| {
        WebhookSink::builder(&url)
            .name("orders")
            .events(events.iter().copied())
            .ordered()
            // Lossless: a full mailbox refuses the emit (offered again).
            .overflow(hookbus::OverflowPolicy::Block)
            .durable(&store)
    };
    let id = manager.register(builder(&["order.created"])).unwrap();

    // One thread emits `order.created` and `order.paid` in turn, numbered,
    // until a while after the update.
    let updated = Arc::new(AtomicBool::new(false));
    let emitter = {
        let (bus, updated) = (bus.clone(), updated.clone());
        std::thread::spawn(move || {
            let mut seq = 0u64;
            let mut after = 0;
            while after < AFTER {
                if updated.load(Ordering::Acquire) {
                    after += 1;
                }
                let ty = if seq.is_multiple_of(2) {
                    "order.created"
                } else {
                    "order.paid"
                };
                let mut event = Event::new(ty, json!({ "seq": seq })).unwrap();
                // A full mailbox or a store behind refuses the emit whole
                // (nobody got it): offer the same event again.
                loop {
                    match bus.emit(event) {
                        Ok(()) => break,
                        Err(hookbus::EmitError::Store(e, _) | hookbus::EmitError::Full(e)) => {
                            event = e;
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("emit failed: {e}"),
                    }
                }
                seq += 1;
            }
            seq
        })
    };
    let mut got: BTreeMap<u64, (String, usize)> = BTreeMap::new();
    let take = |r: crate::webhook_support::Received, got: &mut BTreeMap<u64, (String, usize)>| {
        let seq = r.data()["seq"].as_u64().expect("a numbered event");
        let ty = r.event_type().unwrap();
        got.entry(seq).or_insert((ty, 0)).1 += 1;
        seq
    };
    // The update lands while events flow: some of the old type are in.
    for _ in 0..20 {
        let r = rx.next().await;
        take(r, &mut got);
    }
    manager
        .update(&id, builder(&["order.paid"]))
        .expect("a durable webhook changes its event types in place");
    updated.store(true, Ordering::Release);
    let emitted = tokio::task::spawn_blocking(move || emitter.join().unwrap())
        .await
        .unwrap();
    // A last event of the new type, emitted after everything: ordered
    // delivery brings it last.
    bus.publish(Event::new("order.paid", json!({ "seq": emitted })).unwrap())
        .await
        .unwrap();
    while take(rx.next().await, &mut got) != emitted {}

    assert!(got.values().all(|(_, n)| *n == 1), "an event came twice");
    // Each emit was routed by the old types or the new ones: there is a
    // cut in emit order before which exactly the old type's events came,
    // and from which exactly the new type's. (An emit refused by a full
    // mailbox and offered again after the update is routed by the new
    // types: the cut lies in the span between the last old delivery and
    // the first new one.)
    let old_type = |seq: u64| seq.is_multiple_of(2) && seq < emitted;
    let last_old = got.keys().copied().filter(|&s| old_type(s)).max().unwrap();
    let first_new = got.keys().copied().find(|&s| !old_type(s)).unwrap();
    let cut = (last_old + 1..=first_new).find(|&cut| {
        (0..=emitted).all(|seq| got.contains_key(&seq) == (old_type(seq) == (seq < cut)))
    });
    assert!(
        cut.is_some(),
        "no cut explains the deliveries: last old {last_old}, first new {first_new}, missing {:?}",
        (0..=emitted)
            .filter(|s| !got.contains_key(s))
            .filter(|&s| (s < last_old && old_type(s)) || (s > first_new && !old_type(s)))
            .take(10)
            .collect::<Vec<_>>()
    );
    assert!(
        last_old > 20 && first_new < emitted,
        "the update raced the emits"
    );

    let info = manager.get(&id).unwrap();
    assert_eq!(
        (info.name.as_str(), info.events),
        ("orders", vec!["order.paid".to_owned()])
    );
    let subs = bus.stats().subscribers;
    assert_eq!(subs.len(), 1, "one subscription, the same");
    assert_eq!(subs[0].pattern, "order.paid");
    let report = bus.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.subscribers.len(), 1);
    let stats = &report.subscribers[0].stats;
    assert_eq!((stats.delivered as usize, stats.failed), (got.len(), 0));
    assert_eq!(manager.stats(&id).unwrap().delivered as usize, got.len());
    store.sync().await.unwrap();
    assert_eq!(store.dead_letters(Some("orders"), 10).unwrap().len(), 0);
    assert!(rx.drain().is_empty(), "nothing more came");
}

/// An `update` that changes the events of a (non-durable) webhook, its
/// condition and filter expression, keeps its one subscription: the
/// old types stop, the new ones start, and the new condition applies.
#[tokio::test]
async fn an_update_re_routes_events_condition_and_filter_in_place() {
    let mut rx = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let manager = WebhookManager::new(&bus);
    let id = manager
        .register(
            WebhookSink::builder(&rx.url)
                .name("hook")
                .events(["order.created"]),
        )
        .unwrap();
    let sub_id = bus.stats().subscribers[0].id;
    manager
        .update(
            &id,
            WebhookSink::builder(&rx.url)
                .name("hook")
                .events(["invoice.*"])
                .condition(|e: &Event| e.data()["n"].as_u64() != Some(2)),
        )
        .unwrap();
    let subs = bus.stats().subscribers;
    assert_eq!(
        (subs.len(), subs[0].id),
        (1, sub_id),
        "the same subscription"
    );
    assert_eq!(subs[0].pattern, "invoice.*");
    for (ty, n) in [
        ("order.created", 1),
        ("invoice.sent", 2),
        ("invoice.sent", 3),
    ] {
        bus.emit(Event::new(ty, json!({ "n": n })).unwrap())
            .unwrap();
    }
    assert_eq!(rx.next().await.data()["n"], 3);
    manager
        .update(
            &id,
            WebhookSink::builder(&rx.url)
                .name("hook")
                .events(["order.created", "invoice.*"])
                .filter("n > 4"),
        )
        .unwrap();
    assert_eq!(
        bus.stats().subscribers[0].pattern,
        "invoice.*, order.created"
    );
    for (ty, n) in [("order.created", 4), ("order.created", 5)] {
        bus.emit(Event::new(ty, json!({ "n": n })).unwrap())
            .unwrap();
    }
    assert_eq!(rx.next().await.data()["n"], 5);
    bus.shutdown(Duration::from_secs(5)).await;
    assert!(rx.drain().is_empty());
}

/// One rate-limit bucket per endpoint across `update`: the token the old
/// settings spent is spent for the new ones too.
#[tokio::test(start_paused = true)]
async fn update_keeps_the_rate_limit_bucket() {
    let hour = Duration::from_secs(3600);
    // The virtual time and `X-Version` of each request.
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let rx = Receiver::start(move |r, _| {
        let version = r.header("x-version").unwrap_or("1").to_owned();
        let _ = tx.send((tokio::time::Instant::now(), version));
        StatusCode::OK.into_response()
    })
    .await;
    // A guard against a hang: virtual time, so it costs nothing.
    let mut next = async move || {
        tokio::time::timeout(WEEK, seen.recv())
            .await
            .expect("no request")
            .unwrap()
    };
    let bus = Bus::new().unwrap();
    let manager = WebhookManager::new(&bus);
    let builder = || {
        WebhookSink::builder(&rx.url)
            .timeout(WEEK)
            .rate_limit(1, hour)
            .rate_limit_burst(1)
    };
    let id = manager.register(builder()).unwrap();
    bus.emit(ev(1)).unwrap();
    let (first, _) = next().await;
    manager
        .update(&id, builder().header("X-Version", "2"))
        .unwrap();
    bus.emit(ev(2)).unwrap();
    let (second, version) = next().await;
    assert_eq!(version, "2");
    assert!(
        second - first >= hour,
        "the second request came {:?} after the first, where its bucket allows one an hour",
        second - first
    );
    // A new rate continues on the same bucket: its next token is due when
    // the old bucket says, then the new rate applies.
    manager
        .update(&id, builder().rate_limit(2, hour).header("X-Version", "3"))
        .unwrap();
    bus.emit(ev(3)).unwrap();
    let (third, version) = next().await;
    assert_eq!(version, "3");
    assert!(third - first >= hour + hour / 2, "{:?}", third - first);
}

/// A token endpoint answering 503 with a page larger than any token
/// response (a load balancer's error page) is retryable like any 5xx.
#[tokio::test]
async fn a_large_5xx_from_the_token_endpoint_is_retried() {
    let page = "<html>".to_owned() + &"x".repeat(100 * 1024);
    let tokens = Receiver::start(move |_, n| {
        if n == 0 {
            (StatusCode::SERVICE_UNAVAILABLE, page.clone()).into_response()
        } else {
            axum::Json(json!({"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}))
                .into_response()
        }
    })
    .await;
    let mut rx = Receiver::ok().await;
    let emitter = WebhookEmitter::builder(&rx.url)
        .oauth2(OAuth2::client_credentials(&tokens.url, "id", "secret"))
        .retry(fast_retry(3))
        .build_emitter()
        .unwrap();
    let outcome = emitter.emit(ev(1)).await;
    assert!(outcome.is_delivered(), "{outcome:?}");
    assert_eq!(outcome.attempts, 2);
    assert_eq!(rx.next().await.header("authorization"), Some("Bearer tok"));
}

/// An `expires_in` of zero or less: the token serves one use and is
/// fetched anew before the next (never kept forever).
#[tokio::test]
async fn a_non_positive_expires_in_renews_before_each_use() {
    for expires_in in [json!(-5), json!(0), json!("-1")] {
        let tokens = Receiver::start(move |_, n| {
            axum::Json(json!({
                "access_token": format!("tok-{n}"),
                "token_type": "Bearer",
                "expires_in": expires_in,
            }))
            .into_response()
        })
        .await;
        let mut rx = Receiver::ok().await;
        let emitter = WebhookEmitter::builder(&rx.url)
            .oauth2(OAuth2::client_credentials(&tokens.url, "id", "secret"))
            .build_emitter()
            .unwrap();
        for n in 0..3 {
            assert!(emitter.emit(ev(n)).await.is_delivered());
            let auth = rx.next().await.header("authorization").map(str::to_owned);
            assert_eq!(auth.as_deref(), Some(format!("Bearer tok-{n}").as_str()));
        }
        assert_eq!(tokens.requests(), 3);
    }
}

/// Through a proxy, the token URL is checked by the SSRF guard before each
/// fetch, as the webhook URL is: an internal token host is refused (final),
/// nothing is sent.
#[tokio::test]
async fn the_token_url_goes_through_the_ssrf_guard_behind_a_proxy() {
    let tokens = Receiver::start(|_, _| StatusCode::OK.into_response()).await;
    // localhost passes the build-time check (a name, not an address) and
    // resolves to 127.0.0.1, which the guard refuses.
    let token_url = format!("http://localhost:{}/token", tokens.addr.port());
    let emitter = WebhookEmitter::builder("https://hooks.example.com/x")
        .ssrf_guard(SsrfGuard::new())
        .proxy("http://127.0.0.1:9")
        .oauth2(OAuth2::client_credentials(token_url, "id", "secret"))
        .retry(fast_retry(3))
        .build_emitter()
        .unwrap();
    let outcome = emitter.emit(ev(1)).await;
    assert_eq!(
        outcome.status,
        DeliveryStatus::Failed(FailureKind::Permanent),
        "{outcome:?}"
    );
    assert_eq!(outcome.attempts, 1);
    let error = outcome.error.unwrap();
    assert!(error.contains("SSRF guard"), "{error}");
    assert_eq!(tokens.requests(), 0);
}
