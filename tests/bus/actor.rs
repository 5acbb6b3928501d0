//! The bus actor owns the lifecycle: shutdown runs on the bus's own runtime
//! whoever asks for it, and the report stays honest when that runtime is gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hookbus::{Bus, SubscribeError};
use tokio::sync::Notify;

use super::{LONG, ev};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Shutdown asked from another runtime (and from a plain thread's
/// `block_on`) waits for the subscribers on the bus's runtime and reports
/// every event delivered.
#[test]
fn shutdown_from_another_runtime_drains_on_the_buss_own() {
    let home = runtime();
    let bus = Bus::builder()
        .runtime(home.handle().clone())
        .build()
        .unwrap();
    let handled = Arc::new(AtomicU64::new(0));
    let h = handled.clone();
    bus.on("actor.tick", move |_| {
        h.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap()
    .detach();
    for i in 0..500 {
        bus.emit(ev("actor.tick", i)).unwrap();
    }
    let elsewhere = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = elsewhere.block_on(bus.shutdown(LONG));
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.subscribers[0].stats.delivered, 500);
    assert_eq!(handled.load(Ordering::SeqCst), 500);
    // A second call gets the same report.
    let again = elsewhere.block_on(bus.shutdown(LONG));
    assert_eq!(again.subscribers[0].stats.delivered, 500);
}

/// The bus's runtime shut down under it (with a subscriber in the middle
/// of its work): shutdown from another runtime returns at once, says the
/// subscriber did not complete and what it left, and refuses new
/// subscribers; nothing hangs.
#[test]
fn shutdown_after_the_buss_runtime_died_reports_what_was_left() {
    let home = runtime();
    let bus = Bus::builder()
        .runtime(home.handle().clone())
        .build()
        .unwrap();
    let started = Arc::new(Notify::new());
    let s = started.clone();
    bus.on_async("actor.stuck", move |_| {
        let s = s.clone();
        async move {
            s.notify_one();
            std::future::pending::<()>().await;
        }
    })
    .unwrap()
    .detach();
    for i in 0..3 {
        bus.emit(ev("actor.stuck", i)).unwrap();
    }
    home.block_on(started.notified());
    drop(home);

    let elsewhere = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = elsewhere.block_on(bus.shutdown(LONG));
    assert!(!report.is_clean(), "{report}");
    let sub = &report.subscribers[0];
    assert!(!sub.completed, "{report}");
    assert_eq!(sub.stats.received, 3, "{report}");
    assert_eq!(sub.pending, 3, "one started, two queued: {report}");
    assert!(matches!(
        bus.on("actor.late", |_| {}),
        Err(SubscribeError::Closed)
    ));
}
