//! What the Kafka tests share: the broker's address and fresh topics.
#![allow(dead_code)]

use std::time::Duration;

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
