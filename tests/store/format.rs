//! The file format: pending records in segment tables (format 2), files
//! of format 1 moved over on open, whole segments deleted once delivered,
//! deliveries made durable by `sync`.

use std::sync::Arc;
use std::time::Duration;

use hookbus::store::Store;
use hookbus::{Bus, Event};
use redb::{ReadableDatabase, TableDefinition, TableHandle};
use serde_json::json;
use tokio::sync::Notify;

use super::gated;

/// Format 1's tables, as a hookbus before format 2 wrote them.
const V1_PENDING: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("pending");
const V1_META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// A format 1 record: `[1][attempt u32][next_at_ms u64][accepted_ms u64][event JSON]`.
fn v1_record(event: &Event, attempt: u32) -> Vec<u8> {
    let mut v = vec![1];
    v.extend_from_slice(&attempt.to_be_bytes());
    v.extend_from_slice(&0u64.to_be_bytes());
    v.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
    v.extend_from_slice(&event.structured_json());
    v
}

/// Writes a format 1 store holding `orders` and `audit` events pending
/// (their sequence numbers interleaved, as one store numbers them), and
/// returns the events of each, oldest first.
fn write_v1(path: &std::path::Path, orders: u64, audit: u64) -> (Vec<Event>, Vec<Event>) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    let (mut o, mut a) = (Vec::new(), Vec::new());
    {
        let mut pending = txn.open_table(V1_PENDING).unwrap();
        let mut seq = 1u64;
        for i in 0..orders.max(audit) {
            if i < orders {
                let e = Event::new("order.placed", json!({"n": i})).unwrap();
                pending
                    .insert(("orders", seq), v1_record(&e, 0).as_slice())
                    .unwrap();
                o.push(e);
                seq += 1;
            }
            if i < audit {
                let e = Event::new("audit.read", json!({"n": i})).unwrap();
                pending
                    .insert(("audit", seq), v1_record(&e, 0).as_slice())
                    .unwrap();
                a.push(e);
                seq += 1;
            }
        }
        let mut meta = txn.open_table(V1_META).unwrap();
        meta.insert("next_seq", seq).unwrap();
        meta.insert("counted", 1).unwrap();
        meta.insert("count/orders", orders).unwrap();
        meta.insert("count/audit", audit).unwrap();
    }
    txn.commit().unwrap();
    (o, a)
}

fn table_names(path: &std::path::Path) -> Vec<String> {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    txn.list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect()
}

/// A durable subscriber of `pattern` named `name` on a new bus: the ids it
/// is given, in order, once `n` arrived.
async fn drain(store: &Store, name: &str, pattern: &str, n: usize) -> Vec<String> {
    let bus = Bus::new().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _sub = bus
        .subscriber(pattern)
        .name(name)
        .durable(store)
        .on(move |e| {
            let _ = tx.send(e.id().to_owned());
        })
        .unwrap();
    let mut ids = Vec::new();
    while ids.len() < n {
        ids.push(
            tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("a pending event was never delivered")
                .unwrap(),
        );
    }
    bus.shutdown(Duration::from_secs(10)).await;
    ids
}

#[tokio::test]
async fn a_format_1_store_is_moved_over_on_open_and_delivers_what_was_pending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.redb");
    // More than a segment's worth (256) for one subscriber.
    let (orders, audit) = write_v1(&path, 700, 40);

    let store = Store::open(&path).unwrap();
    // Everything is there, counted and readable, in the new layout.
    let report = store.check().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.pending["orders"], 700);
    assert_eq!(report.pending["audit"], 40);
    let summary = store.summary().unwrap();
    assert_eq!(summary.pending["orders"], 700);
    assert_eq!(store.pending("audit").unwrap(), 40);
    let listed: Vec<String> = store
        .pending_events("orders", 300)
        .unwrap()
        .iter()
        .map(|e| e.id().to_owned())
        .collect();
    let want: Vec<String> = orders.iter().map(|e| e.id().to_owned()).collect();
    assert_eq!(listed, want[..300]);

    // Delivered in the order accepted, with the same ids.
    assert_eq!(drain(&store, "orders", "order.*", 700).await, want);
    let want_audit: Vec<String> = audit.iter().map(|e| e.id().to_owned()).collect();
    assert_eq!(drain(&store, "audit", "audit.*", 40).await, want_audit);
    // New events get sequence numbers after the old ones.
    let bus = Bus::new().unwrap();
    let gate = Arc::new(Notify::new());
    let _sub = bus
        .subscriber("order.*")
        .name("orders")
        .durable(&store)
        .on_async(gated(&gate))
        .unwrap();
    bus.emit(Event::new("order.placed", json!({"n": "new"})).unwrap())
        .unwrap();
    store.sync().await.unwrap();
    bus.shutdown(Duration::ZERO).await;
    assert_eq!(store.pending("orders").unwrap(), 1);
    drop(_sub);
    drop(store);

    // The old table is gone: under its name is a table of another type, so
    // a hookbus from before format 2 refuses the file (a type mismatch)
    // rather than finding nothing pending in it.
    let names = table_names(&path);
    assert!(
        names.iter().any(|n| n.starts_with("pending/orders/")),
        "{names:?}"
    );
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    assert!(matches!(
        txn.open_table(V1_PENDING),
        Err(redb::TableError::TableTypeMismatch { .. })
    ));
}

#[tokio::test]
async fn a_format_1_store_can_be_compacted_and_backed_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.redb");
    let (orders, _) = write_v1(&path, 300, 0);
    Store::compact(&path).unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.pending("orders").unwrap(), 300);
    let copy = dir.path().join("copy.redb");
    assert_eq!(store.backup(&copy).unwrap(), 300);
    drop(store);
    let copy = Store::open(&copy).unwrap();
    assert!(copy.check().unwrap().is_clean());
    let want: Vec<String> = orders.iter().map(|e| e.id().to_owned()).collect();
    assert_eq!(drain(&copy, "orders", "order.*", 300).await, want);
}

/// Segments whose every record was delivered are deleted whole: nothing of
/// them is left in the file; a segment with records left keeps exactly
/// those.
#[tokio::test]
async fn delivered_segments_leave_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let store = Store::open(&path).unwrap();
    let bus = Bus::new().unwrap();
    // Odd events wait until the gate opens; even ones are delivered at
    // once.
    let (open_tx, open_rx) = tokio::sync::watch::channel(false);
    let _sub = bus
        .subscriber("order.*")
        .name("orders")
        .concurrency(2_000)
        .durable(&store)
        .on_async(move |e: Arc<Event>| {
            let mut open = open_rx.clone();
            async move {
                if e.data()["n"].as_u64().unwrap() % 2 == 1 {
                    let _ = open.wait_for(|o| *o).await;
                }
            }
        })
        .unwrap();
    for i in 0..1_000u64 {
        bus.publish(Event::new("order.placed", json!({"n": i})).unwrap())
            .await
            .unwrap();
    }
    store.sync().await.unwrap();
    while store.stats().delivered < 500 {
        tokio::task::yield_now().await;
    }
    store.sync().await.unwrap();
    assert_eq!(store.pending("orders").unwrap(), 500);
    open_tx.send_replace(true);
    bus.shutdown(Duration::from_secs(10)).await;
    store.sync().await.unwrap();
    assert_eq!(store.pending("orders").unwrap(), 0);
    drop(_sub);
    drop(store);
    let names = table_names(&path);
    assert!(
        !names.iter().any(|n| n.starts_with("pending/")),
        "segments left: {names:?}"
    );
}

/// A durable subscriber `orders` whose handler holds every event until the
/// returned sender says `true`, and `n` events emitted to it.
fn held_orders(
    bus: &Bus,
    store: &Store,
    n: u64,
) -> (tokio::sync::watch::Sender<bool>, hookbus::Subscription) {
    let (open_tx, open_rx) = tokio::sync::watch::channel(false);
    let sub = bus
        .subscriber("order.*")
        .name("orders")
        .durable(store)
        .on_async(move |_| {
            let mut open = open_rx.clone();
            async move {
                let _ = open.wait_for(|o| *o).await;
            }
        })
        .unwrap();
    for i in 0..n {
        bus.emit(Event::new("order.placed", json!({"n": i})).unwrap())
            .unwrap();
    }
    (open_tx, sub)
}

/// A commit of deliveries alone is made without fsync; `sync` makes it
/// durable: a copy of the file taken right after (as a crash would leave
/// it) has none of the delivered events pending.
#[tokio::test]
async fn sync_makes_deliveries_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let store = Store::open(&path).unwrap();
    let bus = Bus::new().unwrap();
    let (open_tx, _sub) = held_orders(&bus, &store, 100);
    store.sync().await.unwrap();
    assert_eq!(store.pending("orders").unwrap(), 100);
    let commits = store.stats().commits;
    open_tx.send_replace(true);
    // Delivered, and the deliveries committed (without fsync) by the
    // writer on its own.
    while store.stats().delivered < 100 || store.stats().commits == commits {
        tokio::task::yield_now().await;
    }
    assert_eq!(store.pending("orders").unwrap(), 0, "committed");
    store.sync().await.unwrap();
    let copy = dir.path().join("crashed.redb");
    std::fs::copy(&path, &copy).unwrap();
    let copy = Store::open(&copy).unwrap();
    assert_eq!(copy.pending("orders").unwrap(), 0);
    bus.shutdown(Duration::from_secs(5)).await;
}

/// Deliveries committed without fsync are made durable on their own soon
/// after (a commit of nothing, durable), with nobody asking.
#[tokio::test]
async fn deliveries_become_durable_with_nobody_asking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    let store = Store::open(&path).unwrap();
    let bus = Bus::new().unwrap();
    let (open_tx, _sub) = held_orders(&bus, &store, 50);
    store.sync().await.unwrap();
    open_tx.send_replace(true);
    // What a crash would leave (a copy of the file now) comes to hold no
    // pending event. The watchdog guards against a hang; it does not
    // synchronise.
    let watchdog = tokio::time::Instant::now() + Duration::from_secs(30);
    let copy = dir.path().join("crashed.redb");
    loop {
        let _ = std::fs::remove_file(&copy);
        std::fs::copy(&path, &copy).unwrap();
        if Store::open(&copy).unwrap().pending("orders").unwrap() == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < watchdog,
            "the deliveries never became durable: {:?}",
            store.stats()
        );
        tokio::task::yield_now().await;
    }
    bus.shutdown(Duration::from_secs(5)).await;
}
