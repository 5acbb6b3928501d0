//! Which embedded store holds the outbox: the outbox's own workload on two
//! candidates, in one run.
//!
//! The workload (what a durable subscriber does to its store):
//! - `append`: a group commit of B records (~400-byte CloudEvents JSON,
//!   keyed by subscriber and sequence number) in one write, made durable
//!   (fsync) before it returns;
//! - `append_ack`: the same, then the acknowledgement of those B records
//!   (delete on delivery) as a second durable write: the steady state of an
//!   outbox whose deliveries succeed;
//! - `recover`: open a store holding 100,000 pending records and read them
//!   all back in order (what a restart does).
//!
//! Candidates: redb 3 (copy-on-write B-tree, one file) and fjall 2 (LSM tree
//! with a journal). `durable` compares hookbus's own durable subscriber on
//! the same machine: emits per second through the outbox with group commit,
//! against the same subscriber in memory.
//!
//! Run: `cargo bench --features durable --bench store`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hookbus::store::Store;
use hookbus::{Bus, Event};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde_json::json;

const PENDING: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("bench_pending");

fn record(i: u64) -> Vec<u8> {
    let event = Event::new(
        "order.placed",
        json!({"order_id": format!("ord_{i:08}"), "amount": 4200, "currency": "EUR", "items": [{"sku": "A-1", "qty": 2}]}),
    )
    .expect("valid event");
    let mut v = Vec::with_capacity(420);
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(&0u64.to_be_bytes());
    v.extend_from_slice(&event.structured_json());
    v
}

fn fjall_key(seq: u64) -> [u8; 14] {
    let mut k = [0u8; 14];
    k[..6].copy_from_slice(b"orders");
    k[6..].copy_from_slice(&seq.to_be_bytes());
    k
}

const BATCHES: [u64; 2] = [64, 512];

fn append(c: &mut Criterion) {
    let records: Vec<Vec<u8>> = (0..512).map(record).collect();
    let mut group = c.benchmark_group("store/append");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    for &b in &BATCHES {
        group.throughput(Throughput::Elements(b));
        let dir = tempfile::tempdir().expect("tempdir");
        let db = redb::Database::create(dir.path().join("redb")).expect("redb");
        let seq = AtomicU64::new(0);
        group.bench_function(format!("redb/{b}"), |bench| {
            bench.iter(|| {
                let txn = db.begin_write().expect("txn");
                {
                    let mut t = txn.open_table(PENDING).expect("table");
                    for r in &records[..b as usize] {
                        let s = seq.fetch_add(1, Ordering::Relaxed);
                        t.insert(("orders", s), r.as_slice()).expect("insert");
                    }
                }
                txn.commit().expect("commit");
            })
        });
        let ks = fjall::Config::new(dir.path().join("fjall"))
            .manual_journal_persist(true)
            .open()
            .expect("fjall");
        let part = ks
            .open_partition("pending", Default::default())
            .expect("partition");
        group.bench_function(format!("fjall/{b}"), |bench| {
            bench.iter(|| {
                let mut batch = ks.batch();
                for r in &records[..b as usize] {
                    let s = seq.fetch_add(1, Ordering::Relaxed);
                    batch.insert(&part, fjall_key(s), r.as_slice());
                }
                batch.commit().expect("commit");
                ks.persist(fjall::PersistMode::SyncAll).expect("fsync");
            })
        });
    }
    group.finish();
}

fn append_ack(c: &mut Criterion) {
    let records: Vec<Vec<u8>> = (0..512).map(record).collect();
    let mut group = c.benchmark_group("store/append_ack");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    for &b in &BATCHES {
        group.throughput(Throughput::Elements(b));
        let dir = tempfile::tempdir().expect("tempdir");
        let db = redb::Database::create(dir.path().join("redb")).expect("redb");
        let seq = AtomicU64::new(0);
        group.bench_function(format!("redb/{b}"), |bench| {
            bench.iter(|| {
                let first = seq.fetch_add(b, Ordering::Relaxed);
                let txn = db.begin_write().expect("txn");
                {
                    let mut t = txn.open_table(PENDING).expect("table");
                    for (i, r) in records[..b as usize].iter().enumerate() {
                        t.insert(("orders", first + i as u64), r.as_slice())
                            .expect("insert");
                    }
                }
                txn.commit().expect("commit");
                let txn = db.begin_write().expect("txn");
                {
                    let mut t = txn.open_table(PENDING).expect("table");
                    for i in 0..b {
                        t.remove(("orders", first + i)).expect("remove");
                    }
                }
                txn.commit().expect("commit");
            })
        });
        let ks = fjall::Config::new(dir.path().join("fjall"))
            .manual_journal_persist(true)
            .open()
            .expect("fjall");
        let part = ks
            .open_partition("pending", Default::default())
            .expect("partition");
        group.bench_function(format!("fjall/{b}"), |bench| {
            bench.iter(|| {
                let first = seq.fetch_add(b, Ordering::Relaxed);
                let mut batch = ks.batch();
                for (i, r) in records[..b as usize].iter().enumerate() {
                    batch.insert(&part, fjall_key(first + i as u64), r.as_slice());
                }
                batch.commit().expect("commit");
                ks.persist(fjall::PersistMode::SyncAll).expect("fsync");
                let mut batch = ks.batch();
                for i in 0..b {
                    batch.remove(&part, fjall_key(first + i));
                }
                batch.commit().expect("commit");
                ks.persist(fjall::PersistMode::SyncAll).expect("fsync");
            })
        });
    }
    group.finish();
}

const RECOVER_N: u64 = 100_000;

fn recover(c: &mut Criterion) {
    let records: Vec<Vec<u8>> = (0..512).map(record).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let redb_path = dir.path().join("redb");
    {
        let db = redb::Database::create(&redb_path).expect("redb");
        let txn = db.begin_write().expect("txn");
        {
            let mut t = txn.open_table(PENDING).expect("table");
            for s in 0..RECOVER_N {
                t.insert(("orders", s), records[(s % 512) as usize].as_slice())
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    let fjall_path = dir.path().join("fjall");
    {
        let ks = fjall::Config::new(&fjall_path).open().expect("fjall");
        let part = ks
            .open_partition("pending", Default::default())
            .expect("partition");
        let mut batch = ks.batch();
        for s in 0..RECOVER_N {
            batch.insert(&part, fjall_key(s), records[(s % 512) as usize].as_slice());
        }
        batch.commit().expect("commit");
        ks.persist(fjall::PersistMode::SyncAll).expect("fsync");
    }
    let mut group = c.benchmark_group("store/recover");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RECOVER_N));
    group.bench_function("redb/100k", |bench| {
        bench.iter(|| {
            let db = redb::Database::create(&redb_path).expect("redb");
            let txn = db.begin_read().expect("read");
            let t = txn.open_table(PENDING).expect("table");
            let mut bytes = 0usize;
            for row in t.range(("orders", 0)..).expect("range") {
                let (_, v) = row.expect("row");
                bytes += v.value().len();
            }
            black_box(bytes)
        })
    });
    group.bench_function("fjall/100k", |bench| {
        bench.iter(|| {
            let ks = fjall::Config::new(&fjall_path).open().expect("fjall");
            let part = ks
                .open_partition("pending", Default::default())
                .expect("partition");
            let mut bytes = 0usize;
            for row in part.prefix(b"orders") {
                let (_, v) = row.expect("row");
                bytes += v.len();
            }
            black_box(bytes)
        })
    });
    group.bench_function("hookbus/100k", |bench| {
        // hookbus's own recovery: open the store, load and decode every
        // pending event of one subscriber into its mailbox.
        bench.iter_batched(
            || seed_hookbus(RECOVER_N),
            |(dir, _)| {
                let rt = runtime();
                rt.block_on(async {
                    let store = Store::open(dir.path().join("outbox.redb")).expect("open");
                    let bus = Bus::new().expect("bus");
                    let sub = bus
                        .subscriber("order.*")
                        .name("orders")
                        .durable(&store)
                        .capacity(16)
                        .on(|_| ())
                        .expect("subscribe");
                    black_box(sub.stats().received);
                    bus.shutdown(Duration::from_secs(5)).await;
                });
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// `emit`, and `publish` when the store is behind (its write buffer full):
/// what an application that must not lose events does.
async fn emit(bus: &Bus, event: Event) {
    match bus.emit(event) {
        Ok(()) => {}
        Err(hookbus::EmitError::Store(event, _) | hookbus::EmitError::Full(event)) => {
            bus.publish(event).await.expect("publish")
        }
        Err(e) => panic!("emit: {e}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A store holding `n` pending events of subscriber `orders` (its handler
/// never returned before the bus was dropped).
fn seed_hookbus(n: u64) -> (tempfile::TempDir, ()) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    rt.block_on(async {
        let store = Store::open(dir.path().join("outbox.redb")).expect("open");
        let bus = Bus::new().expect("bus");
        let gate = Arc::new(tokio::sync::Notify::new());
        let g = gate.clone();
        let _sub = bus
            .subscriber("order.*")
            .name("orders")
            .durable(&store)
            .capacity(n as usize + 1)
            .on_async(move |_| {
                let g = g.clone();
                async move {
                    g.notified().await;
                }
            })
            .expect("subscribe");
        for i in 0..n {
            emit(
                &bus,
                Event::new("order.placed", json!({"order_id": i})).expect("event"),
            )
            .await;
        }
        store.sync().await.expect("sync");
        // Abandon the bus: the events stay pending in the store.
        bus.shutdown(Duration::ZERO).await;
    });
    (dir, ())
}

fn durable(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("store/emit");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(6));
    const N: u64 = 20_000;
    group.throughput(Throughput::Elements(N));
    let payloads: Vec<serde_json::Value> = (0..N)
        .map(|i| json!({"order_id": format!("ord_{i:08}"), "amount": 4200, "currency": "EUR", "items": [{"sku": "A-1", "qty": 2}]}))
        .collect();
    // Every candidate starts from the same events, made before its clock
    // starts (and never serialized before: each one is new).
    let events = || -> Vec<Event> {
        payloads
            .iter()
            .map(|p| Event::new("order.placed", p.clone()).expect("event"))
            .collect()
    };
    for durable in [false, true] {
        let name = if durable { "durable" } else { "memory" };
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let events = events();
                    total += rt.block_on(async {
                        let store = Store::open(dir.path().join("outbox.redb")).expect("open");
                        let bus = Bus::new().expect("bus");
                        let mut b = bus
                            .subscriber("order.*")
                            .name("orders")
                            .capacity(N as usize);
                        if durable {
                            b = b.durable(&store);
                        }
                        let _sub = b.on(|_| ()).expect("subscribe");
                        let start = Instant::now();
                        for event in events {
                            emit(&bus, event).await;
                        }
                        // Accepted means committed here: wait for the store
                        // and the subscriber to finish.
                        bus.shutdown(Duration::from_secs(30)).await;
                        store.sync().await.expect("sync");
                        start.elapsed()
                    });
                }
                total
            })
        });
    }
    // The worst case for the outbox: the subscriber is held until every
    // event is on disk, so each one is written, then deleted on delivery.
    group.bench_function("durable_backlog", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut commits = 0;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let events = events();
                total += rt.block_on(async {
                    let store = Store::open(dir.path().join("outbox.redb")).expect("open");
                    let bus = Bus::new().expect("bus");
                    let (open_tx, open_rx) = tokio::sync::watch::channel(false);
                    let _sub = bus
                        .subscriber("order.*")
                        .name("orders")
                        .capacity(N as usize)
                        .concurrency(64)
                        .durable(&store)
                        .on_async(move |_| {
                            let mut open = open_rx.clone();
                            async move {
                                let _ = open.wait_for(|o| *o).await;
                            }
                        })
                        .expect("subscribe");
                    let start = Instant::now();
                    for event in events {
                        emit(&bus, event).await;
                    }
                    store.sync().await.expect("sync");
                    assert_eq!(store.pending("orders").expect("pending"), N);
                    open_tx.send_replace(true);
                    bus.shutdown(Duration::from_secs(30)).await;
                    store.sync().await.expect("sync");
                    let elapsed = start.elapsed();
                    assert_eq!(store.pending("orders").expect("pending"), 0);
                    commits += store.stats().commits;
                    elapsed
                });
            }
            if iters >= 4 {
                eprintln!(
                    "durable_backlog: {:.1} commits per {N} events",
                    commits as f64 / iters as f64
                );
            }
            total
        })
    });
    // The raw store doing the same writes as the durable subscriber with a
    // backlog, as a hand-written outbox on redb would: the same events
    // encoded into the same records (the 21-byte header, then the
    // CloudEvents JSON), inserted under the same keys in commits of the
    // store's `commit_max` (4096), then deleted in commits of 4096, every
    // commit durable (fsync).
    const COMMIT_MAX: usize = 4096;
    group.bench_function("raw_redb_outbox", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let db = redb::Database::create(dir.path().join("redb")).expect("redb");
                let events = events();
                let start = Instant::now();
                let mut record = Vec::with_capacity(512);
                for (c, chunk) in events.chunks(COMMIT_MAX).enumerate() {
                    let mut txn = db.begin_write().expect("txn");
                    txn.set_durability(redb::Durability::Immediate)
                        .expect("durability");
                    {
                        let mut t = txn.open_table(PENDING).expect("table");
                        for (i, event) in chunk.iter().enumerate() {
                            record.clear();
                            record.push(1);
                            record.extend_from_slice(&0u32.to_be_bytes());
                            record.extend_from_slice(&0u64.to_be_bytes());
                            record.extend_from_slice(&0u64.to_be_bytes());
                            record.extend_from_slice(&event.structured_json());
                            t.insert(("orders", (c * COMMIT_MAX + i) as u64), record.as_slice())
                                .expect("insert");
                        }
                    }
                    txn.commit().expect("commit");
                }
                for first in (0..N).step_by(COMMIT_MAX) {
                    let mut txn = db.begin_write().expect("txn");
                    txn.set_durability(redb::Durability::Immediate)
                        .expect("durability");
                    {
                        let mut t = txn.open_table(PENDING).expect("table");
                        for s in first..(first + COMMIT_MAX as u64).min(N) {
                            t.remove(("orders", s)).expect("remove");
                        }
                    }
                    txn.commit().expect("commit");
                }
                total += start.elapsed();
            }
            total
        })
    });
    // The earlier baseline, kept for comparison with the figures measured
    // before: bytes serialized before the clock starts, commits of 512
    // inserts, and every delete in one commit.
    let records: Vec<Vec<u8>> = events()
        .iter()
        .map(|e| e.structured_json().to_vec())
        .collect();
    group.bench_function("raw_redb_batched", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let db = redb::Database::create(dir.path().join("redb")).expect("redb");
                let start = Instant::now();
                for (c, chunk) in records.chunks(512).enumerate() {
                    let txn = db.begin_write().expect("txn");
                    {
                        let mut t = txn.open_table(PENDING).expect("table");
                        for (i, r) in chunk.iter().enumerate() {
                            t.insert(("orders", (c * 512 + i) as u64), r.as_slice())
                                .expect("insert");
                        }
                    }
                    txn.commit().expect("commit");
                }
                let txn = db.begin_write().expect("txn");
                {
                    let mut t = txn.open_table(PENDING).expect("table");
                    for s in 0..N {
                        t.remove(("orders", s)).expect("remove");
                    }
                }
                txn.commit().expect("commit");
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

/// `publish` to a durable subscriber: each call returns once its event is
/// on disk (a commit with fsync), against redb committing the same record
/// (fsync) per call, in the same run. Criterion reports the means; the p50
/// and p99 of every call measured (warm-up included) are printed for both
/// at the end, side by side.
fn publish_fsync(c: &mut Criterion) {
    let rt = runtime();
    let hookbus_lat = std::cell::RefCell::new(Vec::new());
    let raw_lat = std::cell::RefCell::new(Vec::new());
    let mut group = c.benchmark_group("store/publish_fsync");
    group.sample_size(10);
    group.bench_function("one_publisher", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = Store::open(dir.path().join("outbox.redb")).expect("open");
                let bus = Bus::new().expect("bus");
                let _sub = bus
                    .subscriber("order.*")
                    .name("orders")
                    .durable(&store)
                    .on(|_| ())
                    .expect("subscribe");
                let mut lat = Vec::with_capacity(iters as usize);
                let start = Instant::now();
                for i in 0..iters {
                    let t = Instant::now();
                    bus.publish(Event::new("order.placed", json!({"n": i})).expect("event"))
                        .await
                        .expect("publish");
                    lat.push(t.elapsed());
                }
                let total = start.elapsed();
                hookbus_lat.borrow_mut().extend(lat);
                bus.shutdown(Duration::from_secs(5)).await;
                total
            })
        })
    });
    // The baseline: redb committing one record (fsync) per call, the same
    // event bytes (the event made and serialized in the call, as publish
    // does), on the same disk.
    group.bench_function("raw_redb_commit", |bench| {
        bench.iter_custom(|iters| {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = redb::Database::create(dir.path().join("redb")).expect("redb");
            let mut lat = raw_lat.borrow_mut();
            let start = Instant::now();
            for i in 0..iters {
                let t = Instant::now();
                let bytes = Event::new("order.placed", json!({"n": i}))
                    .expect("event")
                    .structured_json()
                    .to_vec();
                let mut txn = db.begin_write().expect("txn");
                txn.set_durability(redb::Durability::Immediate)
                    .expect("durability");
                {
                    let mut table = txn.open_table(PENDING).expect("table");
                    table
                        .insert(("orders", i), bytes.as_slice())
                        .expect("insert");
                }
                txn.commit().expect("commit");
                lat.push(t.elapsed());
            }
            start.elapsed()
        })
    });
    group.finish();
    let quantiles = |lat: &mut Vec<Duration>| {
        lat.sort();
        let at = |q: usize| lat.get(lat.len() * q / 100).copied().unwrap_or_default();
        (lat.len(), at(50), at(99))
    };
    let (n, p50, p99) = quantiles(&mut hookbus_lat.borrow_mut());
    let (rn, rp50, rp99) = quantiles(&mut raw_lat.borrow_mut());
    if n > 0 && rn > 0 {
        eprintln!(
            "publish_fsync: hookbus publish p50 {p50:?} p99 {p99:?} ({n} calls); raw redb commit p50 {rp50:?} p99 {rp99:?} ({rn} calls)"
        );
    }
}

/// Recovery at scale: open + attach of a store holding 1,000,000 pending
/// events (goal: at most 2 s), against redb reading the same records of
/// the same file, in the same run. Each iteration works on a fresh copy of
/// the seeded file.
fn recover_1m(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    // Seeded once, by the first of the two that runs (not at all when a
    // filter leaves both out).
    let seeded = std::cell::OnceCell::new();
    let mut group = c.benchmark_group("store/recover_1m");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N));
    let copy = || {
        let (seeded, ()) = seeded.get_or_init(|| seed_hookbus(N));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(
            seeded.path().join("outbox.redb"),
            dir.path().join("outbox.redb"),
        )
        .expect("copy");
        dir
    };
    // The store keeps a subscriber's pending records in segment tables
    // (`pending/<subscriber>/<segment>`, keyed by sequence number): redb
    // reads them all, table after table, in order.
    group.bench_function("raw_redb_read", |bench| {
        bench.iter_batched(
            copy,
            |dir| {
                let db = redb::Database::open(dir.path().join("outbox.redb")).expect("redb");
                let txn = db.begin_read().expect("read");
                let mut names: Vec<String> = txn
                    .list_tables()
                    .expect("tables")
                    .map(|t| t.name().to_owned())
                    .filter(|n| n.starts_with("pending/orders/"))
                    .collect();
                names.sort();
                let mut n = 0u64;
                for name in &names {
                    let def: TableDefinition<u64, &[u8]> = TableDefinition::new(name);
                    let t = txn.open_table(def).expect("table");
                    for row in t.iter().expect("iter") {
                        let (_, v) = row.expect("row");
                        n += v.value().len() as u64;
                    }
                }
                black_box(n);
                (db, dir)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("hookbus_open_attach", |bench| {
        let rt = runtime();
        bench.iter_batched(
            copy,
            |dir| {
                rt.block_on(async {
                    let store = Store::open(dir.path().join("outbox.redb")).expect("open");
                    let bus = Bus::new().expect("bus");
                    let sub = bus
                        .subscriber("order.*")
                        .name("orders")
                        .durable(&store)
                        .capacity(16)
                        .on(|_| ())
                        .expect("subscribe");
                    assert_eq!(store.stats().recovered, N);
                    black_box(sub.stats().received);
                    (store, bus, sub, dir)
                })
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    append,
    append_ack,
    recover,
    durable,
    publish_fsync,
    recover_1m
);
criterion_main!(benches);
