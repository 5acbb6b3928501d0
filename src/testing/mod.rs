//! Testing your own event flows without the network (feature `testing`).
//!
//! - [`TestReceiver`]: a webhook receiver on `127.0.0.1` (a free port) that
//!   verifies signatures with any [`Verifier`](crate::verify::Verifier)
//!   scheme, injects faults (a [script](TestReceiverBuilder::script) of
//!   [`Reply`]s such as 429 + `Retry-After`, 410 Gone or 500;
//!   [`fail_next(n)`](TestReceiver::fail_next); a seeded
//!   [fail rate](TestReceiverBuilder::fail_rate); a delay; a slow body),
//!   records every request (headers, raw body, the CloudEvents in it, the
//!   signature verdict with the reason for a rejection, the answer) and lets
//!   a test wait for what it expects. The CLI's `hookbus listen` is this
//!   receiver with a printer attached.
//! - [`BusProbe`]: records what a bus delivered on a pattern, e.g. the
//!   `hookbus.endpoint_disabled` and `hookbus.delivery_failed`
//!   announcements of webhook subscribers.
//! - [`advance`] and [`advance_until`]: run retry schedules and disable
//!   policies under Tokio's paused clock, days in no time.
//!
//! Every wait wakes on an explicit signal (never a sleep or a poll) and has
//! a deadline: it returns [`WaitError::TimedOut`] instead of hanging. Under
//! a paused clock the deadline is virtual time.
//!
//! Add the feature for tests only, with Tokio's `test-util` for the paused
//! clock:
//!
//! ```toml
//! [dev-dependencies]
//! hookbus = { version = "0.1", features = ["testing"] }
//! tokio = { version = "1", features = ["test-util", "macros"] }
//! ```
//!
//! A webhook subscriber against a receiver that answers 410 Gone: the
//! endpoint is disabled after one request and the bus says so.
//!
//! ```
//! # #[cfg(feature = "webhook")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hookbus::{Bus, Event};
//! use hookbus::testing::{BusProbe, Reply, TestReceiver};
//! use hookbus::verify::Verifier;
//! use hookbus::webhook::WebhookSink;
//! use serde_json::json;
//!
//! // Standard Webhooks, the default scheme (`hookbus keygen` makes secrets).
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let receiver = TestReceiver::builder()
//!     .verifier(Verifier::standard_webhooks(secret)?)
//!     .script([Reply::gone()])
//!     .start()
//!     .await?;
//! let bus = Bus::new()?;
//! let announcements = BusProbe::new(&bus, "hookbus.*")?;
//! let sink = WebhookSink::builder(receiver.url()).name("crm").secret(secret).build()?;
//! let _subscription = sink.subscribe(&bus)?;
//!
//! bus.emit(Event::new("decision.captured", json!({"decision_id": "d-1"}))?)?;
//! let disabled = announcements.wait_for_type("hookbus.endpoint_disabled").await?;
//! assert_eq!(disabled.data()["webhook"], "crm");
//! assert!(!sink.is_enabled());
//!
//! let requests = receiver.requests();
//! assert_eq!(requests.len(), 1, "410 is final");
//! assert_eq!(requests[0].status, 410);
//! assert_eq!(requests[0].events[0].event_type(), "decision.captured");
//! assert!(requests[0].rejection().is_none(), "the signature verified");
//! # Ok(()) }
//! # #[cfg(not(feature = "webhook"))]
//! # fn main() {}
//! ```
//!
//! The paused-clock pattern ("advance 3 days: the endpoint is disabled and
//! `hookbus.endpoint_disabled` announced") is spelled out under
//! [`advance`].

mod clock;
mod error;
mod probe;
mod receiver;
mod reply;

pub use clock::{advance, advance_until, clock_is_paused};
pub use error::{ClockError, ReceiverError, WaitError};
pub use probe::BusProbe;
pub use receiver::{
    AnsweredBy, DEFAULT_WAIT_TIMEOUT, ReceivedRequest, ReceiverStats, SignatureCheck, TestReceiver,
    TestReceiverBuilder,
};
pub use reply::Reply;

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Checks `check` now and after each change signalled on `changed`, until
/// it says done, the signal's sender is gone, or `timeout` passes.
/// `check` returns whether it is done and how many of the awaited things
/// were seen (for the error).
async fn wait_on(
    mut changed: watch::Receiver<()>,
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> (bool, usize),
) -> Result<(), WaitError> {
    let start = Instant::now();
    let mut seen = 0;
    let outcome = tokio::time::timeout(timeout, async {
        loop {
            let (done, n) = check();
            seen = n;
            if done {
                return Ok(());
            }
            if changed.changed().await.is_err() {
                // The sender is gone: one last look, then nothing more comes.
                let (done, n) = check();
                seen = n;
                return if done {
                    Ok(())
                } else {
                    Err(WaitError::Stopped {
                        what: what.to_owned(),
                        seen,
                    })
                };
            }
        }
    })
    .await;
    match outcome {
        Ok(result) => result,
        Err(_) => Err(WaitError::TimedOut {
            what: what.to_owned(),
            waited: start.elapsed(),
            seen,
        }),
    }
}
