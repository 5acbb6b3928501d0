//! Durable subscribers (feature `durable`): real files, real processes.
//!
//! Modules: `damage` (damaged and foreign store files, a property test over
//! them), `failure` (a writer that fails), `format` (segment tables, files
//! of format 1 moved over, deliveries made durable), `ingress` (the ingress
//! in front of a store that is behind, failed, or slow to commit),
//! `reregister` (a durable name taken over once its subscriber is
//! unsubscribed), `tools` (the operator's calls and `hookbus store`).
//!
//! The crash tests run a child process (this test binary, re-executed with
//! `crash_child` as its only test) that emits to a durable webhook
//! subscriber, kill it with SIGKILL mid-stream, and finish the work in a
//! new bus on the same store.
#![cfg(all(feature = "durable", feature = "webhook"))]

#[path = "../webhook_support/mod.rs"]
mod webhook_support;

mod damage;
mod failure;
mod format;
#[cfg(feature = "axum")]
mod ingress;
mod reregister;
mod tools;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use hookbus::store::{OpenProblem, Store, StoreError};
use hookbus::webhook::{RetryPolicy, WebhookSink};
use hookbus::{Bus, EmitError, Event, OverflowPolicy, SubscribeError};
use serde_json::json;
use tokio::sync::Notify;
use webhook_support::Receiver;

fn event(i: u64) -> Event {
    Event::new("order.placed", json!({"n": i})).unwrap()
}

/// A subscriber whose handler waits for `gate` before it returns.
fn gated(
    gate: &Arc<Notify>,
) -> impl Fn(Arc<Event>) -> hookbus::sink::BoxFuture<Result<(), hookbus::DeliveryError>>
+ Send
+ Sync
+ 'static {
    let gate = gate.clone();
    move |_| {
        let gate = gate.clone();
        Box::pin(async move {
            gate.notified().await;
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_restart_delivers_what_was_pending_with_the_same_ids_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let mut ids = Vec::new();
    {
        let store = Store::open(&path).unwrap();
        let bus = Bus::new().unwrap();
        let gate = Arc::new(Notify::new());
        let _sub = bus
            .subscriber("order.*")
            .name("orders")
            .durable(&store)
            .capacity(1000)
            .on_async(gated(&gate))
            .unwrap();
        for i in 0..300 {
            let e = event(i);
            ids.push(e.id().to_owned());
            bus.emit(e).unwrap();
        }
        store.sync().await.unwrap();
        assert_eq!(store.pending("orders").unwrap(), 300);
        // The handler never returned: shutting down with no time left
        // leaves every event pending.
        let report = bus.shutdown(Duration::ZERO).await;
        assert_eq!(report.subscriber("orders").unwrap().pending, 300);
    }
    // "Restart": a new store handle and a new bus on the same file.
    let store = Store::open(&path).unwrap();
    let bus = Bus::new().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let _sub = bus
        .subscriber("order.*")
        .name("orders")
        .durable(&store)
        .on(move |e| {
            s.lock()
                .unwrap()
                .push((e.id().to_owned(), e.data()["n"].as_u64().unwrap()));
        })
        .unwrap();
    assert_eq!(store.stats().recovered, 300);
    // New events come after the recovered ones.
    let late = event(300);
    let late_id = late.id().to_owned();
    bus.emit(late).unwrap();
    bus.shutdown(Duration::from_secs(10)).await;
    let seen = seen.lock().unwrap();
    let seen_ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.push(&late_id);
    assert_eq!(seen_ids, expected);
    assert!(seen.iter().enumerate().all(|(i, (_, n))| *n == i as u64));
    assert_eq!(store.pending("orders").unwrap(), 0);
}

#[tokio::test]
async fn failures_become_dead_letters_that_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    {
        let store = Store::open(&path).unwrap();
        let bus = Bus::new().unwrap();
        bus.subscriber("order.*")
            .name("picky")
            .durable(&store)
            .on(|e| {
                if e.data()["n"].as_u64().unwrap() % 3 == 0 {
                    Err("multiples of three are refused")
                } else {
                    Ok(())
                }
            })
            .unwrap()
            .detach();
        for i in 0..30 {
            bus.emit(event(i)).unwrap();
        }
        bus.shutdown(Duration::from_secs(10)).await;
        assert_eq!(store.stats().dead_lettered, 10);
        assert_eq!(store.stats().delivered, 20);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.pending("picky").unwrap(), 0);
    let dead = store.dead_letters(Some("picky"), 100).unwrap();
    assert_eq!(dead.len(), 10);
    let ns: Vec<u64> = dead
        .iter()
        .map(|d| d.event.data()["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (0..30).filter(|n| n % 3 == 0).collect::<Vec<_>>());
    assert!(
        dead[0].reason.contains("multiples of three"),
        "{}",
        dead[0].reason
    );
    assert!(
        store
            .dead_letters(Some("someone-else"), 100)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn dead_letters_are_bounded_by_the_limit_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder(dir.path().join("outbox.redb"))
        .dead_letter_limit(100)
        .open()
        .unwrap();
    let bus = Bus::new().unwrap();
    bus.subscriber("order.*")
        .name("refuses")
        .durable(&store)
        .capacity(20_000)
        .on(|_| Err("no"))
        .unwrap()
        .detach();
    for i in 0..5_000 {
        bus.emit(event(i)).unwrap();
    }
    bus.shutdown(Duration::from_secs(30)).await;
    store.sync().await.unwrap();
    assert_eq!(store.stats().dead_lettered, 5_000);
    assert_eq!(store.dead_letter_count().unwrap(), 100);
    let kept: Vec<u64> = store
        .dead_letters(None, 1000)
        .unwrap()
        .iter()
        .map(|d| d.event.data()["n"].as_u64().unwrap())
        .collect();
    assert_eq!(kept, (4_900..5_000).collect::<Vec<_>>());
}

#[tokio::test]
async fn events_the_overflow_policy_drops_leave_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("outbox.redb")).unwrap();
    let bus = Bus::new().unwrap();
    let gate = Arc::new(Notify::new());
    let sub = bus
        .subscriber("order.*")
        .name("small")
        .durable(&store)
        .capacity(10)
        .overflow(OverflowPolicy::DropOldest)
        .on_async(gated(&gate))
        .unwrap();
    for i in 0..100 {
        bus.emit(event(i)).unwrap();
    }
    store.sync().await.unwrap();
    let stats = sub.stats();
    let pending = store.pending("small").unwrap();
    // What is queued or in flight is pending on disk; what was dropped is not.
    assert_eq!(pending, stats.mailbox_len as u64 + stats.in_flight);
    assert_eq!(store.stats().discarded, stats.dropped);
    assert!(stats.dropped >= 89, "{stats:?}");
    bus.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn a_durable_subscriber_needs_a_name_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("outbox.redb")).unwrap();
    let bus = Bus::new().unwrap();
    let err = bus
        .subscriber("order.*")
        .durable(&store)
        .on(|_| ())
        .unwrap_err();
    assert!(
        matches!(&err, SubscribeError::InvalidOption(m) if m.contains("needs a name")),
        "{err}"
    );
    let first = bus
        .subscriber("order.*")
        .name("a")
        .durable(&store)
        .on(|_| ())
        .unwrap();
    let err = bus
        .subscriber("order.*")
        .name("a")
        .durable(&store)
        .on(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("already attached"), "{err}");
    // The store's own error, typed, kept as the source.
    assert_eq!(
        err,
        SubscribeError::Store(StoreError::NameInUse("a".to_owned()))
    );
    let source = std::error::Error::source(&err).expect("a source");
    assert!(source.downcast_ref::<StoreError>().is_some(), "{source}");
    // Once the first is gone, the name is free again.
    first.unsubscribe();
    bus.shutdown(Duration::from_secs(5)).await;
    let bus = Bus::new().unwrap();
    let again = bus
        .subscriber("order.*")
        .name("a")
        .durable(&store)
        .on(|_| ());
    assert!(again.is_ok(), "{:?}", again.err());
}

#[tokio::test]
async fn publish_returns_once_the_event_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    // A long commit interval: only `publish` asking for a commit gets the
    // event written before the interval ends.
    let store = Store::builder(dir.path().join("outbox.redb"))
        .commit_interval(Duration::from_secs(3600))
        .open()
        .unwrap();
    let bus = Bus::new().unwrap();
    let gate = Arc::new(Notify::new());
    let _sub = bus
        .subscriber("order.*")
        .name("orders")
        .durable(&store)
        .on_async(gated(&gate))
        .unwrap();
    bus.emit(event(0)).unwrap();
    assert_eq!(
        store.pending("orders").unwrap(),
        0,
        "emit: still in the write buffer"
    );
    bus.publish(event(1)).await.unwrap();
    assert_eq!(store.pending("orders").unwrap(), 2, "publish: both on disk");
    assert!(store.stats().commits >= 1);
    bus.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn a_damaged_file_is_refused_with_a_clear_error_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    // Not a store at all.
    let junk = dir.path().join("junk.redb");
    std::fs::write(&junk, vec![0x5a; 64 * 1024]).unwrap();
    let err = Store::open(&junk).unwrap_err();
    assert!(matches!(err, StoreError::Corrupted { .. }), "{err}");
    assert!(err.to_string().contains("junk.redb"), "{err}");

    // A real store, then damaged: truncated, and with bytes flipped.
    let path = dir.path().join("outbox.redb");
    {
        let store = Store::open(&path).unwrap();
        let bus = Bus::new().unwrap();
        let gate = Arc::new(Notify::new());
        let _sub = bus
            .subscriber("order.*")
            .name("orders")
            .durable(&store)
            .on_async(gated(&gate))
            .unwrap();
        for i in 0..200 {
            bus.emit(event(i)).unwrap();
        }
        store.sync().await.unwrap();
        bus.shutdown(Duration::ZERO).await;
    }
    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.path().join("truncated.redb");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    // Either refused clearly or opened with what is readable: never a panic.
    match Store::open(&truncated) {
        Ok(store) => {
            let _ = store.pending("orders");
        }
        Err(e) => assert!(e.to_string().contains("truncated.redb"), "{e}"),
    }
    for offset in [0usize, 512, 4096, bytes.len() / 2] {
        let mut flipped = bytes.clone();
        for b in &mut flipped[offset..(offset + 64).min(bytes.len())] {
            *b ^= 0xff;
        }
        let p = dir.path().join(format!("flipped-{offset}.redb"));
        std::fs::write(&p, &flipped).unwrap();
        let opened = std::panic::catch_unwind(|| Store::open(&p));
        let opened = opened.expect("opening a damaged store must not panic");
        if let Ok(store) = opened {
            let bus = Bus::new().unwrap();
            // Attaching reads the pending events: errors are fine, panics not.
            let _ = bus
                .subscriber("order.*")
                .name("orders")
                .durable(&store)
                .on(|_| ());
            bus.shutdown(Duration::ZERO).await;
        }
    }
}

#[tokio::test]
async fn a_store_that_cannot_be_created_says_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(dir.path().join("missing-dir").join("outbox.redb")).unwrap_err();
    // The system's error, typed and kept as the source.
    match &err {
        StoreError::Open {
            problem: OpenProblem::System(cause),
            ..
        } => {
            let io = cause.get().downcast_ref::<std::io::Error>().unwrap();
            assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected the system's error, got {other:?}"),
    }
    let source = std::error::Error::source(&err).expect("a source");
    assert!(source.to_string().contains("No such file"), "{source}");
    assert!(err.to_string().contains("missing-dir"), "{err}");
    let err = Store::builder(dir.path().join("x.redb"))
        .commit_max(0)
        .open()
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Open {
                problem: OpenProblem::CommitMaxZero,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("commit_max"), "{err}");
    assert!(err.to_string().contains("x.redb"), "{err}");
}

#[tokio::test]
async fn events_for_subscribers_in_memory_are_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("outbox.redb")).unwrap();
    let bus = Bus::new().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    bus.subscriber("order.*")
        .name("durable")
        .durable(&store)
        .on(|_| ())
        .unwrap()
        .detach();
    bus.on("audit.*", move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap()
    .detach();
    for i in 0..10 {
        bus.emit(Event::new("audit.read", json!({"n": i})).unwrap())
            .unwrap();
    }
    bus.emit(event(0)).unwrap();
    bus.shutdown(Duration::from_secs(5)).await;
    assert_eq!(n.load(Ordering::SeqCst), 10);
    assert_eq!(store.stats().appended, 1);
    let _ = EmitError::Closed(event(0)); // the variant set is public API
}

/// A webhook delivery waiting in its retry backoff when the process stops
/// resumes after the restart with its attempt count, not from attempt 1.
#[tokio::test]
async fn a_webhook_retry_schedule_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let fail = Arc::new(AtomicBool::new(true));
    let f = fail.clone();
    let mut receiver = Receiver::start(move |_, _| {
        if f.load(Ordering::SeqCst) {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let url = receiver.url.clone();
    let webhook = |store: &Store| durable_hook(&url, Duration::from_millis(300), store);
    let id;
    {
        let store = Store::open(&path).unwrap();
        let bus = Bus::new().unwrap();
        let _sub = webhook(&store).subscribe(&bus).unwrap();
        let e = event(1);
        id = e.id().to_owned();
        bus.emit(e).unwrap();
        // Two attempts fail; the third is scheduled.
        receiver.next().await;
        receiver.next().await;
        // The schedule reaches the disk: the record says attempt 3.
        store.sync().await.unwrap();
        bus.shutdown(Duration::ZERO).await;
    }
    fail.store(false, Ordering::SeqCst);
    let store = Store::open(&path).unwrap();
    let bus = Bus::new().unwrap();
    let sink = webhook(&store);
    let _sub = sink.subscribe(&bus).unwrap();
    let r = receiver.next().await;
    assert_eq!(r.event_id().as_deref(), Some(id.as_str()));
    bus.shutdown(Duration::from_secs(10)).await;
    // The attempt after the restart counted on from where it was, and the
    // log kept the two before it (newest first).
    let log = sink.deliveries(10);
    let attempts: Vec<(u32, bool)> = log.iter().map(|a| (a.attempt, a.success)).collect();
    assert_eq!(attempts, [(3, true), (2, false), (1, false)]);
    assert_eq!(store.pending("hook").unwrap(), 0);
}

/// A durable webhook `hook` to `url` that retries 5 times, `backoff` apart.
fn durable_hook(url: &str, backoff: Duration, store: &Store) -> WebhookSink {
    WebhookSink::builder(url)
        .name("hook")
        .allow_http(true)
        .retry(RetryPolicy::exponential(5, backoff, backoff).with_jitter(0.0))
        .durable(store)
        .build()
        .unwrap()
}

/// Shutdown knows the store: a durable webhook backing off for an hour does
/// not hold shutdown until its deadline. Once its pending event is on disk
/// it stops at once, the report names the event kept, and the store still
/// has it, with the same id, after a restart.
#[tokio::test]
async fn shutdown_keeps_a_backing_off_durable_delivery_in_the_store_and_returns_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let mut receiver =
        Receiver::start(|_, _| StatusCode::SERVICE_UNAVAILABLE.into_response()).await;
    let url = receiver.url.clone();
    let webhook = |store: &Store| durable_hook(&url, Duration::from_secs(3600), store);
    let id;
    {
        let store = Store::open(&path).unwrap();
        let bus = Bus::new().unwrap();
        webhook(&store).subscribe(&bus).unwrap().detach();
        let plain = bus.on("other.*", |_| {}).unwrap();
        let e = event(1);
        id = e.id().to_owned();
        bus.emit(e).unwrap();
        receiver.next().await; // the first attempt failed; an hour's backoff
        plain.detach();
        // The deadline is far: without knowing the store, shutdown would
        // wait it out (the backoff is longer still).
        let report = tokio::time::timeout(
            Duration::from_secs(120),
            bus.shutdown(Duration::from_secs(300)),
        )
        .await
        .expect("shutdown returns without waiting out its deadline");
        let hook = report.subscriber("hook").unwrap();
        assert_eq!((hook.pending, hook.kept), (1, 1), "{report}");
        assert!(!hook.completed);
        assert!(report.to_string().contains("kept 1"), "{report}");
        let plain = report.subscriber("on:other.*").unwrap();
        assert!(plain.completed && plain.pending == 0 && plain.kept == 0);
        assert_eq!(store.pending("hook").unwrap(), 1);
    }
    // Still there after a restart, under the same id, with its schedule
    // (resuming it is `a_webhook_retry_schedule_resumes_after_a_restart`).
    let store = Store::open(&path).unwrap();
    let kept = store.pending_events("hook", 10).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].id(), id);
}

// ---------------------------------------------------------------------------
// Crash tests: a child process killed with SIGKILL.

const CHILD_ENV: &str = "HOOKBUS_STORE_CRASH_CHILD";

/// The child: emits up to 10,000 events to a durable webhook subscriber and
/// prints `accepted <id>` once each is accepted (fsync mode: `publish`
/// returned; group-commit mode: `emit` returned, and `synced <n>` after
/// each `Store::sync`). Runs only when the parent asks for it.
#[test]
#[ignore = "run by the crash tests as a child process"]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let (path, url, mode) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        use std::io::Write;
        let store = Store::open(&path).unwrap();
        let bus = Bus::new().unwrap();
        let _sub = WebhookSink::builder(url)
            .name("hook")
            .allow_http(true)
            .concurrency(4)
            .retry(RetryPolicy::exponential(
                50,
                Duration::from_millis(5),
                Duration::from_millis(200),
            ))
            .capacity(20_000)
            .overflow(OverflowPolicy::Block)
            .durable(&store)
            .build()
            .unwrap()
            .subscribe(&bus)
            .unwrap();
        let mut out = std::io::stdout().lock();
        for i in 0..10_000u64 {
            let e = event(i);
            let id = e.id().to_owned();
            if mode == "fsync" {
                bus.publish(e).await.unwrap();
            } else {
                bus.emit(e).unwrap();
            }
            writeln!(out, "accepted {id}").unwrap();
            if mode == "group" && i % 100 == 99 {
                store.sync().await.unwrap();
                writeln!(out, "synced {}", i + 1).unwrap();
            }
            out.flush().unwrap();
        }
        // Wait to be killed.
        std::future::pending::<()>().await;
    });
}

struct Crash {
    /// Ids accepted before the kill, in order.
    accepted: Vec<String>,
    /// How many of them the child saw synced (group-commit mode).
    synced: usize,
}

/// Runs the child until it has accepted `kill_after` events, then kills it.
fn run_child(path: &std::path::Path, url: &str, mode: &str, kill_after: usize) -> Crash {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}|{url}|{mode}", path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut crash = Crash {
        accepted: Vec::new(),
        synced: 0,
    };
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        // The test harness may print its own words ahead of the child's on
        // the first line ("test crash_child ... "): match the marker.
        if let Some((_, id)) = line.split_once("accepted ") {
            crash.accepted.push(id.to_owned());
        } else if let Some((_, n)) = line.split_once("synced ") {
            crash.synced = n.parse().unwrap();
        }
        if crash.accepted.len() >= kill_after {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    crash
}

/// A receiver that answers slowly-ish and fails 30% of requests (or all,
/// while `fail_all` is set), and records every event id it took.
async fn flaky_receiver(
    fail_all: Arc<AtomicBool>,
) -> (
    Receiver,
    Arc<std::sync::Mutex<HashMap<String, usize>>>,
    Arc<Notify>,
) {
    let got = Arc::new(std::sync::Mutex::new(HashMap::<String, usize>::new()));
    let notify = Arc::new(Notify::new());
    let (g, n) = (got.clone(), notify.clone());
    let receiver = Receiver::start(move |r, i| {
        if fail_all.load(Ordering::SeqCst) || i % 10 < 3 {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        if let Some(id) = r.event_id() {
            *g.lock().unwrap().entry(id).or_default() += 1;
            n.notify_one();
        }
        StatusCode::OK.into_response()
    })
    .await;
    (receiver, got, notify)
}

/// Finishes in a new bus on the same store until every id in `must` has
/// reached the receiver; returns the duplicates counted.
async fn finish(
    path: &std::path::Path,
    url: &str,
    got: &std::sync::Mutex<HashMap<String, usize>>,
    notify: &Notify,
    must: &[String],
) -> usize {
    let store = Store::open(path).unwrap();
    let bus = Bus::new().unwrap();
    let _sub = WebhookSink::builder(url.to_owned())
        .name("hook")
        .allow_http(true)
        .concurrency(4)
        .retry(RetryPolicy::exponential(
            50,
            Duration::from_millis(5),
            Duration::from_millis(50),
        ))
        .durable(&store)
        .build()
        .unwrap()
        .subscribe(&bus)
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let missing = {
            let got = got.lock().unwrap();
            must.iter().filter(|id| !got.contains_key(*id)).count()
        };
        if missing == 0 {
            break;
        }
        // A guard against a hang, not a synchronisation: each delivery
        // notifies.
        if tokio::time::timeout_at(deadline, notify.notified())
            .await
            .is_err()
        {
            let got = got.lock().unwrap();
            let missing: Vec<(usize, &String)> = must
                .iter()
                .enumerate()
                .filter(|(_, id)| !got.contains_key(*id))
                .collect();
            panic!(
                "{} accepted events never reached the receiver: {missing:?}; store {:?}, pending {:?}, dead {:?}",
                missing.len(),
                store.stats(),
                store.pending("hook"),
                store.dead_letters(None, 5)
            );
        }
    }
    bus.shutdown(Duration::from_secs(30)).await;
    let got = got.lock().unwrap();
    got.values().filter(|&&n| n > 1).map(|n| n - 1).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_mode_every_published_event_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let fail_all = Arc::new(AtomicBool::new(false));
    let (receiver, got, notify) = flaky_receiver(fail_all).await;
    for kill_after in [700, 2_500] {
        let crash =
            tokio::task::block_in_place(|| run_child(&path, &receiver.url, "fsync", kill_after));
        assert!(crash.accepted.len() >= kill_after);
        let dups = finish(&path, &receiver.url, &got, &notify, &crash.accepted).await;
        eprintln!(
            "fsync, killed after {kill_after}: {} accepted, all delivered, {dups} duplicates",
            crash.accepted.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_mode_loses_nothing_that_was_synced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let fail_all = Arc::new(AtomicBool::new(false));
    let (receiver, got, notify) = flaky_receiver(fail_all).await;
    let crash = tokio::task::block_in_place(|| run_child(&path, &receiver.url, "group", 3_050));
    assert!(crash.synced >= 3_000, "synced {}", crash.synced);
    // Everything up to the last sync the child saw must arrive; what came
    // after may be lost with the write buffer.
    let must = &crash.accepted[..crash.synced];
    let dups = finish(&path, &receiver.url, &got, &notify, must).await;
    let lost = crash.accepted[crash.synced..]
        .iter()
        .filter(|id| !got.lock().unwrap().contains_key(*id))
        .count();
    eprintln!(
        "group commit: {} accepted, {} synced, {lost} lost from the unsynced tail, {dups} duplicates",
        crash.accepted.len(),
        crash.synced
    );
    assert!(lost <= crash.accepted.len() - crash.synced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_retry_backoff_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    // Every request fails while the child runs: its deliveries are all in
    // backoff when it is killed.
    let fail_all = Arc::new(AtomicBool::new(true));
    let (receiver, got, notify) = flaky_receiver(fail_all.clone()).await;
    let crash = tokio::task::block_in_place(|| run_child(&path, &receiver.url, "fsync", 400));
    assert!(got.lock().unwrap().is_empty());
    fail_all.store(false, Ordering::SeqCst);
    let dups = finish(&path, &receiver.url, &got, &notify, &crash.accepted).await;
    // Requests the child had in flight when it was killed (its concurrency
    // is 4) may still be answered after `fail_all` is cleared: those are
    // at-least-once duplicates, and there can be no more of them.
    assert!(dups <= 4, "{dups} duplicates");
    let all: HashSet<&String> = crash.accepted.iter().collect();
    assert_eq!(all.len(), crash.accepted.len());
}

/// A webhook disabled by a 410 stays disabled after a restart; its dead
/// letters come back with it, `retry_failed` delivers them once it is
/// enabled, and then they leave the store.
#[tokio::test]
async fn endpoint_state_and_dead_letters_survive_a_restart() {
    use hookbus::webhook::WebhookManager;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let gone = Arc::new(AtomicBool::new(true));
    let g = gone.clone();
    let mut receiver = Receiver::start(move |_, _| {
        if g.load(Ordering::SeqCst) {
            StatusCode::GONE.into_response()
        } else {
            StatusCode::OK.into_response()
        }
    })
    .await;
    let url = receiver.url.clone();
    let webhook = |store: &Store| {
        WebhookSink::builder(url.clone())
            .name("crm")
            .allow_http(true)
            .retry(RetryPolicy::none())
            .durable(store)
    };
    let mut ids = Vec::new();
    {
        let store = Store::open(&path).unwrap();
        let bus = Bus::new().unwrap();
        let manager = WebhookManager::new(&bus);
        let id = manager.register(webhook(&store)).unwrap();
        for i in 0..3 {
            let e = event(i);
            ids.push(e.id().to_owned());
            bus.publish(e).await.unwrap();
        }
        receiver.next().await; // the 410
        bus.shutdown(Duration::from_secs(10)).await;
        assert!(!manager.get(&id).unwrap().enabled);
        assert_eq!(store.dead_letter_count().unwrap(), 3);
        // Sent at once, more than one may have reached the receiver before
        // the 410 disabled the endpoint: those answers are not the
        // deliveries after the restart.
        let before = receiver.drain();
        assert!(before.iter().all(|r| ids.contains(&r.event_id().unwrap())));
    }
    gone.store(false, Ordering::SeqCst);
    let store = Store::open(&path).unwrap();
    let bus = Bus::new().unwrap();
    let manager = WebhookManager::new(&bus);
    let id = manager.register(webhook(&store)).unwrap();
    assert!(
        !manager.get(&id).unwrap().enabled,
        "still disabled after the restart"
    );
    // The delivery log came back too: the attempt that got the 410.
    let log = manager.deliveries(&id, 10).unwrap();
    assert!(
        log.iter().any(|a| a.status_code == Some(410) && a.last),
        "{log:?}"
    );
    let letters = manager.sink_of(&id).unwrap().dead_letters();
    let mut back: Vec<String> = letters
        .iter()
        .flat_map(|l| l.events.iter().map(|e| e.id().to_owned()))
        .collect();
    back.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(back, expected);
    manager.enable(&id).unwrap();
    let report = manager
        .retry_failed(&id, time::OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap();
    assert_eq!(report.delivered, 3, "{report:?}");
    let mut got: Vec<String> = Vec::new();
    for _ in 0..3 {
        got.push(receiver.next().await.event_id().unwrap());
    }
    got.sort();
    assert_eq!(got, expected);
    store.sync().await.unwrap();
    assert_eq!(store.dead_letter_count().unwrap(), 0);
    bus.shutdown(Duration::from_secs(10)).await;
    drop(manager);
    drop(store);
    // Enabled is remembered too.
    let store = Store::open(&path).unwrap();
    let bus = Bus::new().unwrap();
    let manager = WebhookManager::new(&bus);
    let id = manager.register(webhook(&store)).unwrap();
    assert!(manager.get(&id).unwrap().enabled);
    bus.shutdown(Duration::from_secs(5)).await;
}

const DISK_FULL_CHILD: &str = "HOOKBUS_STORE_DISK_FULL_CHILD";

/// The child of the disk-full test: its file size limit (RLIMIT_FSIZE, set
/// by the parent's shell) makes the store's writes fail once the file
/// reaches it, as a full disk would.
#[test]
#[ignore = "run by a_full_disk_refuses_durable_events_and_the_bus_goes_on as a child process"]
fn disk_full_child() {
    let Ok(path) = std::env::var(DISK_FULL_CHILD) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(&path).unwrap();
        let bus = Bus::new().unwrap();
        let gate = Arc::new(Notify::new());
        let _durable = bus
            .subscriber("order.*")
            .name("orders")
            .durable(&store)
            .capacity(1_000_000)
            .on_async(gated(&gate))
            .unwrap();
        let audited = Arc::new(AtomicUsize::new(0));
        let all_audited = Arc::new(Notify::new());
        let (a, done) = (audited.clone(), all_audited.clone());
        let _memory = bus
            .on("audit.*", move |_| {
                if a.fetch_add(1, Ordering::SeqCst) + 1 == 100 {
                    done.notify_one();
                }
            })
            .unwrap();
        let big = "x".repeat(4096);
        let mut refused = None;
        for i in 0..100_000u64 {
            let e = Event::new("order.placed", json!({"n": i, "pad": big})).unwrap();
            let id = e.id().to_owned();
            match bus.publish(e).await {
                Ok(()) => {}
                Err(EmitError::Store(event, reason)) => {
                    assert_eq!(event.id(), id, "the event is given back");
                    refused = Some((i, reason));
                    break;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        let (at, reason) = refused.expect("the store never filled up");
        println!("first refusal after {at}: {reason}");
        // From now on, durable events are refused at once, with the event.
        let e = Event::new("order.placed", json!({"n": "late"})).unwrap();
        match bus.emit(e) {
            Err(EmitError::Store(e, _)) => assert_eq!(e.data()["n"], "late"),
            other => panic!("expected a store refusal, got {other:?}"),
        }
        assert!(store.stats().last_error.is_some());
        // Subscribers in memory go on.
        for i in 0..100 {
            bus.emit(Event::new("audit.read", json!({"n": i})).unwrap())
                .unwrap();
        }
        all_audited.notified().await;
        // The durable subscriber's handler never returns: no time left.
        bus.shutdown(Duration::ZERO).await;
        println!("memory subscriber got {}", audited.load(Ordering::SeqCst));
    });
}

#[test]
fn a_full_disk_refuses_durable_events_and_the_bus_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let exe = std::env::current_exe().unwrap();
    // `ulimit -f` (in 1 KiB blocks) caps the size of files the child
    // writes; SIGXFSZ is ignored so the write fails with EFBIG instead of
    // killing the process.
    let out = Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 4096; exec \"$0\" disk_full_child --exact --ignored --nocapture --test-threads=1")
        .arg(&exe)
        .env(DISK_FULL_CHILD, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("first refusal after"), "{stdout}");
    assert!(stdout.contains("memory subscriber got 100"), "{stdout}");
    // What was committed before the disk filled is intact.
    let store = Store::open(&path).unwrap();
    assert!(store.pending("orders").unwrap() > 100);
}

/// A store that keeps delivered events can replay them to a receiver that
/// lost them, with the same ids; only what was accepted since the given
/// time; and the window is bounded by its limit.
#[tokio::test]
async fn replay_sends_again_what_was_delivered_since_a_time() {
    use hookbus::webhook::WebhookManager;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder(dir.path().join("outbox.redb"))
        .keep_delivered(Duration::from_secs(3600), 1_000)
        .open()
        .unwrap();
    let mut receiver = Receiver::ok().await;
    let bus = Bus::new().unwrap();
    let manager = WebhookManager::new(&bus);
    let id = manager
        .register(
            WebhookSink::builder(receiver.url.clone())
                .name("warehouse")
                .allow_http(true)
                .durable(&store),
        )
        .unwrap();
    let mut early = Vec::new();
    for i in 0..5 {
        let e = event(i);
        early.push(e.id().to_owned());
        bus.publish(e).await.unwrap();
        receiver.next().await;
    }
    store.sync().await.unwrap();
    // Accepted times are in milliseconds: the late events come strictly
    // after `since`.
    let since = time::OffsetDateTime::now_utc();
    while time::OffsetDateTime::now_utc() - since < time::Duration::milliseconds(2) {
        tokio::task::yield_now().await;
    }
    let since = since + time::Duration::milliseconds(1);
    let mut late = Vec::new();
    for i in 5..8 {
        let e = event(i);
        late.push(e.id().to_owned());
        bus.publish(e).await.unwrap();
        receiver.next().await;
    }
    // Kept records are written with the commit after the delivery, and the
    // receiver has the request before the webhook counts its answer: the
    // sync must come after the delivery is recorded.
    while store.stats().delivered < 8 {
        tokio::task::yield_now().await;
    }
    store.sync().await.unwrap();
    assert_eq!(
        store
            .delivered_since("warehouse", std::time::UNIX_EPOCH, 100)
            .unwrap()
            .len(),
        8
    );
    let report = manager.replay(&id, since).await.unwrap();
    assert_eq!((report.retried, report.delivered), (3, 3), "{report:?}");
    let mut again: Vec<String> = Vec::new();
    for _ in 0..3 {
        again.push(receiver.next().await.event_id().unwrap());
    }
    again.sort();
    late.sort();
    assert_eq!(again, late);

    // A webhook without kept events says why it cannot replay.
    let plain = manager
        .register(
            WebhookSink::builder(receiver.url.clone())
                .name("plain")
                .allow_http(true),
        )
        .unwrap();
    let err = manager.replay(&plain, since).await.unwrap_err();
    assert!(err.to_string().contains("keep_delivered"), "{err}");
    bus.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn kept_deliveries_are_bounded_by_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder(dir.path().join("outbox.redb"))
        .keep_delivered(Duration::from_secs(3600), 500)
        .open()
        .unwrap();
    let bus = Bus::new().unwrap();
    bus.subscriber("order.*")
        .name("fast")
        .durable(&store)
        .capacity(20_000)
        .on(|_| ())
        .unwrap()
        .detach();
    for i in 0..10_000 {
        bus.emit(event(i)).unwrap();
    }
    bus.shutdown(Duration::from_secs(30)).await;
    store.sync().await.unwrap();
    let kept = store
        .delivered_since("fast", std::time::UNIX_EPOCH, usize::MAX)
        .unwrap();
    assert!(kept.len() <= 500, "{}", kept.len());
    assert!(kept.len() >= 400, "{}", kept.len());
    // The newest are the ones kept.
    assert_eq!(kept.last().unwrap().data()["n"], 9_999);
    assert_eq!(store.pending("fast").unwrap(), 0);
}

/// Retention under a million events: the dead letters and the kept
/// deliveries stay within their limits, and the file stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_bounds_hold_under_a_million_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let store = Store::builder(&path)
        .dead_letter_limit(1_000)
        .keep_delivered(Duration::from_secs(3600), 1_000)
        .open()
        .unwrap();
    let bus = Bus::new().unwrap();
    // Every other event fails (a dead letter), the rest are delivered (kept).
    bus.subscriber("order.*")
        .name("half")
        .durable(&store)
        .capacity(1 << 16)
        .overflow(OverflowPolicy::Block)
        .on(|e| {
            if e.data()["n"].as_u64().unwrap() % 2 == 0 {
                Err("even")
            } else {
                Ok(())
            }
        })
        .unwrap()
        .detach();
    const N: u64 = 1_000_000;
    for i in 0..N {
        let e = Event::new("order.placed", json!({"n": i})).unwrap();
        // `emit` (group commit); when the Block mailbox is full or the
        // store is behind, `publish` waits for room.
        match bus.emit(e) {
            Ok(()) => {}
            Err(EmitError::Full(e) | EmitError::Store(e, _)) => bus.publish(e).await.unwrap(),
            Err(e) => panic!("{e}"),
        }
    }
    bus.shutdown(Duration::from_secs(120)).await;
    store.sync().await.unwrap();
    let stats = store.stats();
    assert_eq!((stats.dead_lettered, stats.delivered), (N / 2, N / 2));
    assert_eq!(store.dead_letter_count().unwrap(), 1_000);
    let kept = store
        .delivered_since("half", std::time::UNIX_EPOCH, usize::MAX)
        .unwrap();
    assert_eq!(kept.len(), 1_000);
    assert_eq!(kept.last().unwrap().data()["n"], N - 1);
    assert_eq!(store.pending("half").unwrap(), 0);
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!("retention: {N} events, store file {size} bytes");
    assert!(size < 64 << 20, "the file grew to {size} bytes");
}

/// A store whose disk is behind: once its write buffer holds 16 commits'
/// worth, `emit` refuses durable events (giving the event back, nobody gets
/// it) and `publish` waits for the next commit instead; subscribers in
/// memory are not held back.
#[tokio::test]
async fn a_store_behind_the_emitters_pushes_back() {
    let dir = tempfile::tempdir().unwrap();
    // Commits of 1 write, started at most once an hour: the buffer (16
    // writes) fills at once, and only `publish` asks for a commit.
    let store = Store::builder(dir.path().join("outbox.redb"))
        .commit_max(1)
        .commit_interval(Duration::from_secs(3600))
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
    let mut refused = None;
    for i in 0..100 {
        match bus.emit(event(i)) {
            Ok(()) => {}
            Err(EmitError::Store(e, reason)) => {
                refused = Some((i, e, reason));
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let (at, back, reason) = refused.expect("the buffer never filled");
    assert!(at <= 17, "refused only after {at} events");
    assert_eq!(back.data()["n"], at, "the event is given back");
    // Typed: the store is behind, and the error says which store.
    assert!(
        matches!(&reason, StoreError::Behind { path } if path == store.path()),
        "{reason:?}"
    );
    assert!(reason.to_string().contains("behind"), "{reason}");
    assert_eq!(durable.stats().received, at, "nobody got the refused event");
    // An event for a subscriber in memory only goes through meanwhile.
    bus.emit(Event::new("audit.read", json!({})).unwrap())
        .unwrap();
    // `publish` waits for room (the writer commits one write at a time
    // while someone waits) and then takes the event, on disk.
    bus.publish(back).await.unwrap();
    assert_eq!(durable.stats().received, at + 1);
    store.sync().await.unwrap();
    assert_eq!(store.pending("orders").unwrap(), at + 1);
    bus.shutdown(Duration::ZERO).await;
}
