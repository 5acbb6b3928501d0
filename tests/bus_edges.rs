//! The bus core at its edges: bursts, shutdown races, stalled subscribers,
//! thousands of subscribers, live stats. Each test tries to break one promise
//! the docs make; each failed against the first-generation core.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookbus::{Bus, EmitError, Event, OverflowPolicy, Pattern, SubscribeError, Typed, TypedEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;

const LONG: Duration = Duration::from_secs(30);

fn ev(ty: &str, n: u64) -> Event {
    Event::new(ty.to_owned(), json!({ "n": n })).unwrap()
}

/// Sends a message when dropped: tells a test that a subscriber's handler
/// (and so its task) is gone.
struct OnDrop(std::sync::mpsc::Sender<()>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// A sync handler that blocks its thread until released, counting calls.
struct Blocker {
    started: Arc<AtomicU64>,
    entered: std::sync::mpsc::Receiver<u64>,
    release: std::sync::mpsc::Sender<()>,
}

fn blocking_handler(
    bus: &Bus,
    pattern: &str,
    name: &str,
    capacity: usize,
    policy: OverflowPolicy,
) -> (Blocker, std::sync::mpsc::Receiver<()>) {
    let started = Arc::new(AtomicU64::new(0));
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let (gone_tx, gone) = std::sync::mpsc::channel();
    let guard = OnDrop(gone_tx);
    let s = started.clone();
    bus.subscriber(pattern)
        .name(name)
        .capacity(capacity)
        .overflow(policy)
        .on(move |e: &Event| {
            let _keep = &guard;
            s.fetch_add(1, Ordering::SeqCst);
            let _ = entered_tx.send(e.data()["n"].as_u64().unwrap_or(0));
            // Blocks the thread, as a slow sync handler would.
            let _ = release_rx.recv();
        })
        .unwrap()
        .detach();
    (
        Blocker {
            started,
            entered,
            release,
        },
        gone,
    )
}

/// A `Block` subscriber on `m` whose async handler waits for a permit.
fn stalled_block_subscriber(bus: &Bus, name: &str, capacity: usize) -> Arc<tokio::sync::Notify> {
    let release = Arc::new(tokio::sync::Notify::new());
    let r = release.clone();
    bus.subscriber("m")
        .name(name)
        .capacity(capacity)
        .overflow(OverflowPolicy::Block)
        .on_async(move |_e| {
            let r = r.clone();
            async move { r.notified().await }
        })
        .unwrap()
        .detach();
    release
}

fn check_sum(s: &hookbus::SubscriberStats) {
    assert_eq!(
        s.received,
        s.filtered + s.delivered + s.failed + s.dropped + s.mailbox_len + s.in_flight,
        "counts of {} do not add up: {s:?}",
        s.name
    );
    assert_eq!(s.accepted, s.received - s.filtered);
}

/// Only lossy subscribers: a burst never makes `emit` fail. A subscriber
/// stuck on its thread drops at its own mailbox; a fast one on the same bus
/// gets every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_with_only_lossy_subscribers_never_returns_full() {
    let bus = Bus::new().unwrap();
    let (stuck, _gone) = blocking_handler(&bus, "m", "stuck", 64, OverflowPolicy::DropOldest);
    bus.subscriber("m")
        .name("noop")
        .capacity(64)
        .on(|_e: &Event| {})
        .unwrap()
        .detach();
    let fast = Arc::new(AtomicU64::new(0));
    let f = fast.clone();
    bus.subscriber("m")
        .name("fast")
        .capacity(200_001)
        .overflow(OverflowPolicy::DropNewest)
        .on(move |_e: &Event| {
            f.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap()
        .detach();
    bus.emit(ev("m", 0)).unwrap();
    assert_eq!(stuck.entered.recv().unwrap(), 0);

    let b = bus.clone();
    let full = std::thread::spawn(move || {
        (1..=200_000u64)
            .filter(|&i| matches!(b.emit(ev("m", i)), Err(EmitError::Full(_))))
            .count()
    })
    .join()
    .unwrap();
    assert_eq!(full, 0, "emit returned Full with no Block subscriber");

    drop(stuck.release); // the stuck handler returns from now on
    let report = bus.shutdown(LONG).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.emitted, 200_001);
    assert_eq!(report.rejected_full, 0);
    for s in &report.subscribers {
        assert_eq!(s.stats.received, 200_001, "{}", s.stats.name);
        assert_eq!(
            s.stats.delivered + s.stats.dropped,
            s.stats.received,
            "{}",
            s.stats.name
        );
    }
    let fast_report = report.subscriber("fast").unwrap();
    assert_eq!(fast_report.stats.dropped, 0);
    assert_eq!(fast.load(Ordering::Relaxed), 200_001);
    assert!(report.subscriber("stuck").unwrap().stats.dropped > 0);
}

/// A stalled `Block` subscriber: every emit that returned `Ok` is in the
/// shutdown report, as delivered or pending; nothing hides in between.
#[tokio::test(start_paused = true)]
async fn shutdown_with_a_stalled_block_subscriber_reports_every_accepted_event() {
    let bus = Bus::new().unwrap();
    let _release = stalled_block_subscriber(&bus, "stalled", 16);
    let mut ok = 0u64;
    let mut full = 0u64;
    for i in 0..5000 {
        match bus.emit(ev("m", i)) {
            Ok(()) => ok += 1,
            Err(EmitError::Full(e)) => {
                assert_eq!(e.data()["n"], i, "Full gives the event back");
                full += 1;
            }
            Err(e) => panic!("{e}"),
        }
        if i == 0 {
            // Let the task start the first event.
            tokio::task::yield_now().await;
        }
    }
    assert!(full > 0);
    let report = bus.shutdown(Duration::from_millis(200)).await;
    let s = report.subscriber("stalled").unwrap();
    assert!(!s.completed);
    assert_eq!(report.emitted, ok);
    assert_eq!(report.rejected_full, full);
    assert_eq!(s.stats.received, ok);
    assert_eq!(s.stats.delivered + s.pending, ok);
    assert_eq!(s.unfinished, 1);
}

/// The deadline is the deadline: a sync handler stuck at the deadline is
/// reported as started-not-finished, and no handler starts after shutdown
/// returned, even once the stuck one returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_handler_starts_after_the_shutdown_deadline() {
    let bus = Bus::new().unwrap();
    let (blocker, gone) = blocking_handler(&bus, "m", "slow", 64, OverflowPolicy::Block);
    for i in 0..10 {
        bus.emit(ev("m", i)).unwrap();
    }
    // Let two handlers run to the end; the third stays stuck.
    for expected in 0..2 {
        assert_eq!(blocker.entered.recv().unwrap(), expected);
        blocker.release.send(()).unwrap();
    }
    assert_eq!(blocker.entered.recv().unwrap(), 2);
    let report = bus.shutdown(Duration::from_millis(50)).await;
    let s = report.subscriber("slow").unwrap();
    assert!(!s.completed);
    assert_eq!(s.stats.delivered, 2);
    assert_eq!(s.unfinished, 1);
    assert_eq!(s.pending, 8);
    let started_at_deadline = blocker.started.load(Ordering::SeqCst);
    assert_eq!(started_at_deadline, 3);

    // Free the stuck handler: its task must end without starting another.
    drop(blocker.release);
    gone.recv_timeout(LONG)
        .expect("the subscriber's handler should be dropped once its task ends");
    assert_eq!(blocker.started.load(Ordering::SeqCst), started_at_deadline);
}

/// `on` racing `shutdown`: a subscriber whose `on` returned `Ok` is in the
/// report; otherwise `on` returned `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_during_shutdown_is_in_the_report_or_refused() {
    for round in 0..200 {
        let bus = Bus::new().unwrap();
        let b = bus.clone();
        let subscriber = std::thread::spawn(move || {
            let mut ids = Vec::new();
            loop {
                match b.on("m", |_e: &Event| {}) {
                    Ok(sub) => {
                        ids.push(sub.id());
                        sub.detach();
                    }
                    Err(SubscribeError::Closed) => return ids,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let report = bus.shutdown(LONG).await;
        let ids = subscriber.join().unwrap();
        let reported: Vec<u64> = report.subscribers.iter().map(|s| s.stats.id).collect();
        for id in &ids {
            assert!(
                reported.contains(id),
                "round {round}: subscriber {id} missing from the report"
            );
        }
    }
}

/// `stats()` under four emitting threads: every sample adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stats_add_up_in_every_sample() {
    let bus = Bus::new().unwrap();
    bus.subscriber("load.*")
        .name("lossy")
        .capacity(32)
        .filter(|e| e.data()["n"].as_u64().is_some_and(|n| n % 3 != 0))
        .on(|_e: &Event| {})
        .unwrap()
        .detach();
    bus.subscriber("load.**")
        .name("async")
        .capacity(64)
        .concurrency(4)
        .overflow(OverflowPolicy::DropNewest)
        .on_async(|_e| async { tokio::task::yield_now().await })
        .unwrap()
        .detach();
    let emitters: Vec<_> = (0..4)
        .map(|t| {
            let b = bus.clone();
            std::thread::spawn(move || {
                for i in 0..25_000u64 {
                    b.emit(ev("load.tick", t * 100_000 + i)).unwrap();
                }
            })
        })
        .collect();
    let mut samples = 0;
    while emitters.iter().any(|h| !h.is_finished()) {
        for s in &bus.stats().subscribers {
            check_sum(s);
        }
        samples += 1;
        tokio::task::yield_now().await;
    }
    for h in emitters {
        h.join().unwrap();
    }
    assert!(samples > 0);
    let report = bus.shutdown(LONG).await;
    for s in &report.subscribers {
        check_sum(&s.stats);
        assert_eq!(s.stats.received, 100_000);
    }
}

/// 10,000 subscribers on distinct exact types subscribe, each gets exactly
/// its own event, and all shut down cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_subscribers_each_get_only_their_own_type() {
    const S: u64 = 10_000;
    let bus = Bus::new().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    for i in 0..S {
        let seen = seen.clone();
        bus.subscriber(format!("tenant{i}.order.placed"))
            .name(format!("t{i}"))
            .on(move |e: &Event| {
                assert_eq!(e.data()["n"], i, "an event of another type arrived");
                seen.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap()
            .detach();
    }
    for i in 0..S {
        bus.emit(ev(&format!("tenant{i}.order.placed"), i)).unwrap();
    }
    bus.emit(ev("tenant.nobody", 0)).unwrap();
    let report = bus.shutdown(LONG).await;
    assert!(report.is_clean());
    assert_eq!(report.subscribers.len() as u64, S);
    assert_eq!(report.emitted, S);
    assert_eq!(report.unmatched, 1);
    assert!(report.subscribers.iter().all(|s| s.stats.received == 1));
    assert_eq!(seen.load(Ordering::Relaxed), S);
}

/// Emits are all-or-nothing: one full `Block` mailbox and nobody gets it.
#[tokio::test]
async fn a_full_block_subscriber_refuses_the_event_for_everyone() {
    let bus = Bus::new().unwrap();
    let release = stalled_block_subscriber(&bus, "narrow", 1);
    let other = Arc::new(Mutex::new(Vec::new()));
    let o = other.clone();
    bus.subscriber("m")
        .name("wide")
        .capacity(100)
        .overflow(OverflowPolicy::Block)
        .on(move |e: &Event| o.lock().unwrap().push(e.data()["n"].as_u64().unwrap()))
        .unwrap()
        .detach();
    bus.emit(ev("m", 0)).unwrap(); // fills narrow's mailbox (its task has not run)
    match bus.emit(ev("m", 1)) {
        Err(EmitError::Full(e)) => assert_eq!(e.data()["n"], 1),
        other => panic!("expected Full, got {other:?}"),
    }
    // publish waits for room in the narrow mailbox instead, and goes
    // through once its task takes event 0 out.
    let b = bus.clone();
    let publish = tokio::spawn(async move { b.publish(ev("m", 2)).await });
    release.notify_one(); // a permit for event 0's handler
    publish.await.unwrap().unwrap();
    release.notify_one(); // and one for event 2's
    let report = bus.shutdown(Duration::from_secs(1)).await;
    assert_eq!(*other.lock().unwrap(), vec![0, 2]);
    let narrow = report.subscriber("narrow").unwrap();
    assert_eq!(narrow.stats.received, 2);
    assert_eq!(report.rejected_full, 1);
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Tick {
    n: u64,
}

impl TypedEvent for Tick {
    const TYPE: &'static str = "metrics.tick";
}

/// A typed event reaches a typed handler as the value itself: no JSON is
/// made when no subscriber asks for it.
#[tokio::test]
async fn typed_handlers_get_the_value_without_json() {
    let bus = Bus::new().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    bus.on_typed(move |t: Typed<Tick>| tx.send((t.n, t.event().is_json_materialized())).unwrap())
        .unwrap()
        .detach();
    bus.emit(Tick { n: 7 }).unwrap();
    assert_eq!(rx.recv().await.unwrap(), (7, false));
    // A dynamic subscriber asks for JSON: it is made then, once.
    bus.on("metrics.*", |e: &Event| assert_eq!(e.data()["n"], 8))
        .unwrap()
        .detach();
    bus.emit(Tick { n: 8 }).unwrap();
    assert_eq!(rx.recv().await.unwrap().0, 8);
    let report = bus.shutdown(LONG).await;
    assert!(report.is_clean(), "{report}");
}

#[tokio::test]
async fn a_second_shutdown_returns_the_first_report() {
    let bus = Bus::new().unwrap();
    bus.on("m", |_e: &Event| {}).unwrap().detach();
    bus.emit(ev("m", 1)).unwrap();
    let first = bus.shutdown(LONG).await;
    let second = bus.clone().shutdown(LONG).await;
    assert_eq!(first, second);
    assert_eq!(second.subscribers[0].stats.delivered, 1);
}

#[test]
fn types_and_patterns_refuse_empty_segments() {
    for ty in ["a.", ".a", "a..b", "."] {
        assert!(hookbus::event::validate_type(ty).is_err(), "{ty}");
        assert!(Event::new(ty, json!(null)).is_err(), "{ty}");
    }
    assert!(!Pattern::new("a.*").unwrap().matches("a."));
    assert!(!Pattern::new("a.**").unwrap().matches("a."));
    assert!(!Pattern::new("a.**").unwrap().matches("a..b"));
    assert!(!Pattern::new("*.b").unwrap().matches(".b"));
    assert!(Pattern::new("a.**").unwrap().matches("a"));
    assert!(Pattern::new("a.*").unwrap().matches("a.b"));
}

/// `publish` is cancel-safe: dropped while it waits for room, it leaves the
/// event emitted to nobody and no place reserved in any mailbox.
#[tokio::test(start_paused = true)]
async fn a_publish_dropped_while_waiting_leaves_no_trace() {
    let bus = Bus::new().unwrap();
    let release = stalled_block_subscriber(&bus, "narrow", 1);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    bus.subscriber("m")
        .name("wide")
        .capacity(10)
        .overflow(OverflowPolicy::Block)
        .on(move |e: &Event| s.lock().unwrap().push(e.data()["n"].as_u64().unwrap()))
        .unwrap()
        .detach();
    bus.emit(ev("m", 0)).unwrap();
    // Let narrow's task start event 0 (it stalls there), then fill its
    // one-place mailbox with event 1.
    while bus.stats().subscriber("narrow").unwrap().in_flight == 0 {
        tokio::task::yield_now().await;
    }
    bus.emit(ev("m", 1)).unwrap();
    assert!(matches!(bus.emit(ev("m", 9)), Err(EmitError::Full(_))));
    // The publish waits for narrow; give up on it.
    let waited = tokio::time::timeout(Duration::from_secs(1), bus.publish(ev("m", 2))).await;
    assert!(waited.is_err(), "publish should still be waiting for room");
    // Room appears: the next event goes through, the abandoned one never arrives.
    release.notify_one();
    bus.publish(ev("m", 3)).await.unwrap();
    release.notify_one();
    release.notify_one();
    let report = bus.shutdown(LONG).await;
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 3]);
    let narrow = report.subscriber("narrow").unwrap();
    assert_eq!(narrow.stats.received, 3);
    assert_eq!(report.rejected_full, 1);
}

/// A refused emit gives back the places it reserved: a `Block` subscriber
/// visited before the full one keeps its whole capacity however many emits
/// are refused (a leaked place per refusal would fill it for good). Tried
/// with and without a condition on it, the two paths an offer takes.
#[tokio::test]
async fn refused_emits_leave_no_place_reserved_in_the_other_block_mailboxes() {
    const WIDE: u64 = 3;
    for with_condition in [false, true] {
        let bus = Bus::new().unwrap();
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        let wide = bus
            .subscriber("m")
            .name("wide")
            .capacity(WIDE as usize)
            .overflow(OverflowPolicy::Block);
        let wide = if with_condition {
            wide.filter(|_e: &Event| true)
        } else {
            wide
        };
        wide.on(move |_e: &Event| {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
        .detach();
        // Subscribed second, so an offer reserves a place in `wide` before
        // it finds `narrow` full. Its handler waits for a permit.
        let release = Arc::new(tokio::sync::Notify::new());
        let r = release.clone();
        let narrow = bus
            .subscriber("m")
            .name("narrow")
            .capacity(1)
            .overflow(OverflowPolicy::Block)
            .on_async(move |_e| {
                let r = r.clone();
                async move { r.notified().await }
            })
            .unwrap();
        bus.emit(ev("m", 0)).unwrap(); // fills narrow's mailbox
        for i in 1..=50 {
            assert!(
                matches!(bus.emit(ev("m", i)), Err(EmitError::Full(_))),
                "emit {i} (condition: {with_condition})"
            );
        }
        // Both take event 0; then narrow leaves.
        while seen.load(Ordering::SeqCst) < 1
            || bus.stats().subscriber("narrow").unwrap().delivered < 1
        {
            release.notify_one();
            tokio::task::yield_now().await;
        }
        drop(narrow);
        // wide's task does not run between these emits: all WIDE places
        // must be free.
        for i in 0..WIDE {
            let sent = bus.emit(ev("m", 100 + i));
            assert!(
                sent.is_ok(),
                "wide refused event {i} of its {WIDE} places: places leaked (condition: {with_condition})"
            );
        }
        let report = bus.shutdown(Duration::from_secs(5)).await;
        assert_eq!(
            seen.load(Ordering::SeqCst),
            1 + WIDE,
            "condition: {with_condition}"
        );
        assert_eq!(report.rejected_full, 50);
    }
}
