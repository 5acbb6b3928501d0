//! Kafka sources and publishers in the metrics, against the real broker
//! `scripts/test` starts. In a binary of its own: bus-level series carry no
//! bus label, and the recorder is global to the process.
#![cfg(all(feature = "metrics", feature = "kafka"))]

mod kafka_support;

use std::collections::BTreeMap;
use std::time::Duration;

use hookbus::metrics::Collector;
use hookbus::{Bus, Event};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::json;

fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// A Kafka source and publisher sampled into the metrics: the counters match
/// the source's stats after a known workload (needs the broker
/// `scripts/test` starts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_source_and_publisher_metrics_match_their_stats() {
    use hookbus::OverflowPolicy;
    use hookbus::kafka::{KafkaPublisher, KafkaSource};
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder of this binary");
    let bootstrap = kafka_support::bootstrap();
    let topic = format!("hookbus-metrics-{}", uuid::Uuid::new_v4().simple());
    let admin: hookbus::kafka::rdkafka::admin::AdminClient<
        hookbus::kafka::rdkafka::client::DefaultClientContext,
    > = hookbus::kafka::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    admin
        .create_topics(
            [&hookbus::kafka::rdkafka::admin::NewTopic::new(
                &topic,
                1,
                hookbus::kafka::rdkafka::admin::TopicReplication::Fixed(1),
            )],
            &hookbus::kafka::rdkafka::admin::AdminOptions::new(),
        )
        .await
        .unwrap();
    let bus = Bus::new().unwrap();
    let publisher = KafkaPublisher::new([bootstrap.clone()], topic.clone()).unwrap();
    bus.subscriber("m.*")
        .name("kafka")
        .overflow(OverflowPolicy::Block)
        .sink(publisher.clone())
        .unwrap()
        .detach();
    let mut echoes = bus.subscriber("m.*").capacity(100).stream().unwrap();
    let group = format!("metrics-{}", uuid::Uuid::new_v4().simple());
    let source = KafkaSource::builder(bootstrap, group.clone())
        .topic(topic.clone())
        .start(&bus)
        .unwrap();
    for i in 0..5 {
        bus.publish(Event::new("m.x", json!({"i": i})).unwrap())
            .await
            .unwrap();
    }
    // Each event is seen twice: as emitted, and back from Kafka.
    for _ in 0..10 {
        tokio::time::timeout(
            Duration::from_secs(60),
            tokio_stream::StreamExt::next(&mut echoes),
        )
        .await
        .expect("the events came back from Kafka")
        .unwrap();
    }
    let collector = Collector::new(&bus)
        .kafka_source(&source)
        .kafka_publisher(&publisher);
    collector.record().await;
    let m = parse(&handle.render());
    let s = source.stats();
    let consumed = format!("hookbus_kafka_source_consumed_total{{group=\"{group}\"}}");
    assert_eq!(m[&consumed], s.consumed as f64, "{consumed}");
    assert_eq!(s.emitted, 5);
    let emitted = format!("hookbus_kafka_source_emitted_total{{group=\"{group}\"}}");
    assert_eq!(m[&emitted], 5.0);
    let queued = format!("hookbus_kafka_publisher_queued{{topic=\"{topic}\"}}");
    assert_eq!(m[&queued], publisher.unflushed() as f64);
    // The produce-latency histogram: one observation per delivered record
    // (the 5 were acknowledged before they came back), in cumulative
    // buckets that end at the count, as the publisher itself reports them.
    let latency = publisher.produce_latency();
    assert_eq!((latency.count, latency.failed), (5, 0), "{latency:?}");
    assert!(latency.sum > Duration::ZERO, "{latency:?}");
    let series = |suffix: &str| {
        format!("hookbus_kafka_publisher_produce_duration_seconds_{suffix}{{topic=\"{topic}\"}}")
    };
    assert_eq!(m[&series("count")], 5.0);
    assert_eq!(m[&series("sum")], latency.sum.as_secs_f64());
    let bucket = |le: &str| {
        let key = format!(
            "hookbus_kafka_publisher_produce_duration_seconds_bucket{{topic=\"{topic}\",le=\"{le}\"}}"
        );
        *m.get(&key).unwrap_or_else(|| panic!("{key} not in {m:?}"))
    };
    assert_eq!(bucket("+Inf"), 5.0);
    let mut previous = 0.0;
    for (ms, expected) in hookbus::kafka::PRODUCE_LATENCY_BUCKETS_MS
        .iter()
        .zip(&latency.cumulative)
    {
        let v = bucket(&format!("{}", *ms as f64 / 1000.0));
        assert_eq!(v, *expected as f64, "le={ms} ms");
        assert!(v >= previous, "buckets are cumulative");
        previous = v;
    }
    let failed = format!("hookbus_kafka_publisher_produce_failed_total{{topic=\"{topic}\"}}");
    assert_eq!(m[&failed], 0.0);
    source.shutdown(Duration::from_secs(10)).await;
    bus.shutdown(Duration::from_secs(10)).await;
}
