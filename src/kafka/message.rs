//! The CloudEvents Kafka protocol binding: how an [`Event`] becomes a Kafka
//! record (key, value, headers), and back ([`decode`], what a
//! [`KafkaSource`](super::KafkaSource) uses).
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
//! **Trace context**: in both modes an event's distributed-tracing
//! extension is also written as the W3C `traceparent` and `tracestate`
//! record headers (the transport's trace context, as OpenTelemetry's
//! messaging instrumentations read it); [`decode`] gives an event without
//! the extension a valid `traceparent` header's value and ignores a
//! malformed one. See [`crate::trace`].
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
use crate::binding::ATTRIBUTES;
use crate::event::{Event, EventError, ExtensionValue, SPEC_VERSION};
use crate::trace::{TRACEPARENT, TRACESTATE};

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
        let headers = match self.mode {
            Mode::Structured => OwnedHeaders::new_with_capacity(3).insert(Header {
                key: "content-type",
                value: Some(STRUCTURED_CONTENT_TYPE),
            }),
            Mode::Binary => binary_headers(event),
        };
        trace_headers(event, headers)
    }
}

/// The W3C Trace Context record headers, from the event's extension.
fn trace_headers(event: &Event, mut headers: OwnedHeaders) -> OwnedHeaders {
    for name in [TRACEPARENT, TRACESTATE] {
        if let Some(value) = event.extension(name) {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.to_wire_string().as_ref()),
            });
        }
    }
    headers
}

const SPECVERSION_HEADER: &str = "ce_specversion";
const CONTENT_TYPE_HEADER: &str = "content-type";

fn binary_headers(event: &Event) -> OwnedHeaders {
    fn h<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
        Header {
            key,
            value: Some(value),
        }
    }
    let mut headers = OwnedHeaders::new_with_capacity(9 + event.extensions().len())
        .insert(h(CONTENT_TYPE_HEADER, event.datacontenttype()))
        .insert(h(SPECVERSION_HEADER, SPEC_VERSION));
    for attribute in &ATTRIBUTES {
        if let Some(value) = (attribute.get)(event) {
            headers = headers.insert(h(attribute.kafka, &value));
        }
    }
    for (name, value) in event.extensions() {
        let key = format!("ce_{name}");
        headers = headers.insert(h(&key, &value.to_wire_string()));
    }
    headers
}

/// Why a Kafka record could not be read back as a CloudEvent. Its
/// [`Display`](fmt::Display) text is the reason a
/// [`KafkaSource`](super::KafkaSource) gives in the dead-letter record's
/// `hookbus-dead-letter-reason` header; [`kind`](Self::kind) is a short
/// stable name for the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Neither a structured-mode `content-type` nor a `ce_specversion` header.
    #[error(
        "not a CloudEvent: no ce_specversion header and content-type is not application/cloudevents+json"
    )]
    NotCloudEvent,
    /// The record is larger than the source accepts.
    #[error("record of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// Key, value and headers, in bytes.
        size: usize,
        /// The source's [`max_record_bytes`](super::KafkaSourceBuilder::max_record_bytes).
        limit: usize,
    },
    /// A `specversion` other than `1.0`.
    #[error("unsupported CloudEvents specversion {0:?}; expected \"1.0\"")]
    SpecVersion(String),
    /// A required attribute header is missing.
    #[error("binary-mode CloudEvent without the ce_{0} header")]
    MissingAttribute(&'static str),
    /// A `ce_` or `content-type` header (or the key) is not UTF-8.
    #[error("header {0} is not UTF-8")]
    NotUtf8(String),
    /// `ce_time` is not an RFC 3339 timestamp.
    #[error("ce_time {0:?} is not an RFC 3339 timestamp")]
    InvalidTime(String),
    /// The value is not the JSON its content type says it is (structured
    /// mode: not a CloudEvents JSON object).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// Binary-mode data that is neither JSON nor UTF-8 text (hookbus events
    /// carry JSON data).
    #[error("binary data with content-type {0:?} is not supported: hookbus events carry JSON")]
    BinaryData(String),
    /// The attributes do not make a valid event (e.g. an invalid type or
    /// extension name).
    #[error("invalid event: {0}")]
    Invalid(#[from] EventError),
}

impl DecodeError {
    /// A short stable name: `not-cloudevent`, `too-large`, `specversion`,
    /// `missing-attribute`, `not-utf8`, `invalid-time`, `invalid-json`,
    /// `binary-data` or `invalid-event`.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::NotCloudEvent => "not-cloudevent",
            DecodeError::TooLarge { .. } => "too-large",
            DecodeError::SpecVersion(_) => "specversion",
            DecodeError::MissingAttribute(_) => "missing-attribute",
            DecodeError::NotUtf8(_) => "not-utf8",
            DecodeError::InvalidTime(_) => "invalid-time",
            DecodeError::InvalidJson(_) => "invalid-json",
            DecodeError::BinaryData(_) => "binary-data",
            DecodeError::Invalid(_) => "invalid-event",
        }
    }
}

/// The media type of a `content-type` value: before any `;`, trimmed,
/// lowercase.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_json_media(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json") || media == "text/json"
}

fn utf8<'a>(header: &str, value: &'a [u8]) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(value).map_err(|_| DecodeError::NotUtf8(header.to_owned()))
}

/// Reads a record back into the event it was: structured mode when
/// `content-type` is `application/cloudevents+json`, binary mode when a
/// `ce_specversion` header is present, else [`DecodeError::NotCloudEvent`].
///
/// This is the encoding of [`KafkaPublisher`](super::KafkaPublisher) in
/// reverse: binary-mode data is parsed as JSON (hookbus writes JSON
/// whatever the content type); a value that is not JSON is kept as a JSON
/// string when its content type is not JSON and it is UTF-8 text. Extension values come back as strings (the binding's
/// headers carry no types; structured mode keeps integers and booleans).
///
/// ```
/// use hookbus::Event;
/// use hookbus::kafka::message::decode;
/// use serde_json::json;
///
/// let headers = [
///     ("ce_specversion", &b"1.0"[..]),
///     ("ce_id", b"ev-1"),
///     ("ce_source", b"svc"),
///     ("ce_type", b"decision.captured"),
///     ("ce_tenant", b"acme"),
///     ("content-type", b"application/json"),
/// ];
/// let event = decode(Some(br#"{"decision_id":"d1"}"#), headers)?;
/// assert_eq!((event.id(), event.event_type()), ("ev-1", "decision.captured"));
/// assert_eq!(event.data(), &json!({"decision_id": "d1"}));
/// assert_eq!(event.extension("tenant").unwrap().to_string(), "acme");
///
/// let err = decode(Some(b"plain text"), []).unwrap_err();
/// assert_eq!(err.kind(), "not-cloudevent");
/// # Ok::<(), hookbus::kafka::DecodeError>(())
/// ```
pub fn decode<'h>(
    value: Option<&[u8]>,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
) -> Result<Event, DecodeError> {
    let mut content_type: Option<&[u8]> = None;
    let mut specversion: Option<&[u8]> = None;
    let mut attributes: [Option<&[u8]>; ATTRIBUTES.len()] = [None; ATTRIBUTES.len()];
    let mut extensions: Vec<(&str, &[u8])> = Vec::new();
    let mut transport_trace: [Option<&[u8]>; 2] = [None, None];
    for (key, v) in headers {
        if key == TRACEPARENT {
            transport_trace[0] = Some(v);
        } else if key == TRACESTATE {
            transport_trace[1] = Some(v);
        } else if key.eq_ignore_ascii_case(CONTENT_TYPE_HEADER) {
            content_type = Some(v);
        } else if key == SPECVERSION_HEADER {
            specversion = Some(v);
        } else if let Some(i) = ATTRIBUTES.iter().position(|a| a.kafka == key) {
            attributes[i] = Some(v);
        } else if let Some(name) = key.strip_prefix("ce_") {
            extensions.push((name, v));
        }
    }
    let media = match content_type {
        Some(ct) => Some((
            utf8(CONTENT_TYPE_HEADER, ct)?,
            media_type(utf8(CONTENT_TYPE_HEADER, ct)?),
        )),
        None => None,
    };
    let value = value.unwrap_or_default();
    if let Some((_, media)) = &media
        && media == "application/cloudevents+json"
    {
        let event = serde_json::from_slice::<Event>(value)
            .map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
        return Ok(with_transport_trace(event, transport_trace));
    }
    let Some(spec) = specversion else {
        return Err(DecodeError::NotCloudEvent);
    };
    let spec = utf8(SPECVERSION_HEADER, spec)?;
    if spec != SPEC_VERSION {
        return Err(DecodeError::SpecVersion(spec.to_owned()));
    }
    let mut text: [Option<String>; ATTRIBUTES.len()] = Default::default();
    for (i, attribute) in ATTRIBUTES.iter().enumerate() {
        if let Some(v) = attributes[i] {
            text[i] = Some(utf8(attribute.kafka, v)?.to_owned());
        } else if attribute.required {
            return Err(DecodeError::MissingAttribute(attribute.name));
        }
    }
    let type_index = ATTRIBUTES.iter().position(|a| a.set.is_none()).unwrap_or(0);
    let ty = text[type_index].take().unwrap_or_default();
    let mut builder = Event::builder(ty).received();
    for (i, attribute) in ATTRIBUTES.iter().enumerate() {
        if let (Some(set), Some(v)) = (attribute.set, text[i].take()) {
            builder = match set(builder, &v) {
                Some(b) => b,
                None => return Err(DecodeError::InvalidTime(v)),
            };
        }
    }
    for (name, v) in extensions {
        let v = utf8(name, v)?;
        builder = builder.extension(name.to_owned(), v.to_owned());
    }
    let (content_type, media) = match media {
        Some((ct, media)) => (Some(ct), media),
        None => (None, String::new()),
    };
    let data = binary_data(value, &media)?;
    if let Some(ct) = content_type {
        builder = builder.datacontenttype(ct.to_owned());
    }
    Ok(with_transport_trace(
        builder.data(data).build()?,
        transport_trace,
    ))
}

/// An event without the distributed-tracing extension takes the record's
/// W3C `traceparent` (and `tracestate`) headers when they are valid; a
/// malformed header is ignored (W3C Trace Context: restart the trace).
fn with_transport_trace(mut event: Event, headers: [Option<&[u8]>; 2]) -> Event {
    if event.extension(TRACEPARENT).is_some() {
        return event;
    }
    fn text(v: Option<&[u8]>) -> Option<&str> {
        v.and_then(|v| std::str::from_utf8(v).ok())
    }
    if let Some((parent, state)) = crate::trace::lenient(text(headers[0]), text(headers[1])) {
        event.set_extension(TRACEPARENT, ExtensionValue::String(parent.to_string()));
        if let Some(state) = state {
            event.set_extension(TRACESTATE, ExtensionValue::String(state.to_string()));
        }
    }
    event
}

/// Binary-mode data: JSON as hookbus writes it; for foreign producers, text
/// with a non-JSON content type becomes a JSON string.
fn binary_data(value: &[u8], media: &str) -> Result<Value, DecodeError> {
    if value.is_empty() {
        return Ok(Value::Null);
    }
    match serde_json::from_slice(value) {
        Ok(v) => Ok(v),
        Err(e) if media.is_empty() || is_json_media(media) => {
            Err(DecodeError::InvalidJson(e.to_string()))
        }
        Err(_) => std::str::from_utf8(value)
            .map(|s| Value::String(s.to_owned()))
            .map_err(|_| DecodeError::BinaryData(media.to_owned())),
    }
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

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn header_of(headers: &OwnedHeaders, key: &str) -> Option<String> {
        headers
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn trace_context_travels_as_extension_and_w3c_headers() {
        let e = Event::builder("decision.captured")
            .extension("traceparent", TP)
            .extension("tracestate", "rojo=1")
            .build()
            .unwrap();
        for mode in [Mode::Binary, Mode::Structured] {
            let enc = Encoder {
                mode,
                key: KeyStrategy::default(),
            };
            let h = enc.headers(&e);
            assert_eq!(header_of(&h, "traceparent").as_deref(), Some(TP));
            assert_eq!(header_of(&h, "tracestate").as_deref(), Some("rojo=1"));
            let ce = header_of(&h, "ce_traceparent");
            assert_eq!(ce.as_deref(), (mode == Mode::Binary).then_some(TP));
            let pairs: Vec<(&str, &[u8])> = h
                .iter()
                .map(|h| (h.key, h.value.unwrap_or_default()))
                .collect();
            let back = decode(Some(&enc.value(&e)), pairs).unwrap();
            assert_eq!(back.traceparent(), e.traceparent(), "{mode:?}");
            assert_eq!(back.tracestate(), Some("rojo=1"));
        }
    }

    #[test]
    fn the_w3c_header_fills_a_missing_extension_and_a_malformed_one_is_ignored() {
        let base = [
            ("ce_specversion", &b"1.0"[..]),
            ("ce_id", b"1"),
            ("ce_source", b"s"),
            ("ce_type", b"a.b"),
        ];
        let with = |extra: &[(&'static str, &'static [u8])]| {
            let mut h = base.to_vec();
            h.extend_from_slice(extra);
            decode(Some(b"{}"), h)
        };
        let e = with(&[("traceparent", TP.as_bytes()), ("tracestate", b"Bad Key")]).unwrap();
        assert_eq!(e.traceparent().unwrap().to_string(), TP);
        assert_eq!(e.tracestate(), None);
        let e = with(&[("traceparent", b"00-garbage")]).unwrap();
        assert_eq!(e.traceparent(), None);
        let e = with(&[("traceparent", &[0xff, 0xfe])]).unwrap();
        assert_eq!(e.traceparent(), None);
        // A malformed extension is a malformed event.
        let err = with(&[("ce_traceparent", b"00-garbage")]).unwrap_err();
        assert!(err.to_string().contains("traceparent"), "{err}");
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

    fn header_pairs(headers: &OwnedHeaders) -> Vec<(String, Vec<u8>)> {
        headers
            .iter()
            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
            .collect()
    }

    fn decode_owned(value: &[u8], headers: &[(String, Vec<u8>)]) -> Result<Event, DecodeError> {
        decode(
            Some(value),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        )
    }

    #[test]
    fn binary_mode_reads_back_what_it_wrote() {
        let e = Event::builder("decision.captured")
            .id("ev-3")
            .source("svc")
            .subject("claims_review")
            .dataschema("https://schemas.example/d.json")
            .extension("tenant", "acme")
            .data(json!({"decision_id": "d", "n": [1, 2]}))
            .build()
            .unwrap();
        let enc = Encoder::default();
        let back = decode_owned(&enc.value(&e), &header_pairs(&enc.headers(&e))).unwrap();
        assert_eq!(back, e);

        // Text data with a non-JSON content type: written as a JSON string,
        // read back as the same string; a foreign producer's plain text too.
        let text = Event::builder("note.added")
            .datacontenttype("text/plain")
            .data(json!("hello"))
            .build()
            .unwrap();
        let back = decode_owned(&enc.value(&text), &header_pairs(&enc.headers(&text))).unwrap();
        assert_eq!(back, text);
        let mut foreign = header_pairs(&enc.headers(&text));
        foreign.retain(|(k, _)| k != "content-type");
        foreign.push(("content-type".into(), b"text/plain".to_vec()));
        assert_eq!(
            decode_owned(b"hello", &foreign).unwrap().data(),
            &json!("hello")
        );

        let structured = Encoder {
            mode: Mode::Structured,
            ..Encoder::default()
        };
        let back = decode_owned(
            &structured.value(&e),
            &header_pairs(&structured.headers(&e)),
        )
        .unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn what_does_not_decode_says_why() {
        let enc = Encoder::default();
        let e = Event::new("a.b", json!({})).unwrap();
        let good = header_pairs(&enc.headers(&e));
        let without = |name: &str| {
            let mut h = good.clone();
            h.retain(|(k, _)| k != name);
            h
        };
        let with = |name: &str, value: &[u8]| {
            let mut h = without(name);
            h.push((name.to_owned(), value.to_vec()));
            h
        };
        let kind = |r: Result<Event, DecodeError>| r.unwrap_err().kind();
        assert_eq!(kind(decode_owned(b"{}", &[])), "not-cloudevent");
        assert_eq!(
            kind(decode_owned(b"{}", &without("ce_id"))),
            "missing-attribute"
        );
        assert_eq!(
            kind(decode_owned(b"{}", &with("ce_specversion", b"0.3"))),
            "specversion"
        );
        assert_eq!(
            kind(decode_owned(b"{}", &with("ce_time", b"yesterday"))),
            "invalid-time"
        );
        assert_eq!(
            kind(decode_owned(b"{}", &with("ce_type", b"a b"))),
            "invalid-event"
        );
        assert_eq!(
            kind(decode_owned(b"{}", &with("ce_Bad", b"x"))),
            "invalid-event"
        );
        assert_eq!(
            kind(decode_owned(b"{}", &with("ce_id", b"\xff"))),
            "not-utf8"
        );
        assert_eq!(kind(decode_owned(b"{oops", &good)), "invalid-json");
        let octets = with("content-type", b"application/octet-stream");
        assert_eq!(kind(decode_owned(b"\xff\x00", &octets)), "binary-data");
        let structured = [(
            "content-type".to_owned(),
            STRUCTURED_CONTENT_TYPE.as_bytes().to_vec(),
        )];
        assert_eq!(
            kind(decode_owned(b"{\"id\": 1}", &structured)),
            "invalid-json"
        );
        // An empty value is null data.
        assert_eq!(decode_owned(b"", &good).unwrap().data(), &Value::Null);
    }
}
