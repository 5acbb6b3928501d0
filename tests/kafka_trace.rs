//! Trace propagation through Kafka, against a real Kafka-protocol broker:
//! `scripts/with-kafka cargo test --all-features --test kafka_trace`.
#![cfg(feature = "kafka")]

mod kafka_support;

use std::time::{Duration, Instant};

use hookbus::kafka::rdkafka::ClientConfig;
use hookbus::kafka::rdkafka::message::{Header, OwnedHeaders};
use hookbus::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use hookbus::kafka::{KafkaPublisher, KafkaSource, Mode};
use hookbus::{Bus, Event, EventStream};
use kafka_support::{bootstrap, create_topic};
use serde_json::json;
use tokio_stream::StreamExt;

/// A bound on waits that would otherwise hang a broken test forever.
const HANG_GUARD: Duration = Duration::from_secs(120);
const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn next(stream: &mut EventStream, what: &str) -> std::sync::Arc<Event> {
    tokio::time::timeout(HANG_GUARD, stream.next())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("stream ended waiting for {what}"))
}

fn group() -> String {
    format!("trace-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_context_survives_a_kafka_round_trip_in_both_modes() {
    let topic = create_topic("trace", 1).await;
    let bus_b = Bus::new().unwrap();
    let mut received = bus_b.stream("order.*").unwrap();
    let src = KafkaSource::builder(bootstrap(), group())
        .topic(&topic)
        .start(&bus_b)
        .unwrap();

    for (i, mode) in [Mode::Binary, Mode::Structured].into_iter().enumerate() {
        let publisher = KafkaPublisher::builder(bootstrap(), &topic)
            .mode(mode)
            .build()
            .unwrap();
        let sent = Event::builder("order.placed")
            .id(format!("ev-{i}"))
            .extension("traceparent", TP)
            .extension("tracestate", "rojo=00f067aa0ba902b7")
            .data(json!({"n": i}))
            .build()
            .unwrap();
        publisher.emit(&sent).await.unwrap();
        let got = next(&mut received, "the traced event").await;
        assert_eq!(got.id(), sent.id());
        // Kept exactly: the extension names the starting trace.
        assert_eq!(got.traceparent(), sent.traceparent(), "{mode:?}");
        assert_eq!(got.tracestate(), Some("rojo=00f067aa0ba902b7"));
    }
    src.shutdown(HANG_GUARD).await;
    bus_b.shutdown(HANG_GUARD).await;
}

/// Foreign producers: a W3C `traceparent` record header without the
/// extension is taken; a malformed one is ignored; a malformed extension is
/// refused (the record is not emitted, and consumption goes on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_headers_are_read_leniently_and_malformed_extensions_refused() {
    let topic = create_topic("trace-raw", 1).await;
    let base = [
        ("ce_specversion", "1.0"),
        ("ce_source", "foreign"),
        ("ce_type", "order.placed"),
    ];
    let records: Vec<Vec<(&str, &str)>> = vec![
        vec![("ce_id", "header"), ("traceparent", TP)],
        vec![("ce_id", "bad-header"), ("traceparent", "00-garbage")],
        vec![("ce_id", "bad-ext"), ("ce_traceparent", "00-garbage")],
        vec![("ce_id", "last")],
    ];
    let servers = bootstrap();
    let t = topic.clone();
    tokio::task::spawn_blocking(move || {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .create()
            .expect("producer");
        for extra in &records {
            let mut h = OwnedHeaders::new();
            for (k, v) in base.iter().chain(extra) {
                h = h.insert(Header {
                    key: k,
                    value: Some(*v),
                });
            }
            let record = BaseRecord::<str, [u8]>::to(&t)
                .payload(&b"{}"[..])
                .headers(h);
            producer.send(record).map_err(|(e, _)| e).expect("send");
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
    })
    .await
    .unwrap();

    let bus = Bus::new().unwrap();
    let mut received = bus.stream("order.*").unwrap();
    let src = KafkaSource::builder(bootstrap(), group())
        .topic(&topic)
        .start(&bus)
        .unwrap();
    let e = next(&mut received, "header").await;
    assert_eq!(e.id(), "header");
    assert_eq!(e.traceparent().unwrap().to_string(), TP);
    let e = next(&mut received, "bad-header").await;
    assert_eq!(e.id(), "bad-header");
    assert_eq!(e.traceparent(), None);
    let e = next(&mut received, "last").await;
    assert_eq!(e.id(), "last", "the malformed extension was not emitted");

    // The refusal is counted once the source has handled all four records;
    // the broker is an external process, so poll with a deadline.
    let deadline = Instant::now() + HANG_GUARD;
    while src.stats().refused < 1 {
        assert!(Instant::now() < deadline, "{:?}", src.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = src.shutdown(HANG_GUARD).await;
    assert_eq!((stats.consumed, stats.emitted, stats.refused), (4, 3, 1));
    bus.shutdown(HANG_GUARD).await;
}

/// With the feature `trace`: an event emitted inside a traced span crosses
/// Kafka with that span's trace id.
#[cfg(feature = "trace")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_emitted_in_a_span_keeps_its_trace_id_across_kafka() {
    use tracing_subscriber::util::SubscriberInitExt;
    let _guard = tracing_subscriber::registry().set_default();
    let topic = create_topic("trace-span", 1).await;
    let bus_a = Bus::new().unwrap();
    bus_a
        .subscriber("order.*")
        .options(KafkaPublisher::recommended_options())
        .sink(KafkaPublisher::new(bootstrap(), &topic).unwrap())
        .unwrap()
        .detach();
    let bus_b = Bus::new().unwrap();
    let mut received = bus_b.stream("order.*").unwrap();
    let src = KafkaSource::builder(bootstrap(), group())
        .topic(&topic)
        .start(&bus_b)
        .unwrap();

    let span = tracing::info_span!("checkout");
    span.in_scope(|| {
        bus_a
            .emit(Event::new("order.placed", json!({})).unwrap())
            .unwrap()
    });
    let origin = hookbus::trace::context_of(&span).unwrap();
    let got = next(&mut received, "the event").await;
    assert_eq!(got.traceparent(), Some(origin.traceparent()));

    src.shutdown(HANG_GUARD).await;
    bus_a.shutdown(HANG_GUARD).await;
    bus_b.shutdown(HANG_GUARD).await;
}
