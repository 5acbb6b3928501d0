//! The CloudEvents 1.0 HTTP binding: binary, structured and batched mode, the
//! Rubric-style envelope, and the percent-encoding of header values.
//!
//! Bodies are built from the event's cached JSON bytes
//! ([`Event::data_json`], [`Event::structured_json`]): the same event going to
//! ten webhooks is serialised once.
//!
//! Every request also carries the event's distributed-tracing extension as
//! the W3C `traceparent` and `tracestate` headers ([`trace_headers`]; see
//! [`crate::trace`]).

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::event::{Event, ExtensionValue, SPEC_VERSION};

/// How events are written into a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WireFormat {
    /// CloudEvents binary mode: the body is the event data, attributes go
    /// in `ce-*` headers. Several events in one request use batched mode.
    /// No signature scheme covers the `ce-*` headers, and they carry every
    /// extension as a string: a hookbus ingress refuses binary mode under a
    /// body-only signature (Briefcase, GitHub).
    Binary,
    /// CloudEvents structured mode (the default):
    /// `application/cloudevents+json`, the whole event in the body, so the
    /// signature covers every attribute under any scheme and the event
    /// arrives as sent (extension types included). Several events use
    /// batched mode.
    #[default]
    Structured,
    /// CloudEvents batched mode for every request, even of one event:
    /// `application/cloudevents-batch+json`, a JSON array of events.
    Batched,
    /// The envelope the Rubric docs show:
    /// `{"id", "type", "created_at", "data", "metadata"}`; several events are a
    /// JSON array of envelopes.
    Envelope,
    /// Raw payloads, for receivers with a fixed contract: the body is exactly
    /// the bytes the caller formatted, unchanged, and signed as usual. An
    /// event whose data is a JSON string sends that string's bytes (no
    /// quotes, no escaping) with the event's `datacontenttype` as
    /// `Content-Type`; other data is sent as its JSON. A
    /// [`Template`](super::Template) that renders to a string sends that
    /// string as `text/plain; charset=utf-8` (a template rendering an object
    /// sends its JSON). No `ce-*` headers are added; an extra
    /// [`header`](super::WebhookBuilder::header) `Content-Type` overrides the
    /// default. One event per request: batching is refused at build.
    ///
    /// ```
    /// use hookbus::Event;
    /// use hookbus::webhook::{WebhookEmitter, WireFormat};
    /// use serde_json::json;
    ///
    /// let emitter = WebhookEmitter::builder("https://legacy.example.com/orders")
    ///     .secret("my-webhook-secret")
    ///     .format(WireFormat::Raw)
    ///     .build_emitter()?;
    /// // Sent as `<order id="42"/>`, Content-Type: application/xml.
    /// let event = Event::builder("order.created")
    ///     .data(json!(r#"<order id="42"/>"#))
    ///     .datacontenttype("application/xml")
    ///     .build()?;
    /// # let _ = (emitter, event);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    Raw,
}

/// Content type of CloudEvents structured mode.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";
/// Content type of CloudEvents batched mode.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// What the CloudEvents HTTP binding (§3.1.3.2) requires to be
/// percent-encoded in header values: space, `"`, `%`, and everything outside
/// U+0021..U+007E (controls here; non-ASCII is always encoded).
const CE_HEADER: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// Percent-encodes a CloudEvents attribute for an HTTP header value.
///
/// ```
/// use hookbus::webhook::wire::encode_header_value;
/// assert_eq!(encode_header_value("Euro € 100%"), "Euro%20%E2%82%AC%20100%25");
/// assert_eq!(encode_header_value("decision.captured"), "decision.captured");
/// ```
pub fn encode_header_value(value: &str) -> String {
    utf8_percent_encode(value, CE_HEADER).to_string()
}

/// A request body and the headers that describe it (signature headers are
/// added per attempt).
#[derive(Debug, Clone)]
pub struct Payload {
    /// The body bytes.
    pub body: Bytes,
    /// `Content-Type`, and for binary mode the `ce-*` headers, already
    /// percent-encoded.
    pub headers: HeaderMap,
    /// The message id: the event id, or for several events a batch id made
    /// from the first one. The same on every retry.
    pub message_id: String,
}

fn encoded(value: &str) -> HeaderValue {
    // Percent-encoding leaves only visible ASCII, which is always a valid
    // header value; most values need none, and are copied once.
    let value = match utf8_percent_encode(value, CE_HEADER).into() {
        std::borrow::Cow::Borrowed(s) => HeaderValue::from_str(s),
        std::borrow::Cow::Owned(s) => HeaderValue::try_from(s),
    };
    value.unwrap_or(HeaderValue::from_static(""))
}

pub(crate) fn content_type(ct: &str) -> HeaderMap {
    // Room for binary mode's headers, the signature's and the trace's.
    let mut h = HeaderMap::with_capacity(16);
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static("application/json")),
    );
    h
}

/// The `Content-Type` and `ce-*` headers of binary mode. `source` overrides
/// the event's source when the event was emitted without one.
pub fn binary_headers(event: &Event, source: Option<&str>) -> HeaderMap {
    let src = match source {
        Some(s) if !event.has_source() => s,
        _ => event.source(),
    };
    let mut h = content_type(event.datacontenttype());
    h.insert(
        HeaderName::from_static("ce-specversion"),
        HeaderValue::from_static(SPEC_VERSION),
    );
    for attribute in &crate::binding::ATTRIBUTES {
        let value = match attribute.name {
            "source" => Some(std::borrow::Cow::Borrowed(src)),
            _ => (attribute.get)(event),
        };
        if let Some(value) = value {
            h.insert(HeaderName::from_static(attribute.http), encoded(&value));
        }
    }
    for (name, value) in event.extensions() {
        // Extension names are validated as lowercase ASCII letters and digits.
        if let Ok(n) = HeaderName::try_from(format!("ce-{name}")) {
            h.insert(n, encoded(&value.to_wire_string()));
        }
    }
    h
}

/// The structured JSON of `event` (cached), with `source` in place of the
/// default for an event emitted without a source of its own, as binary mode
/// and the envelope do.
fn structured(event: &Event, source: Option<&str>) -> Bytes {
    match source {
        Some(s) if !event.has_source() => {
            let mut own = event.clone();
            own.set_source(&crate::event::Source::new(s.to_owned().into()));
            own.structured_json()
        }
        _ => event.structured_json(),
    }
}

/// Builds the payload of one request for `events` (at least one).
pub fn payload(events: &[Arc<Event>], format: WireFormat, source: Option<&str>) -> Payload {
    let first = &events[0];
    let message_id = message_id(events);
    let mut payload = match (format, events.len()) {
        (WireFormat::Binary, 1) => Payload {
            body: binary_body(first),
            headers: binary_headers(first, source),
            message_id,
        },
        (WireFormat::Structured, 1) => Payload {
            body: structured(first, source),
            headers: content_type(STRUCTURED_CONTENT_TYPE),
            message_id,
        },
        (WireFormat::Binary | WireFormat::Structured | WireFormat::Batched, _) => Payload {
            body: join_array(events.iter().map(|e| structured(e, source))),
            headers: content_type(BATCH_CONTENT_TYPE),
            message_id,
        },
        (WireFormat::Envelope, 1) => Payload {
            body: envelope(first, source),
            headers: content_type("application/json"),
            message_id,
        },
        (WireFormat::Envelope, _) => Payload {
            body: join_array(events.iter().map(|e| envelope(e, source))),
            headers: content_type("application/json"),
            message_id,
        },
        (WireFormat::Raw, _) => Payload {
            // Several events (only through this function: the builder
            // refuses batching in raw mode) are one body a line.
            body: join_lines(events.iter().map(|e| raw_body(e))),
            headers: content_type(first.datacontenttype()),
            message_id,
        },
    };
    trace_headers(first, &mut payload.headers);
    payload
}

/// The W3C Trace Context headers `traceparent` and `tracestate`, from the
/// event's distributed-tracing extension (the first event's, for a batch),
/// in every format: one delivery is one hop, and for one hop the
/// CloudEvents extension and the transport's headers carry the same trace
/// (see [`crate::trace`]). The values were checked when the event was built,
/// so they are valid header values.
pub fn trace_headers(event: &Event, headers: &mut HeaderMap) {
    for (name, header) in [
        (crate::trace::TRACEPARENT, "traceparent"),
        (crate::trace::TRACESTATE, "tracestate"),
    ] {
        if let Some(value) = event.extension(name)
            && let Ok(v) = HeaderValue::try_from(value.to_wire_string().as_ref())
        {
            headers.insert(HeaderName::from_static(header), v);
        }
    }
}

/// Whether a content type says JSON (`application/json`, `*+json`), so the
/// data travels as JSON text.
fn is_json_content_type(ct: &str) -> bool {
    let media = ct.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
        || media
            .rsplit_once('+')
            .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json"))
}

/// The body of binary mode: the data itself (HTTP binding §3.1.2). JSON data
/// is its JSON text; data under another content type (`text/plain`,
/// `application/xml`) that is a string is that string's bytes, not a
/// JSON-encoded string.
pub fn binary_body(event: &Event) -> Bytes {
    match event.data() {
        serde_json::Value::String(s) if !is_json_content_type(event.datacontenttype()) => {
            Bytes::from(s.clone().into_bytes())
        }
        _ => event.data_json(),
    }
}

/// The raw body of an event: a JSON string's bytes as they are, other data
/// as its JSON.
pub fn raw_body(event: &Event) -> Bytes {
    match event.data() {
        serde_json::Value::String(s) => Bytes::copy_from_slice(s.as_bytes()),
        _ => event.data_json(),
    }
}

fn join_lines(parts: impl Iterator<Item = Bytes>) -> Bytes {
    let mut parts: Vec<Bytes> = parts.collect();
    match parts.len() {
        1 => parts.swap_remove(0),
        _ => Bytes::from(parts.join(&b'\n')),
    }
}

/// The message id of a request: the event id, or a batch id made from the
/// first one.
pub(crate) fn message_id(events: &[Arc<Event>]) -> String {
    match events {
        [one] => one.id().to_owned(),
        _ => format!("batch_{}_{}", events.len(), events[0].id()),
    }
}

pub(crate) fn join_array(parts: impl Iterator<Item = Bytes>) -> Bytes {
    let parts: Vec<Bytes> = parts.collect();
    let len = parts.iter().map(|p| p.len() + 1).sum::<usize>() + 2;
    let mut out = BytesMut::with_capacity(len);
    out.put_u8(b'[');
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(p);
    }
    out.put_u8(b']');
    out.freeze()
}

/// The Rubric-style envelope: `{"id", "type", "created_at", "data",
/// "metadata"}`; metadata holds the source, the subject and the extensions.
/// The data bytes are the event's cached JSON, spliced in as they are.
pub fn envelope(event: &Event, source: Option<&str>) -> Bytes {
    let src = match source {
        Some(s) if !event.has_source() => s,
        _ => event.source(),
    };
    let mut meta = serde_json::Map::new();
    meta.insert("source".into(), src.into());
    if let Some(s) = event.subject() {
        meta.insert("subject".into(), s.into());
    }
    for (k, v) in event.extensions() {
        let v = match v {
            ExtensionValue::String(s) => serde_json::Value::from(s.as_str()),
            ExtensionValue::Integer(i) => (*i).into(),
            ExtensionValue::Boolean(b) => (*b).into(),
        };
        meta.insert(k.clone(), v);
    }
    let data = event.data_json();
    let head = serde_json::json!({
        "id": event.id(),
        "type": event.event_type(),
        "created_at": event.time_rfc3339(),
    });
    let head = serde_json::to_vec(&head).unwrap_or_default();
    let meta = serde_json::to_vec(&meta).unwrap_or_default();
    let mut out = BytesMut::with_capacity(head.len() + data.len() + meta.len() + 24);
    // `head` is `{...}`: drop its closing brace and append the rest.
    out.put_slice(&head[..head.len() - 1]);
    out.put_slice(b",\"data\":");
    out.put_slice(&data);
    out.put_slice(b",\"metadata\":");
    out.put_slice(&meta);
    out.put_u8(b'}');
    out.freeze()
}
