//! Subscribers: a pattern, a condition, a bounded mailbox, and a handler or
//! sink, running as their own task.
//!
//! The data path of one subscriber reads in one direction:
//!
//! ```text
//! broadcast receiver -> pattern -> condition -> mailbox (overflow policy)
//!                    -> batch (size / wait) -> handler or sink (concurrency) -> stats
//! ```
//!
//! Filters apply **before** an event enters the mailbox, so events a
//! subscriber does not want never take its room.
//!
//! # Overflow policies
//!
//! Every subscriber has its own bounded mailbox (default capacity 1024). When
//! it is full:
//!
//! - [`OverflowPolicy::DropOldest`] (default) evicts the oldest waiting event;
//! - [`OverflowPolicy::DropNewest`] refuses the new one;
//! - [`OverflowPolicy::Block`] stops taking events from the bus until there is
//!   room. This is lossless, and it is the **only** way a subscriber can push
//!   back on emitters: once the bus channel is full too,
//!   [`Bus::publish`](crate::Bus::publish) waits and [`Bus::emit`](crate::Bus::emit)
//!   returns [`EmitError::Full`](crate::EmitError::Full) — for every emitter.
//!   Choose it only for subscribers that must see everything.
//!
//! Drops are counted in [`SubscriberStats::dropped`](crate::SubscriberStats)
//! and announced on the bus as `hookbus.dropped` events, coalesced to at most
//! one per subscriber per [`DROP_REPORT_INTERVAL`].
//!
//! # Handlers
//!
//! Sync handlers (`on`, `on_batch`, `on_typed`) run on the subscriber's own
//! task, one call at a time: keep them short, and use `on_async` or
//! `tokio::task::spawn_blocking` for slow work. Async handlers and sinks run
//! up to [`concurrency`](SubscriberBuilder::concurrency) calls at once. A
//! handler that returns `Err` or panics is counted as failed, announced as a
//! `hookbus.handler_failed` event (`hookbus.delivery_failed` for sinks), and
//! the subscriber keeps running.

pub(crate) mod worker;

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::bus::{Bus, SubscribeError};
use crate::event::{Event, TypedEvent};
use crate::pattern::Pattern;
use crate::sink::{Batch, BoxFuture, DeliveryError, HandlerResult, Sink};
use crate::stats::{Counters, SubscriberStats};

/// How often, at most, a subscriber announces drops with a `hookbus.dropped`
/// event.
pub const DROP_REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// What a subscriber does when its mailbox is full. See the
/// [module docs](self#overflow-policies).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Lossless: stop taking events until there is room; back-pressure reaches
    /// `publish` (and makes `emit` return `Full`) once the bus channel fills.
    Block,
    /// Evict the oldest waiting event to make room (the default).
    #[default]
    DropOldest,
    /// Refuse the new event.
    DropNewest,
}

/// Batching: hand the handler up to `max_size` events at once, waiting at most
/// `max_wait` after the first one for the batch to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchConfig {
    /// Most events in one batch (≥ 1).
    pub max_size: usize,
    /// Longest a partial batch waits before it is delivered anyway.
    #[serde(with = "duration_ms")]
    pub max_wait: Duration,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// The settings every subscriber kind shares. Plain data: it can come from a
/// config file. Defaults: capacity 1024, [`OverflowPolicy::DropOldest`], no
/// batching, concurrency 1.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SubscriberOptions {
    /// Mailbox capacity (≥ 1).
    pub capacity: usize,
    /// What to do when the mailbox is full.
    pub overflow: OverflowPolicy,
    /// Optional batching.
    pub batch: Option<BatchConfig>,
    /// Async handler or sink calls in flight at once (≥ 1).
    pub concurrency: usize,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        SubscriberOptions {
            capacity: 1024,
            overflow: OverflowPolicy::DropOldest,
            batch: None,
            concurrency: 1,
        }
    }
}

impl SubscriberOptions {
    /// Checks the options, saying what is wrong.
    pub fn validate(&self) -> Result<(), SubscribeError> {
        if self.capacity == 0 {
            return Err(SubscribeError::InvalidOption(
                "mailbox capacity must be at least 1".into(),
            ));
        }
        if self.concurrency == 0 {
            return Err(SubscribeError::InvalidOption(
                "concurrency must be at least 1".into(),
            ));
        }
        if let Some(b) = &self.batch {
            if b.max_size == 0 {
                return Err(SubscribeError::InvalidOption(
                    "batch max_size must be at least 1".into(),
                ));
            }
            if b.max_wait.is_zero() {
                return Err(SubscribeError::InvalidOption(
                    "batch max_wait must be more than zero".into(),
                ));
            }
        }
        Ok(())
    }
}

pub(crate) type Condition = Box<dyn Fn(&Event) -> bool + Send + Sync>;

#[allow(clippy::type_complexity)] // four handler shapes, each spelled out once
pub(crate) enum Handler {
    Sync(Box<dyn FnMut(&Arc<Event>) -> Result<(), DeliveryError> + Send>),
    SyncBatch(Box<dyn FnMut(&Batch) -> Result<(), DeliveryError> + Send>),
    Async(Box<dyn Fn(Arc<Event>) -> BoxFuture<Result<(), DeliveryError>> + Send + Sync>),
    Sink(Box<dyn Sink>),
}

impl Handler {
    pub(crate) fn is_sink(&self) -> bool {
        matches!(self, Handler::Sink(_))
    }
}

/// Configures one subscriber; finish with `on`, `on_async`, `on_batch`,
/// `on_typed` or `sink`. Made by [`Bus::subscriber`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use hookbus::{Bus, OverflowPolicy};
/// use std::time::Duration;
///
/// let bus = Bus::new()?;
/// let sub = bus
///     .subscriber("decision.*")
///     .name("confident-batches")
///     .capacity(256)
///     .overflow(OverflowPolicy::DropNewest)
///     .filter(|e| e.data()["confidence"].as_f64() > Some(0.85))
///     .batch(50, Duration::from_millis(200))
///     .on_batch(|batch| println!("{} confident decisions", batch.len()))?;
/// # drop(sub);
/// # Ok(()) }
/// ```
#[must_use = "a SubscriberBuilder does nothing until finished with on(..), on_async(..), on_batch(..) or sink(..)"]
pub struct SubscriberBuilder {
    pub(crate) bus: Bus,
    pub(crate) pattern: Result<Pattern, SubscribeError>,
    pub(crate) name: Option<String>,
    pub(crate) options: SubscriberOptions,
    pub(crate) condition: Option<Condition>,
    pub(crate) limit: Option<u64>,
}

impl fmt::Debug for SubscriberBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberBuilder")
            .field("pattern", &self.pattern)
            .field("name", &self.name)
            .field("options", &self.options)
            .field("condition", &self.condition.is_some())
            .field("limit", &self.limit)
            .finish()
    }
}

impl SubscriberBuilder {
    /// Names the subscriber (shown in stats, reports, logs and failure events).
    /// Default: `on:<pattern>`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets all shared options at once.
    pub fn options(mut self, options: SubscriberOptions) -> Self {
        self.options = options;
        self
    }
    /// Mailbox capacity.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.options.capacity = capacity;
        self
    }
    /// Overflow policy.
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.options.overflow = policy;
        self
    }
    /// Only events for which `condition` returns true enter the mailbox. A
    /// panicking condition counts the event as filtered and is reported.
    pub fn filter(mut self, condition: impl Fn(&Event) -> bool + Send + Sync + 'static) -> Self {
        self.condition = Some(Box::new(condition));
        self
    }
    /// Batching: up to `max_size` events per call, a partial batch waits at
    /// most `max_wait`.
    pub fn batch(mut self, max_size: usize, max_wait: Duration) -> Self {
        self.options.batch = Some(BatchConfig { max_size, max_wait });
        self
    }
    /// Async handler or sink calls in flight at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.options.concurrency = n;
        self
    }
    /// Take at most `n` events, then unsubscribe (`many(n)`; `once` is `n = 1`).
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Finishes with a sync handler called once per event.
    pub fn on<R: HandlerResult>(
        self,
        mut handler: impl FnMut(&Event) -> R + Send + 'static,
    ) -> Result<Subscription, SubscribeError> {
        if self.options.batch.is_some() {
            // A per-event handler with batching: call it for each event in turn.
            return self.on_batch(move |batch: &Batch| {
                for e in batch.iter() {
                    handler(e).into_result()?;
                }
                Ok::<(), DeliveryError>(())
            });
        }
        self.finish(Handler::Sync(Box::new(move |e| handler(e).into_result())))
    }

    /// Finishes with an async handler; up to `concurrency` run at once.
    pub fn on_async<F, R>(
        self,
        handler: impl Fn(Arc<Event>) -> F + Send + Sync + 'static,
    ) -> Result<Subscription, SubscribeError>
    where
        F: Future<Output = R> + Send + 'static,
        R: HandlerResult,
    {
        if self.options.batch.is_some() {
            return Err(SubscribeError::InvalidOption(
                "on_async takes one event per call; with batching use sink(..) or on_batch(..)"
                    .into(),
            ));
        }
        self.finish(Handler::Async(Box::new(move |e| {
            let fut = handler(e);
            Box::pin(async move { fut.await.into_result() })
        })))
    }

    /// Finishes with a sync handler that receives batches (configure them with
    /// [`batch`](Self::batch); without it every batch holds one event).
    pub fn on_batch<R: HandlerResult>(
        self,
        mut handler: impl FnMut(&Batch) -> R + Send + 'static,
    ) -> Result<Subscription, SubscribeError> {
        self.finish(Handler::SyncBatch(Box::new(move |b| {
            handler(b).into_result()
        })))
    }

    /// Finishes with a handler of a typed event: the data is deserialized into
    /// `T`; data that does not fit `T` counts as a failed delivery.
    pub fn on_typed<T: TypedEvent, R: HandlerResult>(
        self,
        mut handler: impl FnMut(Typed<T>) -> R + Send + 'static,
    ) -> Result<Subscription, SubscribeError> {
        self.on(move |e: &Event| match e.data_as::<T>() {
            Ok(data) => handler(Typed {
                data,
                event_id: e.id().to_owned(),
            })
            .into_result(),
            Err(err) => Err(DeliveryError::handler(format!(
                "event {} data does not fit {}: {err}",
                e.id(),
                std::any::type_name::<T>()
            ))),
        })
    }

    /// Finishes with a [`Sink`] (webhook, Kafka, your own).
    pub fn sink(self, sink: impl Sink) -> Result<Subscription, SubscribeError> {
        self.finish(Handler::Sink(Box::new(sink)))
    }

    fn finish(self, handler: Handler) -> Result<Subscription, SubscribeError> {
        let pattern = self.pattern?;
        self.options.validate()?;
        if self.limit == Some(0) {
            return Err(SubscribeError::InvalidOption(
                "limit must be at least 1".into(),
            ));
        }
        let name = self.name.unwrap_or_else(|| format!("on:{pattern}"));
        self.bus.spawn_subscriber(worker::Spec {
            name: name.into(),
            pattern,
            options: self.options,
            condition: self.condition,
            limit: self.limit,
            handler,
        })
    }
}

/// A typed event handed to an [`on_typed`](SubscriberBuilder::on_typed)
/// handler: the data as `T` (also reachable through `Deref`) and the event id.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed<T> {
    /// The deserialized data.
    pub data: T,
    /// The id of the event it came from.
    pub event_id: String,
}

impl<T> Deref for Typed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

/// Shared between a subscriber's task and its [`Subscription`] handle.
#[derive(Debug, Default)]
pub(crate) struct Control {
    pub(crate) stop: AtomicBool,
    pub(crate) abort: AtomicBool,
    pub(crate) wake: Notify,
    /// Set by shutdown: when the sink's `close` must be done.
    pub(crate) deadline: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Control {
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
    pub(crate) fn request_abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// The handle of a running subscriber.
///
/// **Dropping it unsubscribes**: from that moment no new event reaches the
/// subscriber; it delivers what its mailbox had already accepted, and ends. To keep a subscriber
/// for the life of the bus without holding the handle, call
/// [`detach`](Subscription::detach).
#[must_use = "dropping a Subscription unsubscribes at once; call .detach() to keep it running"]
pub struct Subscription {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    pub(crate) pattern: Pattern,
    pub(crate) control: Arc<Control>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) bus: std::sync::Weak<crate::bus::Shared>,
    pub(crate) detached: bool,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("pattern", &self.pattern)
            .finish()
    }
}

impl Subscription {
    /// The subscriber's id.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The subscriber's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Its counters now.
    pub fn stats(&self) -> SubscriberStats {
        self.counters
            .snapshot(self.id, &self.name, self.pattern.as_str())
    }
    /// Unsubscribes now (the same as dropping the handle).
    pub fn unsubscribe(self) {
        drop(self)
    }
    /// Keeps the subscriber running until the bus shuts down (or, for
    /// `once`/`many`, until it has taken its events).
    pub fn detach(mut self) {
        self.detached = true;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if !self.detached {
            if let Some(bus) = self.bus.upgrade() {
                bus.interest.remove(self.id);
            }
            self.control.request_stop();
        }
    }
}
