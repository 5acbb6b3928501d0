//! `hookbus serve` and the management API end to end, against the library
//! alone, in one run.
//!
//! - `manage/serve_signed_in_durable_out`: a real `hookbus serve` process
//!   (the binary, as users run it): signed CloudEvents (Standard Webhooks,
//!   structured mode, as a hookbus webhook sends them) posted to its
//!   ingress route `/ingress/bench/cloudevents`, 64 requests in flight,
//!   delivered by the durable webhook the tenant created through its API to
//!   a local receiver;
//! - `manage/http_in_durable_out`: events posted to `POST /v1/events` of a
//!   `Manage` router on 127.0.0.1 (what `hookbus serve` runs; each answer
//!   waits until the event is on disk), 64 requests in flight, delivered by
//!   a durable webhook (signed, Standard Webhooks) to a local receiver;
//! - `manage/library_durable_out` (the baseline): the same events emitted
//!   with `Bus::emit` to the same kind of durable webhook, no HTTP in.
//!
//! Each iteration is a burst of 1,000 events, timed until the receiver has
//! them all. After the criterion groups, one more burst of each prints the
//! end-to-end latency (sent → received) at p50 and p99.
//!
//! `BENCH_SERVE_ARGS` adds flags to `hookbus serve` (e.g.
//! `--keep-delivered-hours 0`: no replay history, as the library baseline
//! keeps none; serve keeps 24 hours by default).
//!
//! Run: `cargo bench --no-default-features --features cli --bench manage`
//! (add `-- --measurement-time 3 --warm-up-time 1` for a short run).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::stream::{self, StreamExt};
use hookbus::manage::Manage;
use hookbus::store::Store;
use hookbus::testing::TestReceiver;
use hookbus::webhook::WebhookSink;
use hookbus::{Bus, Event};
use serde_json::json;

const BURST: u64 = 1000;
const IN_FLIGHT: usize = 64;
const TOKEN: &str = "bench-token";
const INGRESS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Arrival times by event id (the `webhook-id` header).
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

struct Setup {
    rx: TestReceiver,
    arrivals: Arrivals,
    // Kept alive for the run.
    _dirs: Vec<tempfile::TempDir>,
    _stores: Vec<Store>,
    _subs: Vec<hookbus::Subscription>,
    _manage: Manage,
    bus_lib: Bus,
    bus_api: Bus,
    api: String,
    client: reqwest::Client,
    /// The `hookbus serve` process and its base URL.
    serve: tokio::process::Child,
    serve_url: String,
}

async fn setup() -> Setup {
    let arrivals: Arrivals = Arc::default();
    let a = arrivals.clone();
    let rx = TestReceiver::builder()
        .history(16)
        .wait_timeout(Duration::from_secs(120))
        .on_request(move |r| {
            if let Some(id) = r.header("webhook-id") {
                a.lock().unwrap().insert(id.to_owned(), Instant::now());
            }
        })
        .start()
        .await
        .expect("receiver");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    // The library alone: a durable webhook on a bus.
    let store_lib = Store::open(d1.path().join("lib.redb")).unwrap();
    let bus_lib = Bus::new().unwrap();
    let sub = WebhookSink::builder(rx.url())
        .name("lib")
        .secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .events(["bench.*"])
        .durable(&store_lib)
        .build()
        .unwrap()
        .subscribe(&bus_lib)
        .unwrap();

    // The management API, served over HTTP.
    let store_api = Store::open(d2.path().join("api.redb")).unwrap();
    let bus_api = Bus::new().unwrap();
    let manage = Manage::builder(&bus_api)
        .identify(|req| {
            (req.headers.get("authorization")?.to_str().ok()? == format!("Bearer {TOKEN}"))
                .then(|| "bench".to_owned())
        })
        .allow_loopback(true)
        .durable(&store_api, d2.path().join("secrets.json"))
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let app = manage.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{api}/v1/webhooks"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "bench", "url": rx.url(), "events": ["bench.*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // `hookbus serve`, the binary.
    let d3 = tempfile::tempdir().unwrap();
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookbus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--allow-loopback"])
        .arg("--data")
        .arg(d3.path())
        .args(["--token", &format!("bench={TOKEN}")])
        .args(["--ingress", &format!("bench:cloudevents={INGRESS_SECRET}")])
        .args(
            std::env::var("BENCH_SERVE_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .env_remove("HOOKBUS_TOKENS")
        .env_remove("HOOKBUS_INGRESS")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("hookbus serve starts");
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(serve.stdout.take().unwrap()));
    let first = lines
        .next_line()
        .await
        .unwrap()
        .expect("serve prints its address");
    let serve_url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("an address")
        .to_owned();
    let created = client
        .post(format!("{serve_url}/v1/webhooks"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "bench", "url": rx.url(), "events": ["bench.*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    Setup {
        serve,
        serve_url,
        rx,
        arrivals,
        _dirs: vec![d1, d2, d3],
        _stores: vec![store_lib, store_api],
        _subs: vec![sub],
        _manage: manage,
        bus_lib,
        bus_api,
        api,
        client,
    }
}

fn data(i: u64) -> serde_json::Value {
    json!({"order_id": format!("ord_{i:08}"), "amount": 4200, "currency": "EUR"})
}

/// Posts a burst over HTTP, 64 in flight; returns the send times by id.
async fn burst_http(s: &Setup, base: u64) -> HashMap<String, Instant> {
    let sent = Mutex::new(HashMap::new());
    stream::iter(base..base + BURST)
        .map(|i| {
            let id = format!("evt-{i}");
            sent.lock().unwrap().insert(id.clone(), Instant::now());
            let req = s
                .client
                .post(format!("{}/v1/events", s.api))
                .bearer_auth(TOKEN)
                .json(&json!({"type": "bench.order", "id": id, "data": data(i)}))
                .send();
            async move {
                let r = req.await.expect("the API answers");
                assert_eq!(r.status(), 202);
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    sent.into_inner().unwrap()
}

/// Posts a burst of signed CloudEvents to `hookbus serve`'s ingress, 64 in
/// flight; returns the send times by id.
async fn burst_serve(s: &Setup, base: u64) -> HashMap<String, Instant> {
    use hookbus::signature::{Secret, StandardWebhooks};
    let secret = Secret::from(INGRESS_SECRET);
    let sent = Mutex::new(HashMap::new());
    stream::iter(base..base + BURST)
        .map(|i| {
            let id = format!("srv-{i}");
            let body = serde_json::to_vec(&json!({
                "specversion": "1.0", "id": id, "source": "/bench",
                "type": "bench.order", "datacontenttype": "application/json",
                "data": data(i),
            }))
            .unwrap();
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                .to_string();
            let msg_id = format!("msg_{i}");
            let sig = StandardWebhooks::sign(&secret, &msg_id, &ts, &body).unwrap();
            sent.lock().unwrap().insert(id, Instant::now());
            let req = s
                .client
                .post(format!("{}/ingress/bench/cloudevents", s.serve_url))
                .header("content-type", "application/cloudevents+json")
                .header("webhook-id", msg_id)
                .header("webhook-timestamp", ts)
                .header("webhook-signature", sig)
                .body(body)
                .send();
            async move {
                let r = req.await.expect("serve answers");
                assert_eq!(r.status(), 200);
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    sent.into_inner().unwrap()
}

/// Emits a burst on the library's bus; returns the send times by id.
fn burst_lib(s: &Setup, base: u64) -> HashMap<String, Instant> {
    let mut sent = HashMap::new();
    for i in base..base + BURST {
        let id = format!("lib-{i}");
        sent.insert(id.clone(), Instant::now());
        let e = Event::builder("bench.order")
            .id(id)
            .data(data(i))
            .build()
            .unwrap();
        s.bus_lib.emit(e).expect("emitted");
    }
    sent
}

async fn until_received(s: &Setup, total: u64) {
    s.rx.wait_for(total as usize).await.expect("all received");
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(setup());
    let mut next = 0u64;
    let mut group = c.benchmark_group("manage");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BURST));
    group.bench_function("serve_signed_in_durable_out", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let before = s.rx.stats().requests;
                    burst_serve(&s, next).await;
                    next += BURST;
                    until_received(&s, before + BURST).await;
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("http_in_durable_out", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let before = s.rx.stats().requests;
                    burst_http(&s, next).await;
                    next += BURST;
                    until_received(&s, before + BURST).await;
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("library_durable_out", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let before = s.rx.stats().requests;
                    burst_lib(&s, next);
                    next += BURST;
                    until_received(&s, before + BURST).await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();

    // End-to-end latency, one burst each.
    for (name, how) in [
        ("serve_signed_in_durable_out", 2),
        ("http_in_durable_out", 1),
        ("library_durable_out", 0),
    ] {
        let latencies = rt.block_on(async {
            let before = s.rx.stats().requests;
            let sent = match how {
                2 => burst_serve(&s, next).await,
                1 => burst_http(&s, next).await,
                _ => burst_lib(&s, next),
            };
            next += BURST;
            until_received(&s, before + BURST).await;
            let arrivals = s.arrivals.lock().unwrap();
            let mut l: Vec<Duration> = sent
                .iter()
                .filter_map(|(id, t)| Some(arrivals.get(id)?.duration_since(*t)))
                .collect();
            l.sort();
            l
        });
        let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
        println!(
            "manage/{name}: end-to-end latency over {} events: p50 {:?}, p99 {:?}",
            latencies.len(),
            p(0.50),
            p(0.99)
        );
    }
    drop(s.bus_api.clone());
    let mut serve = s.serve;
    let _ = rt.block_on(serve.kill());
}

criterion_group!(benches, bench);
criterion_main!(benches);
