//! [`WebhookManager`]: webhooks registered on a bus, managed by id.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::StreamExt;
use time::OffsetDateTime;

use super::builder::WebhookBuilder;
use super::delivery::DeliveryStatus;
use super::error::WebhookError;
use super::log::{DeliveryAttempt, WebhookStats};
use super::sink::WebhookSink;
use super::wire::WireFormat;
use crate::bus::Bus;
use crate::event::Event;
use crate::subscriber::Subscription;

/// The id of a registered webhook, e.g. `wh_1f3a9c0d2b7e`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct WebhookId(String);

impl WebhookId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for WebhookId {
    fn from(s: &str) -> WebhookId {
        WebhookId(s.to_owned())
    }
}

impl AsRef<WebhookId> for WebhookId {
    fn as_ref(&self) -> &WebhookId {
        self
    }
}

/// What [`WebhookManager::list`] and [`get`](WebhookManager::get) show of a
/// webhook (no secrets, no header values, no URL path).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WebhookInfo {
    /// Its id.
    pub id: WebhookId,
    /// Its name.
    pub name: String,
    /// Scheme, host and port of the URL.
    pub url: String,
    /// Subscribed event types or patterns (empty: all).
    pub events: Vec<String>,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Whether requests are signed.
    pub signed: bool,
    /// The wire format.
    pub format: WireFormat,
    /// Whether a payload template shapes the body.
    pub templated: bool,
}

/// What [`WebhookManager::test`] returns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TestResult {
    /// Whether the endpoint answered 2xx.
    pub success: bool,
    /// The HTTP status, if a response came.
    pub status_code: Option<u16>,
    /// The start of the response body.
    pub response_excerpt: Option<String>,
    /// Request latency.
    pub latency: Duration,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// What [`WebhookManager::retry_failed`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetryReport {
    /// Events sent again.
    pub retried: u64,
    /// Of those, delivered now.
    pub delivered: u64,
    /// Of those, failed again (dead-lettered again).
    pub failed: u64,
}

struct Registration {
    sink: WebhookSink,
    subscription: Subscription,
}

/// Manages the webhooks of one bus, as the Empathy and Rubric guides do:
/// register (plain or conditional), list, get, update, enable/disable,
/// delete, test, the delivery log, `retry_failed` and stats.
///
/// Dropping the manager unsubscribes its webhooks.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use hookbus::{Bus, Event};
/// use hookbus::webhook::{WebhookManager, WebhookSink};
/// use serde_json::json;
/// use time::macros::datetime;
///
/// let bus = Bus::new()?;
/// let webhooks = WebhookManager::new(&bus);
/// let id = webhooks.register_conditional(
///     WebhookSink::builder("https://hooks.example.com/predictions").name("high-confidence"),
///     |e: &Event| e.data()["confidence"].as_f64() > Some(0.85),
/// )?;
/// let sample = Event::new("level_4_prediction", json!({"prediction": "test", "confidence": 0.9}))?;
/// let result = webhooks.test(&id, sample).await?;
/// println!("{} {:?} in {:?}", result.success, result.status_code, result.latency);
/// for d in webhooks.deliveries(&id, 100)? {
///     println!("{} {} {:?}", if d.success { "OK" } else { "FAIL" }, d.event_type, d.status_code);
/// }
/// webhooks.retry_failed(&id, datetime!(2024-03-15 00:00 UTC)).await?;
/// webhooks.disable(&id)?;
/// webhooks.delete(&id)?;
/// # Ok(()) }
/// ```
pub struct WebhookManager {
    bus: Bus,
    entries: Mutex<BTreeMap<WebhookId, Registration>>,
}

impl fmt::Debug for WebhookManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookManager")
            .field("webhooks", &self.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

fn new_id() -> WebhookId {
    let u = uuid::Uuid::new_v4().simple().to_string();
    WebhookId(format!("wh_{}", &u[..12]))
}

impl WebhookManager {
    /// A manager registering webhooks on `bus`.
    pub fn new(bus: &Bus) -> WebhookManager {
        WebhookManager {
            bus: bus.clone(),
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<WebhookId, Registration>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with<T>(
        &self,
        id: &WebhookId,
        f: impl FnOnce(&Registration) -> T,
    ) -> Result<T, WebhookError> {
        self.lock()
            .get(id)
            .map(f)
            .ok_or_else(|| WebhookError::NotFound(id.clone()))
    }

    /// Checks, builds and subscribes a webhook; returns its id.
    pub fn register(&self, webhook: WebhookBuilder) -> Result<WebhookId, WebhookError> {
        let sink = webhook.build()?;
        let subscription = sink.subscribe(&self.bus)?;
        let id = new_id();
        self.lock()
            .insert(id.clone(), Registration { sink, subscription });
        Ok(id)
    }

    /// Registers a webhook that fires only when `condition` holds.
    pub fn register_conditional(
        &self,
        webhook: WebhookBuilder,
        condition: impl Fn(&Event) -> bool + Send + Sync + 'static,
    ) -> Result<WebhookId, WebhookError> {
        self.register(webhook.condition(condition))
    }

    /// Every webhook, in id order.
    pub fn list(&self) -> Vec<WebhookInfo> {
        self.lock()
            .iter()
            .map(|(id, r)| info(id, &r.sink))
            .collect()
    }

    /// One webhook.
    pub fn get(&self, id: &WebhookId) -> Result<WebhookInfo, WebhookError> {
        self.with(id, |r| info(id, &r.sink))
    }

    /// Replaces a webhook's settings. Its id, enabled state, delivery log,
    /// dead letters, counters, rate-limit bucket and (when durable) its
    /// store records are kept, and its name unless `webhook` names it anew.
    ///
    /// When the name and the mailbox-side settings are unchanged (mailbox,
    /// batch, concurrency, `ordered`/`ordered_by`, rate limit, the store),
    /// the one subscription goes on and is updated in place, durable or
    /// not: its events, route key, condition and filter expression are
    /// re-routed at once (an emit is routed by the old settings or the new,
    /// never both and never neither: no event is lost or delivered twice),
    /// and every delivery that starts after `update` returns uses the new
    /// endpoint settings (those under way finish with the old ones).
    ///
    /// Otherwise (a new name or new mailbox-side settings) a new
    /// subscription starts before the old one stops (its mailbox is still
    /// delivered with the old settings), so an event emitted during the
    /// swap may be delivered twice, never lost (receivers dedupe on the
    /// event id). A durable webhook cannot do that, as its store records
    /// belong to one subscription of its name
    /// ([`WebhookError::DurableResubscribe`]): delete it and register it
    /// again.
    pub fn update(&self, id: &WebhookId, webhook: WebhookBuilder) -> Result<(), WebhookError> {
        let mut entries = self.lock();
        let reg = entries
            .get_mut(id)
            .ok_or_else(|| WebhookError::NotFound(id.clone()))?;
        let old = reg.sink.endpoint.clone();
        let sink = webhook.build_with_state(old.state.clone(), Some(&old))?;
        let (new, was) = (&sink.endpoint.settings, &old.settings);
        if sink.endpoint.name == old.name && new.same_subscription(was) {
            sink.reroute(&reg.subscription)?;
            reg.sink.swap_in(sink);
            return Ok(());
        }
        if was.store_path().is_some() || new.store_path().is_some() {
            return Err(WebhookError::DurableResubscribe(old.name.clone()));
        }
        drop(entries);
        let subscription = sink.subscribe(&self.bus)?;
        let old = self
            .lock()
            .insert(id.clone(), Registration { sink, subscription });
        drop(old);
        Ok(())
    }

    /// Enables a webhook again (closes its circuit).
    pub fn enable(&self, id: &WebhookId) -> Result<(), WebhookError> {
        self.with(id, |r| r.sink.enable())
    }

    /// Disables a webhook: its events are refused and kept for `retry_failed`.
    pub fn disable(&self, id: &WebhookId) -> Result<(), WebhookError> {
        self.with(id, |r| r.sink.disable())
    }

    /// Unsubscribes and forgets a webhook (its mailbox is still delivered).
    pub fn delete(&self, id: &WebhookId) -> Result<(), WebhookError> {
        let r = self
            .lock()
            .remove(id)
            .ok_or_else(|| WebhookError::NotFound(id.clone()))?;
        drop(r);
        Ok(())
    }

    /// Sends `event` to the webhook now, once (no retries, no condition),
    /// even if it is disabled, and says how it went. The attempt is logged.
    /// It takes a token of the endpoint's
    /// [`rate_limit`](super::WebhookBuilder::rate_limit) like any request
    /// (the limit protects the receiver, and a test is a request to it), so
    /// it may wait for one.
    pub async fn test(&self, id: &WebhookId, event: Event) -> Result<TestResult, WebhookError> {
        let sink = self.sink_of(id)?;
        let o = super::delivery::send_once(&sink.endpoint, &[Arc::new(event)]).await;
        Ok(TestResult {
            success: o.status == DeliveryStatus::Delivered,
            status_code: o.status_code,
            response_excerpt: o.response_excerpt,
            latency: o.latency,
            error: o.error,
        })
    }

    /// The newest `limit` delivery attempts, newest first.
    pub fn deliveries(
        &self,
        id: &WebhookId,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, WebhookError> {
        self.with(id, |r| r.sink.deliveries(limit))
    }

    /// Sends again the dead-lettered (and disabled-refused) events recorded at
    /// or after `since`, with the webhook's retry policy. Those that fail
    /// again are dead-lettered again.
    pub async fn retry_failed(
        &self,
        id: &WebhookId,
        since: OffsetDateTime,
    ) -> Result<RetryReport, WebhookError> {
        let sink = self.sink_of(id)?;
        let state = sink.endpoint.state.clone();
        // The letters are taken out of the log; if this future is dropped
        // before it is done (a caller's timeout), the ones not yet finished
        // go back to the log instead of being lost.
        let mut unfinished = PutBack {
            letters: state
                .log
                .take_dead_since(since)
                .into_iter()
                .map(Some)
                .collect(),
            state: &state,
        };
        let batches = (unfinished.letters.iter().flatten())
            .map(|l| l.events.clone())
            .collect();
        let report = resend(&sink, batches, |i, delivered| {
            // Delivered, or dead-lettered again by `deliver`: either way no
            // longer ours to put back.
            if let Some(letter) = unfinished.letters[i].take()
                && delivered
            {
                state.forget_dead(&sink.endpoint.name, &letter.events);
            }
        })
        .await;
        Ok(report)
    }

    /// Delivers again, one request each, the events this webhook delivered
    /// that were accepted at or after `since` (a receiver that lost data
    /// asks for everything since a time; Svix calls it "recover"). Needs a
    /// [`durable`](super::WebhookBuilder::durable) webhook whose store keeps
    /// delivered events ([`StoreBuilder::keep_delivered`](crate::store::StoreBuilder::keep_delivered)).
    /// Receivers see the same event ids as the first time.
    #[cfg(feature = "durable")]
    #[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
    pub async fn replay(
        &self,
        id: &WebhookId,
        since: OffsetDateTime,
    ) -> Result<RetryReport, WebhookError> {
        let sink = self.sink_of(id)?;
        let store = sink
            .endpoint
            .state
            .store
            .get()
            .filter(|s| s.keeps_delivered())
            .ok_or_else(|| {
                WebhookError::from(super::error::OptionError::NoReplay(
                    sink.endpoint.name.clone(),
                ))
            })?
            .clone();
        let events = store.delivered_since(&sink.endpoint.name, since.into(), usize::MAX)?;
        let batches = events.into_iter().map(|e| vec![Arc::new(e)]).collect();
        let report = resend(&sink, batches, |_, _| {}).await;
        Ok(report)
    }

    /// The webhook's counters (mailbox drops included).
    pub fn stats(&self, id: &WebhookId) -> Result<WebhookStats, WebhookError> {
        self.with(id, |r| {
            let mut s = r.sink.stats();
            s.dropped += r.subscription.stats().dropped;
            s
        })
    }

    /// The sink of a webhook (for direct sends or its dead letters).
    pub fn sink_of(&self, id: &WebhookId) -> Result<WebhookSink, WebhookError> {
        self.with(id, |r| r.sink.clone())
    }
}

/// Sends each batch again through `sink`, as many at once as its
/// concurrency, telling `done` which one ended and whether it was delivered.
async fn resend(
    sink: &WebhookSink,
    batches: Vec<Vec<Arc<Event>>>,
    mut done: impl FnMut(usize, bool),
) -> RetryReport {
    let mut running = futures_util::stream::iter(batches.into_iter().enumerate())
        .map(|(i, events)| async move { (i, events.len() as u64, sink.send(&events).await) })
        .buffer_unordered(sink.endpoint.settings.options.concurrency.max(1));
    let mut report = RetryReport::default();
    while let Some((i, n, outcome)) = running.next().await {
        done(i, outcome.is_delivered());
        report.retried += n;
        if outcome.is_delivered() {
            report.delivered += n;
        } else {
            report.failed += n;
        }
    }
    report
}

fn info(id: &WebhookId, sink: &WebhookSink) -> WebhookInfo {
    let ep = &sink.endpoint;
    WebhookInfo {
        id: id.clone(),
        name: ep.name.clone(),
        url: ep.display_url.clone(),
        events: ep.settings.events.clone(),
        enabled: sink.is_enabled(),
        signed: ep.settings.secrets.iter().any(|s| !s.is_empty()),
        format: ep.settings.format,
        templated: ep.template.is_some() || !ep.templates.is_empty(),
    }
}

/// Dead letters taken out for `retry_failed` that have not finished yet;
/// dropping it returns them to the log.
struct PutBack<'a> {
    letters: Vec<Option<super::log::DeadLetter>>,
    state: &'a super::endpoint::EndpointState,
}

impl Drop for PutBack<'_> {
    fn drop(&mut self) {
        self.state
            .log
            .restore(self.letters.drain(..).flatten().collect());
    }
}
