//! The webhook called directly, without a bus: [`WebhookEmitter`].

use std::sync::Arc;

use super::delivery::DeliveryOutcome;
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
#[derive(Debug, Clone)]
pub struct WebhookEmitter {
    sink: WebhookSink,
}

impl WebhookEmitter {
    pub(crate) fn from_sink(sink: WebhookSink) -> WebhookEmitter {
        WebhookEmitter { sink }
    }

    /// Sends one event now (with retries) unless it is not subscribed or the
    /// condition or the filter expression turns it away, and returns how it went.
    pub async fn emit(&self, event: impl Into<Arc<Event>>) -> DeliveryOutcome {
        let event = event.into();
        if !self.sink.endpoint.wants(&event) {
            return DeliveryOutcome::skipped();
        }
        self.sink.send(&[event]).await
    }

    /// Sends several events in one request (batched mode).
    pub async fn emit_batch(&self, events: Vec<Arc<Event>>) -> DeliveryOutcome {
        let events: Vec<Arc<Event>> = events
            .into_iter()
            .filter(|e| self.sink.endpoint.wants(e))
            .collect();
        self.sink.send(&events).await
    }

    /// The sink behind it (stats, log, enable/disable).
    pub fn sink(&self) -> &WebhookSink {
        &self.sink
    }
}
