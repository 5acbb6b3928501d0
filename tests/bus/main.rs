//! The bus core against its public API, on a real Tokio runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookbus::sink::SinkFuture;
use hookbus::{
    Batch, BuildError, Bus, DeliveryError, EmitError, Event, FailureKind, OverflowPolicy, Sink,
    SubscribeError, Typed, TypedEvent,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Notify, mpsc};

mod actor;
mod groups;
mod races;
mod routes;
mod taps;

fn ev(ty: &str, n: u64) -> Event {
    Event::new(ty.to_owned(), json!({ "n": n })).unwrap()
}

fn n_of(e: &Event) -> u64 {
    e.data()["n"].as_u64().unwrap()
}

/// Collects what a subscriber sees, in order.
fn recorder() -> (Arc<Mutex<Vec<u64>>>, impl FnMut(&Event) + Send + 'static) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (seen, move |e: &Event| s.lock().unwrap().push(n_of(e)))
}

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn closures_receive_matching_events_by_pattern() {
    let bus = Bus::new().unwrap();
    let (exact, f1) = recorder();
    let (one, f2) = recorder();
    let (deep, f3) = recorder();
    let (all, f4) = recorder();
    let _a = bus.on("decision.captured", f1).unwrap();
    let _b = bus.on("decision.*", f2).unwrap();
    let _c = bus.on("decision.**", f3).unwrap();
    let _d = bus.on("*", f4).unwrap();

    bus.emit(ev("decision.captured", 1)).unwrap();
    bus.emit(ev("decision.drift.detected", 2)).unwrap();
    bus.emit(ev("decision", 3)).unwrap();
    bus.emit(ev("order.placed", 4)).unwrap();
    let report = bus.shutdown(LONG).await;

    assert_eq!(*exact.lock().unwrap(), vec![1]);
    assert_eq!(*one.lock().unwrap(), vec![1]);
    assert_eq!(*deep.lock().unwrap(), vec![1, 2, 3]);
    assert_eq!(*all.lock().unwrap(), vec![1, 2, 3, 4]);
    assert!(report.is_clean(), "{report}");
}

#[tokio::test]
async fn events_nobody_wants_are_counted_not_sent() {
    let bus = Bus::new().unwrap();
    let _s = bus.on("order.*", |_e| {}).unwrap();
    for i in 0..10 {
        bus.emit(ev("decision.captured", i)).unwrap();
    }
    assert!(!bus.has_subscribers("decision.captured"));
    assert!(bus.has_subscribers("order.placed"));
    let stats = bus.stats();
    assert_eq!(stats.unmatched, 10);
    assert_eq!(stats.emitted, 0);
}

#[tokio::test]
async fn once_and_many_take_exactly_their_share() {
    let bus = Bus::new().unwrap();
    let (once, f1) = recorder();
    let (many, f2) = recorder();
    bus.once("tick", f1).unwrap().detach();
    bus.many("tick", 3, f2).unwrap().detach();
    for i in 0..10 {
        bus.emit(ev("tick", i)).unwrap();
    }
    // Both have taken their share and left, so nobody wants ticks any more.
    let report = bus.shutdown(LONG).await;
    assert_eq!(*once.lock().unwrap(), vec![0]);
    assert_eq!(*many.lock().unwrap(), vec![0, 1, 2]);
    assert!(!bus.has_subscribers("tick"));
    assert!(report.emitted <= 10);
}

#[tokio::test]
async fn conditions_filter_before_the_mailbox() {
    let bus = Bus::new().unwrap();
    let (seen, f) = recorder();
    let sub = bus
        .subscriber("decision.*")
        .name("confident")
        // Room for exactly the three events that pass: the two filtered
        // ones must not take any (DropNewest would drop event 5).
        .capacity(3)
        .overflow(OverflowPolicy::DropNewest)
        .filter(|e| e.data()["confidence"].as_f64() > Some(0.85))
        .on(f)
        .unwrap();
    for (n, c) in [(1, 0.9), (2, 0.5), (3, 0.86), (4, 0.85), (5, 0.99)] {
        bus.emit(Event::new("decision.captured", json!({"n": n, "confidence": c})).unwrap())
            .unwrap();
    }
    sub.detach();
    let report = bus.shutdown(LONG).await;
    assert_eq!(*seen.lock().unwrap(), vec![1, 3, 5]);
    let s = &report.subscriber("confident").unwrap().stats;
    assert_eq!((s.received, s.filtered, s.accepted), (5, 2, 3));
    assert_eq!(s.delivered, 3);
}

#[tokio::test]
async fn batches_fill_by_size() {
    let bus = Bus::new().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    bus.subscriber("m")
        .batch(4, Duration::from_secs(3600))
        .on_batch(move |b: &Batch| {
            tx.send(b.iter().map(|e| n_of(e)).collect::<Vec<_>>())
                .unwrap()
        })
        .unwrap()
        .detach();
    for i in 0..10 {
        bus.emit(ev("m", i)).unwrap();
    }
    assert_eq!(rx.recv().await.unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(rx.recv().await.unwrap(), vec![4, 5, 6, 7]);
    // The last two wait for the hour to pass... or for shutdown, which flushes.
    let report = bus.shutdown(LONG).await;
    assert_eq!(rx.recv().await.unwrap(), vec![8, 9]);
    assert!(report.is_clean());
}

#[tokio::test(start_paused = true)]
async fn batches_are_delivered_after_max_wait() {
    let bus = Bus::new().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    bus.subscriber("m")
        .batch(100, Duration::from_millis(500))
        .on_batch(move |b: &Batch| tx.send((tokio::time::Instant::now(), b.len())).unwrap())
        .unwrap()
        .detach();
    let start = tokio::time::Instant::now();
    for i in 0..3 {
        bus.emit(ev("m", i)).unwrap();
    }
    let (at, len) = rx.recv().await.unwrap();
    assert_eq!(len, 3);
    let waited = at - start;
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_millis(600),
        "delivered after {waited:?}"
    );
}

/// An async handler that stops at every event until released.
struct Gate {
    entered: mpsc::UnboundedSender<u64>,
    release: Arc<Notify>,
}

fn gated(
    bus: &Bus,
    pattern: &str,
    name: &str,
    capacity: usize,
    policy: OverflowPolicy,
) -> (
    mpsc::UnboundedReceiver<u64>,
    Arc<Notify>,
    Arc<Mutex<Vec<u64>>>,
) {
    let (entered, entered_rx) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(Gate {
        entered,
        release: release.clone(),
    });
    let s = seen.clone();
    bus.subscriber(pattern)
        .name(name)
        .capacity(capacity)
        .overflow(policy)
        .on_async(move |e| {
            let gate = gate.clone();
            let s = s.clone();
            async move {
                let n = e.data()["n"].as_u64().unwrap_or(u64::MAX);
                gate.entered.send(n).unwrap();
                gate.release.notified().await;
                s.lock().unwrap().push(n);
            }
        })
        .unwrap()
        .detach();
    (entered_rx, release, seen)
}

/// Lets the next `n` events through the gate, one at a time.
async fn release_all(release: &Notify, entered: &mut mpsc::UnboundedReceiver<u64>, n: u64) {
    for _ in 0..n {
        entered
            .recv()
            .await
            .expect("an event should enter the handler");
        release.notify_one();
    }
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest_while_stalled() {
    let bus = Bus::new().unwrap();
    let (mut entered, release, seen) = gated(&bus, "m", "stalled", 3, OverflowPolicy::DropOldest);
    bus.emit(ev("m", 0)).unwrap();
    assert_eq!(entered.recv().await, Some(0)); // 0 is in the handler, stuck
    for i in 1..=10 {
        bus.emit(ev("m", i)).unwrap();
    }
    let stats = bus.stats();
    let s = stats.subscriber("stalled").unwrap();
    assert_eq!(
        (s.accepted, s.dropped, s.mailbox_len, s.in_flight),
        (11, 7, 3, 1)
    );

    release.notify_one();
    release_all(&release, &mut entered, 3).await;
    let report = bus.shutdown(LONG).await;
    assert_eq!(*seen.lock().unwrap(), vec![0, 8, 9, 10]);
    let r = report.subscriber("stalled").unwrap();
    assert_eq!((r.stats.delivered, r.stats.dropped, r.pending), (4, 7, 0));
}

#[tokio::test]
async fn drop_newest_keeps_the_oldest_while_stalled() {
    let bus = Bus::new().unwrap();
    let (mut entered, release, seen) = gated(&bus, "m", "stalled", 3, OverflowPolicy::DropNewest);
    bus.emit(ev("m", 0)).unwrap();
    assert_eq!(entered.recv().await, Some(0));
    for i in 1..=10 {
        bus.emit(ev("m", i)).unwrap();
    }
    release.notify_one();
    release_all(&release, &mut entered, 3).await;
    let report = bus.shutdown(LONG).await;
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(report.subscriber("stalled").unwrap().stats.dropped, 7);
}

#[tokio::test]
async fn drops_are_announced_once_per_burst_and_never_loop() {
    let bus = Bus::new().unwrap();
    let (announced_tx, mut announced) = mpsc::unbounded_channel();
    // A subscriber to everything, itself stalled and tiny: it will drop the
    // bus's own `hookbus.dropped` events too, which must not be re-announced.
    let (mut entered, _release, _seen) = gated(&bus, "*", "stalled", 1, OverflowPolicy::DropOldest);
    bus.on("hookbus.dropped", move |e| {
        announced_tx
            .send((
                e.data()["subscriber"].as_str().unwrap().to_owned(),
                e.data()["dropped"].as_u64().unwrap(),
            ))
            .unwrap()
    })
    .unwrap()
    .detach();
    bus.emit(ev("m", 0)).unwrap();
    assert_eq!(entered.recv().await, Some(0));
    for i in 1..=50 {
        bus.emit(ev("m", i)).unwrap();
    }
    let mut total = 0;
    while total < 49 {
        let (who, n) = announced.recv().await.unwrap();
        assert_eq!(who, "stalled");
        total += n;
    }
    assert_eq!(total, 49);
    // Leave it stalled: shutdown gives up on it after the deadline.
    let report = bus.shutdown(Duration::from_millis(50)).await;
    // It also dropped some `hookbus.dropped` events: counted, not announced.
    assert!(report.subscriber("stalled").unwrap().stats.dropped >= 49);
    assert!(announced.try_recv().is_err());
}

#[tokio::test]
async fn emit_returns_at_once_while_a_subscriber_is_stalled() {
    let bus = Bus::new().unwrap();
    let (mut entered, release, _) = gated(&bus, "m", "stalled", 8, OverflowPolicy::DropOldest);
    let (fast, f) = recorder();
    // The runtime is blocked on the emitting thread below, so the fast
    // subscriber's mailbox holds everything until it runs.
    bus.subscriber("m").capacity(20_001).on(f).unwrap().detach();
    bus.emit(ev("m", 0)).unwrap();
    assert_eq!(entered.recv().await, Some(0));
    // Far more events than the channel and the mailbox hold: every emit is Ok,
    // from a plain thread outside the runtime, while the handler is stuck.
    let b = bus.clone();
    let results = std::thread::spawn(move || {
        let mut full = 0;
        for i in 1..=20_000u64 {
            match b.emit(ev("m", i)) {
                Ok(()) => {}
                Err(EmitError::Full(_)) => full += 1,
                Err(e) => panic!("{e}"),
            }
        }
        full
    })
    .join()
    .unwrap();
    // Only a Block subscriber can refuse an emit: none here, so never Full.
    assert_eq!(results, 0);
    release.notify_one();
    release_all(&release, &mut entered, 8).await;
    let report = bus.shutdown(LONG).await;
    let stalled = report.subscriber("stalled").unwrap();
    assert_eq!(stalled.stats.delivered, 9);
    assert_eq!(
        stalled.stats.delivered + stalled.stats.dropped,
        stalled.stats.accepted
    );
    assert_eq!(fast.lock().unwrap().len() as u64, report.emitted);
}

#[tokio::test]
async fn block_pushes_back_on_publish_and_loses_nothing() {
    let bus = Bus::builder().capacity(4).build().unwrap();
    let (mut entered, release, seen) = gated(&bus, "m", "blocking", 2, OverflowPolicy::Block);
    bus.emit(ev("m", 0)).unwrap();
    assert_eq!(entered.recv().await, Some(0));
    // 1 in the handler, 2 in the mailbox, 4 in the channel: then emit is Full.
    let mut accepted = 1;
    let mut refused = None;
    for i in 1..=100 {
        match bus.emit(ev("m", i)) {
            Ok(()) => accepted += 1,
            Err(EmitError::Full(e)) => {
                refused = Some(e);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let refused = refused.expect("emit must report Full under Block back-pressure");
    assert_eq!(n_of(&refused), accepted); // the event comes back intact
    assert!(accepted <= 1 + 2 + 4 + 1, "accepted {accepted}");

    // publish waits for room instead; release the handler and it goes through.
    let b = bus.clone();
    let publisher = tokio::spawn(async move {
        for i in accepted..accepted + 20 {
            b.publish(ev("m", i)).await.unwrap();
        }
    });
    release.notify_one();
    release_all(&release, &mut entered, accepted + 19).await;
    publisher.await.unwrap();
    let report = bus.shutdown(LONG).await;
    let expected: Vec<u64> = (0..accepted + 20).collect();
    assert_eq!(*seen.lock().unwrap(), expected);
    assert_eq!(report.subscriber("blocking").unwrap().stats.dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_events_to_eight_blocking_subscribers_lose_nothing() {
    const N: u64 = 100_000;
    let bus = Bus::builder().capacity(256).build().unwrap();
    let mut seen = Vec::new();
    for k in 0..8 {
        let order = Arc::new(Mutex::new((0u64, true)));
        let o = order.clone();
        bus.subscriber("load.*")
            .name(format!("sub{k}"))
            .capacity(64)
            .overflow(OverflowPolicy::Block)
            .on(move |e| {
                let mut g = o.lock().unwrap();
                let n = n_of(e);
                if n != g.0 {
                    g.1 = false;
                }
                g.0 = n + 1;
            })
            .unwrap()
            .detach();
        seen.push(order);
    }
    for i in 0..N {
        bus.publish(ev("load.tick", i)).await.unwrap();
    }
    let report = bus.shutdown(LONG).await;
    assert_eq!(report.emitted, N);
    for (k, s) in seen.iter().enumerate() {
        let (next, in_order) = *s.lock().unwrap();
        assert_eq!(next, N, "subscriber {k} saw up to {next}");
        assert!(in_order, "subscriber {k} saw events out of order");
        let r = report.subscriber(&format!("sub{k}")).unwrap();
        assert_eq!((r.stats.delivered, r.stats.dropped, r.pending), (N, 0, 0));
    }
}

#[tokio::test]
async fn panics_and_errors_are_contained_counted_and_announced() {
    let bus = Bus::new().unwrap();
    let (fail_tx, mut failures) = mpsc::unbounded_channel();
    bus.on("hookbus.handler_failed", move |e| {
        fail_tx.send(e.data().clone()).unwrap()
    })
    .unwrap()
    .detach();
    let (seen, mut rec) = recorder();
    bus.subscriber("job")
        .name("fragile")
        .on(move |e: &Event| {
            match n_of(e) {
                2 => panic!("boom on two"),
                4 => return Err("four is refused"),
                _ => {}
            }
            rec(e);
            Ok(())
        })
        .unwrap()
        .detach();
    let ids: Vec<String> = (0..6)
        .map(|i| {
            let e = ev("job", i);
            let id = e.id().to_owned();
            bus.emit(e).unwrap();
            id
        })
        .collect();
    let first = failures.recv().await.unwrap();
    let second = failures.recv().await.unwrap();
    assert_eq!(first["subscriber"], "fragile");
    assert_eq!(first["event_id"], ids[2].as_str());
    assert_eq!(first["kind"], "panic");
    assert!(first["error"].as_str().unwrap().contains("boom on two"));
    assert_eq!(second["event_id"], ids[4].as_str());
    assert_eq!(second["error"], "four is refused");
    let report = bus.shutdown(LONG).await;
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 3, 5]);
    let r = report.subscriber("fragile").unwrap();
    assert_eq!((r.stats.delivered, r.stats.failed), (4, 2));
}

#[tokio::test]
async fn async_handlers_run_concurrently_up_to_the_limit() {
    let bus = Bus::new().unwrap();
    let (mut entered, release, _) = {
        let (entered, entered_rx) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let r = release.clone();
        bus.subscriber("m")
            .name("pool")
            .concurrency(3)
            .on_async(move |e| {
                let entered = entered.clone();
                let r = r.clone();
                async move {
                    entered.send(n_of(&e)).unwrap();
                    r.notified().await;
                }
            })
            .unwrap()
            .detach();
        (entered_rx, release, ())
    };
    for i in 0..5 {
        bus.emit(ev("m", i)).unwrap();
    }
    let mut first = vec![];
    for _ in 0..3 {
        first.push(entered.recv().await.unwrap());
    }
    let s = bus.stats();
    let pool = s.subscriber("pool").unwrap();
    assert_eq!((pool.in_flight, pool.mailbox_len), (3, 2));
    first.sort();
    assert_eq!(first, vec![0, 1, 2]);
    release.notify_waiters();
    release_all(&release, &mut entered, 2).await;
    release.notify_waiters();
    let report = bus.shutdown(LONG).await;
    assert_eq!(report.subscriber("pool").unwrap().stats.delivered, 5);
}

#[tokio::test(start_paused = true)]
async fn shutdown_report_accounts_for_every_accepted_event() {
    let bus = Bus::new().unwrap();
    // A subscriber that never finishes its first event.
    let (mut entered, _release, _) = gated(&bus, "m", "stuck", 4, OverflowPolicy::DropOldest);
    let (_, f) = recorder();
    bus.subscriber("m").name("quick").on(f).unwrap().detach();
    bus.emit(ev("m", 0)).unwrap();
    assert_eq!(entered.recv().await, Some(0));
    for i in 1..10 {
        bus.emit(ev("m", i)).unwrap();
    }
    let report = bus.shutdown(Duration::from_secs(2)).await;

    let quick = report.subscriber("quick").unwrap();
    assert!(quick.completed);
    assert_eq!((quick.stats.delivered, quick.pending), (10, 0));

    let stuck = report.subscriber("stuck").unwrap();
    assert!(!stuck.completed);
    assert_eq!(stuck.stats.accepted, 10);
    assert_eq!(stuck.stats.delivered, 0);
    assert_eq!(stuck.stats.dropped, 5);
    assert_eq!(stuck.pending, 5); // 4 in the mailbox + 1 in the handler
    assert_eq!(stuck.unfinished, 1);
    for s in &report.subscribers {
        assert_eq!(
            s.stats.delivered + s.stats.failed + s.stats.dropped + s.pending,
            s.stats.accepted,
            "{}",
            s.stats.name
        );
    }
    assert!(!report.is_clean());
    // After shutdown, emits are refused and the event comes back.
    match bus.emit(ev("m", 99)) {
        Err(EmitError::Closed(e)) => assert_eq!(n_of(&e), 99),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(matches!(bus.on("m", |_e| {}), Err(SubscribeError::Closed)));
}

#[tokio::test]
async fn dropping_the_subscription_unsubscribes() {
    let bus = Bus::new().unwrap();
    let (seen, f) = recorder();
    let sub = bus.on("m", f).unwrap();
    bus.emit(ev("m", 1)).unwrap();
    drop(sub);
    // Gone from the index at once: the next event is not even sent.
    assert!(!bus.has_subscribers("m"));
    bus.emit(ev("m", 2)).unwrap();
    assert_eq!(bus.stats().unmatched, 1);
    bus.shutdown(LONG).await;
    assert_eq!(*seen.lock().unwrap(), vec![1]);
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct DecisionCaptured {
    decision_id: String,
    confidence: f64,
}

impl TypedEvent for DecisionCaptured {
    const TYPE: &'static str = "decision.captured";
}

#[tokio::test]
async fn typed_events_round_trip_and_mismatches_fail_cleanly() {
    let bus = Bus::builder().source("svc-a").build().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    bus.subscriber(DecisionCaptured::TYPE)
        .name("typed")
        .on_typed(move |d: Typed<DecisionCaptured>| tx.send(d.into_data()).unwrap())
        .unwrap()
        .detach();
    let (src_tx, mut sources) = mpsc::unbounded_channel();
    bus.on("decision.captured", move |e| {
        src_tx.send(e.source().to_owned()).unwrap()
    })
    .unwrap()
    .detach();
    bus.emit(DecisionCaptured {
        decision_id: "abc123".into(),
        confidence: 0.91,
    })
    .unwrap();
    bus.emit(Event::new("decision.captured", json!({"decision_id": 7})).unwrap())
        .unwrap();
    assert_eq!(
        *rx.recv().await.unwrap(),
        DecisionCaptured {
            decision_id: "abc123".into(),
            confidence: 0.91
        }
    );
    assert_eq!(sources.recv().await.unwrap(), "svc-a");
    let report = bus.shutdown(LONG).await;
    let typed = report.subscriber("typed").unwrap();
    assert_eq!((typed.stats.delivered, typed.stats.failed), (1, 1));
}

/// A sink that records batches and fails on request.
struct Recording {
    batches: Arc<Mutex<Vec<Vec<u64>>>>,
    fail_on: u64,
}

impl Sink for Recording {
    fn deliver(&self, batch: Batch) -> SinkFuture {
        let batches = self.batches.clone();
        let fail = batch.iter().any(|e| n_of(e) == self.fail_on);
        Box::pin(async move {
            batches
                .lock()
                .unwrap()
                .push(batch.iter().map(|e| n_of(e)).collect());
            if fail {
                return Err(DeliveryError::new(FailureKind::Exhausted, "gave up"));
            }
            Ok(())
        })
    }
}

#[tokio::test]
async fn sinks_get_batches_and_their_failures_are_dead_lettered() {
    let bus = Bus::new().unwrap();
    let (dead_tx, mut dead) = mpsc::unbounded_channel();
    bus.on("hookbus.delivery_failed", move |e| {
        dead_tx.send(e.data().clone()).unwrap()
    })
    .unwrap()
    .detach();
    let batches = Arc::new(Mutex::new(Vec::new()));
    bus.subscriber("m")
        .name("sink")
        .batch(3, Duration::from_secs(3600))
        .sink(Recording {
            batches: batches.clone(),
            fail_on: 4,
        })
        .unwrap()
        .detach();
    for i in 0..7 {
        bus.emit(ev("m", i)).unwrap();
    }
    let failed = dead.recv().await.unwrap();
    assert_eq!(failed["subscriber"], "sink");
    assert_eq!(failed["kind"], "retries exhausted");
    assert_eq!(failed["event_ids"].as_array().unwrap().len(), 3);
    let report = bus.shutdown(LONG).await;
    assert_eq!(
        *batches.lock().unwrap(),
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
    );
    let r = report.subscriber("sink").unwrap();
    assert_eq!((r.stats.delivered, r.stats.failed), (4, 3));
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_error() {
    let bus = Bus::new().unwrap();
    let err = bus.on("decision..captured", |_e| {}).unwrap_err();
    assert!(err.to_string().contains("empty segment"), "{err}");
    let err = bus.on("decision.cap*", |_e| {}).unwrap_err();
    assert!(err.to_string().contains("whole segment"), "{err}");
    let err = bus.subscriber("m").capacity(0).on(|_e| {}).unwrap_err();
    assert!(err.to_string().contains("capacity"), "{err}");
    let err = bus.subscriber("m").concurrency(0).on(|_e| {}).unwrap_err();
    assert!(err.to_string().contains("concurrency"), "{err}");
    let err = bus
        .subscriber("m")
        .batch(0, Duration::from_secs(1))
        .on(|_e| {})
        .unwrap_err();
    assert!(err.to_string().contains("max_size"), "{err}");
    let err = bus.emit_json("bad type!", json!({})).unwrap_err();
    assert!(
        err.to_string().contains("'!'") || err.to_string().contains("' '"),
        "{err}"
    );
    assert!(Bus::builder().capacity(0).build().is_err());
}

#[test]
fn building_a_bus_outside_a_runtime_is_an_error_not_a_panic() {
    assert_eq!(Bus::new().unwrap_err(), BuildError::NoRuntime);
    // With a runtime handle given explicitly, it works from plain threads.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bus = Bus::builder().runtime(rt.handle().clone()).build().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let _sub = bus
        .on("m", move |_e| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    bus.emit(ev("m", 1)).unwrap();
    let report = rt.block_on(bus.shutdown(LONG));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(report.is_clean());
}

#[tokio::test]
async fn a_subscriber_can_be_a_stream_and_dropping_it_unsubscribes() {
    use tokio_stream::StreamExt;
    let bus = Bus::new().unwrap();
    let mut stream = bus.subscriber("order.*").capacity(8).stream().unwrap();
    for i in 0..5 {
        bus.emit(ev("order.placed", i)).unwrap();
    }
    let got: Vec<u64> = (&mut stream).take(5).map(|e| n_of(&e)).collect().await;
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert_eq!(stream.stats().received, 5);
    drop(stream);
    assert!(!bus.has_subscribers("order.placed"));
}

/// A sink that takes deliveries only while its gate is open.
struct Gated {
    gate: Mutex<(bool, Option<std::task::Waker>)>,
    delivered: mpsc::UnboundedSender<u64>,
    asked: AtomicUsize,
}

impl Gated {
    /// A closed gate, and what it delivers once opened.
    fn closed() -> (Arc<Gated>, mpsc::UnboundedReceiver<u64>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let gated = Gated {
            gate: Mutex::new((false, None)),
            delivered: tx,
            asked: AtomicUsize::new(0),
        };
        (Arc::new(gated), rx)
    }

    fn open(&self) {
        let mut g = self.gate.lock().unwrap();
        g.0 = true;
        if let Some(w) = g.1.take() {
            w.wake();
        }
    }
}

impl Sink for Gated {
    fn deliver(&self, batch: Batch) -> SinkFuture {
        for e in &batch {
            self.delivered.send(n_of(e)).unwrap();
        }
        Box::pin(async { Ok(()) })
    }
    fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let mut g = self.gate.lock().unwrap();
        if g.0 {
            return std::task::Poll::Ready(());
        }
        g.1 = Some(cx.waker().clone());
        std::task::Poll::Pending
    }
}

/// `Sink::poll_ready` holds deliveries back: the events wait in the mailbox
/// (under its overflow policy, not in the sink) and go out once it is ready.
#[tokio::test]
async fn a_sink_that_is_not_ready_gets_nothing_and_events_wait_in_the_mailbox() {
    let bus = Bus::new().unwrap();
    let (sink, mut delivered) = Gated::closed();
    let _sub = bus
        .subscriber("job.*")
        .name("gated")
        .capacity(2)
        .overflow(OverflowPolicy::DropNewest)
        .concurrency(8)
        .sink(sink.clone())
        .unwrap();
    for n in 0..3 {
        bus.emit(ev("job.done", n)).unwrap();
    }
    // On this single-threaded runtime the subscriber has taken the events in
    // and tried to dispatch them before `settle` returns.
    assert!(delivered.try_recv().is_err(), "nothing while not ready");
    let stats = bus.stats();
    let s = stats.subscriber("gated").unwrap();
    assert_eq!((s.mailbox_len, s.dropped, s.in_flight), (2, 1, 0));

    sink.open();
    for want in [0, 1] {
        let got = tokio::time::timeout(LONG, delivered.recv()).await.unwrap();
        assert_eq!(got, Some(want));
    }
    let report = bus.shutdown(LONG).await;
    let s = &report.subscriber("gated").unwrap().stats;
    assert_eq!((s.delivered, s.dropped), (2, 1));
}

/// A batch that is due while the sink is not ready waits for the sink's
/// wake-up: the subscriber does not spin on the passed batch deadline.
#[tokio::test(start_paused = true)]
async fn a_due_batch_waits_quietly_for_a_sink_that_is_not_ready() {
    let bus = Bus::new().unwrap();
    let (sink, mut delivered) = Gated::closed();
    let _sub = bus
        .subscriber("job.*")
        .batch(10, Duration::from_secs(1))
        .sink(sink.clone())
        .unwrap();
    for n in 0..3 {
        bus.emit(ev("job.done", n)).unwrap();
    }
    tokio::time::advance(Duration::from_secs(2)).await;
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    let asked = sink.asked.load(Ordering::SeqCst);
    assert!(asked >= 1, "the due batch asked the sink");
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        sink.asked.load(Ordering::SeqCst),
        asked,
        "nothing changed, so the subscriber must not ask again"
    );
    assert!(delivered.try_recv().is_err());
    sink.open();
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(delivered.recv().await.unwrap());
    }
    assert_eq!(got, [0, 1, 2]);
}

/// Takes every batch at once (always ready, nothing to wait for).
struct Instant(Arc<AtomicUsize>);

impl Sink for Instant {
    fn deliver(&self, batch: Batch) -> SinkFuture {
        self.0.fetch_add(batch.len(), Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

/// A sink subscriber with a lot queued still gives other tasks a turn when
/// its budget is spent, as it does for async handlers, instead of running
/// through everything queued before anything else on its thread runs.
#[tokio::test]
async fn a_busy_sink_subscriber_gives_other_tasks_a_turn() {
    let bus = Bus::builder().capacity(40_000).build().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let _sub = bus
        .subscriber("job.*")
        .capacity(40_000)
        .concurrency(10_000)
        .sink(Instant(seen.clone()))
        .unwrap();
    for n in 0..30_000 {
        bus.emit(ev("job.done", n)).unwrap();
    }
    // Spawned after the subscriber was woken: it runs once the subscriber
    // yields, on this single-threaded runtime.
    let probe = seen.clone();
    let at_probe = tokio::spawn(async move { probe.load(Ordering::SeqCst) })
        .await
        .unwrap();
    assert!(
        at_probe < 30_000,
        "the other task ran only after all {at_probe} deliveries"
    );
    let report = bus.shutdown(LONG).await;
    assert_eq!(seen.load(Ordering::SeqCst), 30_000, "{report}");
}

/// A task publishing in a loop takes part in tokio's cooperative
/// scheduling, as `tokio::sync::mpsc`'s `send` does: once its budget is
/// spent it yields before taking the next event, so the subscriber it woke
/// runs on the same thread while the loop is still going, instead of only
/// after it (or only on another worker).
#[tokio::test]
async fn a_publishing_loop_gives_its_subscribers_a_turn() {
    let bus = Bus::new().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let _sub = bus
        .subscriber("job.*")
        .capacity(2_000)
        .overflow(OverflowPolicy::Block)
        .on(move |_e| {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    // The room never runs out, so nothing but the budget makes it yield.
    let mut seen_while_publishing = 0;
    for n in 0..1_000 {
        bus.publish(ev("job.done", n)).await.unwrap();
        seen_while_publishing = seen_while_publishing.max(seen.load(Ordering::SeqCst));
    }
    assert!(
        seen_while_publishing > 0,
        "the subscriber ran only once 1,000 publishes were done"
    );
    let report = bus.shutdown(LONG).await;
    assert_eq!(seen.load(Ordering::SeqCst), 1_000, "{report}");
}
