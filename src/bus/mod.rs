//! The bus: a cheap [`Bus`] handle, the actor behind it, and the interest index.
//!
//! `emit` → interest check → broadcast channel → each subscriber's task
//! (pattern → condition → mailbox → batch → handler or sink) → stats.

mod actor;
mod counter;
mod interest;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::TypedEvent;
use crate::event::{Event, EventError, IntoEvent};
use crate::pattern::{Pattern, PatternError};
use crate::sink::HandlerResult;
use crate::stats::{BusStats, Counters, ShutdownReport};
use crate::subscriber::worker::{Spec, Worker};
use crate::subscriber::{
    Control, EventStream, SubscriberBuilder, SubscriberOptions, Subscription, Typed,
};

use actor::{Actor, Command};
pub(crate) use interest::Interest;

/// Default capacity of the bus channel (events in flight between emitters and
/// subscriber tasks).
pub const DEFAULT_CHANNEL_CAPACITY: usize = 4096;

/// What travels on the broadcast channel.
#[derive(Clone)]
pub(crate) enum Message {
    Event(Arc<Event>),
    /// Dropped by every subscriber as it takes it in; when the last copy goes,
    /// [`Bus::settle`] wakes up.
    Barrier(#[allow(dead_code)] Arc<BarrierGuard>),
}

pub(crate) struct BarrierGuard(Option<oneshot::Sender<()>>);

impl Drop for BarrierGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Why an emit did not put the event on the bus. `Full` and `Closed` give the
/// event back, so nothing is lost.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The bus channel is full: some `Block` subscriber is holding back. Retry,
    /// or use [`Bus::publish`] to wait for room.
    #[error(
        "the bus channel is full (a subscriber with OverflowPolicy::Block is behind); the event was not emitted"
    )]
    Full(Event),
    /// The bus has shut down.
    #[error("the bus is shut down; the event was not emitted")]
    Closed(Event),
    /// The event could not be built (e.g. a typed event's data did not serialize).
    #[error("invalid event: {0}")]
    Invalid(#[from] EventError),
}

impl EmitError {
    /// The event, if the error carries it.
    pub fn into_event(self) -> Option<Event> {
        match self {
            EmitError::Full(e) | EmitError::Closed(e) => Some(e),
            EmitError::Invalid(_) => None,
        }
    }
}

impl fmt::Debug for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::Full(e) => f.debug_tuple("Full").field(&e.id()).finish(),
            EmitError::Closed(e) => f.debug_tuple("Closed").field(&e.id()).finish(),
            EmitError::Invalid(e) => f.debug_tuple("Invalid").field(e).finish(),
        }
    }
}

/// Why a subscriber could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The pattern is invalid.
    #[error("invalid pattern: {0}")]
    Pattern(#[from] PatternError),
    /// An option is out of range.
    #[error("invalid subscriber option: {0}")]
    InvalidOption(String),
    /// The bus has shut down.
    #[error("the bus is shut down")]
    Closed,
}

/// Why a bus could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No Tokio runtime to run the bus on.
    #[error(
        "no Tokio runtime: build the bus inside a runtime (e.g. in #[tokio::main]) or pass one with BusBuilder::runtime"
    )]
    NoRuntime,
    /// A setting is out of range.
    #[error("invalid bus setting: {0}")]
    Invalid(String),
}

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

/// State shared by every [`Bus`] handle.
pub(crate) struct Shared {
    sender: async_broadcast::Sender<Message>,
    pub(crate) interest: Interest,
    source: Option<Cow<'static, str>>,
    defaults: SubscriberOptions,
    runtime: tokio::runtime::Handle,
    commands: mpsc::UnboundedSender<Command>,
    next_id: AtomicU64,
    closed: AtomicBool,
    emitted: AtomicU64,
    unmatched: counter::ThreadCounter,
    rejected_full: AtomicU64,
}

impl Shared {
    fn prepare(&self, mut event: Event) -> Arc<Event> {
        if !event.has_source()
            && let Some(src) = &self.source
        {
            event.set_source(src.clone());
        }
        Arc::new(event)
    }

    #[inline]
    fn emit<E: IntoEvent>(&self, event: E) -> Result<(), EmitError> {
        if !self.interest.wants(event.event_type()) {
            self.unmatched.bump();
            if self.closed.load(Relaxed) {
                return Err(EmitError::Closed(event.into_event()?));
            }
            return Ok(());
        }
        let event = self.prepare(event.into_event()?);
        match self.sender.try_broadcast(Message::Event(event)) {
            Ok(_) => {
                self.emitted.fetch_add(1, Relaxed);
                Ok(())
            }
            Err(async_broadcast::TrySendError::Full(m)) => {
                self.rejected_full.fetch_add(1, Relaxed);
                Err(EmitError::Full(unwrap_message(m)))
            }
            Err(async_broadcast::TrySendError::Closed(m)) => {
                Err(EmitError::Closed(unwrap_message(m)))
            }
            // The last interested subscriber left between the check and the send.
            Err(async_broadcast::TrySendError::Inactive(_)) => {
                self.unmatched.bump();
                Ok(())
            }
        }
    }

    /// Emits one of the bus's own `hookbus.*` events; never waits, never fails
    /// loudly (they are also in the stats and the log).
    pub(crate) fn emit_internal(&self, ty: &'static str, data: Value) {
        let _ = self.emit(Event::unchecked(Cow::Borrowed(ty), data));
    }

    pub(crate) fn subscriber_ended(&self, id: u64) {
        let _ = self.commands.send(Command::Ended(id));
    }
}

fn unwrap_message(m: Message) -> Event {
    match m {
        Message::Event(arc) => Arc::try_unwrap(arc).unwrap_or_else(|arc| (*arc).clone()),
        Message::Barrier(_) => unreachable!("emit only sends events"),
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
    shared: Arc<Shared>,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("capacity", &self.shared.sender.capacity())
            .field("closed", &self.shared.closed.load(Relaxed))
            .finish()
    }
}

/// Builds a [`Bus`]; see [`Bus::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct BusBuilder {
    capacity: usize,
    source: Option<Cow<'static, str>>,
    defaults: SubscriberOptions,
    runtime: Option<tokio::runtime::Handle>,
}

impl BusBuilder {
    /// Capacity of the bus channel (default [`DEFAULT_CHANNEL_CAPACITY`]).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
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
    /// The runtime to run subscriber tasks on (default: the current one).
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Builds the bus and starts its actor.
    pub fn build(self) -> Result<Bus, BuildError> {
        if self.capacity == 0 {
            return Err(BuildError::Invalid(
                "channel capacity must be at least 1".into(),
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
        let (mut sender, receiver) = async_broadcast::broadcast(self.capacity);
        sender.set_await_active(false);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            sender,
            interest: Interest::default(),
            source: self.source,
            defaults: self.defaults,
            runtime: runtime.clone(),
            commands,
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            emitted: AtomicU64::new(0),
            unmatched: counter::ThreadCounter::default(),
            rejected_full: AtomicU64::new(0),
        });
        let actor = Actor::new(command_rx, receiver.deactivate());
        runtime.spawn(actor.run());
        Ok(Bus { shared })
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
            capacity: DEFAULT_CHANNEL_CAPACITY,
            source: None,
            defaults: SubscriberOptions::default(),
            runtime: None,
        }
    }

    /// Emits an event without blocking or awaiting; safe on hot paths and from
    /// threads outside the runtime.
    ///
    /// An event no subscriber's pattern matches is counted and dropped at once
    /// (for a [`TypedEvent`] it is not even serialized). Otherwise it goes on the
    /// bus channel. `Err(EmitError::Full)` means a `Block` subscriber is behind
    /// and the channel is full; the error gives the event back.
    #[inline]
    pub fn emit<E: IntoEvent>(&self, event: E) -> Result<(), EmitError> {
        self.shared.emit(event)
    }

    /// Emits an event built from a type and a JSON payload (e.g. from dynamic
    /// code). The type is validated.
    pub fn emit_json(&self, event_type: &str, data: Value) -> Result<(), EmitError> {
        if !self.shared.interest.wants(event_type) {
            crate::event::validate_type(event_type)?;
        }
        self.emit(Event::new(event_type.to_owned(), data)?)
    }

    /// Whether some subscriber would receive events of this type now. Use it to
    /// skip building expensive payloads nobody wants.
    #[inline]
    pub fn has_subscribers(&self, event_type: &str) -> bool {
        self.shared.interest.wants(event_type)
    }

    /// Emits an event, waiting for room in the bus channel (back-pressure from
    /// `Block` subscribers). Never waits on other subscribers.
    pub async fn publish<E: IntoEvent>(&self, event: E) -> Result<(), EmitError> {
        let shared = &self.shared;
        if !shared.interest.wants(event.event_type()) {
            shared.unmatched.bump();
            if shared.closed.load(Relaxed) {
                return Err(EmitError::Closed(event.into_event()?));
            }
            return Ok(());
        }
        let event = shared.prepare(event.into_event()?);
        match shared.sender.broadcast_direct(Message::Event(event)).await {
            Ok(_) => {
                shared.emitted.fetch_add(1, Relaxed);
                Ok(())
            }
            Err(async_broadcast::SendError(m)) => {
                if shared.sender.is_closed() {
                    Err(EmitError::Closed(unwrap_message(m)))
                } else {
                    shared.unmatched.bump();
                    Ok(())
                }
            }
        }
    }

    /// Starts configuring a subscriber for `pattern` (an event type, `*`, or a
    /// dotted wildcard such as `decision.*` / `decision.**`).
    pub fn subscriber(&self, pattern: impl IntoPattern) -> SubscriberBuilder {
        SubscriberBuilder {
            bus: self.clone(),
            pattern: pattern.into_pattern().map_err(SubscribeError::from),
            name: None,
            options: self.shared.defaults.clone(),
            condition: None,
            limit: None,
        }
    }

    /// Subscribes a sync closure to `pattern`. The returned [`Subscription`]
    /// unsubscribes when dropped; call `.detach()` to keep it.
    pub fn on<R: HandlerResult>(
        &self,
        pattern: impl IntoPattern,
        handler: impl FnMut(&Event) -> R + Send + 'static,
    ) -> Result<Subscription, SubscribeError> {
        self.subscriber(pattern).on(handler)
    }

    /// Subscribes an async closure to `pattern`.
    pub fn on_async<F, R>(
        &self,
        pattern: impl IntoPattern,
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
    pub fn stream(&self, pattern: impl IntoPattern) -> Result<EventStream, SubscribeError> {
        self.subscriber(pattern).stream()
    }

    /// Subscribes for the next matching event only.
    pub fn once<R: HandlerResult>(
        &self,
        pattern: impl IntoPattern,
        handler: impl FnMut(&Event) -> R + Send + 'static,
    ) -> Result<Subscription, SubscribeError> {
        self.subscriber(pattern).limit(1).on(handler)
    }

    /// Subscribes for the next `n` matching events.
    pub fn many<R: HandlerResult>(
        &self,
        pattern: impl IntoPattern,
        n: u64,
        handler: impl FnMut(&Event) -> R + Send + 'static,
    ) -> Result<Subscription, SubscribeError> {
        self.subscriber(pattern).limit(n).on(handler)
    }

    /// Waits until every subscriber has taken in (filtered, queued or dropped)
    /// every event emitted before this call. It does not wait for handlers.
    /// A stalled subscriber with [`OverflowPolicy::Block`](crate::OverflowPolicy::Block)
    /// and a full mailbox takes nothing in, so `settle` waits for it too:
    /// bound it with `tokio::time::timeout` if that can happen.
    pub async fn settle(&self) {
        let (tx, rx) = oneshot::channel();
        let guard = Arc::new(BarrierGuard(Some(tx)));
        // If the channel is closed or nobody listens, the guard is dropped
        // right here and `rx` resolves at once.
        let _ = self
            .shared
            .sender
            .broadcast_direct(Message::Barrier(guard))
            .await;
        let _ = rx.await;
    }

    /// Counters of the bus and of every live subscriber.
    pub async fn stats(&self) -> BusStats {
        let (tx, rx) = oneshot::channel();
        let _ = self.shared.commands.send(Command::Stats(tx));
        let subscribers = rx.await.unwrap_or_default();
        BusStats {
            emitted: self.shared.emitted.load(Relaxed),
            unmatched: self.shared.unmatched.get(),
            rejected_full: self.shared.rejected_full.load(Relaxed),
            channel_len: self.shared.sender.len() as u64,
            subscribers,
        }
    }

    /// Shuts the bus down: stops intake (later emits return
    /// [`EmitError::Closed`]), lets every subscriber take in what the channel
    /// still holds, drain its mailbox, flush its partial batch and finish its
    /// handlers, then closes sinks. Whatever is not done within `timeout` is
    /// abandoned and reported as pending. Every [`Bus`] handle sees the shutdown.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let deadline = tokio::time::Instant::now() + timeout;
        self.shared.closed.store(true, SeqCst);
        let (tx, rx) = oneshot::channel();
        // The actor hears of the shutdown before any subscriber can see the
        // channel close, finish and report itself ended: an ended subscriber
        // is then kept for the report instead of being forgotten.
        let _ = self.shared.commands.send(Command::Shutdown {
            deadline,
            reply: tx,
        });
        self.shared.sender.close();
        let subscribers = rx.await.unwrap_or_default();
        ShutdownReport {
            emitted: self.shared.emitted.load(Relaxed),
            unmatched: self.shared.unmatched.get(),
            rejected_full: self.shared.rejected_full.load(Relaxed),
            subscribers,
        }
    }

    /// Whether the bus has been shut down.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(SeqCst)
    }

    /// The runtime the bus's tasks run on.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.shared.runtime
    }

    /// A weak reference to the bus state, for parts that live inside the bus
    /// (such as webhook sinks announcing `hookbus.endpoint_disabled`) and must
    /// not keep it alive.
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Shared> {
        Arc::downgrade(&self.shared)
    }

    pub(crate) fn spawn_subscriber(&self, spec: Spec) -> Result<Subscription, SubscribeError> {
        let shared = &self.shared;
        if shared.closed.load(SeqCst) {
            return Err(SubscribeError::Closed);
        }
        let id = shared.next_id.fetch_add(1, Relaxed);
        // The receiver exists before the interest is published, so every event
        // emitted after `on` returns reaches this subscriber.
        let rx = shared.sender.new_receiver();
        shared.interest.add(id, spec.pattern.clone());
        let counters = Arc::new(Counters::default());
        let control = Arc::new(Control::default());
        let name = spec.name.clone();
        let pattern = spec.pattern.clone();
        let worker = Worker::new(
            id,
            spec,
            rx,
            counters.clone(),
            control.clone(),
            Arc::downgrade(shared),
        );
        let join = shared.runtime.spawn(worker.run());
        let _ = shared.commands.send(Command::Register(actor::Entry {
            id,
            name: name.clone(),
            pattern: pattern.clone(),
            counters: counters.clone(),
            control: control.clone(),
            join,
        }));
        Ok(Subscription {
            id,
            name,
            pattern,
            control,
            counters,
            bus: Arc::downgrade(shared),
            detached: false,
        })
    }
}
