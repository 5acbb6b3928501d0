//! `hookbus serve` built with the `kafka` feature: events go out to Kafka
//! as well (a real Kafka-protocol broker: `scripts/with-kafka` starts tansu
//! and sets `KAFKA_BOOTSTRAP`).

use serde_json::json;

use super::kafka_support::{bootstrap, consume, create_topic};
use super::serve::serve_with;
use super::{ACME, GLOBEX};

/// Events posted by two tenants land in the topic, each with its tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_publishes_events_to_kafka_when_configured() {
    let topic = create_topic("serve-out", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(
        dir.path(),
        &["--kafka-brokers", &bootstrap(), "--kafka-topic", &topic],
    )
    .await;
    for (token, n) in [(ACME, 1), (GLOBEX, 2)] {
        let a = server
            .api
            .emit(token, "order.placed", json!({"n": n}))
            .await;
        assert_eq!(a.status, 202, "{a:?}");
    }
    let records = consume(&topic, 1, 2).await;
    let mut seen: Vec<(String, i64)> = records
        .iter()
        .map(|m| {
            use hookbus::kafka::rdkafka::message::Message;
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            (
                v["tenant"].as_str().unwrap().to_owned(),
                v["data"]["n"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, vec![("acme".to_owned(), 1), ("globex".to_owned(), 2)]);
    let (status, _) = server.terminate().await;
    assert!(status.success());
}
