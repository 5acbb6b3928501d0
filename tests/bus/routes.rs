//! Routes for the shapes users bring: several patterns per subscriber,
//! conditions on some routes only, keys (tenants), and webhooks that name
//! several event types.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hookbus::{Bus, EmitError, Event, OverflowPolicy, SubscribeError};
use serde_json::json;
use tokio_stream::StreamExt;

use super::{LONG, ev, n_of, recorder};

fn for_tenant(ty: &str, tenant: &str, n: u64) -> Event {
    Event::builder(ty.to_owned())
        .data(json!({ "n": n }))
        .extension("tenant", tenant)
        .build()
        .unwrap()
}

/// Overlapping patterns (`order.*`, `order.placed`, `order.**`, `*`): an
/// event that matches several of them still arrives once.
#[tokio::test]
async fn a_subscriber_with_several_patterns_receives_each_event_once() {
    let bus = Bus::new().unwrap();
    let (seen, f) = recorder();
    let sub = bus
        .on(["order.*", "order.placed", "order.**", "refund.issued"], f)
        .unwrap();
    assert!(bus.has_subscribers("refund.issued"));
    assert!(bus.has_subscribers("order.a.b"));
    assert!(!bus.has_subscribers("user.created"));

    bus.emit(ev("order.placed", 1)).unwrap(); // three patterns match
    bus.emit(ev("order.paid.late", 2)).unwrap(); // `order.**` alone
    bus.emit(ev("refund.issued", 3)).unwrap();
    bus.emit(ev("user.created", 4)).unwrap(); // none
    let stats = sub.stats();
    assert_eq!(stats.received, 3, "{stats:?}");
    assert_eq!(
        stats.pattern,
        "order.*, order.**, order.placed, refund.issued"
    );
    sub.detach();
    let report = bus.shutdown(LONG).await;
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3]);
    assert!(report.is_clean(), "{report}");
}

/// A `Block` mailbox with room for one: an event matching two of its
/// patterns reserves one place, not two (a second reservation would refuse
/// it as `Full`). On this current-thread runtime the subscriber's task does
/// not run before the test awaits, so the mailbox holds what was emitted.
#[tokio::test]
async fn overlapping_patterns_reserve_one_place_in_a_block_mailbox() {
    let bus = Bus::new().unwrap();
    let (seen, f) = recorder();
    let sub = bus
        .subscriber(["job.*", "job.**"])
        .capacity(1)
        .overflow(OverflowPolicy::Block)
        .on(f)
        .unwrap();
    bus.emit(ev("job.done", 1)).unwrap();
    assert!(matches!(
        bus.emit(ev("job.done", 2)),
        Err(EmitError::Full(_))
    ));
    assert_eq!(sub.stats().mailbox_len, 1);
    sub.detach();
    let report = bus.shutdown(LONG).await;
    assert_eq!(*seen.lock().unwrap(), vec![1]);
    assert!(report.is_clean(), "{report}");
}

/// A condition belongs to its own routes: emitting types another
/// subscriber wants never runs it.
#[tokio::test]
async fn a_condition_runs_only_for_the_routes_it_belongs_to() {
    let bus = Bus::new().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let (conditioned, f1) = recorder();
    let (plain, f2) = recorder();
    let a = bus
        .subscriber(["alert.raised", "alert.cleared"])
        .filter(move |e| {
            c.fetch_add(1, Ordering::SeqCst);
            n_of(e).is_multiple_of(2)
        })
        .on(f1)
        .unwrap();
    let b = bus.on(["metric.sample", "metric.rollup"], f2).unwrap();
    for n in 0..100 {
        bus.emit(ev("metric.sample", n)).unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    for n in 0..4 {
        bus.emit(ev("alert.raised", n)).unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(a.stats().filtered, 2);
    a.detach();
    b.detach();
    bus.shutdown(LONG).await;
    assert_eq!(*conditioned.lock().unwrap(), vec![0, 2]);
    assert_eq!(plain.lock().unwrap().len(), 100);
}

/// Keyed routes: each tenant's subscriber gets its tenant's events only; an
/// unkeyed subscriber gets all; an event without the attribute reaches no
/// keyed subscriber.
#[tokio::test]
async fn keyed_routes_deliver_each_tenant_its_own_events() {
    let bus = Bus::new().unwrap();
    let (acme, f1) = recorder();
    let (globex, f2) = recorder();
    let (everyone, f3) = recorder();
    bus.subscriber("order.*")
        .key("tenant", "acme")
        .on(f1)
        .unwrap()
        .detach();
    bus.subscriber(["order.placed", "refund.*"])
        .key("tenant", "globex")
        .on(f2)
        .unwrap()
        .detach();
    bus.on("order.*", f3).unwrap().detach();
    assert!(bus.has_subscribers("refund.issued"));

    bus.emit(for_tenant("order.placed", "acme", 1)).unwrap();
    bus.emit(for_tenant("order.placed", "globex", 2)).unwrap();
    bus.emit(for_tenant("refund.issued", "globex", 3)).unwrap();
    bus.emit(for_tenant("refund.issued", "acme", 4)).unwrap(); // acme does not name refund.*
    bus.emit(for_tenant("order.placed", "initech", 5)).unwrap(); // nobody keyed on it
    bus.emit(ev("order.placed", 6)).unwrap(); // no tenant attribute
    let report = bus.shutdown(LONG).await;
    assert_eq!(*acme.lock().unwrap(), vec![1]);
    assert_eq!(*globex.lock().unwrap(), vec![2, 3]);
    assert_eq!(*everyone.lock().unwrap(), vec![1, 2, 5, 6]);
    assert!(report.is_clean(), "{report}");
}

/// A thousand tenants, one subscriber each on the same type: every event
/// reaches exactly its tenant's subscriber; unsubscribing one tenant leaves
/// the others routed.
#[tokio::test]
async fn a_thousand_tenants_each_get_exactly_their_events() {
    let bus = Bus::new().unwrap();
    let mut streams = Vec::new();
    for t in 0..1000 {
        streams.push(
            bus.subscriber("invoice.paid")
                .key("tenant", format!("t{t}"))
                .capacity(8)
                .stream()
                .unwrap(),
        );
    }
    for t in 0..1000u64 {
        bus.emit(for_tenant("invoice.paid", &format!("t{t}"), t))
            .unwrap();
    }
    for (t, s) in streams.iter_mut().enumerate() {
        let e = s.next().await.unwrap();
        assert_eq!(n_of(&e), t as u64);
        assert_eq!(s.stats().received, 1);
    }
    // Tenant 0 leaves: its events are unmatched now, the others still routed.
    drop(streams.remove(0));
    bus.emit(for_tenant("invoice.paid", "t0", 0)).unwrap();
    bus.emit(for_tenant("invoice.paid", "t1", 1)).unwrap();
    assert_eq!(n_of(&streams[0].next().await.unwrap()), 1);
    let stats = bus.stats();
    assert_eq!(stats.unmatched, 1, "{stats:?}");
}

/// Keys on `subject` and on an integer extension; attributes a key cannot
/// name are refused with a message.
#[tokio::test]
async fn keys_on_subject_and_integer_extensions_and_bad_names_are_refused() {
    let bus = Bus::new().unwrap();
    let mut by_subject = bus
        .subscriber("doc.*")
        .key("subject", "doc-7")
        .stream()
        .unwrap();
    let mut by_shard = bus.subscriber("doc.*").key("shard", "3").stream().unwrap();
    bus.emit(
        Event::builder("doc.saved")
            .subject("doc-7")
            .extension("shard", 3i64)
            .data(json!({"n": 1}))
            .build()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(n_of(&by_subject.next().await.unwrap()), 1);
    assert_eq!(n_of(&by_shard.next().await.unwrap()), 1);

    for bad in ["type", "id", "Tenant", "ten-ant", ""] {
        let err = bus
            .subscriber("doc.*")
            .key(bad, "x")
            .on(|_| {})
            .unwrap_err();
        assert!(
            matches!(err, SubscribeError::InvalidOption(_)),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains("attribute"), "{bad}: {err}");
    }
    let none: Vec<&str> = Vec::new();
    let err = bus.on(none, |_| {}).unwrap_err();
    assert!(err.to_string().contains("no patterns"), "{err}");
}

/// A webhook that names several event types receives exactly those, each
/// once, and a type it does not name never reaches its mailbox.
#[cfg(all(feature = "testing", feature = "webhook"))]
#[tokio::test]
async fn a_webhook_naming_several_types_receives_exactly_those() {
    use hookbus::testing::TestReceiver;
    use hookbus::webhook::WebhookSink;

    let receiver = TestReceiver::start().await.unwrap();
    let bus = Bus::new().unwrap();
    let sub = WebhookSink::builder(receiver.url())
        .events(["order.placed", "order.*", "refund.issued", "payout.sent"])
        .build()
        .unwrap()
        .subscribe(&bus)
        .unwrap();
    for (n, ty) in [
        "order.placed",
        "user.created",
        "refund.issued",
        "order.paid",
        "audit.x",
    ]
    .into_iter()
    .enumerate()
    {
        bus.emit(ev(ty, n as u64)).unwrap();
    }
    let stats = sub.stats();
    assert_eq!(
        stats.received, 3,
        "only named types reach the mailbox: {stats:?}"
    );
    assert_eq!(stats.filtered, 0);
    receiver.wait_for(3).await.unwrap();
    sub.detach();
    bus.shutdown(LONG).await;
    let mut got: Vec<u64> = receiver.events().iter().map(n_of).collect();
    got.sort_unstable();
    assert_eq!(got, vec![0, 2, 3]);
}
