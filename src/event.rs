//! Events: the CloudEvents 1.0 envelope that travels on the bus.
//!
//! An [`Event`] carries the CloudEvents 1.0 context attributes (`id`, `type`,
//! `source`, `time`, `subject`, `datacontenttype`, `dataschema`), a JSON `data`
//! payload and extension attributes. It is validated when it is built, so an
//! event on the bus is always well formed. The distributed-tracing
//! extension (`traceparent`, `tracestate`) is checked too, and read with
//! [`Event::traceparent`]; see [`crate::trace`].
//!
//! ```
//! use hookbus::Event;
//! use serde_json::json;
//!
//! let event = Event::builder("decision.captured")
//!     .data(json!({"decision_id": "abc123", "confidence": 0.91}))
//!     .subject("claims_review")
//!     .extension("partitionkey", "abc123")
//!     .build()?;
//! assert_eq!(event.event_type(), "decision.captured");
//! assert_eq!(event.data()["confidence"], 0.91);
//!
//! // Structured-mode CloudEvents JSON, and back.
//! let text = serde_json::to_string(&event)?;
//! let back: Event = serde_json::from_str(&text)?;
//! assert_eq!(back, event);
//!
//! // Bad input is an error that says what is wrong, never a panic.
//! let err = Event::new("decision captured", json!({})).unwrap_err();
//! assert!(err.to_string().contains("' '"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::any::Any;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use once_cell::race::OnceBox;
use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The source used when neither the event nor the bus names one.
pub const DEFAULT_SOURCE: &str = "hookbus";

/// The CloudEvents spec version hookbus speaks.
pub const SPEC_VERSION: &str = "1.0";

/// Longest event type accepted, in bytes.
pub const MAX_TYPE_LEN: usize = 255;

/// Longest extension attribute name accepted (CloudEvents recommends 20).
pub const MAX_EXTENSION_NAME_LEN: usize = 20;

/// What is wrong with an event, an event type or an extension.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The event type is the empty string.
    #[error("event type is empty")]
    EmptyType,
    /// The event type is longer than [`MAX_TYPE_LEN`] bytes.
    #[error("event type is {len} bytes long; the limit is {MAX_TYPE_LEN}")]
    TypeTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The event type holds a character outside `[A-Za-z0-9._-]`.
    #[error(
        "event type {ty:?} has {ch:?} at byte {at}; only ASCII letters, digits, '.', '_' and '-' are allowed"
    )]
    InvalidTypeChar {
        /// The offending type (truncated to 64 bytes).
        ty: String,
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// A segment between dots is empty (`a..b`, `.a`, `a.`).
    #[error("event type {ty:?} has an empty segment; segments are separated by single dots")]
    EmptySegment {
        /// The offending type (truncated to 64 bytes).
        ty: String,
    },
    /// An extension attribute name is not 1..=20 lowercase ASCII letters or digits.
    #[error(
        "extension name {name:?} is invalid: CloudEvents extension names are 1 to 20 lowercase letters a-z or digits 0-9"
    )]
    InvalidExtensionName {
        /// The offending name.
        name: String,
    },
    /// The extension name is one of the CloudEvents context attributes.
    #[error("extension name {name:?} is reserved for a CloudEvents context attribute")]
    ReservedExtensionName {
        /// The offending name.
        name: String,
    },
    /// An attribute that must not be empty is empty.
    #[error("CloudEvents attribute {attribute} must not be empty")]
    EmptyAttribute {
        /// Which attribute.
        attribute: &'static str,
    },
    /// The payload of a typed event could not be turned into JSON.
    #[error("event data could not be serialized to JSON: {0}")]
    Data(String),
    /// The `traceparent` or `tracestate` extension is malformed (see
    /// [`crate::trace`]).
    #[error("invalid distributed-tracing extension: {0}")]
    InvalidTraceContext(#[from] crate::trace::TraceContextError),
}

/// Checks an event type: non-empty, at most 255 bytes, `[A-Za-z0-9._-]` only,
/// and its dot-separated segments are non-empty (no leading, trailing or
/// doubled dot).
///
/// ```
/// assert!(hookbus::event::validate_type("decision.low_confidence").is_ok());
/// assert!(hookbus::event::validate_type("").is_err());
/// assert!(hookbus::event::validate_type("decision.*").is_err());
/// assert!(hookbus::event::validate_type("decision.").is_err());
/// assert!(hookbus::event::validate_type("a..b").is_err());
/// ```
pub fn validate_type(ty: &str) -> Result<(), EventError> {
    if ty.is_empty() {
        return Err(EventError::EmptyType);
    }
    if ty.len() > MAX_TYPE_LEN {
        return Err(EventError::TypeTooLong { len: ty.len() });
    }
    if let Some((at, ch)) = ty
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(EventError::InvalidTypeChar {
            ty: truncate(ty, 64).to_owned(),
            ch,
            at,
        });
    }
    if ty.split('.').any(str::is_empty) {
        return Err(EventError::EmptySegment {
            ty: truncate(ty, 64).to_owned(),
        });
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

const CONTEXT_ATTRIBUTES: [&str; 9] = [
    "specversion",
    "id",
    "type",
    "source",
    "time",
    "subject",
    "datacontenttype",
    "dataschema",
    "data",
];

/// Checks an extension attribute name against the CloudEvents rules.
pub fn validate_extension_name(name: &str) -> Result<(), EventError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_EXTENSION_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok {
        return Err(EventError::InvalidExtensionName {
            name: truncate(name, 64).to_owned(),
        });
    }
    if CONTEXT_ATTRIBUTES.contains(&name) || name == "data_base64" {
        return Err(EventError::ReservedExtensionName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The value of a CloudEvents extension attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtensionValue {
    /// A string (also used for URI, timestamp and binary attributes).
    String(String),
    /// A 32-bit integer, as CloudEvents defines `Integer`.
    Integer(i64),
    /// A boolean.
    Boolean(bool),
}

impl ExtensionValue {
    /// The value as a string, as the HTTP and Kafka bindings carry it.
    pub fn to_wire_string(&self) -> Cow<'_, str> {
        match self {
            ExtensionValue::String(s) => Cow::Borrowed(s),
            ExtensionValue::Integer(i) => Cow::Owned(i.to_string()),
            ExtensionValue::Boolean(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }
}

impl fmt::Display for ExtensionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_wire_string())
    }
}

impl From<&str> for ExtensionValue {
    fn from(v: &str) -> Self {
        ExtensionValue::String(v.to_owned())
    }
}
impl From<String> for ExtensionValue {
    fn from(v: String) -> Self {
        ExtensionValue::String(v)
    }
}
impl From<i64> for ExtensionValue {
    fn from(v: i64) -> Self {
        ExtensionValue::Integer(v)
    }
}
impl From<i32> for ExtensionValue {
    fn from(v: i32) -> Self {
        ExtensionValue::Integer(v.into())
    }
}
impl From<bool> for ExtensionValue {
    fn from(v: bool) -> Self {
        ExtensionValue::Boolean(v)
    }
}

/// One event: the CloudEvents 1.0 attributes, JSON data and extensions.
///
/// Events are immutable once built. On the bus they are shared behind an
/// [`Arc`] between all subscribers, never deep-cloned.
///
/// # What an event costs
///
/// An event made from a [`TypedEvent`] value (`bus.emit(value)`) keeps the
/// value itself, behind an `Arc`: typed handlers
/// ([`on_typed`](crate::SubscriberBuilder::on_typed)) borrow it without any
/// JSON. The JSON forms are produced lazily, at most once each, and only for
/// whoever asks: [`data`](Event::data) (a `serde_json::Value`, for dynamic
/// handlers, filters and templates), [`data_json`](Event::data_json) (bytes,
/// serialized straight from the value) and
/// [`structured_json`](Event::structured_json). A generated id is a UUID v7
/// kept as 16 bytes and formatted on first use; the time is formatted only
/// when asked for.
///
/// If a typed value's `Serialize` implementation fails (rare: e.g. a map with
/// non-string keys), the JSON forms hold `null` and the error is logged;
/// [`Event::from_typed`] serializes eagerly when you want the error instead.
pub struct Event {
    ty: Cow<'static, str>,
    source: Option<Text>,
    /// A generated time, in nanoseconds since the Unix epoch (UTC); a given
    /// time lives in `attrs`.
    time: i64,
    /// A generated id (UUID v7); a given id lives in `attrs`.
    id: uuid::Uuid,
    data: Data,
    /// What events made by `bus.emit(value)` do not have: given id and time,
    /// subject, datacontenttype, dataschema, extensions. `None` when all are
    /// unset, so a typed event is one small allocation (`Arc<Event>` fits in
    /// 128 bytes, glibc's fast bins: freed on another thread without a lock).
    attrs: Option<Box<Attrs>>,
    /// Produced on demand: the id's text and the JSON forms.
    cache: OnceBox<Cache>,
}

/// The attributes most events do not set; see [`Event`]'s `attrs`.
#[derive(Clone, Default, PartialEq)]
struct Attrs {
    id: Option<Box<str>>,
    time: Option<OffsetDateTime>,
    subject: Option<String>,
    datacontenttype: Option<String>,
    dataschema: Option<String>,
    extensions: BTreeMap<String, ExtensionValue>,
}

impl Attrs {
    fn is_empty(&self) -> bool {
        *self == Attrs::default()
    }
}

/// What an event produces on demand, at most once each.
#[derive(Clone, Default)]
struct Cache {
    id: OnceLock<Box<str>>,
    /// A typed value's JSON.
    json: OnceLock<Value>,
    data_json: OnceLock<Bytes>,
    structured_json: OnceLock<Bytes>,
}

/// Text that is either `'static` or shared: cloning it never allocates (a
/// bus's default source is given to every event it emits).
#[derive(Clone)]
enum Text {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Text {
    fn as_str(&self) -> &str {
        match self {
            Text::Static(s) => s,
            Text::Shared(s) => s,
        }
    }
}

impl From<Cow<'static, str>> for Text {
    fn from(c: Cow<'static, str>) -> Text {
        match c {
            Cow::Borrowed(s) => Text::Static(s),
            Cow::Owned(s) => Text::Shared(s.into()),
        }
    }
}

/// A shared source: given once to a bus, then to every event it emits.
#[derive(Clone)]
pub(crate) struct Source(Text);

impl Source {
    pub(crate) fn new(source: Cow<'static, str>) -> Source {
        Source(source.into())
    }
}

/// Now, in nanoseconds since the Unix epoch: one clock read, no calendar
/// arithmetic (the RFC 3339 text is made only when asked for).
fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

thread_local! {
    /// This thread's id sequence: 80 random bits drawn once per thread, then
    /// counted up (RFC 9562 §6.2, method 2, "monotonic random").
    static ID_SEQ: std::cell::Cell<u128> = const { std::cell::Cell::new(0) };
}

/// A UUID v7 from the event's own time (one clock read for both): v7 ids
/// sort by creation time to the millisecond, which makes logs easier to
/// read. The other 74 bits come from a random value drawn once per thread
/// and counted up per id, so an id costs no random number generator, and
/// ids stay unique: a thread never repeats one, and two threads' sequences
/// start 80 random bits apart. (A process that forks without `exec` and
/// emits on the same thread in both parent and child would repeat the
/// parent's sequence in the child; hookbus never forks, and a child that
/// runs a new program starts afresh.)
fn generate_id(nanos: i64) -> uuid::Uuid {
    let next = ID_SEQ.with(|seq| {
        let mut v = seq.get();
        if v == 0 {
            v = u128::from_be_bytes(*uuid::Uuid::new_v4().as_bytes()) | 1;
        }
        seq.set(v.wrapping_add(1));
        v
    });
    let bytes = next.to_be_bytes();
    let mut random = [0u8; 10];
    random.copy_from_slice(&bytes[6..]);
    let millis = u64::try_from(nanos / 1_000_000).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// The payload: JSON, or a typed value with its JSON made on demand.
#[derive(Clone)]
enum Data {
    /// Boxed: an event made from a typed value, the common case on the bus,
    /// stays small.
    Json(Box<Value>),
    /// The JSON, when asked for, is kept in the event's cache.
    Typed(Arc<dyn Payload>),
}

/// A [`TypedEvent`] value with its type erased.
trait Payload: Send + Sync + 'static {
    fn to_value(&self) -> Result<Value, serde_json::Error>;
    fn to_vec(&self) -> Result<Vec<u8>, serde_json::Error>;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    fn as_any(&self) -> &(dyn Any + Send + Sync);
    fn type_name(&self) -> &'static str;
}

impl<T: Serialize + Send + Sync + 'static> Payload for T {
    fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }
    fn to_vec(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

fn serialization_failed(ty: &str, value: &dyn Payload, err: &serde_json::Error) {
    tracing::error!(event_type = ty, rust_type = value.type_name(), error = %err, "hookbus: a typed event's data did not serialize to JSON; its JSON is null");
}

impl Clone for Event {
    fn clone(&self) -> Self {
        Event {
            ty: self.ty.clone(),
            source: self.source.clone(),
            time: self.time,
            id: self.id,
            data: self.data.clone(),
            attrs: self.attrs.clone(),
            cache: match self.cache.get() {
                Some(cache) => OnceBox::with_value(Box::new(cache.clone())),
                None => OnceBox::new(),
            },
        }
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
            && self.ty == other.ty
            && self.source() == other.source()
            && self.time() == other.time()
            && self.subject() == other.subject()
            && self.datacontenttype() == other.datacontenttype()
            && self.dataschema() == other.dataschema()
            && self.data() == other.data()
            && self.extensions() == other.extensions()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id())
            .field("type", &self.ty)
            .field("source", &self.source())
            .field("time", &self.time_rfc3339())
            .field("subject", &self.subject())
            .field("data", self.data())
            .field("extensions", self.extensions())
            .finish()
    }
}

fn now_utc() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

impl Event {
    /// An event of type `ty` with `data`, a fresh UUID id and the current time.
    pub fn new(ty: impl Into<Cow<'static, str>>, data: Value) -> Result<Event, EventError> {
        Event::builder(ty).data(data).build()
    }

    /// A builder for an event of type `ty`; validation happens in
    /// [`EventBuilder::build`].
    pub fn builder(ty: impl Into<Cow<'static, str>>) -> EventBuilder {
        EventBuilder {
            ty: ty.into(),
            id: None,
            source: None,
            time: None,
            subject: None,
            datacontenttype: None,
            dataschema: None,
            data: Value::Null,
            extensions: Vec::new(),
            capture_trace: true,
        }
    }

    /// The event from a [`TypedEvent`] value, serialized to JSON now (so a
    /// serialization error is returned here). `bus.emit(value)` instead keeps
    /// the value and serializes only if some subscriber needs JSON.
    pub fn from_typed<T: TypedEvent>(value: &T) -> Result<Event, EventError> {
        validate_type(T::TYPE)?;
        let data = serde_json::to_value(value).map_err(|e| EventError::Data(e.to_string()))?;
        Ok(Event::unchecked(Cow::Borrowed(T::TYPE), data))
    }

    /// The event from a [`TypedEvent`] value, kept as it is: typed handlers
    /// get the value itself, and JSON is made only when asked for.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// #[derive(Serialize, Deserialize)]
    /// struct Tick { n: u64 }
    /// impl hookbus::TypedEvent for Tick { const TYPE: &'static str = "metrics.tick"; }
    ///
    /// let event = hookbus::Event::typed(Tick { n: 7 })?;
    /// assert_eq!(event.payload::<Tick>().unwrap().n, 7);
    /// assert_eq!(event.data()["n"], 7); // JSON on demand
    /// # Ok::<(), hookbus::EventError>(())
    /// ```
    pub fn typed<T: TypedEvent>(value: T) -> Result<Event, EventError> {
        if !TypeCheck::<T>::VALID {
            validate_type(T::TYPE)?;
        }
        Ok(Event::with_data(
            Cow::Borrowed(T::TYPE),
            Data::Typed(Arc::new(value)),
        ))
    }

    /// An event of a type chosen at run time carrying a serializable value,
    /// kept as it is: like [`Event::typed`], JSON is made only when some
    /// subscriber asks for it (a webhook, Kafka, a filter), once, and
    /// [`payload`](Self::payload) gives the value back. The type is
    /// validated here.
    ///
    /// Use it where the type is data (a tenant's own event names, types read
    /// from a config) and the payload is a Rust value: it saves building a
    /// JSON tree per event, which [`Event::new`] needs.
    ///
    /// ```
    /// use serde::Serialize;
    /// #[derive(Serialize)]
    /// struct Reading { sensor: u32, celsius: f32 }
    ///
    /// let ty = format!("sensor.{}.reading", "boiler");
    /// let event = hookbus::Event::with_payload(ty, Reading { sensor: 7, celsius: 71.5 })?;
    /// assert_eq!(event.event_type(), "sensor.boiler.reading");
    /// assert!(!event.is_json_materialized());
    /// assert_eq!(event.payload::<Reading>().unwrap().sensor, 7);
    /// assert_eq!(event.data()["celsius"], 71.5); // JSON on demand
    /// assert!(hookbus::Event::with_payload("bad type!", 1u8).is_err());
    /// # Ok::<(), hookbus::EventError>(())
    /// ```
    pub fn with_payload<T: Serialize + Send + Sync + 'static>(
        ty: impl Into<Cow<'static, str>>,
        value: T,
    ) -> Result<Event, EventError> {
        let ty = ty.into();
        validate_type(&ty)?;
        Ok(Event::with_data(ty, Data::Typed(Arc::new(value))))
    }

    /// Builds without validating the type: only for types checked elsewhere.
    pub(crate) fn unchecked(ty: Cow<'static, str>, data: Value) -> Event {
        Event::with_data(ty, Data::Json(Box::new(data)))
    }

    fn with_data(ty: Cow<'static, str>, data: Data) -> Event {
        #[allow(unused_mut)]
        let mut extensions = BTreeMap::new();
        capture_trace(&mut extensions);
        let attrs = (!extensions.is_empty()).then(|| {
            Box::new(Attrs {
                extensions,
                ..Attrs::default()
            })
        });
        Event::assemble(ty, None, data, attrs)
    }

    /// The one place an event is put together: a generated id and time, or
    /// the given ones (in `attrs`).
    fn assemble(
        ty: Cow<'static, str>,
        source: Option<Text>,
        data: Data,
        attrs: Option<Box<Attrs>>,
    ) -> Event {
        let given_time = attrs.as_ref().is_some_and(|a| a.time.is_some());
        let given_id = attrs.as_ref().is_some_and(|a| a.id.is_some());
        let time = if given_time { 0 } else { now_nanos() };
        Event {
            ty,
            source,
            time,
            id: if given_id {
                uuid::Uuid::nil()
            } else {
                generate_id(time)
            },
            data,
            attrs,
            cache: OnceBox::new(),
        }
    }

    fn cache(&self) -> &Cache {
        self.cache.get_or_init(|| Box::new(Cache::default()))
    }

    fn attrs(&self) -> Option<&Attrs> {
        self.attrs.as_deref()
    }

    /// The event id: unique per event, stable across every delivery attempt.
    pub fn id(&self) -> &str {
        match self.attrs().and_then(|a| a.id.as_deref()) {
            Some(id) => id,
            None => self.cache().id.get_or_init(|| {
                self.id
                    .hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer())
                    .into()
            }),
        }
    }

    /// The event type, e.g. `decision.captured`.
    pub fn event_type(&self) -> &str {
        &self.ty
    }

    /// The source: the one given when built, else the bus's default source
    /// once emitted, else [`DEFAULT_SOURCE`].
    pub fn source(&self) -> &str {
        self.source.as_ref().map_or(DEFAULT_SOURCE, Text::as_str)
    }

    pub(crate) fn has_source(&self) -> bool {
        self.source.is_some()
    }

    pub(crate) fn set_source(&mut self, source: &Source) {
        self.source = Some(source.0.clone());
        self.forget_structured_json();
    }

    /// After a change to an attribute: the structured JSON is made anew.
    fn forget_structured_json(&mut self) {
        // `OnceBox` has no `get_mut`: put a copy back without it. (A fresh
        // event, the common case here, has no cache yet.)
        if let Some(cache) = self.cache.get() {
            let mut cache = cache.clone();
            cache.structured_json = OnceLock::new();
            self.cache = OnceBox::with_value(Box::new(cache));
        }
    }

    /// Sets an extension after the event was built (the Kafka source marks
    /// the events it reads; the ingress and the Kafka source add a
    /// transport's trace context). The name and value must already be valid.
    #[cfg(any(feature = "kafka", feature = "axum"))]
    pub(crate) fn set_extension(&mut self, name: &str, value: ExtensionValue) {
        debug_assert!(validate_extension_name(name).is_ok());
        self.attrs
            .get_or_insert_with(Box::default)
            .extensions
            .insert(name.to_owned(), value);
        self.forget_structured_json();
    }

    /// When the event happened (UTC).
    pub fn time(&self) -> OffsetDateTime {
        match self.attrs().and_then(|a| a.time) {
            Some(time) => time,
            None => OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.time))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }

    /// The time as RFC 3339 text, e.g. `2024-03-15T10:30:00.123Z`.
    pub fn time_rfc3339(&self) -> String {
        self.time()
            .format(&Rfc3339)
            .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
    }

    /// The optional subject.
    pub fn subject(&self) -> Option<&str> {
        self.attrs()?.subject.as_deref()
    }

    /// The content type of `data`; `application/json` unless set otherwise.
    pub fn datacontenttype(&self) -> &str {
        self.attrs()
            .and_then(|a| a.datacontenttype.as_deref())
            .unwrap_or("application/json")
    }

    /// The optional schema URI of `data`.
    pub fn dataschema(&self) -> Option<&str> {
        self.attrs()?.dataschema.as_deref()
    }

    /// The payload as JSON. For an event made from a typed value this is
    /// produced on first use and cached.
    pub fn data(&self) -> &Value {
        match &self.data {
            Data::Json(v) => v,
            Data::Typed(value) => self.cache().json.get_or_init(|| {
                value.to_value().unwrap_or_else(|e| {
                    serialization_failed(&self.ty, &**value, &e);
                    Value::Null
                })
            }),
        }
    }

    /// The typed value this event was made from, if it was made from a `T`
    /// (by `bus.emit(value)` or [`Event::typed`]): no JSON involved.
    pub fn payload<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        match &self.data {
            Data::Typed(value) => value.clone().into_any().downcast::<T>().ok(),
            Data::Json(_) => None,
        }
    }

    /// The typed value this event was made from, borrowed (no reference
    /// count touched: readers of one event on many threads share nothing).
    pub(crate) fn payload_ref<T: Send + Sync + 'static>(&self) -> Option<&T> {
        match &self.data {
            Data::Typed(value) => value.as_any().downcast_ref::<T>(),
            Data::Json(_) => None,
        }
    }

    /// Whether the data is still only a typed value (no JSON made yet).
    /// Useful in tests that check JSON is not produced when nobody needs it.
    pub fn is_json_materialized(&self) -> bool {
        match &self.data {
            Data::Json(_) => true,
            Data::Typed(_) => self
                .cache
                .get()
                .is_some_and(|c| c.json.get().is_some() || c.data_json.get().is_some()),
        }
    }

    /// The extension attributes, by name.
    pub fn extensions(&self) -> &BTreeMap<String, ExtensionValue> {
        static NONE: BTreeMap<String, ExtensionValue> = BTreeMap::new();
        self.attrs().map_or(&NONE, |a| &a.extensions)
    }

    /// One extension attribute.
    pub fn extension(&self, name: &str) -> Option<&ExtensionValue> {
        self.attrs()?.extensions.get(name)
    }

    /// The distributed-tracing extension's `traceparent`, parsed (it was
    /// checked when the event was built). See [`crate::trace`].
    pub fn traceparent(&self) -> Option<crate::trace::TraceParent> {
        match self.extension(crate::trace::TRACEPARENT)? {
            ExtensionValue::String(s) => crate::trace::TraceParent::parse(s).ok(),
            _ => None,
        }
    }

    /// The distributed-tracing extension's `tracestate`, as sent.
    pub fn tracestate(&self) -> Option<&str> {
        match self.extension(crate::trace::TRACESTATE)? {
            ExtensionValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// Deserializes the data into `T`.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(self.data())
    }

    /// The data serialized as JSON bytes (the body of CloudEvents binary mode).
    /// Produced once and cached: every sink that asks gets the same bytes. A
    /// typed value is serialized straight to bytes, without a `Value`.
    pub fn data_json(&self) -> Bytes {
        let cache = self.cache();
        cache
            .data_json
            .get_or_init(|| {
                let bytes = match &self.data {
                    // Serialized from the value itself, not from its JSON
                    // tree: the fields keep the struct's order (a tree is a
                    // sorted map), whoever asked for the tree first.
                    Data::Typed(value) => value.to_vec().unwrap_or_else(|e| {
                        serialization_failed(&self.ty, &**value, &e);
                        Vec::from(*b"null")
                    }),
                    Data::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
                };
                Bytes::from(bytes)
            })
            .clone()
    }

    /// The whole event as CloudEvents structured-mode JSON bytes. Produced once
    /// and cached.
    pub fn structured_json(&self) -> Bytes {
        self.cache()
            .structured_json
            .get_or_init(|| Bytes::from(serde_json::to_vec(self).unwrap_or_default()))
            .clone()
    }
}

/// Checks the distributed-tracing extension: `traceparent` and
/// `tracestate` are strings in the W3C formats, and `tracestate` comes with
/// a `traceparent`.
fn check_trace_extensions(
    extensions: &BTreeMap<String, ExtensionValue>,
) -> Result<(), crate::trace::TraceContextError> {
    use crate::trace::{TRACEPARENT, TRACESTATE, TraceContextError, TraceParent, TraceState};
    match extensions.get(TRACEPARENT) {
        None if extensions.contains_key(TRACESTATE) => {
            return Err(TraceContextError::StateWithoutParent);
        }
        None => return Ok(()),
        Some(ExtensionValue::String(s)) => {
            TraceParent::parse(s)?;
        }
        Some(_) => return Err(TraceContextError::NotAString(TRACEPARENT)),
    }
    match extensions.get(TRACESTATE) {
        None => {}
        Some(ExtensionValue::String(s)) => {
            TraceState::parse(s)?;
        }
        Some(_) => return Err(TraceContextError::NotAString(TRACESTATE)),
    }
    Ok(())
}

/// With the feature `trace`, gives an event without a trace context the
/// current span's (see [`crate::trace`]).
#[cfg_attr(not(feature = "trace"), allow(unused_variables))]
fn capture_trace(extensions: &mut BTreeMap<String, ExtensionValue>) {
    #[cfg(feature = "trace")]
    if !extensions.contains_key(crate::trace::TRACEPARENT)
        && let Some(ctx) = crate::trace::current()
    {
        extensions.insert(
            crate::trace::TRACEPARENT.to_owned(),
            ExtensionValue::String(ctx.traceparent().to_string()),
        );
        match ctx.tracestate() {
            Some(state) => {
                extensions.insert(
                    crate::trace::TRACESTATE.to_owned(),
                    ExtensionValue::String(state.to_string()),
                );
            }
            None => {
                extensions.remove(crate::trace::TRACESTATE);
            }
        }
    }
}

/// Builds an [`Event`]; see [`Event::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct EventBuilder {
    ty: Cow<'static, str>,
    id: Option<String>,
    source: Option<Cow<'static, str>>,
    time: Option<OffsetDateTime>,
    subject: Option<String>,
    datacontenttype: Option<String>,
    dataschema: Option<String>,
    data: Value,
    extensions: Vec<(String, ExtensionValue)>,
    /// Whether `build` takes the current span's trace context (feature
    /// `trace`): not for events parsed from what a sender sent.
    capture_trace: bool,
}

impl EventBuilder {
    /// Sets the payload (default: JSON `null`).
    pub fn data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }
    /// Sets the id (default: a fresh UUID). Keep ids unique per source.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// Sets the source (default: the bus's default source).
    pub fn source(mut self, source: impl Into<Cow<'static, str>>) -> Self {
        self.source = Some(source.into());
        self
    }
    /// Sets the time (default: now). Stored in UTC.
    pub fn time(mut self, time: OffsetDateTime) -> Self {
        self.time = Some(time.to_offset(time::UtcOffset::UTC));
        self
    }
    /// Sets the subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
    /// Sets the data content type (default `application/json`).
    pub fn datacontenttype(mut self, ct: impl Into<String>) -> Self {
        self.datacontenttype = Some(ct.into());
        self
    }
    /// Sets the data schema URI.
    pub fn dataschema(mut self, schema: impl Into<String>) -> Self {
        self.dataschema = Some(schema.into());
        self
    }
    /// Adds an extension attribute; its name is checked in [`build`](Self::build).
    pub fn extension(mut self, name: impl Into<String>, value: impl Into<ExtensionValue>) -> Self {
        self.extensions.push((name.into(), value.into()));
        self
    }

    /// For an event received from elsewhere: `build` keeps the trace
    /// context the sender gave (or none) and never takes the current span's.
    #[cfg(any(feature = "kafka", feature = "axum"))]
    pub(crate) fn received(mut self) -> Self {
        self.capture_trace = false;
        self
    }

    /// Validates and builds the event.
    pub fn build(self) -> Result<Event, EventError> {
        validate_type(&self.ty)?;
        let mut extensions = BTreeMap::new();
        for (name, value) in self.extensions {
            validate_extension_name(&name)?;
            extensions.insert(name, value);
        }
        check_trace_extensions(&extensions)?;
        if self.capture_trace {
            capture_trace(&mut extensions);
        }
        if self.id.as_deref() == Some("") {
            return Err(EventError::EmptyAttribute { attribute: "id" });
        }
        if self.source.as_deref() == Some("") {
            return Err(EventError::EmptyAttribute {
                attribute: "source",
            });
        }
        let attrs = Attrs {
            id: self.id.map(String::into_boxed_str),
            time: self.time,
            subject: self.subject,
            datacontenttype: self.datacontenttype,
            dataschema: self.dataschema,
            extensions,
        };
        let attrs = (!attrs.is_empty()).then(|| Box::new(attrs));
        Ok(Event::assemble(
            self.ty,
            self.source.map(Text::from),
            Data::Json(Box::new(self.data)),
            attrs,
        ))
    }
}

/// A Rust type that is an event of one fixed type.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct DecisionCaptured {
///     decision_id: String,
///     confidence: f64,
/// }
///
/// impl hookbus::TypedEvent for DecisionCaptured {
///     const TYPE: &'static str = "decision.captured";
/// }
/// ```
///
/// `TYPE` must be a valid event type (see [`validate_type`]); the bus checks it
/// on emit and refuses the event with [`EventError`] otherwise.
///
/// The value is shared between subscribers behind an `Arc` (typed handlers
/// borrow it), hence `Sync`.
pub trait TypedEvent: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The event type, e.g. `decision.captured`.
    const TYPE: &'static str;
}

/// `T::TYPE`'s validity, decided at compile time: emitting a typed event
/// costs no validation at run time.
struct TypeCheck<T>(std::marker::PhantomData<T>);

impl<T: TypedEvent> TypeCheck<T> {
    const VALID: bool = type_is_valid(T::TYPE);
}

/// [`validate_type`] as a `const fn` (true when it would return `Ok`).
const fn type_is_valid(ty: &str) -> bool {
    let b = ty.as_bytes();
    if b.is_empty() || b.len() > MAX_TYPE_LEN || b[0] == b'.' || b[b.len() - 1] == b'.' {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let ok = c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.';
        if !ok || (c == b'.' && i + 1 < b.len() && b[i + 1] == b'.') {
            return false;
        }
        i += 1;
    }
    true
}

/// Anything the bus can emit: an [`Event`] or a [`TypedEvent`] value.
///
/// The bus asks for the type first and builds the event only when some
/// subscriber is interested, so emitting a typed event nobody listens to costs
/// no serialization and no allocation.
pub trait IntoEvent {
    /// The event type this value will have.
    fn event_type(&self) -> &str;
    /// Turns the value into an event.
    fn into_event(self) -> Result<Event, EventError>;
}

impl IntoEvent for Event {
    fn event_type(&self) -> &str {
        &self.ty
    }
    fn into_event(self) -> Result<Event, EventError> {
        Ok(self)
    }
}

impl<T: TypedEvent> IntoEvent for T {
    fn event_type(&self) -> &str {
        T::TYPE
    }
    fn into_event(self) -> Result<Event, EventError> {
        Event::typed(self)
    }
}

// ---- serde: CloudEvents JSON (structured mode) ----

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("specversion", SPEC_VERSION)?;
        m.serialize_entry("id", self.id())?;
        m.serialize_entry("source", self.source())?;
        m.serialize_entry("type", &*self.ty)?;
        m.serialize_entry("time", &self.time_rfc3339())?;
        if let Some(subject) = self.subject() {
            m.serialize_entry("subject", subject)?;
        }
        m.serialize_entry("datacontenttype", self.datacontenttype())?;
        if let Some(schema) = self.dataschema() {
            m.serialize_entry("dataschema", schema)?;
        }
        for (name, value) in self.extensions() {
            match value {
                ExtensionValue::String(v) => m.serialize_entry(name, v)?,
                ExtensionValue::Integer(v) => m.serialize_entry(name, v)?,
                ExtensionValue::Boolean(v) => m.serialize_entry(name, v)?,
            }
        }
        match &self.data {
            // The value's own bytes, as `data_json` makes them: a typed
            // event's fields keep the struct's order.
            Data::Typed(_) => {
                let bytes = self.data_json();
                let text = std::str::from_utf8(&bytes).map_err(serde::ser::Error::custom)?;
                let raw: &serde_json::value::RawValue =
                    serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
                m.serialize_entry("data", raw)?;
            }
            Data::Json(v) => m.serialize_entry("data", v)?,
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

fn string_attr<E: de::Error>(name: &str, v: Value) -> Result<String, E> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(E::custom(format_args!(
            "CloudEvents attribute {name} must be a string, found {other}"
        ))),
    }
}

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CloudEvents 1.0 JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let mut specversion = None;
        let mut builder_ty = None;
        let mut b = Event::builder("");
        // What a sender sent: its trace context or none, never ours.
        b.capture_trace = false;
        let mut id = None;
        let mut source = None;
        let mut time = None;
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if value.is_null() {
                // JSON format §2: a null attribute is unset (and null data
                // is no data).
                continue;
            }
            match key.as_str() {
                "specversion" => specversion = Some(string_attr(&key, value)?),
                "id" => id = Some(string_attr(&key, value)?),
                "type" => builder_ty = Some(string_attr(&key, value)?),
                "source" => source = Some(string_attr(&key, value)?),
                "time" => {
                    let text: String = string_attr(&key, value)?;
                    let t = OffsetDateTime::parse(&text, &Rfc3339).map_err(|e| {
                        de::Error::custom(format_args!(
                            "CloudEvents attribute time {text:?} is not RFC 3339: {e}"
                        ))
                    })?;
                    time = Some(t);
                }
                "subject" => b = b.subject(string_attr::<A::Error>(&key, value)?),
                "datacontenttype" => b = b.datacontenttype(string_attr::<A::Error>(&key, value)?),
                "dataschema" => b = b.dataschema(string_attr::<A::Error>(&key, value)?),
                "data" => b = b.data(value),
                "data_base64" => {
                    return Err(de::Error::custom(
                        "data_base64 (binary data) is not supported: hookbus events carry JSON data",
                    ));
                }
                _ => {
                    let ext = match value {
                        Value::String(s) => ExtensionValue::String(s),
                        Value::Bool(v) => ExtensionValue::Boolean(v),
                        Value::Number(n) if n.is_i64() => {
                            ExtensionValue::Integer(n.as_i64().unwrap_or_default())
                        }
                        other => {
                            return Err(de::Error::custom(format_args!(
                                "extension {key:?} must be a string, integer or boolean, found {other}"
                            )));
                        }
                    };
                    b = b.extension(key, ext);
                }
            }
        }
        match specversion.as_deref() {
            Some(SPEC_VERSION) => {}
            Some(other) => {
                return Err(de::Error::custom(format_args!(
                    "unsupported CloudEvents specversion {other:?}; expected \"1.0\""
                )));
            }
            None => return Err(de::Error::missing_field("specversion")),
        }
        let ty = builder_ty.ok_or_else(|| de::Error::missing_field("type"))?;
        let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
        let source = source.ok_or_else(|| de::Error::missing_field("source"))?;
        b.ty = Cow::Owned(ty);
        b = b.id(id).source(source);
        match time {
            Some(t) => b = b.time(t),
            None => {
                // CloudEvents makes `time` optional: use the time we received
                // it, and say so in the `receivedtime` extension (pushed after
                // the sender's extensions, so it replaces theirs).
                let now = now_utc();
                b = b
                    .time(now)
                    .extension("receivedtime", now.format(&Rfc3339).unwrap_or_default());
            }
        }
        b.build().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Serialize, Deserialize)]
    struct Ordered {
        zeta: u32,
        alpha: u32,
        mid: String,
    }
    impl TypedEvent for Ordered {
        const TYPE: &'static str = "order.kept";
    }

    /// A typed event's JSON keeps the struct's field order in the data and
    /// in the structured envelope, even when its JSON tree (a sorted map)
    /// was made first, e.g. by a filter.
    #[test]
    fn typed_json_keeps_the_struct_field_order() {
        for tree_first in [false, true] {
            let e = Event::typed(Ordered {
                zeta: 1,
                alpha: 2,
                mid: "m".into(),
            })
            .unwrap();
            if tree_first {
                assert_eq!(e.data()["alpha"], 2);
            }
            assert_eq!(&e.data_json()[..], br#"{"zeta":1,"alpha":2,"mid":"m"}"#);
            let structured = String::from_utf8(e.structured_json().to_vec()).unwrap();
            assert!(
                structured.ends_with(r#""data":{"zeta":1,"alpha":2,"mid":"m"}}"#),
                "{structured}"
            );
            let back: Event = serde_json::from_str(&structured).unwrap();
            assert_eq!(back.data(), e.data());
        }
        let dynamic = Event::with_payload(
            "x.y",
            Ordered {
                zeta: 3,
                alpha: 4,
                mid: "n".into(),
            },
        )
        .unwrap();
        assert_eq!(
            &dynamic.data_json()[..],
            br#"{"zeta":3,"alpha":4,"mid":"n"}"#
        );
    }

    #[test]
    fn the_const_type_check_agrees_with_validate_type() {
        for ty in [
            "a", "a.b", "a-b_c.D9", "", ".", "a.", ".a", "a..b", "a b", "a.*", "é",
        ] {
            assert_eq!(type_is_valid(ty), validate_type(ty).is_ok(), "{ty:?}");
        }
        let long = "a".repeat(MAX_TYPE_LEN + 1);
        assert_eq!(type_is_valid(&long), validate_type(&long).is_ok());
    }

    #[test]
    fn an_arc_of_an_event_fits_in_128_bytes() {
        // glibc serves blocks up to 128 bytes (with its 8-byte header) from
        // its fast bins, which a thread frees into without taking the arena
        // lock. Events are made on the emitting thread and freed on a
        // subscriber's: bigger ones made the fan-out benchmark ~1.8x slower.
        let arc = std::mem::size_of::<Event>() + 2 * std::mem::size_of::<usize>();
        assert!(arc + 8 <= 128, "Arc<Event> takes {arc} bytes");
    }

    #[test]
    fn generated_and_given_ids_and_times_read_back() {
        let e = Event::new("a.b", json!(null)).unwrap();
        assert_eq!(uuid::Uuid::parse_str(e.id()).unwrap().get_version_num(), 7);
        assert!((OffsetDateTime::now_utc() - e.time()).whole_seconds().abs() < 60);
        let t = time::macros::datetime!(1600-01-02 03:04:05.123456789 UTC);
        let e = Event::builder("a.b").id("given").time(t).build().unwrap();
        assert_eq!((e.id(), e.time()), ("given", t));
        assert_eq!(e.clone(), e);
    }

    #[test]
    fn generated_ids_are_distinct_v7_and_carry_their_time() {
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| Event::new("a.b", json!(null)).unwrap().id().to_owned())
            .collect();
        assert_eq!(ids.len(), 10_000);
        let e = Event::new("a.b", json!(null)).unwrap();
        let id = uuid::Uuid::parse_str(e.id()).unwrap();
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        let (secs, _) = id.get_timestamp().unwrap().to_unix();
        assert_eq!(secs, e.time().unix_timestamp() as u64);
        // Another thread's ids are distinct too.
        let other = std::thread::spawn(|| Event::new("a.b", json!(null)).unwrap().id().to_owned())
            .join()
            .unwrap();
        assert!(!ids.contains(&other));
    }

    #[test]
    fn json_bytes_are_cached() {
        let e = Event::new("a.b", json!({"x": 1})).unwrap();
        let a = e.data_json();
        let b = e.data_json();
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(&a[..], br#"{"x":1}"#);
    }
}
