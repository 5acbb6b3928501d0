//! Bus benchmarks, each beside its baseline in the same group:
//!
//! - `emit_unmatched`: emitting an event no subscriber wants, against a raw
//!   `async_broadcast::Sender::try_broadcast` of an `Arc`;
//! - `fanout/N`: emit + delivery of 10,000 events to N closure subscribers,
//!   against a raw async-broadcast fan-out and a `tokio::sync::broadcast`
//!   fan-out doing the same work (build the event; each receiver checks the
//!   type it wants and counts the event).
//!
//! - `routing/S`: S subscribers, each on its own exact type, 10,000 events
//!   spread evenly (each matches exactly one subscriber), lossless, against
//!   a hand-written `HashMap<type, mpsc::Sender>` router with one task per
//!   subscriber;
//! - `routing_shapes/SHAPE/S`: the shapes users bring to `routing`: S
//!   subscribers each naming 1, 2 or 4 exact types (`types1`, `types2`,
//!   `types4`), and 2 types with a condition on every tenth subscriber
//!   (`types2_cond10`), 10,000 events spread over all the types (each matches
//!   one subscriber), lossless, against the hand-written router mapping each
//!   type to its subscriber's channel (`hashmap_mpsc_router_typesK`);
//! - `routing_keyed/S`: S subscribers on one type, each keyed on its own
//!   tenant (`.key("tenant", ..)`), events spread over the tenants, against
//!   a hand-written `HashMap<tenant, mpsc::Sender>` router;
//! - `routing_dynamic/S`: as `routing`, the events made with
//!   `Event::with_payload(type chosen at run time, value)`, against the
//!   hand-written router carrying `Arc<value>`;
//! - `emit_taps/T`: 10,000 typed events to one subscriber with T taps open
//!   that never read (T = 0 and 200);
//! - `fanout_typed/N`: a typed event to N typed closure subscribers,
//!   lossless, against
//!   - raw async-broadcast carrying `Arc<T>` of the same payload
//!     (`raw_async_broadcast_arc`);
//!   - the same channel carrying the `Arc<Event>` the bus makes of that
//!     value, each receiver reading the value (`raw_async_broadcast_event`):
//!     what moving the event itself costs, with no bus around it;
//!   - actor pub-sub, one `tell` per subscriber per event: real kameo actors
//!     (`kameo_tell_each`: kameo's default bounded mailbox of 64; kameo boxes
//!     every message), and a lighter stand-in of the same shape on tokio mpsc
//!     with no per-message box (`actor_tell_each`);
//! - `subscribe/10000`: subscribing 10,000 closures on distinct types, then
//!   shutting the bus down.
//!
//! Every group runs on a 2-worker tokio runtime; the measured producer loop
//! runs as a task on it (see `bench_producer`), the subscribers as their tasks.
//!
//! Run with `cargo bench --bench bus`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use hookbus::{Bus, Event, OverflowPolicy, TypedEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

#[derive(Serialize, Deserialize)]
struct Tick {
    n: u64,
}

impl TypedEvent for Tick {
    const TYPE: &'static str = "metrics.tick";
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn emit_unmatched(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let bus = Bus::new().unwrap();
    // Subscribers exist, just not for this type: the interest index is not empty.
    let _subs: Vec<_> = ["order.*", "decision.captured", "audit.**"]
        .iter()
        .map(|p| bus.on(*p, |_e| {}).unwrap())
        .collect();

    let mut g = c.benchmark_group("emit_unmatched");
    g.throughput(Throughput::Elements(1));
    g.bench_function("hookbus_emit_typed", |b| {
        b.iter(|| bus.emit(black_box(Tick { n: 7 })).unwrap())
    });
    g.bench_function("hookbus_emit_prebuilt_event", |b| {
        b.iter_batched(
            || Event::new("metrics.tick", json!({"n": 7})).unwrap(),
            |e| bus.emit(e).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("hookbus_has_subscribers", |b| {
        b.iter(|| bus.has_subscribers(black_box("metrics.tick")))
    });

    // Baseline: a raw broadcast of an Arc into a channel with one receiver
    // (overflow mode, so it never fills).
    let (mut tx, rx) = async_broadcast::broadcast::<Arc<Event>>(1024);
    tx.set_overflow(true);
    let arc = Arc::new(Event::new("metrics.tick", json!({"n": 7})).unwrap());
    g.bench_function("raw_async_broadcast_try_broadcast_arc", |b| {
        b.iter(|| {
            let _ = tx.try_broadcast(black_box(arc.clone()));
        })
    });
    drop(rx);
    g.finish();
}

const EVENTS: u64 = 10_000;

/// Counts deliveries and wakes the bench when all have arrived.
struct Done {
    count: AtomicU64,
    target: AtomicU64,
    notify: Notify,
}

impl Done {
    fn new() -> Arc<Done> {
        Arc::new(Done {
            count: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            notify: Notify::new(),
        })
    }
    fn hit(&self) {
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.target.load(Ordering::Acquire) {
            self.notify.notify_one();
        }
    }
    async fn run(&self, target: u64, send: impl AsyncFnOnce()) {
        self.count.store(0, Ordering::Release);
        self.target.store(target, Ordering::Release);
        let wait = self.notify.notified();
        send().await;
        wait.await;
    }
}

/// Benchmarks one producer: each iteration runs `produce(state)` (send
/// every event) and ends once `done` has counted `total` deliveries.
///
/// The producer runs as a task on the runtime, as a service emits from its
/// tasks. Run on criterion's own thread (`block_on`), it was a third busy
/// thread beside the runtime's two workers on a 2-core machine: every figure
/// then depended on how the OS placed the three, and the baselines swung
/// between two modes up to 2x apart.
fn bench_producer<S, F, Fut>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    id: BenchmarkId,
    done: &Arc<Done>,
    total: u64,
    state: &S,
    produce: F,
) where
    S: Clone + Send + 'static,
    F: Fn(S) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    g.bench_function(id, |b| {
        b.to_async(rt).iter(|| {
            let (state, done) = (state.clone(), done.clone());
            let producer = async move { done.run(total, async || produce(state).await).await };
            async move { tokio::spawn(producer).await.unwrap() }
        })
    });
}

/// What a hand-wired receiver does with each message: check that it is the
/// type it wants (the bus matches each subscriber's pattern), then handle it.
fn route(e: &Event, done: &Done) {
    if black_box(e.event_type()).starts_with("load.") {
        done.hit();
    }
}

fn event(i: u64) -> Event {
    Event::new("load.tick", json!({ "n": i })).unwrap()
}

fn fanout(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));

    for subscribers in [1usize, 8, 64] {
        let total = EVENTS * subscribers as u64;

        // hookbus: N closure subscribers, lossless (Block) so every event is
        // delivered, publish waits for room.
        let done = Done::new();
        let bus = rt.block_on(async {
            let bus = Bus::builder().capacity(1024).build().unwrap();
            for _ in 0..subscribers {
                let d = done.clone();
                bus.subscriber("load.*")
                    .overflow(OverflowPolicy::Block)
                    .on(move |_e| d.hit())
                    .unwrap()
                    .detach();
            }
            bus
        });
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("hookbus", subscribers),
            &done,
            total,
            &bus,
            |bus| async move {
                for i in 0..EVENTS {
                    bus.publish(event(i)).await.unwrap();
                }
            },
        );
        rt.block_on(bus.shutdown(Duration::from_secs(10)));

        // Raw async-broadcast: one receiver task per subscriber.
        let done = Done::new();
        let (tx, tasks) =
            broadcast_subscribers(&rt, subscribers, &done, |e: &Arc<Event>, d: &Done| {
                route(e, d);
            });
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("raw_async_broadcast", subscribers),
            &done,
            total,
            &tx,
            |tx| async move {
                for i in 0..EVENTS {
                    tx.broadcast_direct(Arc::new(event(i))).await.unwrap();
                }
            },
        );
        drop(tx);
        for t in tasks {
            rt.block_on(t).unwrap();
        }

        // tokio::sync::broadcast: big enough that no receiver lags.
        let done = Done::new();
        let (tx, _rx) = tokio::sync::broadcast::channel::<Arc<Event>>(EVENTS as usize * 2);
        let tasks: Vec<_> = (0..subscribers)
            .map(|_| {
                let mut rx = tx.subscribe();
                let d = done.clone();
                rt.spawn(async move {
                    while let Ok(e) = rx.recv().await {
                        route(&e, &d);
                    }
                })
            })
            .collect();
        drop(_rx);
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("tokio_broadcast", subscribers),
            &done,
            total,
            &tx,
            |tx| async move {
                for i in 0..EVENTS {
                    tx.send(Arc::new(event(i))).unwrap();
                }
            },
        );
        drop(tx);
        for t in tasks {
            rt.block_on(t).unwrap();
        }
    }
    g.finish();
}

const ROUTED: u64 = 10_000;

/// `n` tasks, each with a bounded mailbox (tokio mpsc, 1024), counting what
/// they receive: the hand-written router's subscribers and the actors.
fn mpsc_subscribers<T: Send + Sync + 'static>(
    rt: &tokio::runtime::Runtime,
    n: usize,
    done: &Arc<Done>,
) -> (
    Vec<tokio::sync::mpsc::Sender<Arc<T>>>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    (0..n)
        .map(|_| {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<T>>(1024);
            let d = done.clone();
            let task = rt.spawn(async move {
                while let Some(m) = rx.recv().await {
                    black_box(&m);
                    d.hit();
                }
            });
            (tx, task)
        })
        .unzip()
}

/// N receiver tasks on one `tokio::sync::broadcast` ring sized so that
/// nobody lags (16,384 places), each calling `handle` on every message.
fn tokio_broadcast_subscribers<T: Clone + Send + Sync + 'static>(
    rt: &tokio::runtime::Runtime,
    n: usize,
    done: &Arc<Done>,
    handle: fn(&T, &Done),
) -> (
    tokio::sync::broadcast::Sender<T>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let (tx, _) = tokio::sync::broadcast::channel::<T>(16_384);
    let tasks = (0..n)
        .map(|_| {
            let mut rx = tx.subscribe();
            let d = done.clone();
            rt.spawn(async move {
                while let Ok(m) = rx.recv().await {
                    handle(&m, &d);
                }
            })
        })
        .collect();
    (tx, tasks)
}

/// N receiver tasks on one raw async-broadcast channel (capacity 1024), each
/// calling `handle` on every message it receives.
fn broadcast_subscribers<T: Clone + Send + Sync + 'static>(
    rt: &tokio::runtime::Runtime,
    n: usize,
    done: &Arc<Done>,
    handle: fn(&T, &Done),
) -> (async_broadcast::Sender<T>, Vec<tokio::task::JoinHandle<()>>) {
    let (tx, rx) = async_broadcast::broadcast::<T>(1024);
    let tasks = (0..n)
        .map(|_| {
            let mut rx = rx.clone();
            let d = done.clone();
            rt.spawn(async move {
                while let Ok(m) = rx.recv_direct().await {
                    handle(&m, &d);
                }
            })
        })
        .collect();
    (tx, tasks)
}

fn routing(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(ROUTED));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    g.warm_up_time(Duration::from_secs(1));

    for subscribers in [1usize, 10, 100, 1_000, 10_000] {
        let types: Arc<Vec<String>> = Arc::new(
            (0..subscribers)
                .map(|i| format!("tenant{i}.order.placed"))
                .collect(),
        );

        let done = Done::new();
        let bus = rt.block_on(async {
            let bus = Bus::new().unwrap();
            for ty in types.iter() {
                let d = done.clone();
                bus.subscriber(ty.as_str())
                    .overflow(OverflowPolicy::Block)
                    .on(move |_e| d.hit())
                    .unwrap()
                    .detach();
            }
            bus
        });
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("hookbus", subscribers),
            &done,
            ROUTED,
            &(bus.clone(), types.clone()),
            |(bus, types)| async move {
                for i in 0..ROUTED {
                    let ty = &types[i as usize % types.len()];
                    let e = Event::new(ty.clone(), json!({ "n": i })).unwrap();
                    bus.publish(e).await.unwrap();
                }
            },
        );
        rt.block_on(bus.shutdown(Duration::from_secs(30)));

        // The hand-written router: a map from type to the subscriber's
        // channel, one task per subscriber.
        let done = Done::new();
        let (senders, tasks) = mpsc_subscribers::<Event>(&rt, subscribers, &done);
        let router: Arc<std::collections::HashMap<_, _>> =
            Arc::new(types.iter().cloned().zip(senders).collect());
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("hashmap_mpsc_router", subscribers),
            &done,
            ROUTED,
            &(router.clone(), types.clone()),
            |(router, types)| async move {
                for i in 0..ROUTED {
                    let ty = &types[i as usize % types.len()];
                    let e = Event::new(ty.clone(), json!({ "n": i })).unwrap();
                    if let Some(tx) = router.get(e.event_type()) {
                        tx.send(Arc::new(e)).await.unwrap();
                    }
                }
            },
        );
        drop(router);
        for t in tasks {
            rt.block_on(t).unwrap();
        }
    }
    g.finish();
}

/// S subscribers, subscriber `i` naming `k` types `tenant{i}.t{j}.placed`;
/// with `conditioned`, every tenth has a condition (that takes everything,
/// so the work delivered is the same as without).
fn shaped_bus(
    rt: &tokio::runtime::Runtime,
    done: &Arc<Done>,
    types: &[Vec<String>],
    conditioned: bool,
) -> Bus {
    rt.block_on(async {
        let bus = Bus::new().unwrap();
        for (i, mine) in types.iter().enumerate() {
            let d = done.clone();
            let mut sub = bus
                .subscriber(mine.iter().map(String::as_str).collect::<Vec<_>>())
                .overflow(OverflowPolicy::Block);
            if conditioned && i.is_multiple_of(10) {
                sub = sub.filter(|e| black_box(e.event_type()).len() > 1);
            }
            sub.on(move |_e| d.hit()).unwrap().detach();
        }
        bus
    })
}

fn routing_shapes(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("routing_shapes");
    g.throughput(Throughput::Elements(ROUTED));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    for subscribers in [10usize, 100, 1_000, 10_000] {
        for (shape, k, conditioned) in [
            ("types1", 1usize, false),
            ("types2", 2, false),
            ("types4", 4, false),
            ("types2_cond10", 2, true),
        ] {
            let types: Vec<Vec<String>> = (0..subscribers)
                .map(|i| (0..k).map(|j| format!("tenant{i}.t{j}.placed")).collect())
                .collect();
            let all: Arc<Vec<String>> = Arc::new(types.iter().flatten().cloned().collect());
            let done = Done::new();
            let bus = shaped_bus(&rt, &done, &types, conditioned);
            bench_producer(
                &mut g,
                &rt,
                BenchmarkId::new(format!("hookbus_{shape}"), subscribers),
                &done,
                ROUTED,
                &(bus.clone(), all.clone()),
                |(bus, all)| async move {
                    for i in 0..ROUTED {
                        let ty = &all[i as usize % all.len()];
                        let e = Event::new(ty.clone(), json!({ "n": i })).unwrap();
                        bus.publish(e).await.unwrap();
                    }
                },
            );
            rt.block_on(bus.shutdown(Duration::from_secs(30)));
            if conditioned {
                continue;
            }

            // The hand-written router: every type of a subscriber maps to
            // that subscriber's channel.
            let done = Done::new();
            let (senders, tasks) = mpsc_subscribers::<Event>(&rt, subscribers, &done);
            let router: Arc<std::collections::HashMap<String, _>> = Arc::new(
                types
                    .iter()
                    .zip(&senders)
                    .flat_map(|(mine, tx)| mine.iter().map(move |ty| (ty.clone(), tx.clone())))
                    .collect(),
            );
            drop(senders);
            bench_producer(
                &mut g,
                &rt,
                BenchmarkId::new(format!("hashmap_mpsc_router_{shape}"), subscribers),
                &done,
                ROUTED,
                &(router.clone(), all.clone()),
                |(router, all)| async move {
                    for i in 0..ROUTED {
                        let ty = &all[i as usize % all.len()];
                        let e = Event::new(ty.clone(), json!({ "n": i })).unwrap();
                        if let Some(tx) = router.get(e.event_type()) {
                            tx.send(Arc::new(e)).await.unwrap();
                        }
                    }
                },
            );
            drop(router);
            for t in tasks {
                rt.block_on(t).unwrap();
            }
        }
    }
    g.finish();
}

fn keyed_event(tenants: &[String], i: u64) -> Event {
    Event::builder("order.placed")
        .data(json!({ "n": i }))
        .extension("tenant", tenants[i as usize % tenants.len()].as_str())
        .build()
        .unwrap()
}

fn routing_keyed(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("routing_keyed");
    g.throughput(Throughput::Elements(ROUTED));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    for subscribers in [10usize, 1_000, 10_000] {
        let tenants: Arc<Vec<String>> =
            Arc::new((0..subscribers).map(|i| format!("t{i}")).collect());
        let done = Done::new();
        let bus = rt.block_on(async {
            let bus = Bus::new().unwrap();
            for t in tenants.iter() {
                let d = done.clone();
                bus.subscriber("order.placed")
                    .key("tenant", t.as_str())
                    .overflow(OverflowPolicy::Block)
                    .on(move |_e| d.hit())
                    .unwrap()
                    .detach();
            }
            bus
        });
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("hookbus", subscribers),
            &done,
            ROUTED,
            &(bus.clone(), tenants.clone()),
            |(bus, tenants)| async move {
                for i in 0..ROUTED {
                    bus.publish(keyed_event(&tenants, i)).await.unwrap();
                }
            },
        );
        rt.block_on(bus.shutdown(Duration::from_secs(30)));

        let done = Done::new();
        let (senders, tasks) = mpsc_subscribers::<Event>(&rt, subscribers, &done);
        let router: Arc<std::collections::HashMap<String, _>> =
            Arc::new(tenants.iter().cloned().zip(senders).collect());
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("hashmap_mpsc_router", subscribers),
            &done,
            ROUTED,
            &(router.clone(), tenants.clone()),
            |(router, tenants)| async move {
                for i in 0..ROUTED {
                    let e = keyed_event(&tenants, i);
                    let tx = e
                        .extension("tenant")
                        .and_then(|v| router.get(&*v.to_wire_string()));
                    if let Some(tx) = tx {
                        tx.send(Arc::new(e)).await.unwrap();
                    }
                }
            },
        );
        drop(router);
        for t in tasks {
            rt.block_on(t).unwrap();
        }
    }
    g.finish();
}

fn routing_dynamic(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("routing_dynamic");
    g.throughput(Throughput::Elements(ROUTED));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    for subscribers in [10usize, 1_000] {
        let types: Arc<Vec<String>> = Arc::new(
            (0..subscribers)
                .map(|i| format!("tenant{i}.order.placed"))
                .collect(),
        );
        let done = Done::new();
        let bus = shaped_bus(
            &rt,
            &done,
            &types.iter().map(|t| vec![t.clone()]).collect::<Vec<_>>(),
            false,
        );
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("hookbus_with_payload", subscribers),
            &done,
            ROUTED,
            &(bus.clone(), types.clone()),
            |(bus, types)| async move {
                for i in 0..ROUTED {
                    let ty = &types[i as usize % types.len()];
                    let e = Event::with_payload(ty.clone(), Tick { n: i }).unwrap();
                    bus.publish(e).await.unwrap();
                }
            },
        );
        rt.block_on(bus.shutdown(Duration::from_secs(30)));

        let done = Done::new();
        let (senders, tasks) = mpsc_subscribers::<Tick>(&rt, subscribers, &done);
        let router: Arc<std::collections::HashMap<String, _>> =
            Arc::new(types.iter().cloned().zip(senders).collect());
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("hashmap_mpsc_router_arc_struct", subscribers),
            &done,
            ROUTED,
            &(router.clone(), types.clone()),
            |(router, types)| async move {
                for i in 0..ROUTED {
                    let ty = types[i as usize % types.len()].clone();
                    if let Some(tx) = router.get(black_box(&ty)) {
                        tx.send(Arc::new(Tick { n: i })).await.unwrap();
                    }
                }
            },
        );
        drop(router);
        for t in tasks {
            rt.block_on(t).unwrap();
        }
    }
    g.finish();
}

fn emit_taps(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("emit_taps");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    for taps in [0usize, 200] {
        let done = Done::new();
        let (bus, open) = rt.block_on(async {
            let bus = Bus::new().unwrap();
            let d = done.clone();
            bus.subscriber(Tick::TYPE)
                .overflow(OverflowPolicy::Block)
                .on(move |_e| d.hit())
                .unwrap()
                .detach();
            let open: Vec<_> = (0..taps).map(|_| bus.tap("*").unwrap()).collect();
            (bus, open)
        });
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("hookbus_taps_never_reading", taps),
            &done,
            EVENTS,
            &bus.clone(),
            |bus| async move {
                for i in 0..EVENTS {
                    bus.publish(Tick { n: i }).await.unwrap();
                }
            },
        );
        drop(open);
        rt.block_on(bus.shutdown(Duration::from_secs(30)));
    }
    g.finish();
}

/// A bus with `n` lossless (`Block`) typed closures on `Tick`, each with
/// `capacity` places, counting what they receive.
fn tick_bus(rt: &tokio::runtime::Runtime, done: &Arc<Done>, n: usize, capacity: usize) -> Bus {
    rt.block_on(async {
        let bus = Bus::new().unwrap();
        for _ in 0..n {
            let d = done.clone();
            bus.subscriber(Tick::TYPE)
                .overflow(OverflowPolicy::Block)
                .capacity(capacity)
                .on_typed(move |t: hookbus::Typed<Tick>| {
                    black_box(t.n);
                    d.hit()
                })
                .unwrap()
                .detach();
        }
        bus
    })
}

fn fanout_typed(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("fanout_typed");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(6));

    for subscribers in [1usize, 8, 64] {
        let total = EVENTS * subscribers as u64;

        let done = Done::new();
        let bus = tick_bus(&rt, &done, subscribers, 1024);
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("hookbus", subscribers),
            &done,
            total,
            &bus,
            |bus| async move {
                for n in 0..EVENTS {
                    bus.publish(Tick { n }).await.unwrap();
                }
            },
        );
        rt.block_on(bus.shutdown(Duration::from_secs(10)));

        // The same subscribers with room for the whole run, sent to as
        // tokio's ring below is: `emit`, synchronous, never yielding (a
        // publishing loop yields to the subscribers it woke once its tokio
        // budget is spent, which tokio's `broadcast::Sender::send` never
        // does; `routing` measures that against `mpsc`, which does).
        let done = Done::new();
        let bus = tick_bus(&rt, &done, subscribers, 16_384);
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("hookbus_emit", subscribers),
            &done,
            total,
            &bus,
            |bus| async move {
                for n in 0..EVENTS {
                    bus.emit(Tick { n }).unwrap();
                }
            },
        );
        rt.block_on(bus.shutdown(Duration::from_secs(10)));

        let done = Done::new();
        let (tx, tasks) =
            broadcast_subscribers(&rt, subscribers, &done, |t: &Arc<Tick>, d: &Done| {
                black_box(t.n);
                d.hit();
            });
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("raw_async_broadcast_arc", subscribers),
            &done,
            total,
            &tx,
            |tx| async move {
                for n in 0..EVENTS {
                    tx.broadcast_direct(Arc::new(Tick { n })).await.unwrap();
                }
            },
        );
        drop(tx);
        for t in tasks {
            rt.block_on(t).unwrap();
        }

        // tokio's broadcast ring, sized so that nobody lags (the issue's
        // baseline): one write, read by every receiver through its cursor.
        let done = Done::new();
        let (tx, tasks) =
            tokio_broadcast_subscribers(&rt, subscribers, &done, |t: &Arc<Tick>, d: &Done| {
                black_box(t.n);
                d.hit();
            });
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("raw_tokio_broadcast_arc", subscribers),
            &done,
            total,
            &tx,
            |tx| async move {
                for n in 0..EVENTS {
                    assert!(tx.send(Arc::new(Tick { n })).is_ok());
                }
            },
        );
        drop(tx);
        for t in tasks {
            rt.block_on(t).unwrap();
        }

        // tokio's ring carrying what the bus carries (the event made from
        // the value): the ceiling of a group ring built on it.
        let done = Done::new();
        let (tx, tasks) =
            tokio_broadcast_subscribers(&rt, subscribers, &done, |e: &Arc<Event>, d: &Done| {
                black_box(e.payload::<Tick>().map(|t| t.n));
                d.hit();
            });
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("raw_tokio_broadcast_event", subscribers),
            &done,
            total,
            &tx,
            |tx| async move {
                for n in 0..EVENTS {
                    let e = Arc::new(Event::typed(Tick { n }).unwrap());
                    assert!(tx.send(e).is_ok());
                }
            },
        );
        drop(tx);
        for t in tasks {
            rt.block_on(t).unwrap();
        }

        // The same raw channel carrying what the bus carries: the event made
        // from the value (id, time, type), each receiver reading the value.
        let done = Done::new();
        let (tx, tasks) =
            broadcast_subscribers(&rt, subscribers, &done, |e: &Arc<Event>, d: &Done| {
                black_box(e.payload::<Tick>().map(|t| t.n));
                d.hit();
            });
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("raw_async_broadcast_event", subscribers),
            &done,
            total,
            &tx,
            |tx| async move {
                for n in 0..EVENTS {
                    let e = Arc::new(Event::typed(Tick { n }).unwrap());
                    tx.broadcast_direct(e).await.unwrap();
                }
            },
        );
        drop(tx);
        for t in tasks {
            rt.block_on(t).unwrap();
        }

        // kameo-style actor pub-sub: a bounded mailbox per subscriber actor,
        // the publisher `tell`s each one.
        let done = Done::new();
        let (mailboxes, tasks) = mpsc_subscribers::<Tick>(&rt, subscribers, &done);
        let mailboxes = Arc::new(mailboxes);
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("actor_tell_each", subscribers),
            &done,
            total,
            &mailboxes,
            |mailboxes| async move {
                for n in 0..EVENTS {
                    let t = Arc::new(Tick { n });
                    for m in mailboxes.iter() {
                        m.send(t.clone()).await.unwrap();
                    }
                }
            },
        );
        drop(mailboxes);
        for t in tasks {
            rt.block_on(t).unwrap();
        }

        // The same with real kameo actors (kameo's default mailbox).
        let done = Done::new();
        let actors: Arc<Vec<_>> = Arc::new(rt.block_on(async {
            (0..subscribers)
                .map(|_| <TickActor as kameo::actor::Spawn>::spawn(TickActor(done.clone())))
                .collect()
        }));
        bench_producer(
            &mut g,
            &rt,
            BenchmarkId::new("kameo_tell_each", subscribers),
            &done,
            total,
            &actors,
            |actors| async move {
                for n in 0..EVENTS {
                    let t = Arc::new(Tick { n });
                    for a in actors.iter() {
                        a.tell(t.clone()).send().await.unwrap();
                    }
                }
            },
        );
        rt.block_on(async {
            for a in actors.iter() {
                a.stop_gracefully().await.unwrap();
                a.wait_for_shutdown().await;
            }
        });
    }
    g.finish();
}

/// A kameo subscriber actor: counts each tick it is told.
struct TickActor(Arc<Done>);

impl kameo::Actor for TickActor {
    type Args = Self;
    type Error = kameo::error::Infallible;

    async fn on_start(me: Self, _: kameo::actor::ActorRef<Self>) -> Result<Self, Self::Error> {
        Ok(me)
    }
}

impl kameo::message::Message<Arc<Tick>> for TickActor {
    type Reply = ();

    async fn handle(&mut self, t: Arc<Tick>, _: &mut kameo::message::Context<Self, Self::Reply>) {
        black_box(t.n);
        self.0.hit();
    }
}

fn subscribe(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("subscribe");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    const S: usize = 10_000;
    let types: Vec<String> = (0..S).map(|i| format!("tenant{i}.order.placed")).collect();
    g.bench_function(BenchmarkId::new("subscribe_and_shutdown", S), |b| {
        b.to_async(&rt).iter(|| async {
            let bus = Bus::new().unwrap();
            for ty in &types {
                bus.on(ty.as_str(), |_e| {}).unwrap().detach();
            }
            let report = bus.shutdown(Duration::from_secs(30)).await;
            assert_eq!(report.subscribers.len(), S);
        })
    });
    g.finish();
}

/// Counts deliveries; a plain thread waits for all of them (no runtime on
/// the waiting side).
struct ThreadDone {
    count: AtomicU64,
    target: AtomicU64,
    lock: std::sync::Mutex<()>,
    all: std::sync::Condvar,
}

impl ThreadDone {
    fn new() -> Arc<ThreadDone> {
        Arc::new(ThreadDone {
            count: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            lock: std::sync::Mutex::new(()),
            all: std::sync::Condvar::new(),
        })
    }
    fn hit(&self) {
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.target.load(Ordering::Acquire) {
            let _held = self.lock.lock().unwrap();
            self.all.notify_all();
        }
    }
    /// Sends with `send`, then waits until `target` deliveries arrived.
    fn run(&self, target: u64, send: impl FnOnce()) {
        self.count.store(0, Ordering::Release);
        self.target.store(target, Ordering::Release);
        send();
        let mut held = self.lock.lock().unwrap();
        while self.count.load(Ordering::Acquire) < target {
            held = self.all.wait(held).unwrap();
        }
    }
}

/// Emitting from a plain `std::thread` with no runtime (criterion's own
/// thread): `Bus::emit` of a typed value against raw async-broadcast's
/// `try_broadcast` of an `Arc<T>`, one subscriber task each, both sized so
/// that nothing is refused.
fn emit_thread(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("emit_thread");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(5));
    let room = 2 * EVENTS as usize;

    let done = ThreadDone::new();
    let bus = {
        let _in = rt.enter();
        let bus = Bus::builder().capacity(room).build().unwrap();
        let d = done.clone();
        bus.on_typed(move |t: hookbus::Typed<Tick>| {
            black_box(t.n);
            d.hit()
        })
        .unwrap()
        .detach();
        bus
    };
    g.bench_function("hookbus_emit_typed", |b| {
        b.iter(|| {
            done.run(EVENTS, || {
                for n in 0..EVENTS {
                    bus.emit(Tick { n }).unwrap();
                }
            })
        })
    });
    rt.block_on(bus.shutdown(Duration::from_secs(10)));

    let done = ThreadDone::new();
    let (tx, mut rx) = async_broadcast::broadcast::<Arc<Tick>>(room);
    let d = done.clone();
    let task = rt.spawn(async move {
        while let Ok(t) = rx.recv_direct().await {
            black_box(t.n);
            d.hit();
        }
    });
    g.bench_function("raw_async_broadcast_try_broadcast_arc", |b| {
        b.iter(|| {
            done.run(EVENTS, || {
                for n in 0..EVENTS {
                    tx.try_broadcast(Arc::new(Tick { n })).unwrap();
                }
            })
        })
    });
    drop(tx);
    rt.block_on(task).unwrap();
    g.finish();
}

criterion_group!(
    benches,
    emit_unmatched,
    fanout,
    routing,
    routing_shapes,
    routing_keyed,
    routing_dynamic,
    emit_taps,
    fanout_typed,
    emit_thread,
    subscribe
);
criterion_main!(benches);
