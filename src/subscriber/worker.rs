//! The subscriber task: takes events out of its mailbox, batches them,
//! dispatches them to the handler or sink, and does the bookkeeping (the
//! outcome counts, failure and drop announcements).
//!
//! Emitters fill the mailbox (see [`crate::hub`]); this task only empties
//! it. Async handlers and sinks run as up to `concurrency` futures inside the
//! task, so it keeps dispatching while one is stalled.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;
use tracing::Instrument;

use super::{DROP_REPORT_INTERVAL, Handler, SubscriberOptions};
use crate::event::Event;
use crate::hub::{Announce, Lifecycle, Route};
use crate::sink::{Batch, BoxFuture, DeliveryError, panic_error};

/// How long a sink gets to flush when its subscriber ends outside a shutdown.
const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Handler calls started per turn before other tasks get to run.
const DISPATCH_BUDGET: usize = 64;

/// The events of one handler call: a single event needs no allocation.
enum Unit {
    One(Arc<Event>),
    Many(Batch),
}

impl Unit {
    fn events(&self) -> &[Arc<Event>] {
        match self {
            Unit::One(e) => std::slice::from_ref(e),
            Unit::Many(b) => b.events(),
        }
    }
}

struct Done {
    events: Unit,
    result: Result<(), DeliveryError>,
}

pub(crate) struct Worker {
    route: Arc<Route>,
    /// The bus actor, told of announcements, leaving the table and the end.
    lifecycle: Lifecycle,
    options: SubscriberOptions,
    handler: Handler,
    in_flight: FuturesUnordered<BoxFuture<Done>>,
    /// Events queued and mailbox open, as last seen.
    queued: usize,
    open: bool,
    /// Still in the routing table.
    routed: bool,
    batch_started: Option<Instant>,
    batch_due: bool,
    /// The sink said it takes another delivery (always true for closures).
    sink_ready: bool,
    last_drop_report: Option<Instant>,
    drop_report_at: Option<Instant>,
    /// The sync loop's chunk (kept to reuse its allocation).
    chunk: Vec<Arc<Event>>,
}

impl Worker {
    pub(crate) fn new(
        route: Arc<Route>,
        options: SubscriberOptions,
        handler: Handler,
        lifecycle: Lifecycle,
    ) -> Worker {
        Worker {
            route,
            lifecycle,
            sink_ready: !handler.is_sink(),
            options,
            handler,
            in_flight: FuturesUnordered::new(),
            queued: 0,
            open: true,
            routed: true,
            batch_started: None,
            batch_due: false,
            last_drop_report: None,
            drop_report_at: None,
            chunk: Vec::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            if self.route.control.abort_requested() {
                break;
            }
            self.look();
            self.dispatch();
            self.look();
            if !self.open && self.queued == 0 && self.in_flight.is_empty() {
                break;
            }
            if self.sink_ready && self.next_unit().is_some() {
                // More work is ready now: give other tasks a turn when our
                // budget is spent, then go on without waiting.
                tokio::task::consume_budget().await;
                continue;
            }
            self.wait().await;
        }
        self.report_drops();
        self.finish().await;
    }

    /// Reads the mailbox's state; leaves the routing table once it takes
    /// nothing new (limit reached, unsubscribed, shut down); schedules the
    /// announcement of new drops.
    fn look(&mut self) {
        let view = self.route.mailbox.view();
        self.queued = view.queued;
        self.open = view.open;
        if !view.open && self.routed {
            self.routed = false;
            self.lifecycle.unroute(&self.route);
        }
        self.batch_started = view.oldest_at;
        if view.unreported_drops > 0 && self.drop_report_at.is_none() {
            let now = Instant::now();
            self.drop_report_at = Some(match self.last_drop_report {
                Some(last) if last + DROP_REPORT_INTERVAL > now => last + DROP_REPORT_INTERVAL,
                _ => now,
            });
        }
        if self.drop_report_at.is_some_and(|at| at <= Instant::now()) {
            self.report_drops();
        }
    }

    async fn wait(&mut self) {
        let batch_deadline = self.batch_deadline();
        let report_at = self.drop_report_at;
        // A sink that held back the next delivery wakes us once it is ready.
        let sink = match &self.handler {
            Handler::Sink(sink) if !self.sink_ready && self.next_unit().is_some() => Some(&**sink),
            _ => None,
        };
        let watch_sink = sink.is_some();
        let mailbox = &self.route.mailbox;
        tokio::select! {
            biased;
            Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => self.complete(done),
            _ = sink_ready(sink), if watch_sink => self.sink_ready = true,
            _ = sleep_until(batch_deadline), if batch_deadline.is_some() => {
                self.batch_due = true;
            }
            _ = sleep_until(report_at), if report_at.is_some() => self.report_drops(),
            _ = std::future::poll_fn(|cx| if mailbox.poll_changed(cx) { Poll::Ready(()) } else { Poll::Pending }) => {}
        }
    }

    async fn finish(&mut self) {
        if let Handler::Sink(sink) = &self.handler {
            let timeout = self
                .route
                .control
                .deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(DEFAULT_CLOSE_TIMEOUT);
            let unflushed = AssertUnwindSafe(sink.close(timeout))
                .catch_unwind()
                .await
                .unwrap_or(0);
            self.route.mailbox.add_unflushed(unflushed);
        }
        if self.routed {
            self.lifecycle.unroute(&self.route);
        }
        self.lifecycle.ended(self.route.id);
    }

    fn report_drops(&mut self) {
        self.drop_report_at = None;
        let dropped = self.route.mailbox.take_unreported_drops();
        if dropped == 0 {
            return;
        }
        self.last_drop_report = Some(Instant::now());
        let name = &*self.route.name;
        tracing::warn!(subscriber = name, dropped, policy = ?self.options.overflow, "hookbus: mailbox full, events dropped");
        self.lifecycle.announce(crate::catalog::bus::Dropped {
            subscriber: name.to_owned(),
            subscriber_id: self.route.id,
            dropped,
            dropped_total: self.route.mailbox.snapshot().counts.dropped,
            policy: self.options.overflow.as_str().to_owned(),
            capacity: self.options.capacity as u64,
        });
    }

    fn batch_deadline(&self) -> Option<Instant> {
        let batch = self.options.batch?;
        // Once due, the batch waits for a free slot or a ready sink, which
        // wake us themselves; a passed deadline would only spin.
        if self.batch_due || self.queued == 0 || self.in_flight.len() >= self.options.concurrency {
            return None;
        }
        self.batch_started.map(|s| s + batch.max_wait)
    }

    /// How many events the next call takes, if one can start now (leaving
    /// aside whether a sink is ready). The one readiness check.
    fn next_unit(&self) -> Option<usize> {
        if self.queued == 0 || self.in_flight.len() >= self.options.concurrency {
            return None;
        }
        match self.options.batch {
            None => Some(1),
            Some(b) if self.queued >= b.max_size => Some(b.max_size),
            Some(_) if self.batch_due || !self.open => Some(self.queued),
            Some(b) => {
                let due = self
                    .batch_started
                    .is_some_and(|s| Instant::now() >= s + b.max_wait);
                due.then_some(self.queued)
            }
        }
    }

    fn dispatch(&mut self) {
        if self.options.batch.is_none()
            && matches!(self.handler, Handler::Sync(_))
            && !tracing::enabled!(tracing::Level::DEBUG)
        {
            self.dispatch_sync();
            return;
        }
        let mut taken = Vec::new();
        for _ in 0..DISPATCH_BUDGET {
            let Some(n) = self.next_unit() else {
                return;
            };
            if !self.check_sink_ready() {
                return;
            }
            self.batch_due = false;
            taken.clear();
            self.route.mailbox.take(n, &mut taken);
            if taken.is_empty() {
                self.queued = 0;
                return;
            }
            self.queued -= taken.len();
            let single =
                taken.len() == 1 && matches!(self.handler, Handler::Sync(_) | Handler::Async(_));
            let unit = if single {
                Unit::One(taken.pop().expect("one event"))
            } else {
                Unit::Many(
                    Batch::new(std::mem::take(&mut taken)).with_journal(self.route.journal.clone()),
                )
            };
            if self.options.batch.is_some() {
                // What is left starts the next batch now (as `take` noted).
                self.batch_started = (self.queued > 0).then(Instant::now);
            }
            self.start(unit);
            if self.route.control.abort_requested() {
                return;
            }
        }
        // The budget ran out with more to send. Ask the sink now: `deliver`
        // left `sink_ready` false, and `run` would then `wait` (which a ready
        // sink answers at once) instead of taking its turn with
        // `consume_budget`, and never yield to other tasks.
        if self.next_unit().is_some() {
            self.check_sink_ready();
        }
    }

    /// The common case, a per-event sync handler with no batching and no
    /// tracing subscriber listening: one lock takes a chunk of events, each
    /// call reports its progress with a plain store (so the counts stay
    /// exact at every moment), and nothing starts once abort is requested.
    fn dispatch_sync(&mut self) {
        let Handler::Sync(f) = &mut self.handler else {
            return;
        };
        let route = &*self.route;
        let mailbox = &route.mailbox;
        let mut chunk = std::mem::take(&mut self.chunk);
        mailbox.take_chunk(DISPATCH_BUDGET, &mut chunk);
        if chunk.is_empty() {
            self.chunk = chunk;
            return;
        }
        let progress = mailbox.progress();
        for event in chunk.drain(..) {
            if route.control.abort_requested() {
                break;
            }
            progress.start();
            match std::panic::catch_unwind(AssertUnwindSafe(|| f(&event)))
                .unwrap_or_else(|p| Err(panic_error(&p)))
            {
                Ok(()) => {
                    if let Some(journal) = &route.journal {
                        journal.delivered(std::slice::from_ref(&event));
                    }
                    progress.ok();
                }
                Err(err) => {
                    if let Some(journal) = &route.journal {
                        journal.failed(std::slice::from_ref(&event), &err.to_string());
                    }
                    progress.fail();
                    report_failure(
                        &self.lifecycle,
                        route,
                        false,
                        std::slice::from_ref(&event),
                        &err,
                    );
                }
            }
        }
        mailbox.end_chunk();
        self.chunk = chunk;
    }

    /// Asks the sink whether it takes another delivery. No waker here:
    /// `wait` asks again with the task's own when this says no. A panicking
    /// `poll_ready` counts as ready (the `deliver` that follows is guarded).
    fn check_sink_ready(&mut self) -> bool {
        if !self.sink_ready
            && let Handler::Sink(sink) = &self.handler
        {
            let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
            self.sink_ready =
                std::panic::catch_unwind(AssertUnwindSafe(|| sink.poll_ready(&mut cx).is_ready()))
                    .unwrap_or(true);
        }
        self.sink_ready
    }

    fn start(&mut self, unit: Unit) {
        let events = unit.events();
        let span = tracing::debug_span!(
            "hookbus.deliver",
            subscriber = %self.route.name,
            events = events.len(),
            event_id = %events[0].id(),
        );
        match (&mut self.handler, &unit) {
            (Handler::Sync(f), Unit::One(event)) => {
                let result = span.in_scope(|| {
                    std::panic::catch_unwind(AssertUnwindSafe(|| f(event)))
                        .unwrap_or_else(|p| Err(panic_error(&p)))
                });
                self.complete(Done {
                    events: unit,
                    result,
                });
            }
            (Handler::SyncBatch(f), Unit::Many(batch)) => {
                let result = span.in_scope(|| {
                    std::panic::catch_unwind(AssertUnwindSafe(|| f(batch)))
                        .unwrap_or_else(|p| Err(panic_error(&p)))
                });
                self.complete(Done {
                    events: unit,
                    result,
                });
            }
            (Handler::Async(f), Unit::One(event)) => {
                let started = std::panic::catch_unwind(AssertUnwindSafe(|| f(event.clone())));
                self.push_future(unit, started, span);
            }
            (Handler::Sink(sink), Unit::Many(batch)) => {
                let started =
                    std::panic::catch_unwind(AssertUnwindSafe(|| sink.deliver(batch.clone())));
                // Ask again before the next delivery.
                self.sink_ready = false;
                self.push_future(unit, started, span);
            }
            _ => unreachable!("dispatch makes single units only for per-event handlers"),
        }
    }

    fn push_future(
        &mut self,
        events: Unit,
        started: std::thread::Result<BoxFuture<Result<(), DeliveryError>>>,
        span: tracing::Span,
    ) {
        match started {
            Ok(fut) => self.in_flight.push(Box::pin(
                async move {
                    let result = AssertUnwindSafe(fut)
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|p| Err(panic_error(&p)));
                    Done { events, result }
                }
                .instrument(span),
            )),
            // The call itself panicked before returning a future.
            Err(p) => self.complete(Done {
                events,
                result: Err(panic_error(&p)),
            }),
        }
    }

    fn complete(&mut self, done: Done) {
        let events = done.events.events();
        let n = events.len() as u64;
        let is_sink = self.handler.is_sink();
        let journal = self.route.journal.as_deref();
        match done.result {
            Ok(()) => {
                if let Some(journal) = journal {
                    journal.delivered(events);
                }
                self.route.mailbox.finish(n, 0)
            }
            Err(err) => match err.failed_events() {
                // A partial failure: only the named events failed.
                Some(indices) => {
                    let failed: Vec<Arc<Event>> = indices
                        .iter()
                        .filter_map(|&i| events.get(i).cloned())
                        .collect();
                    if let Some(journal) = journal {
                        let ok: Vec<Arc<Event>> = events
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| !indices.contains(i))
                            .map(|(_, e)| e.clone())
                            .collect();
                        journal.delivered(&ok);
                        journal.failed(&failed, &err.to_string());
                    }
                    let f = failed.len() as u64;
                    self.route.mailbox.finish(n - f, f);
                    if !failed.is_empty() {
                        report_failure(&self.lifecycle, &self.route, is_sink, &failed, &err);
                    }
                }
                None => {
                    if let Some(journal) = journal {
                        journal.failed(events, &err.to_string());
                    }
                    self.route.mailbox.finish(0, n);
                    report_failure(&self.lifecycle, &self.route, is_sink, events, &err);
                }
            },
        }
    }
}

fn report_failure(
    lifecycle: &Lifecycle,
    route: &Route,
    is_sink: bool,
    events: &[Arc<Event>],
    err: &DeliveryError,
) {
    tracing::warn!(subscriber = %route.name, event_id = %events[0].id(), error = %err, "hookbus: delivery failed");
    // Failures while handling the bus's own events are logged, never
    // re-published: that could loop.
    if events
        .iter()
        .all(|e| crate::catalog::bus::is_bus_event(e.event_type()))
    {
        return;
    }
    let events: Vec<&Event> = events.iter().map(|e| &**e).collect();
    crate::catalog::bus::HandlerFailed::announce(
        lifecycle,
        is_sink,
        &route.name,
        route.id,
        &events,
        err.kind().to_string(),
        err.message().to_owned(),
    );
}

/// A timer only when there is a deadline. `select!` builds every branch's
/// future even when its condition is false; an async fn builds nothing until
/// polled, so the common no-deadline case costs no timer and no clock read.
/// (Boxed: a timer is large, needed only by batching subscribers and drop
/// reports, and every idle subscriber's task would carry two inline.)
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => Box::pin(tokio::time::sleep_until(d)).await,
        None => std::future::pending().await,
    }
}

/// Resolves once the sink takes another delivery (never, without a sink).
async fn sink_ready(sink: Option<&dyn crate::sink::Sink>) {
    let Some(sink) = sink else {
        return std::future::pending().await;
    };
    std::future::poll_fn(|cx| {
        std::panic::catch_unwind(AssertUnwindSafe(|| sink.poll_ready(cx)))
            .unwrap_or(std::task::Poll::Ready(()))
    })
    .await
}
