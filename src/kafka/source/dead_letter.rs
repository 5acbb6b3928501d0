//! The dead-letter producer: copies a refused record, with the reason, and
//! waits for the broker's acknowledgement on the consuming thread.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use super::DEAD_LETTER_REASON_HEADER;
use crate::kafka::error::is_permanent_code;
use crate::kafka::message::DecodeError;

/// librdkafka's default `receive.message.max.bytes`.
const DEFAULT_RECEIVE_MAX: u64 = 100_000_000;
/// librdkafka's default `fetch.max.bytes`.
const DEFAULT_FETCH_MAX: u64 = 52_428_800;
/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX: u64 = 1_000_000;
/// librdkafka's default `queued.max.messages.kbytes`.
const DEFAULT_QUEUED_KBYTES: u64 = 65_536;
/// The largest `message.max.bytes` librdkafka accepts.
const PRODUCER_MESSAGE_MAX: u64 = 1_000_000_000;
/// Room for the headers a dead-letter copy adds (reason, kind, topic,
/// partition, offset) and the record batch's framing.
const COPY_OVERHEAD: u64 = 64 * 1024;

/// The largest record a consumer with these settings can receive: its
/// `receive.message.max.bytes`, as librdkafka works it out (a single record
/// larger than `fetch.max.bytes` still arrives; a response larger than
/// `receive.message.max.bytes` never does).
pub(super) fn consumer_receive_limit(get: impl Fn(&str) -> Option<String>) -> u64 {
    let int = |key: &str| get(key).and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(set) = int("receive.message.max.bytes") {
        return set;
    }
    let message_max = int("message.max.bytes").unwrap_or(DEFAULT_MESSAGE_MAX);
    let fetch_max = int("fetch.max.bytes").unwrap_or_else(|| {
        let queued = int("queued.max.messages.kbytes").unwrap_or(DEFAULT_QUEUED_KBYTES);
        DEFAULT_FETCH_MAX.min(queued * 1024).max(message_max)
    });
    DEFAULT_RECEIVE_MAX.max(fetch_max + 512)
}

/// The dead-letter producer's `message.max.bytes` for a source that can
/// receive records of up to `receive_limit` bytes: every record it can
/// read fits, with the headers the copy adds.
pub(super) fn producer_message_max(receive_limit: u64) -> u64 {
    (receive_limit + COPY_OVERHEAD).min(PRODUCER_MESSAGE_MAX)
}

/// Why a dead-letter copy was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DeadLetterFailure {
    /// librdkafka refused to queue the copy (e.g. larger than the
    /// producer's `message.max.bytes`).
    #[error("the producer refused the copy: {0}")]
    Refused(RDKafkaErrorCode),
    /// The broker (or librdkafka, after `message.timeout.ms`) failed it.
    #[error("the copy was not delivered: {0}")]
    NotDelivered(RDKafkaErrorCode),
    /// No delivery report came within the wait.
    #[error("no delivery report within {0:?}")]
    NoReport(Duration),
}

impl DeadLetterFailure {
    /// Whether sending the same copy again cannot succeed.
    pub(super) fn is_permanent(&self) -> bool {
        match self {
            DeadLetterFailure::Refused(code) | DeadLetterFailure::NotDelivered(code) => {
                is_permanent_code(*code)
            }
            DeadLetterFailure::NoReport(_) => false,
        }
    }
}

/// The dead-letter producer's context: keeps the outcome of the one send
/// in flight.
#[derive(Default)]
pub(super) struct DeadLetterContext {
    outcome: Mutex<Option<Result<(), RDKafkaErrorCode>>>,
}

impl ClientContext for DeadLetterContext {}

impl ProducerContext for DeadLetterContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let outcome = result.as_ref().map(|_| ()).map_err(|(e, _)| code_of(e));
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    }
}

fn code_of(e: &RdError) -> RDKafkaErrorCode {
    e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)
}

pub(super) struct DeadLetter {
    pub(super) topic: String,
    pub(super) producer: BaseProducer<DeadLetterContext>,
    /// How long one send waits for its delivery report.
    pub(super) timeout: Duration,
    /// Sends per record before it is skipped (permanent failures: one).
    pub(super) attempts: u32,
}

impl DeadLetter {
    /// Sends one copy and waits for the broker's acknowledgement.
    pub(super) fn send(
        &self,
        message: &impl Message,
        headers: &[(&str, &[u8])],
        reason: &DecodeError,
    ) -> Result<(), DeadLetterFailure> {
        let reason_text = reason.to_string();
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let mut out = OwnedHeaders::new_with_capacity(headers.len() + 5);
        for (key, value) in headers {
            out = out.insert(Header {
                key,
                value: Some(*value),
            });
        }
        for (key, value) in [
            (DEAD_LETTER_REASON_HEADER, reason_text.as_str()),
            ("hookbus-dead-letter-kind", reason.kind()),
            ("hookbus-dead-letter-topic", message.topic()),
            ("hookbus-dead-letter-partition", &partition),
            ("hookbus-dead-letter-offset", &offset),
        ] {
            out = out.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic).headers(out);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(value) = message.payload() {
            record = record.payload(value);
        }
        *self
            .producer
            .context()
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        self.producer
            .send(record)
            .map_err(|(e, _)| DeadLetterFailure::Refused(code_of(&e)))?;
        // Blocks this (the source's own) thread until the delivery report.
        let wait = self.timeout + Duration::from_secs(5);
        let _ = self.producer.flush(wait);
        match self
            .producer
            .context()
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some(Ok(())) => Ok(()),
            Some(Err(code)) => Err(DeadLetterFailure::NotDelivered(code)),
            None => Err(DeadLetterFailure::NoReport(wait)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_producer_takes_every_record_the_consumer_can_receive() {
        // librdkafka's defaults: a consumer receives responses of up to
        // 100 MB, so records far over the producer's default 1 MB.
        let default = consumer_receive_limit(settings(&[]));
        assert_eq!(default, 100_000_000);
        assert!(producer_message_max(default) > default);
        // fetch.max.bytes raised: receive.message.max.bytes follows it.
        let raised = consumer_receive_limit(settings(&[("fetch.max.bytes", "200000000")]));
        assert_eq!(raised, 200_000_512);
        assert!(producer_message_max(raised) > raised);
        // Set explicitly: taken as is.
        let set = consumer_receive_limit(settings(&[("receive.message.max.bytes", "5000000")]));
        assert_eq!(set, 5_000_000);
        assert_eq!(producer_message_max(set), 5_000_000 + COPY_OVERHEAD);
        // Never beyond what librdkafka accepts.
        assert_eq!(
            producer_message_max(u64::from(u32::MAX)),
            PRODUCER_MESSAGE_MAX
        );
    }

    #[test]
    fn a_size_refusal_is_permanent_a_timeout_is_not() {
        assert!(DeadLetterFailure::Refused(RDKafkaErrorCode::MessageSizeTooLarge).is_permanent());
        assert!(DeadLetterFailure::NotDelivered(RDKafkaErrorCode::UnknownTopic).is_permanent());
        assert!(!DeadLetterFailure::NotDelivered(RDKafkaErrorCode::MessageTimedOut).is_permanent());
        assert!(!DeadLetterFailure::NoReport(Duration::from_secs(1)).is_permanent());
    }
}
