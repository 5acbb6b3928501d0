#![cfg(all(feature = "metrics", feature = "webhook", feature = "testing"))]
//! The metrics sampler behind a real Prometheus exporter: a known workload
//! (handlers that succeed, fail and filter; a webhook that delivers and one
//! that dead-letters after a retry), then `/metrics` scraped over HTTP from
//! an axum server, every number checked against `stats()`.
//!
//! Both tests share the process-wide recorder and use different names.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hookbus::metrics::{Collector, MetricsError};
use hookbus::testing::{Reply, TestReceiver};
use hookbus::webhook::{RetryPolicy, WebhookManager, WebhookSink};
use hookbus::{Bus, Event};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

/// The samples of a Prometheus text exposition: `name{labels}` -> value.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The bus-level series have no label to tell two buses apart: the tests
/// take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process-wide Prometheus recorder, installed once for both tests.
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("the only recorder of this binary");
            handle
        })
        .clone()
}

async fn serve(collector: Collector, handle: PrometheusHandle) -> String {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (collector, handle) = (collector.clone(), handle.clone());
            async move {
                collector.record().await;
                handle.render()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scraped_over_http_match_stats() {
    let _serial = SERIAL.lock().await;
    let handle = recorder();

    let bus = Bus::new().unwrap();
    // Each handler subscriber ends its workload on an `order.done` sentinel:
    // it says so and stays in flight until the test ends. Subscribers handle
    // their events in order, so by then every earlier event is counted and
    // the counters hold still while they are scraped and compared.
    let (reached, mut reached_rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let handler = |name: &'static str, fail_on: Option<u64>| {
        let (reached, release) = (reached.clone(), release.clone());
        move |e: Arc<Event>| {
            let (reached, release) = (reached.clone(), release.clone());
            async move {
                if e.event_type() == "order.done" {
                    let _ = reached.send(name);
                    let _ = release.acquire().await;
                }
                if fail_on.is_some() && e.data()["n"].as_u64() == fail_on {
                    Err("refused")
                } else {
                    Ok(())
                }
            }
        }
    };
    let _ok = bus
        .subscriber("order.*")
        .name("audit")
        .on_async(handler("audit", None))
        .unwrap();
    let _failing = bus
        .subscriber("order.*")
        .name("flaky")
        .on_async(handler("flaky", Some(1)))
        .unwrap();
    let _picky = bus
        .subscriber("order.*")
        .name("big")
        .filter(|e: &Event| e.event_type() == "order.done" || e.data()["n"].as_u64() > Some(1))
        .on_async(handler("big", None))
        .unwrap();

    // Webhooks subscribed to a type nobody emits; the test sends through
    // their sinks directly, so each send is logged and counted when it
    // returns.
    let good = TestReceiver::start().await.unwrap();
    let bad = TestReceiver::builder()
        .default_reply(Reply::server_error())
        .start()
        .await
        .unwrap();
    let manager = Arc::new(WebhookManager::new(&bus));
    let good_id = manager
        .register(
            WebhookSink::builder(good.url())
                .name("crm")
                .events(["audit.*"]),
        )
        .unwrap();
    let bad_id = manager
        .register(
            WebhookSink::builder(bad.url())
                .name("ledger")
                .events(["audit.*"])
                .retry(RetryPolicy::exponential(
                    2,
                    Duration::from_millis(1),
                    Duration::from_millis(1),
                )),
        )
        .unwrap();

    for n in 0..3 {
        bus.emit_json("order.created", json!({"n": n})).unwrap();
    }
    bus.emit_json("order.done", json!({})).unwrap();
    bus.emit_json("nobody.listens", json!({})).unwrap();
    for _ in 0..3 {
        reached_rx.recv().await.unwrap();
    }
    let event = |n: u64| Arc::new(Event::new("audit.sent", json!({"n": n})).unwrap());
    for n in 0..3 {
        assert!(
            manager
                .sink_of(&good_id)
                .unwrap()
                .send(&[event(n)])
                .await
                .is_delivered()
        );
        assert!(
            !manager
                .sink_of(&bad_id)
                .unwrap()
                .send(&[event(n)])
                .await
                .is_delivered()
        );
    }

    let collector = Collector::new(&bus).webhooks(manager.clone());
    let url = serve(collector.clone(), handle).await;
    let text = reqwest::get(&url)
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    let samples = parse(&text);
    let at = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
    };

    let stats = bus.stats();
    assert_eq!(stats.subscribers.len(), 5);
    assert_eq!(at("hookbus_bus_emitted_total"), stats.emitted as f64);
    assert_eq!(stats.emitted, 4);
    // `nobody.listens` and the ledger's `hookbus.delivery_failed` announcements.
    assert_eq!(at("hookbus_bus_unmatched_total"), stats.unmatched as f64);
    assert!(stats.unmatched >= 1);
    assert_eq!(at("hookbus_bus_rejected_total"), 0.0);
    assert_eq!(at("hookbus_bus_subscribers"), 5.0);
    for s in &stats.subscribers {
        let labels = format!("{{subscriber=\"{}\",subscriber_id=\"{}\"}}", s.name, s.id);
        for (name, value) in [
            ("received_total", s.received),
            ("filtered_total", s.filtered),
            ("delivered_total", s.delivered),
            ("failed_total", s.failed),
            ("dropped_total", s.dropped),
            ("mailbox_depth", s.mailbox_len),
            ("in_flight", s.in_flight),
        ] {
            let series = format!("hookbus_subscriber_{name}{labels}");
            assert_eq!(at(&series), value as f64, "{series}");
        }
    }
    let by_name = |n: &str| stats.subscriber(n).unwrap();
    let audit = by_name("audit");
    assert_eq!(
        (audit.received, audit.delivered, audit.in_flight),
        (4, 3, 1)
    );
    let flaky = by_name("flaky");
    assert_eq!((flaky.delivered, flaky.failed), (2, 1));
    let big = by_name("big");
    assert_eq!((big.filtered, big.delivered, big.in_flight), (2, 1, 1));

    let crm = manager.stats(&good_id).unwrap();
    let ledger = manager.stats(&bad_id).unwrap();
    assert_eq!((crm.delivered, crm.attempts), (3, 3));
    assert_eq!((ledger.failed, ledger.attempts, ledger.retried), (3, 6, 3));
    assert_eq!(bad.requests().len(), 6, "the receiver saw every attempt");
    for (name, id, s) in [("crm", &good_id, &crm), ("ledger", &bad_id, &ledger)] {
        let labels = format!("{{webhook=\"{name}\",webhook_id=\"{id}\"}}");
        for (metric, value) in [
            ("attempts_total", s.attempts),
            ("delivered_total", s.delivered),
            ("failed_total", s.failed),
            ("retries_total", s.retried),
            ("dropped_total", s.dropped),
            ("rate_limited_total", s.rate_limited),
            ("consecutive_failures", s.consecutive_failures),
            ("enabled", u64::from(s.enabled)),
        ] {
            let series = format!("hookbus_webhook_{metric}{labels}");
            assert_eq!(at(&series), value as f64, "{series}");
        }
        let dead = manager.sink_of(id).unwrap().dead_letters().len() as f64;
        assert_eq!(at(&format!("hookbus_webhook_dead_letters{labels}")), dead);
        let p50 = at(&format!(
            "hookbus_webhook_latency_seconds{{webhook=\"{name}\",webhook_id=\"{id}\",quantile=\"0.5\"}}"
        ));
        assert!(p50 > 0.0, "{name} p50 {p50}");
        // Attempts by class, and the latency histogram's count.
        let classes = s.attempts_by_class;
        for (class, value) in [("2xx", classes.success), ("5xx", classes.server_error)] {
            let series = format!(
                "hookbus_webhook_responses_total{{webhook=\"{name}\",webhook_id=\"{id}\",class=\"{class}\"}}"
            );
            assert_eq!(at(&series), value as f64, "{series}");
        }
        let inf = format!(
            "hookbus_webhook_attempt_duration_seconds_bucket{{webhook=\"{name}\",webhook_id=\"{id}\",le=\"+Inf\"}}"
        );
        assert_eq!(at(&inf), s.attempts as f64, "{inf}");
    }
    assert_eq!(
        at(&format!(
            "hookbus_webhook_dead_letters{{webhook=\"ledger\",webhook_id=\"{bad_id}\"}}"
        )),
        3.0
    );

    // A change is visible at the next scrape: the sampler reads at scrape time.
    manager.disable(&good_id).unwrap();
    let again = parse(&reqwest::get(&url).await.unwrap().text().await.unwrap());
    let enabled = format!("hookbus_webhook_enabled{{webhook=\"crm\",webhook_id=\"{good_id}\"}}");
    assert_eq!(again[&enabled], 0.0);

    // The reporter refuses what it cannot do.
    assert_eq!(
        collector.clone().spawn(Duration::ZERO).unwrap_err(),
        MetricsError::ZeroInterval
    );
    release.add_permits(3);
    let report = bus.shutdown(Duration::from_secs(30)).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        collector.spawn(Duration::from_secs(1)).unwrap_err(),
        MetricsError::BusClosed
    );
}

#[tokio::test(start_paused = true)]
async fn the_reporter_samples_on_its_interval() {
    let _serial = SERIAL.lock().await;
    let handle = recorder();
    let bus = Bus::new().unwrap();
    let _sub = bus.subscriber("tick.*").name("sampled").on(|_| {}).unwrap();
    let received = |text: &str| -> Option<f64> {
        parse(text)
            .into_iter()
            .find(|(k, _)| {
                k.starts_with("hookbus_subscriber_received_total{subscriber=\"sampled\"")
            })
            .map(|(_, v)| v)
    };
    // The task runs on this (paused, single-threaded) runtime: let it take
    // its turn, a bounded number of times.
    async fn settle_until(handle: &PrometheusHandle, want: impl Fn(&str) -> bool) -> String {
        for _ in 0..100 {
            let text = handle.render();
            if want(&text) {
                return text;
            }
            tokio::task::yield_now().await;
        }
        handle.render()
    }

    let reporter = Collector::new(&bus).spawn(Duration::from_secs(10)).unwrap();
    // The first sample is taken at once.
    let text = settle_until(&handle, |t| received(t).is_some()).await;
    assert_eq!(received(&text), Some(0.0));

    bus.emit_json("tick.a", json!({})).unwrap();
    bus.emit_json("tick.b", json!({})).unwrap();
    tokio::task::yield_now().await;
    assert_eq!(received(&handle.render()), Some(0.0), "not sampled yet");
    tokio::time::advance(Duration::from_secs(10)).await;
    let text = settle_until(&handle, |t| received(t) == Some(2.0)).await;
    assert_eq!(received(&text), Some(2.0), "sampled one interval later");

    drop(reporter);
    bus.emit_json("tick.c", json!({})).unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        received(&handle.render()),
        Some(2.0),
        "stopped when dropped"
    );
}

#[cfg(feature = "durable")]
#[tokio::test]
async fn the_store_is_sampled_too() {
    use hookbus::store::Store;
    let _serial = SERIAL.lock().await;
    let handle = recorder();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("outbox.redb")).unwrap();
    let bus = Bus::new().unwrap();
    bus.subscriber("order.*")
        .name("orders")
        .durable(&store)
        .on(|_| {})
        .unwrap()
        .detach();
    for n in 0..3 {
        // Returns once the event is on disk.
        bus.publish(Event::new("order.placed", json!({"n": n})).unwrap())
            .await
            .unwrap();
    }
    assert!(bus.shutdown(Duration::from_secs(10)).await.is_clean());

    Collector::new(&bus).store(&store).record().await;
    let samples = parse(&handle.render());
    let s = store.stats();
    assert_eq!((s.appended, s.delivered), (3, 3));
    for (name, value) in [
        ("hookbus_store_appended_total", s.appended),
        ("hookbus_store_delivered_total", s.delivered),
        ("hookbus_store_dead_lettered_total", s.dead_lettered),
        ("hookbus_store_discarded_total", s.discarded),
        ("hookbus_store_recovered_total", s.recovered),
        ("hookbus_store_unreadable_total", s.unreadable),
        ("hookbus_store_commits_total", s.commits),
        ("hookbus_store_commit_errors_total", s.commit_errors),
    ] {
        assert_eq!(samples[name], value as f64, "{name}");
    }
    assert_eq!(samples["hookbus_store_failing"], 0.0);
}
