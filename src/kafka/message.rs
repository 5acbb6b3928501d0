//! The CloudEvents Kafka protocol binding: how an [`Event`] becomes a Kafka
//! record (key, value, headers).
//!
//! **Binary mode** (the default): the value is the event's data as JSON
//! ([`Event::data_json`]), the `content-type` header is the data content
//! type, and every other attribute travels in a `ce_` header: `ce_specversion`,
//! `ce_id`, `ce_source`, `ce_type`, `ce_time`, and when present `ce_subject`,
//! `ce_dataschema` and one `ce_<name>` per extension.
//!
//! **Structured mode**: the value is the whole event as CloudEvents JSON
//! ([`Event::structured_json`]) and `content-type` is
//! `application/cloudevents+json; charset=UTF-8`.
//!
//! The record key comes from a [`KeyStrategy`]; by default the payload's
//! `decision_id`, so every event of one decision lands on one partition, in
//! order.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use rdkafka::message::{Header, OwnedHeaders};
use serde_json::Value;

use super::error::KafkaError;
use crate::event::{Event, SPEC_VERSION};

/// The `content-type` of a structured-mode record.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";

/// How events are laid out in Kafka records (CloudEvents Kafka binding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Data as the value, attributes as `ce_*` headers (the default).
    #[default]
    Binary,
    /// The whole CloudEvents JSON as the value.
    Structured,
}

/// Where the record key comes from. Whatever the strategy, an event that
/// yields no key is keyed by its id, so records are never unkeyed.
///
/// ```
/// use hookbus::kafka::KeyStrategy;
///
/// let default = KeyStrategy::default(); // the payload's `decision_id`
/// let nested = KeyStrategy::field("claim.id"); // a dotted path into the data
/// let ext = KeyStrategy::partition_key(); // the `partitionkey` extension
/// let custom = KeyStrategy::custom(|e| e.subject().map(str::to_owned));
/// # let _ = (default, nested, ext, custom);
/// ```
#[derive(Clone)]
pub struct KeyStrategy(KeyKind);

type KeyFn = dyn Fn(&Event) -> Option<Vec<u8>> + Send + Sync;

#[derive(Clone)]
enum KeyKind {
    Field { path: String, segments: Vec<String> },
    PartitionKey,
    EventId,
    Custom(Arc<KeyFn>),
}

impl Default for KeyStrategy {
    /// The payload's `decision_id` field.
    fn default() -> Self {
        KeyStrategy::field("decision_id")
    }
}

impl fmt::Debug for KeyStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            KeyKind::Field { path, .. } => f.debug_tuple("Field").field(path).finish(),
            KeyKind::PartitionKey => f.write_str("PartitionKey"),
            KeyKind::EventId => f.write_str("EventId"),
            KeyKind::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl KeyStrategy {
    /// A field of the data, by dotted path (`decision_id`, `claim.id`,
    /// `items.0.sku`). Strings are used as they are; numbers and booleans as
    /// their JSON text; objects and arrays as compact JSON; a missing field
    /// or `null` falls back to the event id.
    pub fn field(path: impl Into<String>) -> KeyStrategy {
        let path = path.into();
        let segments = path.split('.').map(str::to_owned).collect();
        KeyStrategy(KeyKind::Field { path, segments })
    }

    /// The CloudEvents `partitionkey` extension (the Kafka binding's
    /// partitioning extension).
    pub fn partition_key() -> KeyStrategy {
        KeyStrategy(KeyKind::PartitionKey)
    }

    /// The event id.
    pub fn event_id() -> KeyStrategy {
        KeyStrategy(KeyKind::EventId)
    }

    /// A closure; `None` falls back to the event id.
    pub fn custom<K: Into<Vec<u8>>>(
        f: impl Fn(&Event) -> Option<K> + Send + Sync + 'static,
    ) -> KeyStrategy {
        KeyStrategy(KeyKind::Custom(Arc::new(move |e| f(e).map(Into::into))))
    }

    pub(crate) fn validate(&self) -> Result<(), KafkaError> {
        if let KeyKind::Field { path, segments } = &self.0
            && segments.iter().any(String::is_empty)
        {
            return Err(KafkaError::Config {
                key: "key field path".into(),
                reason: format!("{path:?} has an empty segment; use names joined by '.'"),
            });
        }
        Ok(())
    }

    /// The key of `event`.
    pub fn key_of<'e>(&self, event: &'e Event) -> Cow<'e, [u8]> {
        let found = match &self.0 {
            KeyKind::Field { segments, .. } => lookup(event.data(), segments).and_then(value_key),
            KeyKind::PartitionKey => {
                event
                    .extension("partitionkey")
                    .map(|v| match v.to_wire_string() {
                        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
                    })
            }
            KeyKind::EventId => None,
            KeyKind::Custom(f) => f(event).map(Cow::Owned),
        };
        found.unwrap_or_else(|| Cow::Borrowed(event.id().as_bytes()))
    }
}

fn lookup<'v>(mut value: &'v Value, segments: &[String]) -> Option<&'v Value> {
    for seg in segments {
        value = match value {
            Value::Object(map) => map.get(seg)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

fn value_key(value: &Value) -> Option<Cow<'_, [u8]>> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s.as_bytes())),
        other => serde_json::to_vec(other).ok().map(Cow::Owned),
    }
}

/// Turns events into record parts; shared by every send.
#[derive(Debug, Clone, Default)]
pub(crate) struct Encoder {
    pub(crate) mode: Mode,
    pub(crate) key: KeyStrategy,
}

impl Encoder {
    pub(crate) fn value(&self, event: &Event) -> Bytes {
        match self.mode {
            Mode::Binary => event.data_json(),
            Mode::Structured => event.structured_json(),
        }
    }

    pub(crate) fn headers(&self, event: &Event) -> OwnedHeaders {
        match self.mode {
            Mode::Structured => OwnedHeaders::new_with_capacity(1).insert(Header {
                key: "content-type",
                value: Some(STRUCTURED_CONTENT_TYPE),
            }),
            Mode::Binary => binary_headers(event),
        }
    }
}

fn binary_headers(event: &Event) -> OwnedHeaders {
    fn h<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
        Header {
            key,
            value: Some(value),
        }
    }
    let time = event.time_rfc3339();
    let mut headers = OwnedHeaders::new_with_capacity(9 + event.extensions().len())
        .insert(h("content-type", event.datacontenttype()))
        .insert(h("ce_specversion", SPEC_VERSION))
        .insert(h("ce_id", event.id()))
        .insert(h("ce_source", event.source()))
        .insert(h("ce_type", event.event_type()))
        .insert(h("ce_time", &time));
    if let Some(subject) = event.subject() {
        headers = headers.insert(h("ce_subject", subject));
    }
    if let Some(schema) = event.dataschema() {
        headers = headers.insert(h("ce_dataschema", schema));
    }
    for (name, value) in event.extensions() {
        let key = format!("ce_{name}");
        headers = headers.insert(h(&key, &value.to_wire_string()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;
    use serde_json::json;

    fn event(data: Value) -> Event {
        Event::builder("decision.captured")
            .id("ev-1")
            .data(data)
            .extension("partitionkey", "pk-1")
            .build()
            .unwrap()
    }

    #[test]
    fn keys() {
        let e = event(json!({"decision_id": "abc123", "n": 7, "claim": {"id": [1, "x"]}}));
        assert_eq!(&*KeyStrategy::default().key_of(&e), b"abc123");
        assert_eq!(&*KeyStrategy::field("n").key_of(&e), b"7");
        assert_eq!(&*KeyStrategy::field("claim.id.1").key_of(&e), b"x");
        assert_eq!(&*KeyStrategy::field("claim.id").key_of(&e), b"[1,\"x\"]");
        assert_eq!(&*KeyStrategy::field("missing").key_of(&e), b"ev-1");
        assert_eq!(&*KeyStrategy::partition_key().key_of(&e), b"pk-1");
        assert_eq!(&*KeyStrategy::event_id().key_of(&e), b"ev-1");
        let custom =
            KeyStrategy::custom(|e: &Event| e.data()["n"].as_i64().map(|n| format!("n{n}")));
        assert_eq!(&*custom.key_of(&e), b"n7");
        let none = KeyStrategy::custom(|_: &Event| None::<String>);
        assert_eq!(&*none.key_of(&e), b"ev-1");
        let null = event(json!({"decision_id": null}));
        assert_eq!(&*KeyStrategy::default().key_of(&null), b"ev-1");
        assert!(KeyStrategy::field("a..b").validate().is_err());
    }

    #[test]
    fn binary_mode_headers() {
        let e = Event::builder("decision.captured")
            .id("ev-2")
            .source("svc")
            .subject("claims_review")
            .extension("tenant", "acme")
            .extension("attempt", 2)
            .data(json!({"decision_id": "d"}))
            .build()
            .unwrap();
        let enc = Encoder::default();
        let headers = enc.headers(&e);
        let map: Vec<(String, String)> = headers
            .iter()
            .map(|h| {
                let v = String::from_utf8(h.value.unwrap().to_vec()).unwrap();
                (h.key.to_owned(), v)
            })
            .collect();
        let get = |k: &str| {
            map.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("content-type"), Some("application/json"));
        assert_eq!(get("ce_specversion"), Some("1.0"));
        assert_eq!(get("ce_id"), Some("ev-2"));
        assert_eq!(get("ce_source"), Some("svc"));
        assert_eq!(get("ce_type"), Some("decision.captured"));
        assert_eq!(get("ce_time"), Some(e.time_rfc3339().as_str()));
        assert_eq!(get("ce_subject"), Some("claims_review"));
        assert_eq!(get("ce_tenant"), Some("acme"));
        assert_eq!(get("ce_attempt"), Some("2"));
        assert_eq!(&enc.value(&e)[..], br#"{"decision_id":"d"}"#);

        let structured = Encoder {
            mode: Mode::Structured,
            ..Encoder::default()
        };
        assert_eq!(structured.headers(&e).count(), 1);
        let back: Event = serde_json::from_slice(&structured.value(&e)).unwrap();
        assert_eq!(
            (back.id(), back.event_type(), back.source(), back.subject()),
            (e.id(), e.event_type(), e.source(), e.subject())
        );
        assert_eq!((back.data(), back.extensions()), (e.data(), e.extensions()));
        assert_eq!(back.time_rfc3339(), e.time_rfc3339());
    }
}
