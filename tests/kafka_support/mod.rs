//! What the Kafka tests share: the broker's address and fresh topics.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use hookbus::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use hookbus::kafka::rdkafka::message::OwnedMessage;
use hookbus::kafka::rdkafka::{Offset, TopicPartitionList};

use hookbus::kafka::rdkafka::ClientConfig;
use hookbus::kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use hookbus::kafka::rdkafka::client::DefaultClientContext;

pub fn bootstrap() -> String {
    match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => panic!(
            "KAFKA_BOOTSTRAP is not set: the Kafka tests need a broker. Run them with \
             ./scripts/test (it starts one), or set KAFKA_BOOTSTRAP=host:port"
        ),
    }
}

/// Creates a topic with a unique name and returns the name.
pub async fn create_topic(label: &str, partitions: i32) -> String {
    let name = format!("hookbus-{label}-{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .expect("create_topics request");
    for r in results {
        if let Err((topic, code)) = r {
            panic!("could not create topic {topic}: {code}");
        }
    }
    name
}

/// Reads `n` records from every partition of `topic`, from offset 0. Fails
/// if the records stop coming before `n` are read.
pub async fn consume(topic: &str, partitions: i32, n: usize) -> Vec<OwnedMessage> {
    let topic = topic.to_owned();
    let bootstrap = bootstrap();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("hookbus-test-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&topic, p, Offset::Offset(0))
                .expect("partition");
        }
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::with_capacity(n);
        let mut last_progress = Instant::now();
        while out.len() < n {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    out.push(m.detach());
                    last_progress = Instant::now();
                }
                Some(Err(e)) => eprintln!("consumer: {e}"),
                None => {}
            }
            assert!(
                last_progress.elapsed() < Duration::from_secs(30),
                "only {} of {n} records arrived on {topic} (nothing new for 30 s)",
                out.len()
            );
        }
        out
    })
    .await
    .expect("consumer task")
}
