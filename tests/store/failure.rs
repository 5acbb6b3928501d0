//! A store whose writer fails: the store is marked failed, every wait for
//! it ends with an error at once, new durable events are refused, and the
//! rest of the bus goes on. And the recovery of a large backlog (decoded on
//! several threads) is whole and in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hookbus::store::{Fault, Operation, Store, StoreError};
use hookbus::{Bus, EmitError, Event};
use serde_json::json;
use tokio::sync::Notify;

use super::{event, gated};

/// A hang here is the defect (a writer that died was never noticed:
/// `publish` and `sync` waited for ever); the watchdog turns it into a
/// failure instead of a stuck test run.
const WATCHDOG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_writer_that_panics_fails_the_store_and_every_wait_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let store = Store::builder(&path)
        .inject_writer_panic_after(1)
        .open()
        .unwrap();
    let bus = Bus::new().unwrap();
    let gate = Arc::new(Notify::new());
    let durable = bus
        .subscriber("order.*")
        .name("orders")
        .durable(&store)
        .on_async(gated(&gate))
        .unwrap();
    let audited = Arc::new(AtomicUsize::new(0));
    let a = audited.clone();
    let _memory = bus
        .on("audit.*", move |_| {
            a.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();

    // The first commit goes through.
    bus.publish(event(0)).await.unwrap();
    // The second panics inside the writer: publish says so, at once.
    let second = event(1);
    let id = second.id().to_owned();
    let refused = tokio::time::timeout(WATCHDOG, bus.publish(second))
        .await
        .expect("publish waited for a writer that had died");
    match refused {
        Err(EmitError::Store(e, reason)) => {
            assert_eq!(e.id(), id, "the event is given back");
            assert!(
                matches!(
                    &reason,
                    StoreError::Failed {
                        fault: Fault::Panicked { .. },
                        ..
                    }
                ),
                "{reason:?}"
            );
        }
        other => panic!("expected a store error, got {other:?}"),
    }
    // From now on: emit refuses durable events with the event...
    match bus.emit(event(2)) {
        Err(ref err @ EmitError::Store(ref e, ref reason)) => {
            assert_eq!(e.data()["n"], 2);
            assert!(
                matches!(
                    reason,
                    StoreError::Failed {
                        fault: Fault::Panicked { .. },
                        ..
                    }
                ),
                "{reason:?}"
            );
            // The store's error is the emit error's source.
            let source = std::error::Error::source(err).expect("a source");
            assert_eq!(source.downcast_ref::<StoreError>(), Some(reason));
        }
        other => panic!("expected a store error, got {other:?}"),
    }
    // ... publish and sync answer at once ...
    let publish = tokio::time::timeout(WATCHDOG, bus.publish(event(3)))
        .await
        .unwrap();
    assert!(matches!(publish, Err(EmitError::Store(..))), "{publish:?}");
    let sync = tokio::time::timeout(WATCHDOG, store.sync()).await.unwrap();
    match &sync {
        Err(StoreError::Failed {
            path: failed,
            during: Operation::Commit,
            fault: Fault::Panicked { message },
        }) => {
            assert_eq!(failed, &path);
            assert_eq!(message, "injected writer failure");
        }
        other => panic!("expected the store's failure, got {other:?}"),
    }
    let message = sync.unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("a commit failed"), "{message}");
    let stats = store.stats();
    assert_eq!(stats.commits, 1);
    assert_eq!(stats.commit_errors, 1);
    assert!(matches!(
        stats.last_error,
        Some(StoreError::Failed {
            fault: Fault::Panicked { .. },
            ..
        })
    ));
    // ... and subscribers in memory go on.
    bus.emit(Event::new("audit.read", json!({})).unwrap())
        .unwrap();
    bus.shutdown(Duration::from_secs(5)).await;
    assert_eq!(audited.load(Ordering::SeqCst), 1);
    assert_eq!(durable.stats().received, 2, "only the two accepted ones");
    drop(durable);
    drop(store);

    // The database's state after a panic is unknown: it is never written
    // again, not even closed, so the file stays locked until the process
    // ends (a restart). What was committed before the failure is on disk.
    let again = Store::open(&path).unwrap_err();
    assert!(again.to_string().contains("already open"), "{again}");
    let copy = dir.path().join("after-restart.redb");
    std::fs::copy(&path, &copy).unwrap();
    let store = Store::open(&copy).unwrap();
    assert_eq!(store.pending("orders").unwrap(), 1);
}

/// Recovery decodes large backlogs on several threads: every event comes
/// back, once, in the order it was accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_is_recovered_whole_and_in_order() {
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    {
        let store = Store::open(&path).unwrap();
        let bus = Bus::new().unwrap();
        let gate = Arc::new(Notify::new());
        let _sub = bus
            .subscriber("order.*")
            .name("orders")
            .durable(&store)
            .capacity(N as usize + 1)
            .on_async(gated(&gate))
            .unwrap();
        for i in 0..N {
            bus.publish(event(i)).await.unwrap();
        }
        bus.shutdown(Duration::ZERO).await;
    }
    let store = Store::open(&path).unwrap();
    let bus = Bus::new().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    bus.subscriber("order.*")
        .name("orders")
        .durable(&store)
        .on(move |e| s.lock().unwrap().push(e.data()["n"].as_u64().unwrap()))
        .unwrap()
        .detach();
    assert_eq!(store.stats().recovered, N);
    assert_eq!(store.stats().unreadable, 0);
    bus.shutdown(Duration::from_secs(30)).await;
    assert_eq!(*seen.lock().unwrap(), (0..N).collect::<Vec<_>>());
}

/// A store that fails says so once on the bus, as `hookbus.store_failed`
/// (besides the log and the stats): which file, what failed, and which
/// durable subscribers now refuse events. Later refusals announce nothing
/// more.
#[tokio::test]
async fn a_store_failure_is_announced_once_on_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let store = Store::builder(&path)
        .inject_writer_panic_after(1)
        .open()
        .unwrap();
    let bus = Bus::new().unwrap();
    let _durable = bus
        .subscriber("order.*")
        .name("orders")
        .durable(&store)
        .on(|_| ())
        .unwrap();
    let announced = Arc::new(std::sync::Mutex::new(Vec::new()));
    let a = announced.clone();
    bus.on("hookbus.store_failed", move |e: &Event| {
        a.lock().unwrap().push(e.data().clone());
    })
    .unwrap()
    .detach();

    bus.publish(event(0)).await.unwrap();
    // The writer fails here; every later call is refused without a commit.
    let refused = tokio::time::timeout(WATCHDOG, bus.publish(event(1)))
        .await
        .expect("publish waited for a writer that had died");
    assert!(matches!(refused, Err(EmitError::Store(..))), "{refused:?}");
    for i in 2..5 {
        assert!(matches!(bus.emit(event(i)), Err(EmitError::Store(..))));
    }
    assert!(matches!(
        tokio::time::timeout(WATCHDOG, bus.publish(event(5))).await,
        Ok(Err(EmitError::Store(..)))
    ));
    assert!(
        tokio::time::timeout(WATCHDOG, store.sync())
            .await
            .unwrap()
            .is_err()
    );
    // The announcement went to the bus actor before the failed publish
    // returned; the actor emits it before it takes the shutdown, which
    // delivers it.
    bus.shutdown(Duration::from_secs(5)).await;
    let announced = announced.lock().unwrap();
    assert_eq!(announced.len(), 1, "announced once: {announced:?}");
    let data = &announced[0];
    assert_eq!(data["store"], path.display().to_string());
    assert_eq!(data["subscribers"], json!(["orders"]));
    assert_eq!(data["panicked"], true);
    let error = data["error"].as_str().unwrap();
    assert!(error.contains("injected writer failure"), "{error}");
}
