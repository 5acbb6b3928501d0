//! The seam every subscriber kind plugs into: a [`Sink`] takes a batch of
//! events and reports an outcome.
//!
//! Closures registered with [`Bus::on`](crate::Bus::on) are the built-in sink
//! kind; webhooks and Kafka producers implement [`Sink`] and are attached with
//! [`SubscriberBuilder::sink`](crate::SubscriberBuilder::sink). The subscriber
//! machinery (pattern, condition, mailbox, overflow policy, batching,
//! concurrency, stats, failure events, shutdown) is the same for all of them:
//! a sink only delivers.
//!
//! ```
//! use hookbus::sink::SinkFuture;
//! use hookbus::{Batch, Bus, DeliveryError, Sink};
//! use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
//!
//! /// Counts what it is given.
//! struct Counter(Arc<AtomicUsize>);
//!
//! impl Sink for Counter {
//!     fn deliver(&self, batch: Batch) -> SinkFuture {
//!         let n = self.0.clone();
//!         Box::pin(async move {
//!             n.fetch_add(batch.len(), Ordering::SeqCst);
//!             Ok::<(), DeliveryError>(())
//!         })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = Bus::new()?;
//! let seen = Arc::new(AtomicUsize::new(0));
//! let _sub = bus.subscriber("order.*").name("counter").sink(Counter(seen.clone()))?;
//! bus.emit(hookbus::Event::new("order.placed", serde_json::json!({}))?)?;
//! bus.shutdown(std::time::Duration::from_secs(1)).await;
//! assert_eq!(seen.load(Ordering::SeqCst), 1);
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::event::Event;
use crate::hub::Journal;

/// A boxed, sendable future, as sinks return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What [`Sink::deliver`] returns.
pub type SinkFuture = BoxFuture<Result<(), DeliveryError>>;

/// The events handed to a sink or batch handler in one call, oldest first.
/// Without batching it holds exactly one event.
#[derive(Clone, Default)]
pub struct Batch {
    events: Vec<Arc<Event>>,
    /// The durable subscriber's journal, for sinks that persist where a
    /// retry schedule is (the webhook sink).
    journal: Option<Arc<dyn Journal>>,
}

impl PartialEq for Batch {
    fn eq(&self, other: &Batch) -> bool {
        self.events == other.events
    }
}

impl Batch {
    /// A batch of these events.
    pub fn new(events: Vec<Arc<Event>>) -> Batch {
        Batch {
            events,
            journal: None,
        }
    }
    pub(crate) fn with_journal(mut self, journal: Option<Arc<dyn Journal>>) -> Batch {
        self.journal = journal;
        self
    }
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(crate) fn journal(&self) -> Option<&Arc<dyn Journal>> {
        self.journal.as_ref()
    }
    /// The events.
    pub fn events(&self) -> &[Arc<Event>] {
        &self.events
    }
    /// The events, owned.
    pub fn into_vec(self) -> Vec<Arc<Event>> {
        self.events
    }
}

impl Deref for Batch {
    type Target = [Arc<Event>];
    fn deref(&self) -> &[Arc<Event>] {
        &self.events
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.events.iter().map(|e| (e.event_type(), e.id())))
            .finish()
    }
}

impl IntoIterator for Batch {
    type Item = Arc<Event>;
    type IntoIter = std::vec::IntoIter<Arc<Event>>;
    fn into_iter(self) -> Self::IntoIter {
        self.events.into_iter()
    }
}

impl<'a> IntoIterator for &'a Batch {
    type Item = &'a Arc<Event>;
    type IntoIter = std::slice::Iter<'a, Arc<Event>>;
    fn into_iter(self) -> Self::IntoIter {
        self.events.iter()
    }
}

/// How a delivery failed, so the bus can report it precisely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// A handler returned an error.
    Handler,
    /// A handler or sink panicked (the panic was caught).
    Panic,
    /// A sink gave up after its retries (e.g. the last of N HTTP attempts failed).
    Exhausted,
    /// A sink met an error that retrying cannot fix (bad request, unknown topic…).
    Permanent,
    /// The subscriber is disabled (e.g. an open circuit).
    Disabled,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Handler => "handler error",
            FailureKind::Panic => "panic",
            FailureKind::Exhausted => "retries exhausted",
            FailureKind::Permanent => "permanent error",
            FailureKind::Disabled => "disabled",
        })
    }
}

/// A failed delivery: what kind of failure and a message safe to log (sinks
/// must keep secrets out of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct DeliveryError {
    kind: FailureKind,
    message: String,
    failed: Option<Vec<usize>>,
}

impl DeliveryError {
    /// A failure of `kind` described by `message`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            kind,
            message: message.into(),
            failed: None,
        }
    }
    /// Narrows the failure of a batch to some of its events, by index into
    /// the batch: the bus counts (and reports in `hookbus.delivery_failed`)
    /// only those as failed and the others as delivered. For sinks whose
    /// batches can fail in part, such as a Kafka producer. Out-of-range
    /// indices are ignored.
    ///
    /// ```
    /// use hookbus::sink::SinkFuture;
    /// use hookbus::{Batch, Bus, DeliveryError, Event, FailureKind, Sink};
    /// use std::time::Duration;
    ///
    /// /// Refuses the second event of every batch.
    /// struct Picky;
    /// impl Sink for Picky {
    ///     fn deliver(&self, batch: Batch) -> SinkFuture {
    ///         let n = batch.len();
    ///         Box::pin(async move {
    ///             if n < 2 {
    ///                 return Ok(());
    ///             }
    ///             Err(DeliveryError::new(FailureKind::Permanent, "too large").only_events(vec![1]))
    ///         })
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = Bus::new()?;
    /// bus.subscriber("order.*")
    ///     .name("picky")
    ///     .batch(3, Duration::from_secs(60))
    ///     .sink(Picky)?
    ///     .detach();
    /// for _ in 0..3 {
    ///     bus.emit(Event::new("order.placed", serde_json::json!({}))?)?;
    /// }
    /// let report = bus.shutdown(Duration::from_secs(5)).await;
    /// let picky = report.subscriber("picky").unwrap();
    /// assert_eq!((picky.stats.delivered, picky.stats.failed), (2, 1));
    /// # Ok(()) }
    /// ```
    pub fn only_events(mut self, mut indices: Vec<usize>) -> DeliveryError {
        indices.sort_unstable();
        indices.dedup();
        self.failed = Some(indices);
        self
    }
    /// A handler's error.
    pub fn handler(message: impl Into<String>) -> DeliveryError {
        DeliveryError::new(FailureKind::Handler, message)
    }
    /// What kind of failure.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }
    /// The description.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The indices of the failed events within the batch, if the failure
    /// was narrowed with [`only_events`](Self::only_events); `None` means
    /// the whole batch failed.
    pub fn failed_events(&self) -> Option<&[usize]> {
        self.failed.as_deref()
    }
}

/// Where subscriber events go: a webhook, a Kafka topic, a closure.
///
/// `deliver` is called from the subscriber's own task with at most
/// `concurrency` calls in flight; it must not block the thread (do blocking
/// work with `tokio::task::spawn_blocking`). A sink that retries does so inside
/// `deliver` and returns the final outcome. A panic inside `deliver` or its
/// future is caught and counted as a failure; the subscriber keeps running.
///
/// A sink can hold back further calls with [`poll_ready`](Sink::poll_ready),
/// as a `tower::Service` does: the subscriber asks it before each `deliver`
/// and leaves the events in its mailbox (where the overflow policy applies)
/// until the sink is ready. The webhook sink uses this so a delivery waiting
/// for its retry gives its sending slot to the next event.
pub trait Sink: Send + Sync + 'static {
    /// Delivers one batch (one event unless batching is configured).
    fn deliver(&self, batch: Batch) -> SinkFuture;

    /// Whether the sink takes another `deliver` now. `Pending` must arrange
    /// for `cx` to be woken once it does. A sink may reserve capacity here
    /// for the next `deliver` (the subscriber calls `deliver` soon after a
    /// `Ready`, unless it is shutting down). The default is always ready; the
    /// subscriber's `concurrency` still bounds the calls in flight.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let _ = cx;
        Poll::Ready(())
    }

    /// Which events this sink takes among those its subscriber's pattern
    /// matches, when it has a say of its own (a webhook's `events` list,
    /// condition and filter). The bus asks once, when the subscriber is
    /// made, and runs it on the emitting thread after the subscriber's own
    /// [`filter`](crate::SubscriberBuilder::filter): events it turns away
    /// count as filtered and never reach the mailbox. So a sink attached with
    /// [`SubscriberBuilder::sink`](crate::SubscriberBuilder::sink) takes
    /// the same events as one attached by its own helper (such as
    /// `WebhookSink::subscribe`). The default is `None`: all of them.
    fn accepts(&self) -> Option<Accepts> {
        None
    }

    /// Called once when the bus shuts down, after the last `deliver` has
    /// finished or the deadline has passed: flush buffers and release
    /// resources within `timeout`. Returns how many events the sink still held
    /// undelivered (for the shutdown report). The default does nothing.
    fn close(&self, timeout: Duration) -> BoxFuture<u64> {
        let _ = timeout;
        Box::pin(async { 0 })
    }
}

impl<S: Sink + ?Sized> Sink for Arc<S> {
    fn deliver(&self, batch: Batch) -> SinkFuture {
        (**self).deliver(batch)
    }
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        (**self).poll_ready(cx)
    }
    fn close(&self, timeout: Duration) -> BoxFuture<u64> {
        (**self).close(timeout)
    }
    fn accepts(&self) -> Option<Accepts> {
        (**self).accepts()
    }
}

/// A sink's own choice of events; see [`Sink::accepts`].
pub type Accepts = Arc<dyn Fn(&Event) -> bool + Send + Sync>;

/// What a handler closure may return: `()` or `Result<(), E>` for any
/// displayable `E` (an `Err` counts as a failed delivery).
pub trait HandlerResult {
    /// The outcome as a result.
    fn into_result(self) -> Result<(), DeliveryError>;
}

impl HandlerResult for () {
    fn into_result(self) -> Result<(), DeliveryError> {
        Ok(())
    }
}

impl<E: fmt::Display> HandlerResult for Result<(), E> {
    fn into_result(self) -> Result<(), DeliveryError> {
        self.map_err(|e| DeliveryError::handler(e.to_string()))
    }
}

pub(crate) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

pub(crate) fn panic_error(p: &Box<dyn std::any::Any + Send>) -> DeliveryError {
    DeliveryError::new(
        FailureKind::Panic,
        format!("handler panicked: {}", panic_message(p)),
    )
}
