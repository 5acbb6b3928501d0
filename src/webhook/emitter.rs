//! The webhook called directly, without a bus: [`WebhookEmitter`].

use std::sync::{Arc, Mutex};

use std::future::Future;

use super::delivery::{DeliveryOutcome, Svc, deliver, spawn_delivery, stack};
use super::sink::WebhookSink;
use crate::event::Event;

/// A webhook called directly, without a bus, as in the Briefcase API:
/// `WebhookEmitter::new(url)?.emit(event).await` returns the outcome.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use hookbus::Event;
/// use hookbus::webhook::WebhookEmitter;
/// use serde_json::json;
///
/// let emitter = WebhookEmitter::builder("https://hooks.example.com/decisions")
///     .secret("my-webhook-secret")
///     .events(["decision.low_confidence"])
///     .build_emitter()?;
/// let outcome = emitter
///     .emit(Event::new("decision.low_confidence", json!({"decision_id": "abc123", "confidence": 0.72}))?)
///     .await;
/// println!("{:?} after {} attempt(s)", outcome.status, outcome.attempts);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WebhookEmitter {
    sink: WebhookSink,
    /// The endpoint's delivery stack (no concurrency limit), cloned for
    /// each delivery (in a mutex: a boxed service is not `Sync`).
    svc: Arc<Mutex<Svc>>,
}

impl std::fmt::Debug for WebhookEmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEmitter")
            .field("sink", &self.sink)
            .finish()
    }
}

impl WebhookEmitter {
    pub(crate) fn from_sink(sink: WebhookSink) -> WebhookEmitter {
        let svc = stack(&sink.endpoint, None, true);
        let svc = Arc::new(Mutex::new(svc));
        WebhookEmitter { sink, svc }
    }

    fn send(&self, events: Arc<[Arc<Event>]>) -> impl Future<Output = DeliveryOutcome> + 'static {
        let ep = self.sink.endpoint.clone();
        let svc = self.svc.lock().unwrap_or_else(|e| e.into_inner()).clone();
        spawn_delivery(deliver(ep, events, (svc, false), None, None))
    }

    /// Sends one event now (with retries) unless it is not subscribed or the
    /// condition or the filter expression turns it away, and returns how it went.
    pub async fn emit(&self, event: impl Into<Arc<Event>>) -> DeliveryOutcome {
        let event = event.into();
        if !self.sink.endpoint.wants(&event) {
            return DeliveryOutcome::skipped();
        }
        self.send(Arc::new([event])).await
    }

    /// Sends several events in one request (batched mode).
    pub async fn emit_batch(&self, events: Vec<Arc<Event>>) -> DeliveryOutcome {
        let events: Vec<Arc<Event>> = events
            .into_iter()
            .filter(|e| self.sink.endpoint.wants(e))
            .collect();
        self.send(events.into()).await
    }

    /// The sink behind it (stats, log, enable/disable).
    pub fn sink(&self) -> &WebhookSink {
        &self.sink
    }
}
