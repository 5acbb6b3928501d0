//! Prometheus metrics for a bus and its webhooks: `metrics-exporter-prometheus`
//! as the recorder, `/metrics` served by axum, sampled at each scrape.
//!
//! ```text
//! cargo run --example metrics --features metrics             # prints one scrape, then exits
//! cargo run --example metrics --features metrics -- --serve  # serves 127.0.0.1:9464/metrics
//! ```
//!
//! The exporter is built without its default features: no HTTP listener or
//! push gateway of its own (no hyper, no TLS); the application already has
//! an HTTP server, and `PrometheusHandle::render` is all it needs.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use futures_util::StreamExt;
use hookbus::metrics::Collector;
use hookbus::webhook::{WebhookManager, WebhookSink};
use hookbus::{Bus, Event};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    metrics::set_global_recorder(recorder)?;

    let bus = Bus::new()?;
    let _audit = bus.subscriber("order.*").name("audit").on(|e: &Event| {
        println!("audit: {}", e.event_type());
    })?;
    let webhooks = Arc::new(WebhookManager::new(&bus));
    // Nothing listens there: the attempts fail and show up as metrics.
    webhooks.register(
        WebhookSink::builder("http://127.0.0.1:9/hooks")
            .name("crm")
            .events(["order.*"])
            .max_attempts(1),
    )?;
    let mut failures = bus.stream("hookbus.delivery_failed")?;
    bus.emit(Event::new("order.created", json!({"id": 1}))?)?;

    // Sampled when scraped: the numbers are as fresh as the scrape.
    let collector = Collector::new(&bus).webhooks(webhooks.clone());
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let (collector, prometheus) = (collector.clone(), prometheus.clone());
            async move {
                collector.record().await;
                prometheus.render()
            }
        }),
    );

    if std::env::args().any(|a| a == "--serve") {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:9464").await?;
        println!("serving http://{}/metrics", listener.local_addr()?);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
    } else {
        // One scrape once the webhook has given up on the event.
        failures.next().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/metrics", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        print!("{}", reqwest::get(&url).await?.text().await?);
    }
    Ok(())
}
