//! The bus's own events (`hookbus.*`): what hookbus announces about itself
//! on the bus it runs, as typed events built in one place.
//!
//! They are emitted like any other event, so a subscriber, a webhook or a
//! tap whose pattern matches them receives them (`hookbus.*`, or the exact
//! type); `*` matches them too. A webhook that names no event type does not
//! take them. Failures and drops while handling `hookbus.*` events are
//! counted and logged but not announced again, so an announcement can never
//! cause another one.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hookbus::catalog::bus::HandlerFailed;
//! use hookbus::{Bus, Event, Typed};
//! use tokio_stream::StreamExt;
//!
//! let bus = Bus::new()?;
//! let mut failures = bus.stream(<HandlerFailed as hookbus::TypedEvent>::TYPE)?;
//! bus.on("job.run", |_e| Err::<(), _>("disk full"))?.detach();
//! bus.emit(Event::new("job.run", serde_json::json!({}))?)?;
//! let failed = failures.next().await.unwrap();
//! let failed: HandlerFailed = failed.data_as()?;
//! assert_eq!(failed.error, "disk full");
//! # Ok(()) }
//! ```

/// The prefix of every type the bus announces; applications cannot emit
/// these types through the dashboard or the ingress.
pub const PREFIX: &str = "hookbus.";

/// Whether `event_type` is one of the bus's own (`hookbus.*`).
#[inline]
pub fn is_bus_event(event_type: &str) -> bool {
    event_type.starts_with(PREFIX)
}

catalog_event! {
    /// A subscriber's mailbox was full and its overflow policy dropped
    /// events (coalesced: at most one announcement per subscriber per
    /// [`DROP_REPORT_INTERVAL`](crate::subscriber::DROP_REPORT_INTERVAL)).
    Dropped = "hookbus.dropped", "a subscriber's full mailbox dropped events" {
        /// The subscriber's name.
        subscriber: String,
        /// The subscriber's id.
        subscriber_id: u64,
        /// Events dropped since the last announcement.
        dropped: u64,
        /// Events the subscriber dropped in all.
        dropped_total: u64,
        /// Its overflow policy (`drop_oldest`, `drop_newest`).
        policy: String,
        /// Its mailbox capacity.
        capacity: u64,
    }
    example: r#"{"subscriber": "audit-log", "subscriber_id": 3, "dropped": 120, "dropped_total": 480, "policy": "drop_oldest", "capacity": 1024}"#
}

catalog_event! {
    /// A handler returned an error or panicked (its condition too).
    HandlerFailed = "hookbus.handler_failed", "a subscriber's handler failed" {
        /// The subscriber's name.
        subscriber: String,
        /// The subscriber's id.
        subscriber_id: u64,
        /// The first event of the failed call.
        event_id: String,
        /// Its type.
        event_type: String,
        /// Every event of the failed call (a batch has several).
        event_ids: Vec<String>,
        /// What failed: `handler`, `panic`, …
        kind: String,
        /// The error's message.
        error: String,
    }
    example: r#"{"subscriber": "on:job.run", "subscriber_id": 1, "event_id": "0193a5b0-7c1e-7d2a-9c44-1b2f3e4d5a6b", "event_type": "job.run", "event_ids": ["0193a5b0-7c1e-7d2a-9c44-1b2f3e4d5a6b"], "kind": "handler", "error": "disk full"}"#
}

catalog_event! {
    /// A sink (webhook, Kafka, your own) gave up on a delivery.
    DeliveryFailed = "hookbus.delivery_failed", "a sink gave up on a delivery" {
        /// The subscriber's name.
        subscriber: String,
        /// The subscriber's id.
        subscriber_id: u64,
        /// The first event of the failed delivery.
        event_id: String,
        /// Its type.
        event_type: String,
        /// Every event of the failed delivery (a batch has several).
        event_ids: Vec<String>,
        /// What failed: `http_status`, `timeout`, `connect`, …
        kind: String,
        /// The error's message.
        error: String,
    }
    example: r#"{"subscriber": "crm", "subscriber_id": 2, "event_id": "0193a5b0-7c1e-7d2a-9c44-1b2f3e4d5a6b", "event_type": "order.placed", "event_ids": ["0193a5b0-7c1e-7d2a-9c44-1b2f3e4d5a6b"], "kind": "http_status", "error": "HTTP 503"}"#
}

catalog_event! {
    /// A webhook endpoint was disabled (410 Gone, too many consecutive
    /// failures, or by hand).
    EndpointDisabled = "hookbus.endpoint_disabled", "a webhook endpoint was disabled" {
        /// The webhook's name.
        webhook: String,
        /// Its URL, credentials and query redacted.
        url: String,
        /// Why.
        reason: String,
    }
    example: r#"{"webhook": "crm", "url": "https://hooks.example.com/crm", "reason": "HTTP 410 Gone"}"#
}

catalog_event! {
    /// A webhook attempt failed and another is scheduled (the delivery is
    /// not given up yet): an application can watch an endpoint in trouble
    /// before anything is dead-lettered.
    DeliveryRetrying = "hookbus.delivery_retrying", "a webhook attempt failed and a retry is scheduled" {
        /// The webhook's name.
        webhook: String,
        /// Its URL, path and credentials redacted.
        url: String,
        /// The first event of the delivery.
        event_id: String,
        /// Its type.
        event_type: String,
        /// Every event of the delivery (a batch has several).
        event_ids: Vec<String>,
        /// The attempt that failed (1 = the first).
        attempt: u32,
        /// The attempt scheduled next.
        next_attempt: u32,
        /// The wait before it, in milliseconds.
        retry_in_ms: u64,
        /// The HTTP status of the failed attempt, if a response came.
        status: Option<u16>,
        /// What went wrong.
        error: Option<String>,
    }
    example: r#"{"webhook": "crm", "url": "https://hooks.example.com/…", "event_id": "0193a5b0-7c1e-7d2a-9c44-1b2f3e4d5a6b", "event_type": "order.placed", "event_ids": ["0193a5b0-7c1e-7d2a-9c44-1b2f3e4d5a6b"], "attempt": 1, "next_attempt": 2, "retry_in_ms": 500, "status": 503, "error": "HTTP 503"}"#
}

catalog_event! {
    /// A Kafka source read a record that is neither a CloudEvent nor
    /// mapped: copied to the dead-letter topic, refused (no dead-letter
    /// topic), or skipped (the dead-letter topic could not take it). See
    /// `hookbus::kafka::source`.
    KafkaRecordRefused = "hookbus.kafka_record_refused", "a Kafka record could not be turned into an event" {
        /// The record's topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// Why, in one word (`not-cloudevent`, `invalid-cloudevent`, …).
        kind: String,
        /// Why, in a sentence.
        reason: String,
        /// Where the record was copied (`null`: nowhere).
        dead_letter_topic: Option<String>,
        /// The record's key: the text when it is UTF-8, else its base64
        /// (`{"base64": ..}`, or a prefix and the size when long).
        key: Option<serde_json::Value>,
        /// The record's headers as `[name, value]` pairs, values shown as
        /// the key is.
        headers: Vec<(String, serde_json::Value)>,
        /// The record was skipped: the dead-letter topic could not take it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        skipped: bool,
        /// When skipped: the dead-letter topic's last error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dead_letter_error: Option<String>,
        /// When skipped: how many copies were tried.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dead_letter_attempts: Option<u32>,
    }
    example: r#"{"topic": "orders", "partition": 0, "offset": 42, "kind": "not-cloudevent", "reason": "the record has no ce_type header and is not a structured CloudEvent", "dead_letter_topic": "orders.dlq", "key": "order-7", "headers": [["trace", "abc"]], "skipped": true, "dead_letter_error": "Broker: Message size too large", "dead_letter_attempts": 1}"#
}

catalog_event! {
    /// A Kafka source failed at something other than a record: a commit,
    /// storing an offset, a dead-letter copy, pausing its partitions.
    KafkaSourceFailed = "hookbus.kafka_source_failed", "a Kafka source failed at something other than a record" {
        /// What failed (`commit`, `store_offset`, `dead_letter`, …).
        kind: String,
        /// The error's message.
        error: String,
    }
    example: r#"{"kind": "commit", "error": "Broker: Not coordinator"}"#
}

catalog_event! {
    /// A durable subscribers' store failed (a commit failed, or the
    /// database panicked): its durable subscribers refuse new events until
    /// it is reopened. Announced once per bus, when it fails.
    StoreFailed = "hookbus.store_failed", "a durable store failed and refuses new events" {
        /// The store's file.
        store: String,
        /// What failed: `commit`, `redrive`, `writer`.
        during: String,
        /// The error's message.
        error: String,
        /// Whether the database panicked (it is then not even closed: the
        /// next open repairs the file from its last complete commit).
        panicked: bool,
        /// The durable subscribers of this bus on that store.
        subscribers: Vec<String>,
    }
    example: r#"{"store": "/var/lib/app/outbox.redb", "during": "commit", "error": "I/O error: No space left on device (os error 28)", "panicked": false, "subscribers": ["orders"]}"#
}

/// Every `hookbus.*` event of this module.
pub const ALL: &[super::CatalogEntry] = &[
    Dropped::ENTRY,
    HandlerFailed::ENTRY,
    DeliveryFailed::ENTRY,
    EndpointDisabled::ENTRY,
    DeliveryRetrying::ENTRY,
    KafkaRecordRefused::ENTRY,
    KafkaSourceFailed::ENTRY,
    StoreFailed::ENTRY,
];

impl HandlerFailed {
    /// The announcement of a failed handler or sink call: a
    /// [`HandlerFailed`], or a [`DeliveryFailed`] for a sink.
    pub(crate) fn announce(
        hub: &impl crate::hub::Announce,
        is_sink: bool,
        subscriber: &str,
        subscriber_id: u64,
        events: &[&crate::Event],
        kind: String,
        error: String,
    ) {
        let (event_id, event_type) = match events.first() {
            Some(e) => (e.id().to_owned(), e.event_type().to_owned()),
            None => return,
        };
        let event_ids = events.iter().map(|e| e.id().to_owned()).collect();
        let subscriber = subscriber.to_owned();
        if is_sink {
            hub.announce(DeliveryFailed {
                subscriber,
                subscriber_id,
                event_id,
                event_type,
                event_ids,
                kind,
                error,
            });
        } else {
            hub.announce(HandlerFailed {
                subscriber,
                subscriber_id,
                event_id,
                event_type,
                event_ids,
                kind,
                error,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each example reads back as its type, every field present, and the
    /// type is one of the bus's own.
    #[test]
    fn examples_read_back_as_their_types() {
        fn check<T: crate::TypedEvent + serde::Serialize>() {
            assert!(is_bus_event(T::TYPE));
        }
        check::<Dropped>();
        check::<HandlerFailed>();
        check::<DeliveryFailed>();
        check::<EndpointDisabled>();
        check::<DeliveryRetrying>();
        check::<StoreFailed>();
        let d: Dropped = serde_json::from_str(Dropped::EXAMPLE).unwrap();
        assert_eq!(d.policy, crate::OverflowPolicy::DropOldest.as_str());
        let _: HandlerFailed = serde_json::from_str(HandlerFailed::EXAMPLE).unwrap();
        let _: DeliveryFailed = serde_json::from_str(DeliveryFailed::EXAMPLE).unwrap();
        let _: EndpointDisabled = serde_json::from_str(EndpointDisabled::EXAMPLE).unwrap();
        let _: DeliveryRetrying = serde_json::from_str(DeliveryRetrying::EXAMPLE).unwrap();
        let refused: KafkaRecordRefused =
            serde_json::from_str(KafkaRecordRefused::EXAMPLE).unwrap();
        assert!(refused.skipped);
        let _: KafkaSourceFailed = serde_json::from_str(KafkaSourceFailed::EXAMPLE).unwrap();
        let _: StoreFailed = serde_json::from_str(StoreFailed::EXAMPLE).unwrap();
        for entry in ALL {
            let value: serde_json::Value = serde_json::from_str(entry.example).unwrap();
            let keys: Vec<&str> = value
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut fields = entry.fields.to_vec();
            fields.sort_unstable();
            let mut keys = keys;
            keys.sort_unstable();
            assert_eq!(keys, fields, "{}", entry.event_type);
        }
    }
}
