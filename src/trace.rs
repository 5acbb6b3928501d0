//! Trace propagation: the CloudEvents distributed-tracing extension
//! (`traceparent`, `tracestate`) with W3C Trace Context values.
//!
//! An event may carry the `traceparent` and `tracestate` extensions. Their
//! values are checked when the event is built ([`TraceParent::parse`],
//! [`TraceState::parse`]): a malformed value is refused with
//! [`EventError::InvalidTraceContext`](crate::EventError::InvalidTraceContext),
//! so a malformed value never reaches a bus, a webhook or a Kafka topic.
//!
//! # Where the values travel
//!
//! | binding | the extension | the W3C transport header |
//! |---|---|---|
//! | webhook, binary mode | `ce-traceparent`, `ce-tracestate` | `traceparent`, `tracestate` (same values) |
//! | webhook, structured and batched | in the JSON body | `traceparent`, `tracestate` of the first event |
//! | Kafka, binary | `ce_traceparent`, `ce_tracestate` | `traceparent`, `tracestate` record headers |
//! | Kafka, structured | in the JSON value | `traceparent`, `tracestate` record headers |
//!
//! Both are sent because the CloudEvents texts differ by version: the 1.0
//! extension text encodes the extension over HTTP as the plain W3C headers;
//! the 1.0.2 text keeps the extension as an ordinary attribute (`ce-` in
//! binary mode) and leaves the plain headers to the transport hop, saying
//! that for a single hop both carry the same trace. hookbus sends one hop
//! per delivery, so both carry the same value and either kind of receiver
//! continues the trace.
//!
//! # What the receiving side keeps and what is new
//!
//! The ingress and the Kafka source keep the extension exactly as received
//! (the spec: over several hops the extension carries the *starting* trace,
//! not one hop's). An event received without the extension takes the
//! transport's `traceparent` (and `tracestate`) when that value is valid,
//! as the spec allows a middleware to do. A malformed transport header is
//! ignored, as W3C Trace Context says (never an error, never copied). A
//! malformed extension makes the event malformed: the ingress answers 400
//! and the Kafka source treats the record as undecodable.
//!
//! With the feature `trace`, the receiving side also continues the trace in
//! its own `tracing` span (`hookbus.ingress`, `hookbus.kafka.receive`): the
//! span gets a [`SpanContext`] with the same trace id, a new span id, and
//! the incoming span id as its parent; what hookbus logs there, and any
//! event built there without a context of its own, is in the received
//! trace. Handlers run later, in their subscriber's task, outside that
//! span: a handler continues the trace of the event it handles with
//! [`follow`] (its span becomes a child of the event's `traceparent`), and
//! what it emits inside that span carries the same trace id with the
//! handler's span as parent.
//!
//! # Capturing the current span (feature `trace`)
//!
//! hookbus needs no OpenTelemetry. With the feature `trace`, an event built
//! while a `tracing` span is current (through `bus.emit(value)`,
//! [`Event::new`](crate::Event::new), [`Event::typed`](crate::Event::typed)
//! or the [builder](crate::Event::builder)) and without a `traceparent` of
//! its own gets the span's context: the span's [`SpanContext`] if it has
//! one (see [`attach`]), else one derived from the nearest ancestor that
//! has one (same trace id, a new span id), else a new trace started at the
//! outermost span. Contexts live in the span's extensions, so this needs the
//! subscriber to be `tracing_subscriber`'s `Registry` (the usual
//! `tracing_subscriber::registry().with(..)` set-up); with another
//! subscriber, or none, events get no trace context. Events parsed from JSON
//! or Kafka records never take the current span's context: what they carry
//! is the sender's.
//!
//! ```
//! use hookbus::trace::{TraceParent, TraceState};
//!
//! let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
//! assert_eq!(tp.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert!(tp.sampled());
//!
//! // On an event: checked when built, read back parsed.
//! let event = hookbus::Event::builder("order.placed")
//!     .extension("traceparent", tp.to_string())
//!     .extension("tracestate", "rojo=00f067aa0ba902b7")
//!     .build()?;
//! assert_eq!(event.traceparent(), Some(tp));
//! assert_eq!(event.tracestate(), Some("rojo=00f067aa0ba902b7"));
//!
//! // Malformed values are refused, with the reason.
//! let err = hookbus::Event::builder("order.placed")
//!     .extension("traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")
//!     .build()
//!     .unwrap_err();
//! assert!(err.to_string().contains("lowercase hex"), "{err}");
//! assert!(TraceParent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_err());
//! assert!(TraceState::parse("Bad Key=1").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the feature `trace` and a `Registry` subscriber, an event emitted
//! inside a span carries the span's trace context:
//!
//! ```
//! # #[cfg(feature = "trace")] {
//! let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
//! let span = tracing::info_span!("checkout");
//! let event = span.in_scope(|| hookbus::Event::new("order.placed", serde_json::json!({})))?;
//! let context = hookbus::trace::context_of(&span).expect("the span has a context");
//! assert_eq!(event.traceparent(), Some(context.traceparent()));
//! // Outside any span, no trace context is made up.
//! assert_eq!(hookbus::Event::new("order.placed", serde_json::json!({}))?.traceparent(), None);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

/// The extension attribute that carries the W3C `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// The extension attribute that carries the W3C `tracestate`.
pub const TRACESTATE: &str = "tracestate";

/// Longest `tracestate` accepted, in bytes (W3C: 32 members of at most 256
/// bytes each is the theoretical ceiling; 512 is the size a vendor must
/// propagate).
pub const MAX_TRACESTATE_LEN: usize = 512;

/// What is wrong with a `traceparent` or `tracestate` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceContextError {
    /// The value does not have the shape `version-traceid-parentid-flags`
    /// (2, 32, 16 and 2 hex digits).
    #[error(
        "traceparent must be version-traceid-parentid-flags (2-32-16-2 lowercase hex digits), found {len} bytes"
    )]
    Shape {
        /// The length of the value, in bytes.
        len: usize,
    },
    /// A character where a lowercase hex digit belongs.
    #[error("traceparent has {ch:?} at byte {at}; the fields are lowercase hex digits")]
    NotLowercaseHex {
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// Version `ff`, which W3C Trace Context forbids.
    #[error("traceparent version ff is invalid")]
    ForbiddenVersion,
    /// The trace id is all zeroes.
    #[error("traceparent trace id is all zeroes")]
    ZeroTraceId,
    /// The parent (span) id is all zeroes.
    #[error("traceparent parent id is all zeroes")]
    ZeroParentId,
    /// A `tracestate` that breaks the W3C list rules.
    #[error("tracestate is invalid: {0}")]
    TraceState(TraceStateProblem),
    /// `tracestate` without `traceparent`.
    #[error("tracestate without traceparent: the extension requires traceparent")]
    StateWithoutParent,
    /// The extension is not a string.
    #[error("{0} must be a string")]
    NotAString(&'static str),
}

/// Why a `tracestate` is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceStateProblem {
    /// Longer than [`MAX_TRACESTATE_LEN`].
    TooLong,
    /// More than 32 list members.
    TooManyMembers,
    /// A member is not `key=value`.
    NotKeyValue,
    /// A key is not 1-256 of `a-z 0-9 _ - * / @`, starting with `a-z` or `0-9`.
    BadKey,
    /// A value is not 1-256 printable ASCII characters other than `,` and
    /// `=`, or ends with a space.
    BadValue,
}

impl fmt::Display for TraceStateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceStateProblem::TooLong => "longer than 512 bytes",
            TraceStateProblem::TooManyMembers => "more than 32 members",
            TraceStateProblem::NotKeyValue => "a member is not key=value",
            TraceStateProblem::BadKey => {
                "a key is not 1-256 of a-z 0-9 _ - * / @ starting with a letter or digit"
            }
            TraceStateProblem::BadValue => {
                "a value is not 1-256 printable ASCII characters other than ',' and '='"
            }
        })
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// A W3C trace id: 16 bytes, never all zero. Displayed as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

/// A W3C span (parent) id: 8 bytes, never all zero. Displayed as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId([u8; 8]);

impl TraceId {
    /// The id from its bytes; `None` when all are zero.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<TraceId> {
        (bytes != [0; 16]).then_some(TraceId(bytes))
    }
    /// A random id (122 random bits, from a UUID v4).
    pub fn random() -> TraceId {
        // A v4 UUID is never all zero: its version nibble is 4.
        TraceId(*uuid::Uuid::new_v4().as_bytes())
    }
    /// Its bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }
}

impl SpanId {
    /// The id from its bytes; `None` when all are zero.
    pub fn from_bytes(bytes: [u8; 8]) -> Option<SpanId> {
        (bytes != [0; 8]).then_some(SpanId(bytes))
    }
    /// A random id.
    pub fn random() -> SpanId {
        let mut bytes = [0; 8];
        // Bytes 0..8 of a v4 UUID include its version nibble (byte 6), so
        // they are never all zero.
        bytes.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
        SpanId(bytes)
    }
    /// Its bytes.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// A parsed W3C `traceparent`: version, trace id, parent id, flags.
///
/// Displayed in the version-00 form, `00-<trace id>-<parent id>-<flags>`.
/// A value of a later version is accepted as W3C Trace Context asks (its
/// first four fields parsed, the rest ignored); the event keeps the text it
/// was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: TraceId,
    parent_id: SpanId,
    flags: u8,
}

fn hex_field<const N: usize>(s: &str, start: usize) -> Result<[u8; N], TraceContextError> {
    let mut out = [0u8; N];
    let bytes = s.as_bytes();
    for (i, byte) in out.iter_mut().enumerate() {
        let mut v = 0u8;
        for k in 0..2 {
            let at = start + 2 * i + k;
            let c = bytes[at];
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => {
                    return Err(TraceContextError::NotLowercaseHex {
                        ch: if c.is_ascii() {
                            char::from(c)
                        } else {
                            '\u{fffd}'
                        },
                        at,
                    });
                }
            };
            v = v << 4 | d;
        }
        *byte = v;
    }
    Ok(out)
}

impl TraceParent {
    /// Parses and checks a `traceparent` value: lowercase hex fields of 2,
    /// 32, 16 and 2 digits separated by `-`; version not `ff`; neither id
    /// all zero; version `00` exactly 55 bytes long.
    pub fn parse(value: &str) -> Result<TraceParent, TraceContextError> {
        let b = value.as_bytes();
        let shape = TraceContextError::Shape { len: b.len() };
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(shape);
        }
        if !value.is_char_boundary(55) {
            return Err(shape);
        }
        let [version] = hex_field::<1>(value, 0)?;
        if version == 0xff {
            return Err(TraceContextError::ForbiddenVersion);
        }
        // Version 00 is exactly 55 bytes; a later version may append fields
        // after a '-'.
        if (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return Err(shape);
        }
        let trace_id = TraceId::from_bytes(hex_field::<16>(value, 3)?)
            .ok_or(TraceContextError::ZeroTraceId)?;
        let parent_id = SpanId::from_bytes(hex_field::<8>(value, 36)?)
            .ok_or(TraceContextError::ZeroParentId)?;
        let [flags] = hex_field::<1>(value, 53)?;
        Ok(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A `traceparent` from its parts (version 00).
    pub fn new(trace_id: TraceId, parent_id: SpanId, sampled: bool) -> TraceParent {
        TraceParent {
            trace_id,
            parent_id,
            flags: u8::from(sampled),
        }
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    /// The parent id: the id of the span that sent this value.
    pub fn parent_id(&self) -> SpanId {
        self.parent_id
    }
    /// The trace flags byte.
    pub fn flags(&self) -> u8 {
        self.flags
    }
    /// Whether the `sampled` flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

impl std::str::FromStr for TraceParent {
    type Err = TraceContextError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceParent::parse(s)
    }
}

/// A checked W3C `tracestate`: a comma-separated list of up to 32
/// `key=value` members, at most [`MAX_TRACESTATE_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceState(String);

impl TraceState {
    /// Parses and checks a `tracestate` value (empty members and spaces
    /// around them are allowed, as W3C says).
    pub fn parse(value: &str) -> Result<TraceState, TraceContextError> {
        check_tracestate(value).map_err(TraceContextError::TraceState)?;
        Ok(TraceState(value.to_owned()))
    }
    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_tracestate(value: &str) -> Result<(), TraceStateProblem> {
    if value.len() > MAX_TRACESTATE_LEN {
        return Err(TraceStateProblem::TooLong);
    }
    let mut members = 0;
    for member in value.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        members += 1;
        if members > 32 {
            return Err(TraceStateProblem::TooManyMembers);
        }
        let (key, val) = member
            .split_once('=')
            .ok_or(TraceStateProblem::NotKeyValue)?;
        let key_ok = !key.is_empty()
            && key.len() <= 256
            && key
                .bytes()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && key.bytes().all(|c| {
                c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
            });
        if !key_ok {
            return Err(TraceStateProblem::BadKey);
        }
        let val_ok = !val.is_empty()
            && val.len() <= 256
            && !val.ends_with(' ')
            && val
                .bytes()
                .all(|c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=');
        if !val_ok {
            return Err(TraceStateProblem::BadValue);
        }
    }
    Ok(())
}

/// The trace context of one span: its trace, its own span id, the span it
/// continues (if any), its flags and `tracestate`.
///
/// What it puts on outgoing events and requests is
/// [`traceparent`](SpanContext::traceparent): this span's id as the parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanContext {
    trace_id: TraceId,
    span_id: SpanId,
    parent_id: Option<SpanId>,
    flags: u8,
    state: Option<TraceState>,
}

impl SpanContext {
    /// The start of a new trace: a random trace id and span id, sampled.
    pub fn new_root() -> SpanContext {
        SpanContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            parent_id: None,
            flags: 1,
            state: None,
        }
    }

    /// A span continuing `parent` (received from elsewhere): the same trace
    /// id and flags, a new span id, `parent`'s id as its parent.
    pub fn child_of(parent: &TraceParent, state: Option<TraceState>) -> SpanContext {
        SpanContext {
            trace_id: parent.trace_id,
            span_id: SpanId::random(),
            parent_id: Some(parent.parent_id),
            flags: parent.flags,
            state,
        }
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    /// This span's id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }
    /// The id of the span this one continues, if any.
    pub fn parent_id(&self) -> Option<SpanId> {
        self.parent_id
    }
    /// The `tracestate` that travels with it.
    pub fn tracestate(&self) -> Option<&TraceState> {
        self.state.as_ref()
    }
    /// The `traceparent` to send from this span: its trace id, its own span
    /// id as the parent id, its flags.
    pub fn traceparent(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id,
            parent_id: self.span_id,
            flags: self.flags,
        }
    }
}

/// Reads an incoming `traceparent`/`tracestate` pair leniently, as W3C
/// Trace Context asks of a receiver: a malformed `traceparent` is ignored
/// (and its `tracestate` with it), a malformed `tracestate` alone is dropped.
#[cfg_attr(not(any(feature = "axum", feature = "kafka")), allow(dead_code))]
pub(crate) fn lenient(
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> Option<(TraceParent, Option<TraceState>)> {
    let text = traceparent?.trim();
    let parent = match TraceParent::parse(text) {
        Ok(p) => p,
        Err(error) => {
            tracing::debug!(%error, "hookbus: ignoring a malformed traceparent header");
            return None;
        }
    };
    let state = tracestate.and_then(|s| TraceState::parse(s.trim()).ok());
    Some((parent, state))
}

#[cfg(feature = "trace")]
mod capture {
    use super::{SpanContext, TraceState};
    use tracing_subscriber::Registry;
    use tracing_subscriber::registry::LookupSpan;

    /// The trace context of the current `tracing` span: its own, else one
    /// derived from the nearest ancestor's, else a new trace started at the
    /// outermost span (and remembered there, so sibling spans share it).
    /// `None` when no span is current or the subscriber is not a `Registry`.
    #[cfg_attr(docsrs, doc(cfg(feature = "trace")))]
    pub fn current() -> Option<SpanContext> {
        tracing::dispatcher::get_default(|dispatch| {
            let registry = dispatch.downcast_ref::<Registry>()?;
            let current = dispatch.current_span();
            let span = registry.span(current.id()?)?;
            if let Some(ctx) = span.extensions().get::<SpanContext>() {
                return Some(ctx.clone());
            }
            let mut scope = span.scope();
            scope.next(); // the span itself
            let inherited = scope.find_map(|s| s.extensions().get::<SpanContext>().cloned());
            let ctx = match inherited {
                Some(parent) => SpanContext::child_of(&parent.traceparent(), parent.state),
                None => {
                    let root = span.scope().from_root().next()?;
                    if root.id() == span.id() {
                        SpanContext::new_root()
                    } else {
                        let mut ext = root.extensions_mut();
                        if ext.get_mut::<SpanContext>().is_none() {
                            ext.insert(SpanContext::new_root());
                        }
                        let r = ext.get_mut::<SpanContext>()?;
                        SpanContext::child_of(&r.traceparent(), r.state.clone())
                    }
                }
            };
            let mut ext = span.extensions_mut();
            // Another thread may have set it meanwhile: theirs wins.
            if let Some(existing) = ext.get_mut::<SpanContext>() {
                return Some(existing.clone());
            }
            ext.insert(ctx.clone());
            Some(ctx)
        })
    }

    /// Gives `span` the trace context `ctx` (replacing any it had). Returns
    /// false when it could not: the span is disabled or the subscriber is
    /// not a `Registry`.
    #[cfg_attr(docsrs, doc(cfg(feature = "trace")))]
    pub fn attach(span: &tracing::Span, ctx: SpanContext) -> bool {
        let Some(id) = span.id() else {
            return false;
        };
        span.with_subscriber(|(id2, dispatch)| {
            debug_assert_eq!(&id, id2);
            let Some(registry) = dispatch.downcast_ref::<Registry>() else {
                return false;
            };
            let Some(data) = registry.span(&id) else {
                return false;
            };
            data.extensions_mut().replace(ctx);
            true
        })
        .unwrap_or(false)
    }

    /// Makes `span` continue the trace of `event`: a child of its
    /// `traceparent` (same trace id, a new span id), with its `tracestate`.
    /// Returns false when the event has no trace context or the span could
    /// not take one (see [`attach`]).
    ///
    /// ```
    /// use serde_json::json;
    ///
    /// let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
    /// let received = hookbus::Event::builder("order.placed")
    ///     .extension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    ///     .build()?;
    /// // In a handler: continue the received trace, then emit.
    /// let span = tracing::info_span!("handle_order");
    /// assert!(hookbus::trace::follow(&span, &received));
    /// let follow_up = span.in_scope(|| hookbus::Event::new("order.billed", json!({})))?;
    /// let tp = follow_up.traceparent().unwrap();
    /// assert_eq!(tp.trace_id(), received.traceparent().unwrap().trace_id());
    /// assert_eq!(tp.parent_id(), hookbus::trace::context_of(&span).unwrap().span_id());
    /// # Ok::<(), hookbus::EventError>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "trace")))]
    pub fn follow(span: &tracing::Span, event: &crate::Event) -> bool {
        let Some(parent) = event.traceparent() else {
            return false;
        };
        let state = event.tracestate().and_then(|s| TraceState::parse(s).ok());
        attach(span, SpanContext::child_of(&parent, state))
    }

    /// The trace context `span` carries, if any.
    #[cfg_attr(docsrs, doc(cfg(feature = "trace")))]
    pub fn context_of(span: &tracing::Span) -> Option<SpanContext> {
        span.with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<Registry>()?;
            registry
                .span(id)?
                .extensions()
                .get::<SpanContext>()
                .cloned()
        })
        .flatten()
    }
}

#[cfg(feature = "trace")]
#[cfg_attr(docsrs, doc(cfg(feature = "trace")))]
pub use capture::{attach, context_of, current, follow};

/// Continues a received trace in `span` (feature `trace`; without it, does
/// nothing): the span gets a child context of `parent`.
#[cfg_attr(not(any(feature = "axum", feature = "kafka")), allow(dead_code))]
pub(crate) fn continue_in(span: &tracing::Span, parent: &TraceParent, state: Option<TraceState>) {
    #[cfg(feature = "trace")]
    {
        attach(span, SpanContext::child_of(parent, state));
    }
    #[cfg(not(feature = "trace"))]
    {
        let _ = (span, parent, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let tp = TraceParent::parse(GOOD).unwrap();
        assert_eq!(tp.to_string(), GOOD);
        assert_eq!(tp.parent_id().to_string(), "00f067aa0ba902b7");
        assert!(tp.sampled());
    }

    #[test]
    fn malformed_traceparents_are_refused_never_panic() {
        type Expected = fn(&TraceContextError) -> bool;
        let cases: &[(&str, Expected)] = &[
            ("", |e| matches!(e, TraceContextError::Shape { .. })),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                |e| matches!(e, TraceContextError::Shape { .. }),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                |e| matches!(e, TraceContextError::Shape { .. }),
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                |e| matches!(e, TraceContextError::NotLowercaseHex { ch: 'B', at: 4 }),
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                |e| matches!(e, TraceContextError::ForbiddenVersion),
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                |e| matches!(e, TraceContextError::ZeroTraceId),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                |e| matches!(e, TraceContextError::ZeroParentId),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
                |e| matches!(e, TraceContextError::NotLowercaseHex { at: 54, .. }),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902é7-01",
                |e| {
                    matches!(
                        e,
                        TraceContextError::Shape { .. } | TraceContextError::NotLowercaseHex { .. }
                    )
                },
            ),
        ];
        for (value, expected) in cases {
            let err = TraceParent::parse(value).unwrap_err();
            assert!(expected(&err), "{value:?}: {err:?}");
        }
        // A later version may append fields.
        let later = format!("01{}-extra", &GOOD[2..]);
        assert!(TraceParent::parse(&later).is_ok());
    }

    #[test]
    fn tracestate_rules() {
        assert!(TraceState::parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE").is_ok());
        assert!(TraceState::parse("a@b/c*_-=x, ,d=1 ").is_ok());
        for bad in ["noequals", "Upper=1", "k=a,b=", "k=va=lue", "=v"] {
            assert!(TraceState::parse(bad).is_err(), "{bad:?}");
        }
        let many = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            TraceState::parse(&many),
            Err(TraceContextError::TraceState(
                TraceStateProblem::TooManyMembers
            ))
        );
    }

    proptest::proptest! {
        /// Any text: an answer, never a panic; what is accepted prints back
        /// as it was given (version 00) and has non-zero ids.
        #[test]
        fn parse_never_panics(text in "[0-9a-fA-F\\-é ]{0,60}") {
            if let Ok(tp) = TraceParent::parse(&text) {
                proptest::prop_assert_eq!(tp.to_string(), text.clone());
                proptest::prop_assert!(tp.trace_id().to_bytes() != [0; 16]);
            }
            let _ = TraceState::parse(&text);
        }

        /// One byte of a valid value changed: refused unless it is still a
        /// lowercase hex digit in a field (or the flags).
        #[test]
        fn a_changed_byte_is_caught(at in 0usize..55, byte in proptest::num::u8::ANY) {
            let mut bytes = GOOD.as_bytes().to_vec();
            bytes[at] = byte;
            let Ok(text) = String::from_utf8(bytes) else { return Ok(()) };
            // The same byte again (a separator put back, say) changes nothing.
            let unchanged = GOOD.as_bytes()[at] == byte;
            let still_valid = unchanged
                || (matches!(byte, b'0'..=b'9' | b'a'..=b'f')
                    && ![2, 35, 52].contains(&at)
                    && !(at < 2 && text.starts_with("ff")));
            proptest::prop_assert_eq!(TraceParent::parse(&text).is_ok(), still_valid, "{}", text);
        }
    }

    #[test]
    fn a_malformed_header_is_ignored_a_valid_one_kept() {
        assert!(lenient(Some("garbage"), Some("a=b")).is_none());
        let (tp, state) = lenient(Some(GOOD), Some("Bad=1")).unwrap();
        assert_eq!(tp.to_string(), GOOD);
        assert!(state.is_none());
    }
}
