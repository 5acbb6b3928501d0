//! Taps: observers on the bus's broadcast ring, which never slow or refuse
//! an emit and count what they miss.

use hookbus::{Bus, EmitError, OverflowPolicy, SubscribeError};
use tokio_stream::StreamExt;

use super::{LONG, ev, n_of, recorder};

/// A tap sees the events of its patterns, whether or not a subscriber took
/// them, in order; never one the bus refused.
#[tokio::test]
async fn a_tap_sees_offered_events_of_its_patterns_but_never_refused_ones() {
    let bus = Bus::new().unwrap();
    let mut tap = bus.tap(["order.*", "refund.issued"]).unwrap();
    assert!(bus.has_subscribers("anything"), "a tap observes every type");
    let full = bus
        .subscriber("order.placed")
        .capacity(1)
        .overflow(OverflowPolicy::Block)
        .on(|_| {})
        .unwrap();
    bus.emit(ev("order.placed", 1)).unwrap(); // taken by the Block subscriber
    assert!(matches!(
        bus.emit(ev("order.placed", 2)),
        Err(EmitError::Full(_))
    ));
    bus.emit(ev("order.paid", 3)).unwrap(); // no subscriber
    bus.emit(ev("user.created", 4)).unwrap(); // not the tap's pattern
    bus.emit(ev("refund.issued", 5)).unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(n_of(&tap.next().await.unwrap()));
    }
    assert_eq!(got, vec![1, 3, 5]);
    assert_eq!(tap.lagged(), 0);
    full.detach();
    bus.shutdown(LONG).await;
    assert!(tap.next().await.is_none(), "the tap ends at shutdown");
}

/// Two hundred taps that never read: every emit succeeds and every
/// subscriber gets every event; a tap that reads late finds the newest
/// ring's worth, in order, and counts exactly what it skipped.
#[tokio::test]
async fn taps_that_never_read_cost_no_event_and_count_their_lag() {
    let bus = Bus::builder().tap_capacity(64).build().unwrap();
    let taps: Vec<_> = (0..200).map(|_| bus.tap("*").unwrap()).collect();
    let mut late = bus.tap("load.*").unwrap();
    let (seen, f) = recorder();
    bus.subscriber("load.tick")
        .overflow(OverflowPolicy::Block)
        .capacity(10_000)
        .on(f)
        .unwrap()
        .detach();
    for n in 0..1_000 {
        bus.emit(ev("load.tick", n)).unwrap();
    }
    bus.shutdown(LONG).await;
    assert_eq!(seen.lock().unwrap().len(), 1_000);
    let mut read = Vec::new();
    while let Some(e) = late.next().await {
        read.push(n_of(&e));
    }
    assert_eq!(read, (936..1_000).collect::<Vec<_>>());
    assert_eq!(late.lagged(), 936);
    drop(taps);
}

/// Once the last tap closes, an event nobody subscribed to is unmatched
/// again (and not built); a tap cannot open on a closed bus.
#[tokio::test]
async fn closing_the_last_tap_restores_the_no_interest_path() {
    let bus = Bus::new().unwrap();
    let a = bus.tap("*").unwrap();
    let b = bus.tap("x.*").unwrap();
    drop(a);
    assert!(bus.has_subscribers("y.z"), "one tap is still open");
    drop(b);
    assert!(!bus.has_subscribers("y.z"));
    bus.emit(ev("y.z", 1)).unwrap();
    assert_eq!(bus.stats().unmatched, 1);
    bus.shutdown(LONG).await;
    assert!(matches!(bus.tap("*"), Err(SubscribeError::Closed)));
}
