//! The subscriber task: intake from the bus channel, the bounded mailbox with
//! its overflow policy, batching, dispatch to the handler or sink, and the
//! bookkeeping (stats, failure and drop events).
//!
//! One task does all of it, so the mailbox is a plain `VecDeque` owned by the
//! task: no lock and no extra wake-up per event. Intake keeps running while
//! async handlers are in flight, which is what lets a stalled handler drop
//! (or, under `Block`, hold back) events without ever stalling the emitters.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::Context;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::json;
use tokio::time::Instant;
use tracing::Instrument;

use super::{Condition, Control, DROP_REPORT_INTERVAL, Handler, OverflowPolicy, SubscriberOptions};
use crate::bus::{Message, Shared};
use crate::event::Event;
use crate::pattern::Pattern;
use crate::sink::{Batch, BoxFuture, DeliveryError, FailureKind};
use crate::stats::Counters;

/// Everything needed to start a subscriber.
pub(crate) struct Spec {
    pub(crate) name: Arc<str>,
    pub(crate) pattern: Pattern,
    pub(crate) options: SubscriberOptions,
    pub(crate) condition: Option<Condition>,
    pub(crate) limit: Option<u64>,
    pub(crate) handler: Handler,
}

/// How long a sink gets to flush when its subscriber ends outside a shutdown.
const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages taken from the channel per turn before handlers get to run again.
const INTAKE_BUDGET: usize = 256;
/// Sync handler calls per turn before intake gets to run again.
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
    id: u64,
    name: Arc<str>,
    pattern: Pattern,
    options: SubscriberOptions,
    condition: Option<Condition>,
    remaining: Option<u64>,
    handler: Handler,
    rx: Option<async_broadcast::Receiver<Message>>,
    mailbox: VecDeque<Arc<Event>>,
    in_flight: FuturesUnordered<BoxFuture<Done>>,
    in_flight_events: u64,
    batch_started: Option<Instant>,
    batch_due: bool,
    /// The last non-waiting intake found the channel empty.
    drained: bool,
    /// The sink said it takes another delivery (always true for closures).
    sink_ready: bool,
    unreported_drops: u64,
    last_drop_report: Option<Instant>,
    drop_report_at: Option<Instant>,
    counters: Arc<Counters>,
    control: Arc<Control>,
    bus: Weak<Shared>,
}

impl Worker {
    pub(crate) fn new(
        id: u64,
        spec: Spec,
        rx: async_broadcast::Receiver<Message>,
        counters: Arc<Counters>,
        control: Arc<Control>,
        bus: Weak<Shared>,
    ) -> Worker {
        Worker {
            id,
            sink_ready: !spec.handler.is_sink(),
            name: spec.name,
            pattern: spec.pattern,
            mailbox: VecDeque::with_capacity(spec.options.capacity.min(1024)),
            options: spec.options,
            condition: spec.condition,
            remaining: spec.limit,
            handler: spec.handler,
            rx: Some(rx),
            in_flight: FuturesUnordered::new(),
            in_flight_events: 0,
            batch_started: None,
            batch_due: false,
            drained: false,
            unreported_drops: 0,
            last_drop_report: None,
            drop_report_at: None,
            counters,
            control,
            bus,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            if self.control.abort.load(Ordering::SeqCst) {
                break;
            }
            if self.rx.is_some() && self.control.stop.load(Ordering::SeqCst) {
                self.stop_intake();
            }
            self.dispatch();
            if !self.drained {
                self.intake_ready();
            }
            if self.rx.is_none() && self.mailbox.is_empty() && self.in_flight.is_empty() {
                break;
            }
            if self.ready_to_dispatch() {
                // More work is ready now: give other tasks a turn when our
                // budget is spent, then go on without waiting.
                tokio::task::consume_budget().await;
                continue;
            }
            self.wait().await;
        }
        if self.unreported_drops > 0 {
            self.report_drops();
        }
        self.finish().await;
    }

    async fn wait(&mut self) {
        let can_intake = self.can_intake();
        let batch_deadline = self.batch_deadline();
        let report_at = self.drop_report_at;
        let watch_stop = self.rx.is_some();
        // A sink that held back the next delivery wakes us once it is ready.
        let sink = match &self.handler {
            Handler::Sink(sink) if !self.sink_ready && self.next_unit_size().is_some() => {
                Some(&**sink)
            }
            _ => None,
        };
        let watch_sink = sink.is_some();
        let rx = self.rx.as_mut();
        tokio::select! {
            biased;
            _ = self.control.signalled(watch_stop) => {}
            Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => self.complete(done),
            _ = sink_ready(sink), if watch_sink => self.sink_ready = true,
            _ = sleep_until(batch_deadline), if batch_deadline.is_some() => {
                self.batch_due = true;
            }
            _ = sleep_until(report_at), if report_at.is_some() => {
                self.report_drops();
            }
            msg = recv(rx), if can_intake => match msg {
                Some(m) => {
                    self.drained = false;
                    self.ingest(m);
                }
                None => self.stop_intake(),
            },
        }
    }

    async fn finish(&mut self) {
        if let Handler::Sink(sink) = &self.handler {
            let timeout = self
                .control
                .deadline
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(DEFAULT_CLOSE_TIMEOUT);
            let unflushed = AssertUnwindSafe(sink.close(timeout))
                .catch_unwind()
                .await
                .unwrap_or(0);
            Counters::bump(&self.counters.unflushed, unflushed);
        }
        if let Some(bus) = self.bus.upgrade() {
            bus.subscriber_ended(self.id);
        }
    }

    fn can_intake(&self) -> bool {
        self.rx.is_some()
            && (self.options.overflow != OverflowPolicy::Block
                || self.mailbox.len() < self.options.capacity)
    }

    fn stop_intake(&mut self) {
        if self.rx.take().is_some()
            && let Some(bus) = self.bus.upgrade()
        {
            bus.interest.remove(self.id);
        }
    }

    /// Takes what the channel already holds, without waiting: as much as the
    /// mailbox has room for, or more (dropping by policy) once the bus
    /// channel is more than half full, so a busy subscriber never holds the
    /// channel back unless it chose `Block`.
    fn intake_ready(&mut self) {
        for _ in 0..INTAKE_BUDGET {
            if !self.can_intake() {
                return;
            }
            if self.mailbox.len() >= self.options.capacity {
                let pressed = self
                    .rx
                    .as_ref()
                    .is_some_and(|rx| rx.len() * 2 > rx.capacity());
                if !pressed {
                    return;
                }
            }
            let Some(rx) = self.rx.as_mut() else { return };
            match rx.try_recv() {
                Ok(m) => self.ingest(m),
                Err(async_broadcast::TryRecvError::Empty) => {
                    // Until `wait` takes a message, asking again only costs
                    // another turn of the channel's lock, shared with every
                    // other subscriber.
                    self.drained = true;
                    return;
                }
                Err(async_broadcast::TryRecvError::Overflowed(_)) => continue,
                Err(async_broadcast::TryRecvError::Closed) => {
                    self.stop_intake();
                    return;
                }
            }
        }
    }

    fn ingest(&mut self, msg: Message) {
        let event = match msg {
            Message::Event(e) => e,
            Message::Barrier(_) => return,
        };
        if self.control.stop.load(Ordering::Relaxed) {
            // Unsubscribed: take nothing new.
            self.stop_intake();
            return;
        }
        if !self.pattern.matches(event.event_type()) {
            return;
        }
        Counters::bump(&self.counters.received, 1);
        if let Some(condition) = &self.condition {
            match std::panic::catch_unwind(AssertUnwindSafe(|| condition(&event))) {
                Ok(true) => {}
                Ok(false) => {
                    Counters::bump(&self.counters.filtered, 1);
                    return;
                }
                Err(panic) => {
                    Counters::bump(&self.counters.filtered, 1);
                    let err = DeliveryError::new(
                        FailureKind::Panic,
                        format!("condition panicked: {}", panic_message(&panic)),
                    );
                    self.report_failure(&[event], &err);
                    return;
                }
            }
        }
        Counters::bump(&self.counters.accepted, 1);
        if self.mailbox.len() >= self.options.capacity {
            match self.options.overflow {
                OverflowPolicy::DropNewest => {
                    self.note_drop(&event);
                    self.after_accept();
                    return;
                }
                OverflowPolicy::DropOldest | OverflowPolicy::Block => {
                    // Block never gets here while full (intake pauses), but if
                    // it did, evicting is better than growing without bound.
                    if let Some(old) = self.mailbox.pop_front() {
                        self.note_drop(&old);
                    }
                }
            }
        }
        if self.mailbox.is_empty() && self.options.batch.is_some() {
            self.batch_started = Some(Instant::now());
        }
        self.mailbox.push_back(event);
        self.counters
            .mailbox
            .store(self.mailbox.len() as u64, Ordering::Relaxed);
        self.after_accept();
    }

    fn after_accept(&mut self) {
        if let Some(n) = &mut self.remaining {
            *n -= 1;
            if *n == 0 {
                self.stop_intake();
            }
        }
    }

    fn note_drop(&mut self, event: &Event) {
        Counters::bump(&self.counters.dropped, 1);
        // Drops of the bus's own events are counted but not announced, so a
        // `hookbus.dropped` event can never cause another one.
        if event.event_type().starts_with("hookbus.") {
            return;
        }
        self.unreported_drops += 1;
        if self.drop_report_at.is_none() {
            let now = Instant::now();
            let at = match self.last_drop_report {
                Some(last) if last + DROP_REPORT_INTERVAL > now => last + DROP_REPORT_INTERVAL,
                _ => now,
            };
            self.drop_report_at = Some(at);
        }
    }

    fn report_drops(&mut self) {
        let dropped = std::mem::take(&mut self.unreported_drops);
        self.drop_report_at = None;
        self.last_drop_report = Some(Instant::now());
        if dropped == 0 {
            return;
        }
        tracing::warn!(subscriber = %self.name, dropped, policy = ?self.options.overflow, "hookbus: mailbox full, events dropped");
        if let Some(bus) = self.bus.upgrade() {
            bus.emit_internal(
                "hookbus.dropped",
                json!({
                    "subscriber": &*self.name,
                    "subscriber_id": self.id,
                    "dropped": dropped,
                    "dropped_total": self.counters.dropped.load(Ordering::Relaxed),
                    "policy": self.options.overflow,
                    "capacity": self.options.capacity,
                }),
            );
        }
    }

    fn batch_deadline(&self) -> Option<Instant> {
        let batch = self.options.batch?;
        // Once due, the batch waits for a free slot or a ready sink, which
        // wake us themselves; a passed deadline would only spin.
        if self.batch_due
            || self.mailbox.is_empty()
            || self.in_flight.len() >= self.options.concurrency
        {
            return None;
        }
        self.batch_started.map(|s| s + batch.max_wait)
    }

    /// How many events the next call would take, if one can start now.
    fn next_unit_size(&self) -> Option<usize> {
        if self.mailbox.is_empty() || self.in_flight.len() >= self.options.concurrency {
            return None;
        }
        match self.options.batch {
            None => Some(1),
            Some(b) if self.mailbox.len() >= b.max_size => Some(b.max_size),
            Some(_) if self.batch_due || self.rx.is_none() => Some(self.mailbox.len()),
            Some(b) => {
                let due = self
                    .batch_started
                    .is_some_and(|s| Instant::now() >= s + b.max_wait);
                due.then_some(self.mailbox.len())
            }
        }
    }

    fn ready_to_dispatch(&self) -> bool {
        if !self.sink_ready {
            return false;
        }
        match self.options.batch {
            None => !self.mailbox.is_empty() && self.in_flight.len() < self.options.concurrency,
            Some(b) => {
                self.in_flight.len() < self.options.concurrency
                    && (self.mailbox.len() >= b.max_size
                        || (!self.mailbox.is_empty() && (self.batch_due || self.rx.is_none())))
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
        for _ in 0..DISPATCH_BUDGET {
            let Some(n) = self.next_unit_size() else {
                return;
            };
            if !self.check_sink_ready() {
                return;
            }
            self.batch_due = false;
            let single = n == 1 && matches!(self.handler, Handler::Sync(_) | Handler::Async(_));
            let unit = if single {
                Unit::One(self.mailbox.pop_front().expect("n <= mailbox.len()"))
            } else {
                Unit::Many(Batch::new(self.mailbox.drain(..n).collect()))
            };
            if self.options.batch.is_some() {
                // What is left starts the next batch now.
                self.batch_started = (!self.mailbox.is_empty()).then(Instant::now);
            }
            self.counters
                .mailbox
                .store(self.mailbox.len() as u64, Ordering::Relaxed);
            self.start(unit);
        }
        // The budget ran out with more to send. Ask the sink now: `deliver`
        // left `sink_ready` false, and `run` would then `wait` (which a ready
        // sink answers at once) instead of taking its turn with
        // `consume_budget`, and never yield to other tasks.
        if self.next_unit_size().is_some() {
            self.check_sink_ready();
        }
    }

    /// The common case, a per-event sync handler with no batching and no
    /// tracing subscriber listening: one tight loop, counters stored once.
    fn dispatch_sync(&mut self) {
        let Handler::Sync(f) = &mut self.handler else {
            return;
        };
        let mut delivered = 0;
        let mut failures = Vec::new();
        for _ in 0..DISPATCH_BUDGET {
            let Some(event) = self.mailbox.pop_front() else {
                break;
            };
            match std::panic::catch_unwind(AssertUnwindSafe(|| f(&event))) {
                Ok(Ok(())) => delivered += 1,
                Ok(Err(err)) => failures.push((event, err)),
                Err(p) => failures.push((event, panic_error(&p))),
            }
        }
        self.counters
            .mailbox
            .store(self.mailbox.len() as u64, Ordering::Relaxed);
        Counters::bump(&self.counters.delivered, delivered);
        if !failures.is_empty() {
            Counters::bump(&self.counters.failed, failures.len() as u64);
            for (event, err) in failures {
                self.report_failure(std::slice::from_ref(&event), &err);
            }
        }
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
            subscriber = %self.name,
            events = events.len(),
            event_id = %events[0].id(),
        );
        match (&mut self.handler, &unit) {
            (Handler::Sync(f), Unit::One(event)) => {
                let mut call = || {
                    std::panic::catch_unwind(AssertUnwindSafe(|| f(event)))
                        .unwrap_or_else(|p| Err(panic_error(&p)))
                };
                let result = if span.is_disabled() {
                    call()
                } else {
                    span.in_scope(call)
                };
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
            Ok(fut) => {
                self.in_flight_events += events.events().len() as u64;
                self.counters
                    .in_flight
                    .store(self.in_flight_events, Ordering::Relaxed);
                self.in_flight.push(Box::pin(
                    async move {
                        let result = AssertUnwindSafe(fut)
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|p| Err(panic_error(&p)));
                        Done { events, result }
                    }
                    .instrument(span),
                ));
            }
            Err(p) => {
                // The call itself panicked before returning a future.
                self.in_flight_events += events.events().len() as u64;
                self.complete(Done {
                    events,
                    result: Err(panic_error(&p)),
                });
            }
        }
    }

    fn complete(&mut self, done: Done) {
        let events = done.events.events();
        let n = events.len() as u64;
        if matches!(self.handler, Handler::Async(_) | Handler::Sink(_)) {
            self.in_flight_events -= n;
            self.counters
                .in_flight
                .store(self.in_flight_events, Ordering::Relaxed);
        }
        match done.result {
            Ok(()) => Counters::bump(&self.counters.delivered, n),
            Err(err) => match err.failed_events() {
                // A partial failure: only the named events failed.
                Some(indices) => {
                    let failed: Vec<Arc<Event>> = indices
                        .iter()
                        .filter_map(|&i| events.get(i).cloned())
                        .collect();
                    let f = failed.len() as u64;
                    Counters::bump(&self.counters.delivered, n - f);
                    Counters::bump(&self.counters.failed, f);
                    if !failed.is_empty() {
                        self.report_failure(&failed, &err);
                    }
                }
                None => {
                    Counters::bump(&self.counters.failed, n);
                    self.report_failure(events, &err);
                }
            },
        }
    }

    fn report_failure(&self, events: &[Arc<Event>], err: &DeliveryError) {
        tracing::warn!(subscriber = %self.name, event_id = %events[0].id(), error = %err, "hookbus: delivery failed");
        // Failures while handling the bus's own events are logged, never
        // re-published: that could loop.
        if events
            .iter()
            .all(|e| e.event_type().starts_with("hookbus."))
        {
            return;
        }
        let Some(bus) = self.bus.upgrade() else {
            return;
        };
        let ty = if self.handler.is_sink() {
            "hookbus.delivery_failed"
        } else {
            "hookbus.handler_failed"
        };
        let ids: Vec<&str> = events.iter().map(|e| e.id()).collect();
        bus.emit_internal(
            ty,
            json!({
                "subscriber": &*self.name,
                "subscriber_id": self.id,
                "event_id": events[0].id(),
                "event_type": events[0].event_type(),
                "event_ids": ids,
                "kind": err.kind().to_string(),
                "error": err.message(),
            }),
        );
    }
}

/// A timer only when there is a deadline. `select!` builds every branch's
/// future even when its condition is false; an async fn builds nothing until
/// polled, so the common no-deadline case costs no timer and no clock read.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
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

async fn recv(rx: Option<&mut async_broadcast::Receiver<Message>>) -> Option<Message> {
    let rx = rx?;
    loop {
        match rx.recv_direct().await {
            Ok(m) => return Some(m),
            Err(async_broadcast::RecvError::Overflowed(_)) => continue,
            Err(async_broadcast::RecvError::Closed) => return None,
        }
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

fn panic_error(p: &Box<dyn std::any::Any + Send>) -> DeliveryError {
    DeliveryError::new(
        FailureKind::Panic,
        format!("handler panicked: {}", panic_message(p)),
    )
}
