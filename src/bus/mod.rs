//! The bus: a cheap [`Bus`] handle over the core that routes events to
//! subscribers.
//!
//! `emit` → interest filter → routing table (exact types, wildcard trie) →
//! each matching subscriber's condition and mailbox → its task (batch →
//! handler or sink) → stats.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::Value;

use crate::TypedEvent;
use crate::event::{Event, IntoEvent};
use crate::hub::Hub;
use crate::pattern::{Pattern, PatternError};
use crate::sink::HandlerResult;
use crate::stats::{BusStats, ShutdownReport};
use crate::subscriber::{EventStream, SubscriberBuilder, SubscriberOptions, Subscription, Typed};

pub use crate::hub::{BuildError, DEFAULT_TAP_CAPACITY, EmitError, SubscribeError, Tap};

/// How long shutdown waits for a durable subscriber before it keeps its
/// pending events in the store; see [`BusBuilder::durable_grace`].
pub const DEFAULT_DURABLE_GRACE: Duration = Duration::from_secs(1);

/// The default mailbox capacity of a subscriber (what
/// [`BusBuilder::capacity`] sets for every subscriber of a bus).
pub const DEFAULT_MAILBOX_CAPACITY: usize = 1024;

/// Anything that names a pattern: `&str`, `String`, [`Pattern`].
pub trait IntoPattern {
    /// Parses (or passes through) the pattern.
    fn into_pattern(self) -> Result<Pattern, PatternError>;
}

impl IntoPattern for &str {
    fn into_pattern(self) -> Result<Pattern, PatternError> {
        Pattern::new(self)
    }
}
impl IntoPattern for String {
    fn into_pattern(self) -> Result<Pattern, PatternError> {
        Pattern::new(&self)
    }
}
impl IntoPattern for &String {
    fn into_pattern(self) -> Result<Pattern, PatternError> {
        Pattern::new(self)
    }
}
impl IntoPattern for Pattern {
    fn into_pattern(self) -> Result<Pattern, PatternError> {
        Ok(self)
    }
}
impl IntoPattern for &Pattern {
    fn into_pattern(self) -> Result<Pattern, PatternError> {
        Ok(self.clone())
    }
}

/// One pattern or several: anything [`IntoPattern`], or an array, slice or
/// `Vec` of them. A subscriber with several patterns takes an event whose
/// type matches any of them, once, however many match.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = hookbus::Bus::new()?;
/// let sub = bus.on(["order.placed", "order.paid", "refund.*"], |e| println!("{}", e.event_type()))?;
/// # drop(sub);
/// # Ok(()) }
/// ```
pub trait IntoPatterns {
    /// Parses (or passes through) the patterns; at least one.
    fn into_patterns(self) -> Result<Vec<Pattern>, PatternError>;
}

impl<T: IntoPattern> IntoPatterns for T {
    fn into_patterns(self) -> Result<Vec<Pattern>, PatternError> {
        Ok(vec![self.into_pattern()?])
    }
}

fn collect_patterns<T: IntoPattern>(
    items: impl IntoIterator<Item = T>,
) -> Result<Vec<Pattern>, PatternError> {
    let patterns = items
        .into_iter()
        .map(IntoPattern::into_pattern)
        .collect::<Result<Vec<_>, _>>()?;
    if patterns.is_empty() {
        return Err(PatternError::NoPatterns);
    }
    Ok(patterns)
}

impl<T: IntoPattern, const N: usize> IntoPatterns for [T; N] {
    fn into_patterns(self) -> Result<Vec<Pattern>, PatternError> {
        collect_patterns(self)
    }
}

impl<T: IntoPattern> IntoPatterns for Vec<T> {
    fn into_patterns(self) -> Result<Vec<Pattern>, PatternError> {
        collect_patterns(self)
    }
}

impl<'a, T> IntoPatterns for &'a [T]
where
    &'a T: IntoPattern,
{
    fn into_patterns(self) -> Result<Vec<Pattern>, PatternError> {
        collect_patterns(self)
    }
}

/// A handle to an event bus. Cheap to clone (`Arc` inside), `Send + Sync`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use hookbus::{Bus, Event};
/// use serde_json::json;
/// use std::time::Duration;
///
/// let bus = Bus::new()?;
/// bus.on("decision.*", |e| println!("{} {}", e.event_type(), e.data()))?.detach();
/// bus.emit(Event::new("decision.captured", json!({"decision_id": "abc123"}))?)?;
/// let report = bus.shutdown(Duration::from_secs(5)).await;
/// assert_eq!(report.subscribers[0].stats.delivered, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Bus {
    hub: Arc<Hub>,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("default_capacity", &self.hub.defaults.capacity)
            .field("closed", &self.hub.is_closed())
            .finish()
    }
}

/// Builds a [`Bus`]; see [`Bus::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct BusBuilder {
    source: Option<Cow<'static, str>>,
    defaults: SubscriberOptions,
    runtime: Option<tokio::runtime::Handle>,
    tap_capacity: usize,
    durable_grace: Duration,
}

impl BusBuilder {
    /// The default mailbox capacity of this bus's subscribers (default
    /// [`DEFAULT_MAILBOX_CAPACITY`]); the same as setting `capacity` in
    /// [`default_options`](Self::default_options). Each subscriber can still
    /// set its own.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.defaults.capacity = capacity;
        self
    }
    /// The `source` given to events emitted without one (default `hookbus`).
    pub fn source(mut self, source: impl Into<Cow<'static, str>>) -> Self {
        self.source = Some(source.into());
        self
    }
    /// Default mailbox settings for every subscriber of this bus.
    pub fn default_options(mut self, options: SubscriberOptions) -> Self {
        self.defaults = options;
        self
    }
    /// Events the broadcast ring of [`Bus::tap`] holds for a tap that falls
    /// behind (default [`DEFAULT_TAP_CAPACITY`]):
    /// a tap further behind skips the oldest and counts them as lagged.
    pub fn tap_capacity(mut self, capacity: usize) -> Self {
        self.tap_capacity = capacity;
        self
    }
    /// How long [`Bus::shutdown`] lets a durable subscriber finish what it
    /// has under way before it keeps the rest in its store for the next
    /// start (default [`DEFAULT_DURABLE_GRACE`]; never past the shutdown's
    /// own deadline). See [`Bus::shutdown`].
    pub fn durable_grace(mut self, grace: Duration) -> Self {
        self.durable_grace = grace;
        self
    }
    /// The runtime to run subscriber tasks on (default: the current one).
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Builds the bus.
    pub fn build(self) -> Result<Bus, BuildError> {
        if self.defaults.capacity == 0 {
            return Err(BuildError::Invalid(
                "mailbox capacity must be at least 1".into(),
            ));
        }
        if self.tap_capacity == 0 {
            return Err(BuildError::Invalid(
                "tap capacity must be at least 1".into(),
            ));
        }
        if self.source.as_deref() == Some("") {
            return Err(BuildError::Invalid("source must not be empty".into()));
        }
        self.defaults
            .validate()
            .map_err(|e| BuildError::Invalid(format!("default options: {e}")))?;
        let runtime = match self.runtime {
            Some(h) => h,
            None => tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?,
        };
        // The bus actor starts with the hub it serves (it holds it weakly:
        // the `Bus` handles own the hub, the actor only its lifecycle).
        let hub = Arc::new_cyclic(|hub| {
            let lifecycle = crate::hub::Lifecycle::spawn(hub.clone(), &runtime);
            Hub::new(
                self.source,
                self.defaults,
                runtime,
                self.tap_capacity,
                self.durable_grace,
                lifecycle,
            )
        });
        Ok(Bus { hub })
    }
}

impl Bus {
    /// A bus with default settings, on the current Tokio runtime.
    pub fn new() -> Result<Bus, BuildError> {
        Bus::builder().build()
    }

    /// A builder for a bus.
    pub fn builder() -> BusBuilder {
        BusBuilder {
            source: None,
            defaults: SubscriberOptions::default(),
            runtime: None,
            tap_capacity: crate::hub::DEFAULT_TAP_CAPACITY,
            durable_grace: DEFAULT_DURABLE_GRACE,
        }
    }

    /// Emits an event without blocking or awaiting; safe on hot paths and from
    /// threads outside the runtime.
    ///
    /// An event no subscriber's pattern matches is counted and dropped at once
    /// (for a [`TypedEvent`] it is not even built). Otherwise it goes straight
    /// into the mailbox of every subscriber it matches and whose condition
    /// accepts it, and nowhere else: the cost grows with the subscribers that
    /// match, not with all of them. A [`TypedEvent`] travels as the value
    /// itself; JSON is made only if a subscriber asks for it.
    ///
    /// Emits are all-or-nothing. `Err(EmitError::Full)` happens in one case
    /// only: a subscriber with [`OverflowPolicy::Block`](crate::OverflowPolicy::Block)
    /// that takes this event has a full mailbox; then no subscriber got it
    /// and the error gives it back. Lossy subscribers never refuse an emit:
    /// they drop at their own mailbox, counted and announced.
    #[inline]
    pub fn emit<E: IntoEvent>(&self, event: E) -> Result<(), EmitError> {
        self.hub.emit(event)
    }

    /// [`emit`](Self::emit), handing the commits of the durable subscribers
    /// that took the event to `commits`: awaited, they say it is on disk.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn emit_into(
        &self,
        event: Event,
        commits: &mut Vec<crate::hub::Commit>,
    ) -> Result<(), EmitError> {
        self.hub.emit_into(event, Some(commits))
    }

    /// Emits an event built from a type and a JSON payload (e.g. from dynamic
    /// code). The type is validated.
    pub fn emit_json(&self, event_type: &str, data: Value) -> Result<(), EmitError> {
        self.emit(Event::new(event_type.to_owned(), data)?)
    }

    /// Emits an event of a type chosen at run time carrying a serializable
    /// value, kept as it is ([`Event::with_payload`]): no JSON tree is built
    /// unless a subscriber asks for JSON. The type is validated.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// #[derive(serde::Serialize)]
    /// struct Reading { celsius: f32 }
    ///
    /// let bus = hookbus::Bus::new()?;
    /// bus.on("sensor.*", |e| assert_eq!(e.payload::<Reading>().unwrap().celsius, 71.5))?.detach();
    /// let room = "boiler";
    /// bus.emit_payload(format!("sensor.{room}"), Reading { celsius: 71.5 })?;
    /// assert!(bus.emit_payload("bad type!", Reading { celsius: 0.0 }).is_err());
    /// # bus.shutdown(std::time::Duration::from_secs(1)).await;
    /// # Ok(()) }
    /// ```
    pub fn emit_payload<T: serde::Serialize + Send + Sync + 'static>(
        &self,
        event_type: impl Into<Cow<'static, str>>,
        payload: T,
    ) -> Result<(), EmitError> {
        self.emit(Event::with_payload(event_type, payload)?)
    }

    /// Whether some subscriber would receive events of this type now. Use it to
    /// skip building expensive payloads nobody wants.
    #[inline]
    pub fn has_subscribers(&self, event_type: &str) -> bool {
        self.hub.wants(event_type)
    }

    /// Emits an event, waiting for room in the mailboxes of `Block`
    /// subscribers that take it (the only back-pressure there is). Never
    /// waits on lossy subscribers. Durable subscribers' stores are waited
    /// for too: `Ok` means the event is on their disks.
    ///
    /// Cancel-safe while it waits for its turn (below), for room, or for a
    /// store that is behind: a future dropped then leaves the event emitted
    /// to nobody. Once the event is taken (then only the wait
    /// for durable stores remains), dropping the future gives up that wait
    /// and nothing else: the event is delivered.
    ///
    /// Like tokio's own channels, `publish` takes part in tokio's
    /// cooperative scheduling: a task publishing in a loop yields to the
    /// other tasks of its worker (often the subscribers it woke) once its
    /// budget is spent, before taking the next event. So it may wait even
    /// with room everywhere: for a call that never waits, use
    /// [`emit`](Self::emit) (not a zero timeout around `publish`), and do
    /// not drive `publish` with a blocking executor
    /// (`futures::executor::block_on`) inside a tokio task, where the turn
    /// it waits for cannot come.
    pub async fn publish<E: IntoEvent>(&self, event: E) -> Result<(), EmitError> {
        self.hub.publish(event).await
    }

    /// [`publish`](Self::publish) once the caller took its turn
    /// (`hub::take_turn`): for the default bus, which looks the bus up after
    /// its turn, so no `setup` can swap it out between the two.
    pub(crate) async fn publish_now<E: IntoEvent>(&self, event: E) -> Result<(), EmitError> {
        self.hub.publish_now(event).await
    }

    /// Starts configuring a subscriber for `pattern` (an event type, `*`, or a
    /// dotted wildcard such as `decision.*` / `decision.**`).
    pub fn subscriber(&self, pattern: impl IntoPatterns) -> SubscriberBuilder {
        SubscriberBuilder {
            hub: self.hub.clone(),
            patterns: pattern.into_patterns().map_err(SubscribeError::from),
            key: Ok(None),
            name: None,
            options: self.hub.defaults.clone(),
            condition: None,
            limit: None,
            #[cfg(feature = "durable")]
            store: None,
        }
    }

    /// Subscribes a sync closure to `pattern`. The returned [`Subscription`]
    /// unsubscribes when dropped; call `.detach()` to keep it.
    pub fn on<R: HandlerResult>(
        &self,
        pattern: impl IntoPatterns,
        handler: impl FnMut(&Event) -> R + Send + 'static,
    ) -> Result<Subscription, SubscribeError> {
        self.subscriber(pattern).on(handler)
    }

    /// Subscribes an async closure to `pattern`.
    pub fn on_async<F, R>(
        &self,
        pattern: impl IntoPatterns,
        handler: impl Fn(Arc<Event>) -> F + Send + Sync + 'static,
    ) -> Result<Subscription, SubscribeError>
    where
        F: std::future::Future<Output = R> + Send + 'static,
        R: HandlerResult,
    {
        self.subscriber(pattern).on_async(handler)
    }

    /// Subscribes a closure to a typed event: `bus.on_typed(|d: Typed<DecisionCaptured>| ..)`.
    pub fn on_typed<T: TypedEvent, R: HandlerResult>(
        &self,
        handler: impl FnMut(Typed<T>) -> R + Send + 'static,
    ) -> Result<Subscription, SubscribeError> {
        self.subscriber(T::TYPE).on_typed(handler)
    }

    /// Subscribes to `pattern` as a [`Stream`](tokio_stream::Stream) of events
    /// (default mailbox settings); see [`SubscriberBuilder::stream`].
    pub fn stream(&self, pattern: impl IntoPatterns) -> Result<EventStream, SubscribeError> {
        self.subscriber(pattern).stream()
    }

    /// Opens a [`Tap`]: an observer of the events whose type matches
    /// `pattern`, read from the bus's broadcast ring. Unlike a subscriber it
    /// has no mailbox: every open tap together costs an emit one write, and
    /// a tap that falls behind skips events and counts them
    /// ([`Tap::lagged`]) instead of slowing anyone. For dashboards, logs and
    /// test probes; see [`Tap`].
    pub fn tap(&self, pattern: impl IntoPatterns) -> Result<Tap, SubscribeError> {
        if self.hub.is_closed() {
            return Err(SubscribeError::Closed);
        }
        let patterns = pattern.into_patterns()?;
        Ok(Tap::open(&self.hub, patterns))
    }

    /// Subscribes for the next matching event only.
    pub fn once<R: HandlerResult>(
        &self,
        pattern: impl IntoPatterns,
        handler: impl FnMut(&Event) -> R + Send + 'static,
    ) -> Result<Subscription, SubscribeError> {
        self.subscriber(pattern).limit(1).on(handler)
    }

    /// Subscribes for the next `n` matching events.
    pub fn many<R: HandlerResult>(
        &self,
        pattern: impl IntoPatterns,
        n: u64,
        handler: impl FnMut(&Event) -> R + Send + 'static,
    ) -> Result<Subscription, SubscribeError> {
        self.subscriber(pattern).limit(n).on(handler)
    }

    /// Counters of the bus and of every live subscriber. Each subscriber's
    /// numbers are one consistent snapshot: they always add up (see
    /// [`stats`](crate::stats)).
    ///
    /// A subscriber is listed from the moment it is created until the bus
    /// actor has seen its task end (a `once` subscriber that fired, an
    /// unsubscribed one that drained): an instant after the task ends, not
    /// at the same instant.
    pub fn stats(&self) -> BusStats {
        BusStats {
            emitted: self.hub.emitted.get(),
            unmatched: self.hub.unmatched.get(),
            rejected_full: self.hub.rejected_full.load(Relaxed),
            subscribers: self.hub.stats(),
        }
    }

    /// Shuts the bus down: stops intake (later emits return
    /// [`EmitError::Closed`]; `on` returns [`SubscribeError::Closed`]), lets
    /// every subscriber drain its mailbox, flush its partial batch and finish
    /// its handlers, then closes sinks.
    ///
    /// The report accounts for every event every subscriber took: delivered,
    /// failed, dropped, or pending. `timeout` is a hard deadline: whatever is
    /// not done by then is abandoned and reported as pending, and nothing
    /// starts after it (no handler is called once `shutdown` has returned).
    /// A sync handler already running at the deadline finishes on its thread;
    /// the report counts it in [`SubscriberReport::unfinished`](crate::SubscriberReport::unfinished).
    ///
    /// **Durable subscribers** (feature `durable`) do not wait out their
    /// backoffs: a webhook backing off for minutes would hold shutdown to its
    /// deadline although its events are safe. A durable subscriber gets
    /// [`BusBuilder::durable_grace`] (default 1 s) to finish what it has
    /// under way; then, once the store has every pending event on disk
    /// (retry schedules included), it stops, and
    /// [`SubscriberReport::kept`](crate::SubscriberReport::kept)
    /// counts what it kept (the report prints `kept N`); the next subscriber
    /// of the same name on the same store delivers them, with the same ids,
    /// resuming their schedules. An in-flight request cut short this way may
    /// have reached its receiver: it is sent again after the restart
    /// (at-least-once; receivers dedupe by event id).
    ///
    /// Taps end once they have read what the broadcast ring holds.
    ///
    /// Every [`Bus`] handle sees the shutdown. Calling it again (from any
    /// handle) returns the first call's report.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let deadline = tokio::time::Instant::now() + timeout;
        let subscribers = self.hub.shutdown(deadline).await;
        ShutdownReport {
            emitted: self.hub.emitted.get(),
            unmatched: self.hub.unmatched.get(),
            rejected_full: self.hub.rejected_full.load(Relaxed),
            subscribers,
        }
    }

    /// Whether the bus has been shut down.
    pub fn is_closed(&self) -> bool {
        self.hub.is_closed()
    }

    /// The runtime the bus's tasks run on.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.hub.runtime
    }

    /// A weak reference to the bus state, for parts that live inside the bus
    /// (such as webhook sinks announcing `hookbus.endpoint_disabled`) and must
    /// not keep it alive.
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Hub> {
        Arc::downgrade(&self.hub)
    }
}
