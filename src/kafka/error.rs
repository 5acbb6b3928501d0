//! What can go wrong with a [`KafkaPublisher`](super::KafkaPublisher) or a
//! [`KafkaSource`](super::KafkaSource).

use std::time::Duration;

use rdkafka::types::RDKafkaErrorCode;

use crate::sink::FailureKind;

/// An error from the Kafka publisher or source. Messages never contain secret
/// settings (passwords, keys, tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// The broker list is empty.
    #[error("no Kafka brokers given: pass at least one host:port")]
    NoBrokers,
    /// A broker address is malformed.
    #[error("invalid Kafka broker address {broker:?}: {reason}")]
    InvalidBroker {
        /// The address as given.
        broker: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The topic name is not a valid Kafka topic name.
    #[error("invalid Kafka topic name {topic:?}: {reason}")]
    InvalidTopic {
        /// The name as given (truncated to 64 characters).
        topic: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A librdkafka setting (or a publisher option) is invalid, unknown, or
    /// conflicts with another.
    #[error("invalid Kafka setting {key}: {reason}")]
    Config {
        /// The property, e.g. `acks`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// librdkafka refused to create the producer.
    #[error("could not create the Kafka producer: {0}")]
    Create(String),
    /// librdkafka refused to create the consumer of a
    /// [`KafkaSource`](super::KafkaSource), or to subscribe it.
    #[error("could not create the Kafka consumer: {0}")]
    CreateConsumer(String),
    /// No broker answered within the healthcheck's timeout.
    #[error("Kafka brokers {brokers} unreachable within {timeout:?}: {reason}")]
    Unreachable {
        /// The bootstrap brokers.
        brokers: String,
        /// How long the check waited.
        timeout: Duration,
        /// The last error librdkafka reported (e.g. connection refused).
        reason: String,
    },
    /// The brokers answered, but the topic does not exist (hookbus never
    /// creates topics: create them explicitly).
    #[error("Kafka topic {topic:?} does not exist on brokers {brokers}: create it first")]
    UnknownTopic {
        /// The topic.
        topic: String,
        /// The bootstrap brokers.
        brokers: String,
    },
    /// A message was not delivered. [`is_permanent`](Self::is_permanent)
    /// says whether sending it again can help.
    #[error("event {event_id} was not delivered to Kafka topic {topic:?}: {code}")]
    Delivery {
        /// The event's id.
        event_id: String,
        /// The topic.
        topic: String,
        /// librdkafka's error code, e.g. `MessageTimedOut` or `MessageSizeTooLarge`.
        code: RDKafkaErrorCode,
    },
}

impl KafkaError {
    /// Whether retrying cannot fix it: bad settings, a message too large, an
    /// unknown topic, missing authorisation. Timeouts and unreachable brokers
    /// are not permanent.
    pub fn is_permanent(&self) -> bool {
        match self {
            KafkaError::Delivery { code, .. } => is_permanent_code(*code),
            KafkaError::Unreachable { .. } => false,
            _ => true,
        }
    }

    /// How the bus counts this error when the publisher is a subscriber:
    /// [`FailureKind::Permanent`] or [`FailureKind::Exhausted`] (librdkafka
    /// retried until `message.timeout.ms`).
    pub fn failure_kind(&self) -> FailureKind {
        if self.is_permanent() {
            FailureKind::Permanent
        } else {
            FailureKind::Exhausted
        }
    }
}

/// Error codes for which sending the same message again cannot succeed.
pub(crate) fn is_permanent_code(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::MessageSizeTooLarge
            | C::MessageBatchTooLarge
            | C::InvalidMessage
            | C::InvalidMessageSize
            | C::InvalidRecord
            | C::InvalidTopic
            | C::InvalidRequiredAcks
            | C::UnknownTopic
            | C::UnknownTopicOrPartition
            | C::UnknownPartition
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication
            | C::UnsupportedForMessageFormat
            | C::UnsupportedCompressionType
            | C::Fatal
            | C::InvalidArgument
            | C::BadMessage
    )
}
