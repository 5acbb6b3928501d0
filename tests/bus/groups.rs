//! Subscribers of one shape (same patterns, key and capacity, no condition)
//! share one broadcast ring, each reading through its own cursor: each
//! keeps its own policy and counts, and nothing about the sharing shows.

use super::*;

/// A lossy member that stops reading costs neither a `Block` member of the
/// same ring nor the emitter anything; what it loses is counted and
/// announced, and its counts add up.
#[tokio::test]
async fn a_lagging_lossy_member_costs_a_block_member_and_the_emitter_nothing() {
    let bus = Bus::new().unwrap();
    let (mut drops_rx, drops) = {
        let (tx, rx) = mpsc::unbounded_channel();
        (rx, tx)
    };
    bus.subscriber("hookbus.dropped")
        .on(move |e: &Event| {
            let _ = drops.send((
                e.data()["subscriber"].as_str().unwrap().to_owned(),
                e.data()["dropped"].as_u64().unwrap(),
            ));
        })
        .unwrap()
        .detach();
    // The first subscriber of the shape has a mailbox of its own; the next
    // ones share the ring.
    let (first, f) = recorder();
    bus.subscriber("m").capacity(16).on(f).unwrap().detach();
    let (mut entered, release, stalled_seen) =
        gated(&bus, "m", "stalled", 16, OverflowPolicy::DropOldest);
    let (blocking, b) = recorder();
    bus.subscriber("m")
        .name("blocking")
        .capacity(16)
        .overflow(OverflowPolicy::Block)
        .on(b)
        .unwrap()
        .detach();

    bus.emit(ev("m", 0)).unwrap();
    assert_eq!(entered.recv().await, Some(0));
    // The stalled member holds event 0 and reads nothing more: publish never
    // waits for it, only for the `Block` member.
    for i in 1..1_000 {
        bus.publish(ev("m", i)).await.unwrap();
    }
    let mut announced = 0;
    while announced < 1_000 - 1 - 16 {
        // It skips what was written over once it reads again: release it.
        release.notify_one();
        let (who, n) = drops_rx.recv().await.unwrap();
        assert_eq!(who, "stalled");
        announced += n;
    }
    release_all(&release, &mut entered, 16).await;
    let report = bus.shutdown(LONG).await;
    let all: Vec<u64> = (0..1_000).collect();
    assert_eq!(*blocking.lock().unwrap(), all);
    assert_eq!(*first.lock().unwrap(), all);
    let stalled = &report.subscriber("stalled").unwrap().stats;
    assert_eq!(stalled.received, 1_000);
    assert_eq!(stalled.dropped, 1_000 - 1 - 16);
    assert_eq!(announced, stalled.dropped);
    assert_eq!(stalled.delivered, 17);
    // What it got: the first event, then the newest 16, in order.
    let mut expected = vec![0];
    expected.extend(1_000 - 16..1_000);
    assert_eq!(*stalled_seen.lock().unwrap(), expected);
    assert_eq!(report.rejected_full, 0);
}

/// A `Block` member holds the ring: once it is a whole ring behind, `emit`
/// is refused with `Full` and no subscriber got the event (another
/// subscriber of the type counts only the accepted ones).
#[tokio::test]
async fn a_block_member_keeps_emit_all_or_nothing() {
    let bus = Bus::new().unwrap();
    let counted = Arc::new(AtomicUsize::new(0));
    let c = counted.clone();
    // A different shape (a condition): its own mailbox.
    bus.subscriber("m")
        .name("other")
        .capacity(1_000)
        .filter(|_| true)
        .on(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
        .detach();
    bus.subscriber("m")
        .name("first")
        .capacity(4)
        .overflow(OverflowPolicy::Block)
        .on(|_| {})
        .unwrap()
        .detach();
    let (mut entered, release, seen) = gated(&bus, "m", "held", 4, OverflowPolicy::Block);
    bus.emit(ev("m", 0)).unwrap();
    assert_eq!(entered.recv().await, Some(0));
    let mut accepted = 1;
    let refused = loop {
        match bus.emit(ev("m", accepted)) {
            Ok(()) => accepted += 1,
            Err(EmitError::Full(e)) => break e,
            Err(e) => panic!("{e}"),
        }
        assert!(accepted < 100, "never refused");
    };
    assert_eq!(n_of(&refused), accepted);
    // One in the handler, the ring's four places behind it (the other
    // `Block` subscriber may hold some too, never more).
    assert!((2..=5).contains(&accepted), "accepted {accepted}");
    release.notify_one();
    release_all(&release, &mut entered, accepted - 1).await;
    let report = bus.shutdown(LONG).await;
    let expected: Vec<u64> = (0..accepted).collect();
    assert_eq!(*seen.lock().unwrap(), expected);
    assert_eq!(report.subscriber("other").unwrap().stats.received, accepted);
    assert_eq!(counted.load(Ordering::SeqCst) as u64, accepted);
    assert_eq!(report.rejected_full, 1);
}

/// The shutdown report accounts for every accepted event per member, with
/// members of mixed policies, joined at different times, some unsubscribed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_report_is_exact_for_every_member() {
    let bus = Bus::new().unwrap();
    let mut early = Vec::new();
    for i in 0..6 {
        let policy = if i % 2 == 0 {
            OverflowPolicy::Block
        } else {
            OverflowPolicy::DropOldest
        };
        let (seen, f) = recorder();
        bus.subscriber("m.*")
            .name(format!("early{i}"))
            .capacity(64)
            .overflow(policy)
            .on(f)
            .unwrap()
            .detach();
        early.push(seen);
    }
    for i in 0..500 {
        bus.publish(ev("m.x", i)).await.unwrap();
    }
    // One more joins now: it receives from here on, nothing before.
    let (late, f) = recorder();
    let late_sub = bus
        .subscriber("m.*")
        .name("late")
        .capacity(64)
        .overflow(OverflowPolicy::Block)
        .on(f)
        .unwrap();
    for i in 500..1_000 {
        bus.publish(ev("m.x", i)).await.unwrap();
    }
    let report = bus.shutdown(LONG).await;
    assert!(report.is_clean(), "{report}");
    for (i, seen) in early.iter().enumerate() {
        let s = &report.subscriber(&format!("early{i}")).unwrap().stats;
        assert_eq!(s.received, 1_000, "early{i}");
        assert_eq!(
            s.delivered + s.dropped + s.failed + s.mailbox_len + s.in_flight,
            s.received
        );
        if i % 2 == 0 {
            assert_eq!(s.dropped, 0);
            assert_eq!(*seen.lock().unwrap(), (0..1_000).collect::<Vec<_>>());
        }
    }
    let s = &report.subscriber("late").unwrap().stats;
    assert_eq!(s.received, 500);
    assert_eq!(*late.lock().unwrap(), (500..1_000).collect::<Vec<_>>());
    drop(late_sub);
}

/// Members come and go: the others go on, a late one gets only what was
/// emitted after it subscribed, and when the last leaves the type has no
/// subscriber left.
#[tokio::test]
async fn members_come_and_go_without_touching_the_others() {
    let bus = Bus::new().unwrap();
    let mut subs = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (s, f) = recorder();
        subs.push(bus.subscriber("m").on(f).unwrap());
        seen.push(s);
    }
    for i in 0..10 {
        bus.publish(ev("m", i)).await.unwrap();
    }
    // Two leave (the first, with its own mailbox, and a member).
    subs.remove(2).unsubscribe();
    subs.remove(0).unsubscribe();
    let (late, f) = recorder();
    subs.push(bus.subscriber("m").on(f).unwrap());
    for i in 10..20 {
        bus.publish(ev("m", i)).await.unwrap();
    }
    let stats: Vec<_> = subs.iter().map(|s| s.stats()).collect();
    for s in subs {
        s.unsubscribe();
    }
    assert!(!bus.has_subscribers("m"));
    // Emits now reach nobody.
    bus.emit(ev("m", 99)).unwrap();
    let report = bus.shutdown(LONG).await;
    assert!(report.subscribers.iter().all(|s| s.stats.received <= 20));
    assert_eq!(*seen[1].lock().unwrap(), (0..20).collect::<Vec<_>>());
    assert_eq!(*seen[3].lock().unwrap(), (0..20).collect::<Vec<_>>());
    assert_eq!(*late.lock().unwrap(), (10..20).collect::<Vec<_>>());
    assert_eq!(seen[0].lock().unwrap().len(), 10);
    assert_eq!(seen[2].lock().unwrap().len(), 10);
    assert!(stats.iter().all(|s| s.received >= 10));
}

/// Two thousand subscribers of one type, half of them `Block`: every one
/// receives every published event, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_members_each_receive_everything_in_order() {
    let bus = Bus::new().unwrap();
    let total = Arc::new(AtomicUsize::new(0));
    let out_of_order = Arc::new(AtomicUsize::new(0));
    for i in 0..2_000 {
        let total = total.clone();
        let out_of_order = out_of_order.clone();
        let mut last = None;
        bus.subscriber("m")
            .overflow(if i % 2 == 0 {
                OverflowPolicy::Block
            } else {
                OverflowPolicy::DropOldest
            })
            .on(move |e: &Event| {
                let n = n_of(e);
                if last.is_some_and(|l| l + 1 != n) || (last.is_none() && n != 0) {
                    out_of_order.fetch_add(1, Ordering::SeqCst);
                }
                last = Some(n);
                total.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap()
            .detach();
    }
    for i in 0..200 {
        bus.publish(ev("m", i)).await.unwrap();
    }
    let report = bus.shutdown(LONG).await;
    assert!(report.is_clean());
    assert_eq!(total.load(Ordering::SeqCst), 2_000 * 200);
    assert_eq!(out_of_order.load(Ordering::SeqCst), 0);
}

/// A member that unsubscribes delivers everything it had taken, as a
/// mailbox of its own would: a `Block` member with a backlog neither loses
/// it to the members that go on nor holds their emits back.
#[tokio::test]
async fn an_unsubscribed_member_delivers_what_it_had_taken() {
    let bus = Bus::new().unwrap();
    // The first of the shape (its own mailbox) and a member that keep up.
    let (fast, f) = recorder();
    let (other, o) = recorder();
    for handler in [f, o] {
        bus.subscriber("m")
            .capacity(4)
            .overflow(OverflowPolicy::Block)
            .on(handler)
            .unwrap()
            .detach();
    }
    // A `Block` member stopped in its handler.
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (r, s) = (release.clone(), seen.clone());
    let held = bus
        .subscriber("m")
        .name("held")
        .capacity(4)
        .overflow(OverflowPolicy::Block)
        .on_async(move |e| {
            let (r, s, entered) = (r.clone(), s.clone(), entered_tx.clone());
            async move {
                let n = n_of(&e);
                entered.send(n).unwrap();
                r.notified().await;
                s.lock().unwrap().push(n);
            }
        })
        .unwrap();
    bus.emit(ev("m", 0)).unwrap();
    assert_eq!(entered.recv().await, Some(0));
    // Four more fill its share of the ring: the next one would be Full.
    for i in 1..5 {
        bus.emit(ev("m", i)).unwrap();
    }
    assert!(matches!(bus.emit(ev("m", 99)), Err(EmitError::Full(_))));
    held.unsubscribe();
    // It holds no one now, and what it had is its own.
    for i in 5..50 {
        bus.publish(ev("m", i)).await.unwrap();
    }
    release.notify_one();
    release_all(&release, &mut entered, 4).await;
    let report = bus.shutdown(LONG).await;
    assert_eq!(*seen.lock().unwrap(), (0..5).collect::<Vec<_>>());
    let all: Vec<u64> = (0..50).collect();
    assert_eq!(*fast.lock().unwrap(), all);
    assert_eq!(*other.lock().unwrap(), all);
    assert_eq!(report.rejected_full, 1);
}

/// `Block` members joining and leaving while two threads emit: each member
/// receives, with no gap, every event of each emitter from the first one it
/// saw to the end (nothing written over a `Block` member's unread slot,
/// whatever joined or left meanwhile).
#[test]
fn block_members_joining_and_leaving_under_load_miss_nothing() {
    const N: u64 = 5_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bus = rt.block_on(async { Bus::builder().capacity(8).build().unwrap() });
    // A subscriber with a condition, so some emits run the path that drops
    // the table's lock before pushing.
    bus.subscriber("m")
        .capacity(8)
        .filter(|_| true)
        .on(|_| {})
        .unwrap()
        .detach();
    let emitters: Vec<_> = (0..2u64)
        .map(|who| {
            let bus = bus.clone();
            let handle = rt.handle().clone();
            std::thread::spawn(move || {
                for i in 0..N {
                    let e = Event::new("m", json!({ "n": i, "who": who })).unwrap();
                    handle.block_on(bus.publish(e)).unwrap();
                }
            })
        })
        .collect();
    let mut members = Vec::new();
    let mut kept = Vec::new();
    for k in 0..40 {
        let seen: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
        let s = seen.clone();
        let policy = if k % 3 == 0 {
            OverflowPolicy::DropOldest
        } else {
            OverflowPolicy::Block
        };
        let sub = rt.block_on(async {
            bus.subscriber("m")
                .capacity(8)
                .overflow(policy)
                .on(move |e: &Event| {
                    s.lock()
                        .unwrap()
                        .push((e.data()["who"].as_u64().unwrap(), n_of(e)))
                })
                .unwrap()
        });
        let stays = k % 4 != 3;
        if stays {
            kept.push(sub);
        } else {
            // Some leave again at once (their backlog is theirs).
            sub.unsubscribe();
        }
        members.push((policy, stays, seen));
        std::thread::yield_now();
    }
    for e in emitters {
        e.join().unwrap();
    }
    let report = rt.block_on(bus.shutdown(LONG));
    assert!(report.subscribers.iter().all(|s| s.completed));
    drop(kept);
    for (policy, stays, seen) in members {
        if policy != OverflowPolicy::Block {
            continue;
        }
        let seen = seen.lock().unwrap();
        for who in 0..2 {
            let ns: Vec<u64> = seen
                .iter()
                .filter(|(w, _)| *w == who)
                .map(|(_, n)| *n)
                .collect();
            for pair in ns.windows(2) {
                assert_eq!(pair[1], pair[0] + 1, "a gap in emitter {who}'s events");
            }
            if stays && let Some(last) = ns.last() {
                assert_eq!(*last, N - 1, "a member that stayed missed the end");
            }
        }
    }
}
