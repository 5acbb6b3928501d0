//! Subscribers: a pattern, a condition, a bounded mailbox, and a handler or
//! sink, running as their own task.
//!
//! The data path of one subscriber reads in one direction:
//!
//! ```text
//! emit -> pattern (routing table) -> condition -> mailbox (overflow policy)
//!      -> the subscriber's task: batch (size / wait) -> handler or sink (concurrency) -> stats
//! ```
//!
//! An event reaches only the subscribers whose pattern matches it: the others
//! never see it and cost nothing. Conditions apply **before** an event enters
//! the mailbox, so events a subscriber does not want never take its room.
//! They run on the emitting thread, inside `emit`: keep them cheap and
//! non-blocking (a field comparison, not I/O). A condition that panics is
//! caught; the event counts as filtered and the panic is announced.
//!
//! # Overflow policies
//!
//! Every subscriber has its own bounded mailbox (default capacity 1024; the
//! capacity is a bound, the mailbox grows on demand). When it is full:
//!
//! - [`OverflowPolicy::DropOldest`] (default) evicts the oldest waiting event;
//! - [`OverflowPolicy::DropNewest`] refuses the new one;
//! - [`OverflowPolicy::Block`] refuses the emit: [`Bus::emit`](crate::Bus::emit)
//!   returns [`EmitError::Full`](crate::EmitError::Full) (with the event,
//!   which no subscriber received) and [`Bus::publish`](crate::Bus::publish)
//!   waits for room. This is lossless, and it is the **only** way a subscriber
//!   can push back on emitters, and only on emitters of events it takes.
//!   Lossy subscribers never make `emit` fail: a burst is dropped at the slow
//!   subscriber's own mailbox, and every other subscriber gets every event.
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

mod worker;

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::event::{Event, TypedEvent};
use crate::hub::{Condition, Hub, KeyAttr, Route, RouteKey, RouteSpec};
use crate::pattern::Pattern;
use crate::sink::{Batch, BoxFuture, DeliveryError, HandlerResult, Sink};
use crate::stats::SubscriberStats;

pub use crate::hub::{BatchConfig, OverflowPolicy, SubscribeError, SubscriberOptions};

/// How often, at most, a subscriber announces drops with a `hookbus.dropped`
/// event.
pub const DROP_REPORT_INTERVAL: Duration = Duration::from_millis(250);

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
/// `on_typed` or `sink`. Made by [`Bus::subscriber`](crate::Bus::subscriber).
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
    pub(crate) hub: Arc<Hub>,
    pub(crate) patterns: Result<Vec<Pattern>, SubscribeError>,
    pub(crate) key: Result<Option<RouteKey>, SubscribeError>,
    pub(crate) name: Option<String>,
    pub(crate) options: SubscriberOptions,
    pub(crate) condition: Option<Condition>,
    pub(crate) limit: Option<u64>,
    #[cfg(feature = "durable")]
    pub(crate) store: Option<crate::store::Store>,
}

impl fmt::Debug for SubscriberBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberBuilder")
            .field("patterns", &self.patterns)
            .field("key", &self.key)
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
    /// Routes only events whose attribute `attribute` has the value `value`:
    /// `subject`, `source`, or an extension attribute such as `tenant`. Keyed
    /// routes are indexed by value, so ten thousand subscribers keyed by
    /// tenant cost an emit what the ones under its tenant cost. An event
    /// without the attribute reaches no keyed subscriber.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use hookbus::{Bus, Event};
    /// use serde_json::json;
    ///
    /// let bus = Bus::new()?;
    /// let acme = bus.subscriber("order.*").key("tenant", "acme").stream()?;
    /// let order = Event::builder("order.placed")
    ///     .data(json!({"id": 1}))
    ///     .extension("tenant", "acme")
    ///     .build()?;
    /// bus.emit(order)?;
    /// // Another tenant's event does not reach it.
    /// bus.emit(Event::builder("order.placed").extension("tenant", "globex").build()?)?;
    /// # use tokio_stream::StreamExt;
    /// # let mut acme = acme;
    /// # assert_eq!(acme.next().await.unwrap().extension("tenant").unwrap().to_string(), "acme");
    /// # Ok(()) }
    /// ```
    pub fn key(mut self, attribute: &str, value: impl Into<String>) -> Self {
        let value: String = value.into();
        self.key = KeyAttr::parse(attribute).map(|attr| {
            Some(RouteKey {
                attr,
                value: value.into_boxed_str(),
            })
        });
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
    /// Only events for which `condition` returns true enter the mailbox. It
    /// runs on the emitting thread, inside `emit`: keep it cheap. A
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
    /// Keeps this subscriber's pending events in `store`, so they survive a
    /// crash or a restart: an event is recorded when the subscriber accepts
    /// it and leaves the store when it is delivered, fails for good (then it
    /// is kept as a dead letter) or is dropped by the overflow policy. A
    /// subscriber with the same name on the same store after a restart
    /// delivers what was pending first, with the same event ids, and
    /// resumes webhook retry schedules where they were.
    ///
    /// The subscriber needs a [`name`](Self::name). What "accepted" means
    /// (group commit for `emit`, on disk for `publish`) is described in
    /// [`store`](crate::store).
    #[cfg(feature = "durable")]
    #[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
    pub fn durable(mut self, store: &crate::store::Store) -> Self {
        self.store = Some(store.clone());
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

    /// Finishes with a handler of a typed event. An event emitted as a `T`
    /// value reaches the handler as that very value (shared, no JSON); an
    /// event that arrived as JSON (e.g. from the ingress) is deserialized
    /// into `T`, and data that does not fit `T` counts as a failed delivery.
    pub fn on_typed<T: TypedEvent, R: HandlerResult>(
        self,
        mut handler: impl FnMut(Typed<T>) -> R + Send + 'static,
    ) -> Result<Subscription, SubscribeError> {
        if self.options.batch.is_some() {
            return self.on_batch(move |batch: &Batch| {
                for e in batch.iter() {
                    handler(Typed::of(e)?).into_result()?;
                }
                Ok::<(), DeliveryError>(())
            });
        }
        self.finish(Handler::Sync(Box::new(move |e| {
            handler(Typed::of(e)?).into_result()
        })))
    }

    /// Finishes with a [`Sink`] (webhook, Kafka, your own).
    ///
    /// What the sink [`accepts`](Sink::accepts) is checked after this
    /// builder's own [`filter`](Self::filter).
    pub fn sink(mut self, sink: impl Sink) -> Result<Subscription, SubscribeError> {
        if let Some(accepts) = sink.accepts() {
            self.condition = Some(match self.condition.take() {
                Some(own) => Box::new(move |e: &Event| own(e) && accepts(e)),
                None => Box::new(move |e: &Event| accepts(e)),
            });
        }
        self.finish(Handler::Sink(Box::new(sink)))
    }

    /// Finishes as a [`Stream`](tokio_stream::Stream) of events. The stream's
    /// consumer is the handler: while it does not poll, the mailbox fills and
    /// the overflow policy applies as for any subscriber. Dropping the stream
    /// unsubscribes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tokio_stream::StreamExt;
    ///
    /// let bus = hookbus::Bus::new()?;
    /// let mut stream = bus.subscriber("order.*").capacity(16).stream()?;
    /// bus.emit(hookbus::Event::new("order.placed", serde_json::json!({"id": 1}))?)?;
    /// let event = stream.next().await.unwrap();
    /// assert_eq!(event.event_type(), "order.placed");
    /// # Ok(()) }
    /// ```
    pub fn stream(self) -> Result<EventStream, SubscribeError> {
        if self.options.batch.is_some() {
            return Err(SubscribeError::InvalidOption(
                "a stream yields one event at a time; batching does not apply".into(),
            ));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let subscription = self.on_async(move |e| {
            let tx = tx.clone();
            async move {
                tx.send(e)
                    .await
                    .map_err(|_| DeliveryError::handler("the stream was dropped"))
            }
        })?;
        Ok(EventStream {
            events: tokio_stream::wrappers::ReceiverStream::new(rx),
            _subscription: subscription,
        })
    }

    /// [`sink`](Self::sink), made re-routable: its patterns, key and
    /// condition may be replaced in place later ([`Subscription::reroute`]);
    /// it never shares a ring with other subscribers. The sink's own
    /// `accepts` is not applied (the caller routes with the condition it
    /// wants).
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(crate) fn reroutable_sink(self, sink: impl Sink) -> Result<Subscription, SubscribeError> {
        self.finish_with(Handler::Sink(Box::new(sink)), true)
    }

    fn finish(self, handler: Handler) -> Result<Subscription, SubscribeError> {
        self.finish_with(handler, false)
    }

    fn finish_with(
        self,
        handler: Handler,
        reroutable: bool,
    ) -> Result<Subscription, SubscribeError> {
        let patterns = self.patterns?;
        let key = self.key?;
        self.options.validate()?;
        if self.limit == Some(0) {
            return Err(SubscribeError::InvalidOption(
                "limit must be at least 1".into(),
            ));
        }
        let hub = self.hub;
        if hub.is_closed() {
            return Err(SubscribeError::Closed);
        }
        #[cfg(feature = "durable")]
        let (journal, recovered) = match &self.store {
            Some(store) => {
                let Some(name) = self.name.as_deref() else {
                    return Err(SubscribeError::InvalidOption(
                        "a durable subscriber needs a name (`.name(..)`): its pending events are kept under it and found again by it after a restart".into(),
                    ));
                };
                let (journal, recovered) = store
                    .attach(name, Arc::downgrade(&hub))
                    .map_err(SubscribeError::Store)?;
                (Some(journal), recovered)
            }
            None => (None, Vec::new()),
        };
        #[cfg(not(feature = "durable"))]
        let journal = None;
        let name: Arc<str> = match self.name {
            Some(name) => name.into(),
            None => {
                let list: Vec<&str> = patterns.iter().map(Pattern::as_str).collect();
                format!("on:{}", list.join(",")).into()
            }
        };
        let spec = RouteSpec {
            name,
            patterns,
            key,
            condition: self.condition,
            limit: self.limit,
            journal,
            reroutable,
        };
        let options = self.options;
        let worker_options = options.clone();
        let lifecycle = hub.lifecycle();
        let runtime = hub.runtime.clone();
        let route = hub.register(
            spec,
            &options,
            |_route| {
                #[cfg(feature = "durable")]
                _route.mailbox.restore(recovered);
            },
            move |route| {
                runtime.spawn(worker::Worker::new(route, worker_options, handler, lifecycle).run())
            },
        )?;
        Ok(Subscription {
            route,
            hub: Arc::downgrade(&hub),
            detached: false,
        })
    }
}

/// A typed event handed to an [`on_typed`](SubscriberBuilder::on_typed)
/// handler: the value (also reachable through `Deref`) and the event it came
/// with. Both are shared, not copied.
pub struct Typed<T> {
    /// `None` when the value is the event's own typed payload (read from it,
    /// so handing it over touches one reference count, not two); `Some`
    /// when it was parsed from the event's JSON.
    parsed: Option<Arc<T>>,
    event: Arc<Event>,
}

impl<T: fmt::Debug + Send + Sync + 'static> fmt::Debug for Typed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Typed")
            .field("data", self.data())
            .field("event", &self.event)
            .finish()
    }
}

impl<T> Clone for Typed<T> {
    fn clone(&self) -> Self {
        Typed {
            parsed: self.parsed.clone(),
            event: self.event.clone(),
        }
    }
}

impl<T: TypedEvent> Typed<T> {
    fn of(event: &Arc<Event>) -> Result<Typed<T>, DeliveryError> {
        let parsed = match event.payload_ref::<T>() {
            Some(_) => None,
            None => Some(Arc::new(event.data_as::<T>().map_err(|err| {
                DeliveryError::handler(format!(
                    "event {} data does not fit {}: {err}",
                    event.id(),
                    std::any::type_name::<T>()
                ))
            })?)),
        };
        Ok(Typed {
            parsed,
            event: event.clone(),
        })
    }
}

impl<T: Send + Sync + 'static> Typed<T> {
    /// The value.
    pub fn data(&self) -> &T {
        match &self.parsed {
            Some(data) => data,
            None => self
                .event
                .payload_ref::<T>()
                .expect("a Typed without a parsed value holds an event of its type"),
        }
    }
    /// The value, shared.
    pub fn into_data(self) -> Arc<T> {
        match self.parsed {
            Some(data) => data,
            None => self
                .event
                .payload::<T>()
                .expect("a Typed without a parsed value holds an event of its type"),
        }
    }
}

impl<T> Typed<T> {
    /// The event it came with (id, time, source, extensions).
    pub fn event(&self) -> &Event {
        &self.event
    }
    /// The id of the event it came with.
    pub fn event_id(&self) -> &str {
        self.event.id()
    }
}

impl<T: Send + Sync + 'static> Deref for Typed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.data()
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
    route: Arc<Route>,
    hub: Weak<Hub>,
    detached: bool,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.route.id)
            .field("name", &self.route.name)
            .field("patterns", &self.route.routing.load().patterns)
            .field("key", &self.route.routing.load().key)
            .finish()
    }
}

impl Subscription {
    /// The subscriber's id.
    pub fn id(&self) -> u64 {
        self.route.id
    }
    /// The subscriber's name.
    pub fn name(&self) -> &str {
        &self.route.name
    }
    /// Its counters now: a consistent snapshot (the counts add up).
    pub fn stats(&self) -> SubscriberStats {
        self.route.stats()
    }
    /// Re-routes the subscriber in place (see
    /// [`Hub::reroute`](crate::hub::Hub::reroute)): from now on it takes the
    /// events of `patterns` (and `key`, an attribute and its value) that
    /// `condition` accepts, with the same mailbox, task, counters and store
    /// records. Only a subscriber made with
    /// [`reroutable_sink`](SubscriberBuilder::reroutable_sink) can be;
    /// one that has ended cannot ([`SubscribeError::Closed`]).
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(crate) fn reroute(
        &self,
        patterns: Vec<Pattern>,
        key: Option<(&str, &str)>,
        condition: Option<Condition>,
    ) -> Result<(), SubscribeError> {
        let key = key
            .map(|(attribute, value)| {
                KeyAttr::parse(attribute).map(|attr| RouteKey {
                    attr,
                    value: value.into(),
                })
            })
            .transpose()?;
        let hub = self.hub.upgrade().ok_or(SubscribeError::Closed)?;
        hub.reroute(&self.route, patterns, key, condition)
            .map_err(|e| match e {
                crate::hub::RerouteError::Gone => SubscribeError::Closed,
                other => SubscribeError::InvalidOption(other.to_string()),
            })
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
            if let Some(hub) = self.hub.upgrade() {
                hub.unroute(&self.route);
            }
            if let Some(journal) = &self.route.journal {
                journal.release();
            }
            self.route.request_stop();
        }
    }
}

/// A subscriber as a stream of events; see [`SubscriberBuilder::stream`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled; dropping one unsubscribes"]
pub struct EventStream {
    events: tokio_stream::wrappers::ReceiverStream<Arc<Event>>,
    _subscription: Subscription,
}

impl EventStream {
    /// The subscriber's counters now.
    pub fn stats(&self) -> SubscriberStats {
        self._subscription.stats()
    }
}

impl tokio_stream::Stream for EventStream {
    type Item = Arc<Event>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Arc<Event>>> {
        std::pin::Pin::new(&mut self.events).poll_next(cx)
    }
}
