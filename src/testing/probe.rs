//! [`BusProbe`]: records what a bus emitted on a pattern.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::{DEFAULT_WAIT_TIMEOUT, WaitError, wait_on};
use crate::bus::{Bus, IntoPattern, SubscribeError};
use crate::event::Event;
use crate::subscriber::Subscription;

/// A subscriber that records every event a bus delivers to it on a
/// pattern, with waits on what arrives.
///
/// Use it to assert what your code (or hookbus itself: `hookbus.*` events
/// such as `hookbus.endpoint_disabled`, `hookbus.delivery_failed`) put on a
/// bus. `hookbus.*` events are announced like any other event and reach a
/// probe whose pattern matches them (`hookbus.*`, or the exact type).
///
/// The probe's mailbox holds up to 65,536 events waiting to be recorded
/// (recording is a push onto a list, so it keeps up); past that its
/// overflow policy drops the oldest, counted in
/// [`subscription().stats()`](Subscription::stats). Dropping the probe
/// unsubscribes it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use hookbus::{Bus, Event};
/// use hookbus::testing::BusProbe;
/// use serde_json::json;
///
/// let bus = Bus::new()?;
/// let probe = BusProbe::new(&bus, "order.*")?;
/// bus.emit(Event::new("order.placed", json!({"id": 1}))?)?;
/// bus.emit(Event::new("order.shipped", json!({"id": 1}))?)?;
///
/// let shipped = probe.wait_for_type("order.shipped").await?;
/// assert_eq!(shipped.data()["id"], 1);
/// assert_eq!(probe.count(), 2);
/// assert_eq!(probe.types(), ["order.placed", "order.shipped"]);
/// # Ok(()) }
/// ```
pub struct BusProbe {
    events: Arc<Mutex<Vec<Event>>>,
    changed: watch::Receiver<()>,
    subscription: Subscription,
    wait_timeout: Duration,
}

impl fmt::Debug for BusProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusProbe")
            .field("subscription", &self.subscription)
            .field("recorded", &self.count())
            .finish_non_exhaustive()
    }
}

/// The probe's mailbox capacity.
const PROBE_CAPACITY: usize = 65_536;

impl BusProbe {
    /// Subscribes to `pattern` on `bus` and records from now on.
    pub fn new(bus: &Bus, pattern: impl IntoPattern) -> Result<BusProbe, SubscribeError> {
        let events = Arc::new(Mutex::new(Vec::new()));
        // The sender lives in the handler: when the subscription ends (the
        // bus shut down), waits see it and stop.
        let (tx, changed) = watch::channel(());
        let recorded = events.clone();
        let subscription = bus
            .subscriber(pattern)
            .name("hookbus::testing::BusProbe")
            .capacity(PROBE_CAPACITY)
            .on(move |e: &Event| {
                lock(&recorded).push(e.clone());
                tx.send_replace(());
            })?;
        Ok(BusProbe {
            events,
            changed,
            subscription,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
        })
    }

    /// How long waits last before [`WaitError::TimedOut`] (default
    /// [`DEFAULT_WAIT_TIMEOUT`]; virtual time under a paused clock).
    #[must_use]
    pub fn wait_timeout(mut self, timeout: Duration) -> BusProbe {
        self.wait_timeout = timeout;
        self
    }

    /// Every event recorded so far, in order.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// The types of the events recorded so far, in order.
    pub fn types(&self) -> Vec<String> {
        lock(&self.events)
            .iter()
            .map(|e| e.event_type().to_owned())
            .collect()
    }

    /// The events of type `event_type` recorded so far.
    pub fn of_type(&self, event_type: &str) -> Vec<Event> {
        lock(&self.events)
            .iter()
            .filter(|e| e.event_type() == event_type)
            .cloned()
            .collect()
    }

    /// How many events were recorded.
    pub fn count(&self) -> usize {
        lock(&self.events).len()
    }

    /// Forgets what was recorded (the subscription stays).
    pub fn clear(&self) {
        lock(&self.events).clear();
    }

    /// The subscription, for its stats.
    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    /// Waits until at least `n` events were recorded, then returns them.
    pub async fn wait_for(&self, n: usize) -> Result<Vec<Event>, WaitError> {
        self.wait_until(&format!("{n} events"), |events| events.len() >= n)
            .await?;
        Ok(self.events())
    }

    /// Waits for the first event of type `event_type` (one already recorded
    /// counts) and returns it.
    pub async fn wait_for_type(&self, event_type: &str) -> Result<Event, WaitError> {
        let what = format!("an event of type {event_type}");
        self.wait_until(&what, |events| {
            events.iter().any(|e| e.event_type() == event_type)
        })
        .await?;
        self.of_type(event_type)
            .into_iter()
            .next()
            .ok_or(WaitError::Stopped { what, seen: 0 })
    }

    /// Waits until `condition` holds for the events recorded (checked now
    /// and after each new event); `what` names it in the error.
    pub async fn wait_until(
        &self,
        what: &str,
        mut condition: impl FnMut(&[Event]) -> bool,
    ) -> Result<(), WaitError> {
        let mut changed = self.changed.clone();
        changed.mark_unchanged();
        wait_on(changed, self.wait_timeout, what, || {
            let events = lock(&self.events);
            (condition(&events), events.len())
        })
        .await
    }
}

fn lock(events: &Mutex<Vec<Event>>) -> MutexGuard<'_, Vec<Event>> {
    events.lock().unwrap_or_else(|e| e.into_inner())
}
