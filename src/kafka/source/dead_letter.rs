//! The dead-letter producer: copies a refused record, with the reason, and
//! waits for the broker's acknowledgement on the consuming thread.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

use super::{DEAD_LETTER_REASON_HEADER, DEAD_LETTER_TIMEOUT};
use crate::kafka::message::DecodeError;

/// The dead-letter producer's context: keeps the outcome of the one send
/// in flight.
#[derive(Default)]
pub(super) struct DeadLetterContext {
    outcome: Mutex<Option<Result<(), String>>>,
}

impl ClientContext for DeadLetterContext {}

impl ProducerContext for DeadLetterContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let outcome = result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string());
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    }
}

pub(super) struct DeadLetter {
    pub(super) topic: String,
    pub(super) producer: BaseProducer<DeadLetterContext>,
}

impl DeadLetter {
    /// Sends one copy and waits for the broker's acknowledgement.
    pub(super) fn send(
        &self,
        message: &impl Message,
        headers: &[(&str, &[u8])],
        reason: &DecodeError,
    ) -> Result<(), String> {
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
        self.producer.send(record).map_err(|(e, _)| e.to_string())?;
        // Blocks this (the source's own) thread until the delivery report.
        let _ = self
            .producer
            .flush(DEAD_LETTER_TIMEOUT + Duration::from_secs(5));
        self.producer
            .context()
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| Err("no delivery report within the timeout".into()))
    }
}
