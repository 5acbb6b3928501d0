//! The webhook as a bus subscriber: [`WebhookSink`].

use std::fmt;

use arc_swap::ArcSwap;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

use std::sync::Mutex;
use std::task::{Context, Poll};

use tower::Service;

use super::concurrency::AdaptiveLimit;
use super::delivery::{DeliveryOutcome, Limit, Svc, deliver, stack};
use super::endpoint::Endpoint;
use super::error::WebhookError;
use super::log::{DeliveryAttempt, WebhookStats};
use crate::bus::Bus;
use crate::event::Event;
use crate::hub::Condition;
use crate::pattern::Pattern;
use crate::sink::{Batch, BoxFuture, Sink, SinkFuture};
use crate::subscriber::Subscription;

/// A webhook as a bus subscriber: signed CloudEvents over HTTP with retries.
/// Build one with [`WebhookSink::builder`], attach it with
/// [`subscribe`](Self::subscribe).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use hookbus::{Bus, Event};
/// use hookbus::webhook::WebhookSink;
/// use serde_json::json;
///
/// let bus = Bus::new()?;
/// let _sub = WebhookSink::builder("https://hooks.example.com/decisions")
///     .secret("my-webhook-secret")
///     .events(["decision.low_confidence"])
///     .build()?
///     .subscribe(&bus)?;
/// bus.emit(Event::new("decision.low_confidence", json!({"decision_id": "abc123", "confidence": 0.72}))?)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WebhookSink {
    pub(crate) endpoint: Arc<Endpoint>,
    /// The endpoint its bus subscription delivers with now, shared by every
    /// clone: [`WebhookManager::update`](super::WebhookManager::update)
    /// swaps it in place, without a second subscription.
    live: Arc<ArcSwap<Endpoint>>,
    /// The delivery stack of one subscription (set by `subscribe`).
    stack: Option<Arc<Mutex<Ready>>>,
    /// The stack of direct sends ([`send`](Self::send), the emitter,
    /// `retry_failed`): no concurrency limit, cloned for each delivery.
    direct: Svc,
    /// Attached by `subscribe`, which routes the endpoint's patterns in the
    /// bus's table: `accepts` need not check them again.
    routed: bool,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WebhookSink").field(&self.endpoint).finish()
    }
}

/// A subscription's delivery stack, and whether it was polled ready for
/// the next delivery (then it holds that delivery's token and slot).
struct Ready {
    /// The endpoint it was built for.
    ep: Arc<Endpoint>,
    limit: Option<Limit>,
    svc: Svc,
    ready: bool,
}

impl Ready {
    /// Rebuilds the stack on `live` after an update swapped the endpoint
    /// (the same limit, bucket and pause: they belong to the subscription
    /// and the endpoint's state).
    fn follow(&mut self, live: &Arc<Endpoint>) {
        if !Arc::ptr_eq(&self.ep, live) {
            self.ep = live.clone();
            self.svc = stack(live, self.limit.as_ref(), true);
            self.ready = false;
        }
    }
}

impl WebhookSink {
    pub(crate) fn from_endpoint(endpoint: Arc<Endpoint>) -> WebhookSink {
        WebhookSink {
            direct: stack(&endpoint, None, true),
            live: Arc::new(ArcSwap::new(endpoint.clone())),
            endpoint,
            stack: None,
            routed: false,
        }
    }

    /// The endpoint deliveries use now.
    fn live(&self) -> Arc<Endpoint> {
        self.live.load_full()
    }

    /// Takes `new`'s endpoint in place of this one's, in the subscription
    /// too (an update whose mailbox-side settings are unchanged, after
    /// [`reroute`](Self::reroute) gave the subscription `new`'s routing).
    pub(crate) fn swap_in(&mut self, new: WebhookSink) {
        self.live.store(new.endpoint.clone());
        self.endpoint = new.endpoint;
        self.direct = new.direct;
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.endpoint.name
    }

    /// Attaches the webhook to `bus` as a subscriber with its patterns,
    /// condition, filter expression, batching, concurrency and mailbox settings.
    /// Its routing (patterns, route key, condition, filter expression) can
    /// be changed in place later by
    /// [`WebhookManager::update`](super::WebhookManager::update), so it
    /// keeps a mailbox of its own (it never shares a ring with subscribers
    /// of the same shape).
    pub fn subscribe(&self, bus: &Bus) -> Result<Subscription, WebhookError> {
        let ep = &self.endpoint;
        ep.state.set_bus(bus);
        let b = &ep.settings;
        let (patterns, condition) = routing_of(ep)?;
        // The stack's concurrency limit is the endpoint's; the subscriber
        // has as many more deliveries for those waiting for a retry, which
        // hold no slot. In ordered mode the one delivery keeps its place
        // through its retries.
        let n = b.options.concurrency;
        let limit = if b.ordered {
            None
        } else if b.adaptive_concurrency {
            let a = AdaptiveLimit::new(n, ep.state.pressure.clone());
            Some(Limit::Adaptive(Arc::new(a)))
        } else {
            // A semaphore holds at most MAX_PERMITS (and panics past it).
            let s = tokio::sync::Semaphore::new(n.min(tokio::sync::Semaphore::MAX_PERMITS));
            Some(Limit::Fixed(Arc::new(s)))
        };
        let concurrency = match b.ordered {
            true => 1,
            false => n.saturating_add(b.retry_capacity),
        };
        let ready = Ready {
            ep: ep.clone(),
            svc: stack(ep, limit.as_ref(), true),
            limit,
            ready: false,
        };
        let sink = WebhookSink {
            stack: Some(Arc::new(Mutex::new(ready))),
            routed: true,
            ..self.clone()
        };
        #[cfg_attr(not(feature = "durable"), allow(unused_mut))]
        let mut sub = bus
            .subscriber(patterns)
            .name(ep.name.clone())
            .options(b.options.clone())
            .concurrency(concurrency);
        if let Some((attribute, value)) = &b.route_key {
            sub = sub.key(attribute, value.clone());
        }
        sub.condition = condition;
        #[cfg(feature = "durable")]
        if let Some(store) = &b.store {
            ep.state.attach_store(&ep.name, &ep.display_url, store);
            sub = sub.durable(store);
        }
        // Re-routable: an update changes the events, key, condition and
        // filter expression in place (never a group member, then).
        Ok(sub.reroutable_sink(sink)?)
    }

    /// Re-routes `subscription` (attached by [`subscribe`](Self::subscribe)
    /// with another endpoint of this name) to this endpoint's events, route
    /// key, condition and filter expression, in place: an emit sees the old
    /// routing or this one, never neither and never both.
    pub(crate) fn reroute(&self, subscription: &Subscription) -> Result<(), WebhookError> {
        let ep = &self.endpoint;
        let (patterns, condition) = routing_of(ep)?;
        let key = ep.settings.route_key.as_ref();
        subscription.reroute(
            patterns,
            key.map(|(a, v)| (a.as_str(), v.as_str())),
            condition,
        )?;
        Ok(())
    }

    /// Delivers events now, as one request (with retries), and returns the
    /// outcome (no pattern or condition check: see
    /// [`WebhookEmitter`](super::WebhookEmitter) for that). It runs as a
    /// task of its own, aborted if this future is dropped.
    pub async fn send(&self, events: &[Arc<Event>]) -> DeliveryOutcome {
        let (ep, svc) = (self.endpoint.clone(), self.direct.clone());
        deliver(ep, events.into(), (svc, false), None, None).await
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> WebhookStats {
        self.endpoint.stats()
    }

    /// The newest `limit` attempts, newest first.
    pub fn deliveries(&self, limit: usize) -> Vec<DeliveryAttempt> {
        self.endpoint.state.log.recent(limit)
    }

    /// The dead letters kept now, oldest first.
    pub fn dead_letters(&self) -> Vec<super::log::DeadLetter> {
        self.endpoint.state.log.dead_letters()
    }

    /// Whether the endpoint is enabled.
    pub fn is_enabled(&self) -> bool {
        self.endpoint.state.enabled.load(SeqCst)
    }

    /// Enables the endpoint again (closes the circuit, resets the failure streak).
    pub fn enable(&self) {
        self.endpoint.state.consecutive_failures.store(0, Relaxed);
        self.endpoint.state.enabled.store(true, SeqCst);
        self.endpoint
            .state
            .persist_enabled(&self.endpoint.name, true, "");
    }

    /// Disables the endpoint: later deliveries are refused and kept for
    /// `retry_failed`.
    pub fn disable(&self) {
        self.endpoint.disable("disabled by the user");
    }
}

/// What the bus routes a subscribed endpoint by: its patterns (`*` when it
/// names none; each is a route of its own in the bus's table, so an event of
/// a type the webhook does not name costs it nothing), and the condition
/// left to check after routing (the condition, the filter expression, and no
/// bus's own event for an endpoint that names no pattern), bound to this
/// endpoint: a re-routed subscription runs the condition of its routing.
fn routing_of(ep: &Arc<Endpoint>) -> Result<(Vec<Pattern>, Option<Condition>), WebhookError> {
    let patterns = if ep.patterns.is_empty() {
        vec![Pattern::new("*")?]
    } else {
        ep.patterns.clone()
    };
    let needs_check =
        ep.patterns.is_empty() || ep.settings.condition.is_some() || ep.filter.is_some();
    let condition = needs_check.then(|| {
        let ep = ep.clone();
        Box::new(move |e: &Event| ep.wants_routed(e)) as Condition
    });
    Ok((patterns, condition))
}

impl WebhookSink {
    fn stack(&self) -> Option<std::sync::MutexGuard<'_, Ready>> {
        let mut ready = self
            .stack
            .as_ref()?
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        ready.follow(&self.live.load());
        Some(ready)
    }
}

impl Sink for WebhookSink {
    fn deliver(&self, batch: Batch) -> SinkFuture {
        // The stack polled ready (with its token and slot) goes with this
        // delivery; a clone stays for the next one.
        let (ep, svc) = match self.stack() {
            Some(mut r) => {
                let svc = if std::mem::take(&mut r.ready) {
                    let next = r.svc.clone();
                    (std::mem::replace(&mut r.svc, next), true)
                } else {
                    (r.svc.clone(), false)
                };
                (r.ep.clone(), svc)
            }
            None => {
                let ep = self.live();
                let svc = stack(&ep, None, true);
                (ep, (svc, false))
            }
        };
        // The place in a key's chain is taken now, in dispatch order.
        let gate = ep.key_order.as_ref().map(|k| k.enter(batch.events()));
        let journal = batch.journal().cloned();
        let events = batch.into_vec().into();
        let delivery = deliver(ep, events, svc, gate, journal);
        Box::pin(async move { delivery.await.into_result() })
    }

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        // Pause, then a token, then a slot (see `delivery`).
        let Some(mut r) = self.stack() else {
            return Poll::Ready(());
        };
        if !r.ready {
            // No layer fails to get ready; if one did, the delivery asks
            // again itself.
            r.ready = std::task::ready!(r.svc.poll_ready(cx)).is_ok();
        }
        Poll::Ready(())
    }

    fn accepts(&self) -> Option<crate::sink::Accepts> {
        if self.routed {
            // Attached by `subscribe`, whose route carries the patterns and
            // the condition (see `routing_of`).
            return None;
        }
        // Attached with `.sink(..)` under the caller's own patterns: the
        // endpoint's event list applies on top of them.
        let live = self.live.clone();
        Some(Arc::new(move |e: &Event| live.load().wants(e)))
    }

    fn close(&self, _timeout: Duration) -> BoxFuture<u64> {
        // Nothing is buffered inside the sink: the subscriber's mailbox and
        // batch are flushed by the bus before this is called.
        Box::pin(async { 0 })
    }
}
