//! What flows through the delivery stack (see [`delivery`](super::delivery)):
//! the [`Request`] of one attempt and its answer, an [`Attempt`] with its
//! [`Verdict`], and the wait the waiting layers share ([`poll_until`]). A leaf module:
//! the layers and the innermost service (`endpoint::Post`) all speak these
//! types.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use reqwest::header::HeaderValue;

use super::wire::Payload;
use crate::event::Event;
use crate::hub::journal::Journal;

/// The start of a response body kept in the log.
pub const RESPONSE_EXCERPT_LEN: usize = 512;

/// One attempt's request, as it goes down the stack. Cheap to clone (the
/// retry layer keeps a copy for the next attempt).
#[derive(Clone)]
pub(crate) struct Request {
    pub(crate) events: Arc<[Arc<Event>]>,
    pub(crate) payload: Arc<Payload>,
    /// The attempt's number, 1 for the first (the retry layer counts).
    pub(crate) attempt: u32,
    /// A durable subscriber's journal: scheduled retries are persisted.
    pub(crate) journal: Option<Arc<dyn Journal>>,
    /// `Authorization`, set by the OAuth2 layer.
    pub(crate) bearer: Option<HeaderValue>,
    /// Sent even while the endpoint is disabled (`WebhookManager::test`).
    pub(crate) even_disabled: bool,
}

/// What an attempt's outcome means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 2xx: done.
    Delivered,
    /// Worth another attempt (408, 429, 5xx, a timeout or a failed
    /// connection), at the earliest after `after` when the receiver said so
    /// (`Retry-After`).
    Retry { after: Option<Duration> },
    /// No attempt can fix it (another 4xx, a redirect, a refused address, a
    /// request that cannot be signed).
    Final,
    /// 410 Gone: stop, and disable the endpoint.
    Gone,
    /// Not sent: the endpoint was disabled while the delivery waited.
    Disabled,
}

/// One attempt, as the log records it.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub(crate) verdict: Verdict,
    pub(crate) status: Option<u16>,
    pub(crate) latency: Duration,
    /// What went wrong, safe to log (no URL, no secret).
    pub(crate) error: Option<String>,
    pub(crate) excerpt: Option<String>,
    /// The attempt's number (set by the retry layer).
    pub(crate) number: u32,
}

impl Attempt {
    /// An attempt that ended without an answer.
    pub(crate) fn failed(verdict: Verdict, latency: Duration, error: String) -> Attempt {
        Attempt {
            verdict,
            status: None,
            latency,
            error: Some(error),
            excerpt: None,
            number: 0,
        }
    }

    /// A failure before anything was sent.
    pub(crate) fn refused(error: String) -> Attempt {
        Attempt::failed(Verdict::Final, Duration::ZERO, error)
    }

    /// No answer within the endpoint's timeout (the timeout layer).
    pub(crate) fn timed_out(timeout: Duration) -> Attempt {
        let error = format!("timed out after {timeout:?}");
        Attempt::failed(Verdict::Retry { after: None }, timeout, error)
    }
}

/// A layer's wait in `poll_ready` for a deadline that may move (the end
/// of a pause, the next rate-limit token): ready once `at` has passed, on
/// one timer kept across polls and reset when the deadline moves.
pub(crate) fn poll_until(timer: &mut Timer, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
    if sleep.deadline() != at {
        sleep.as_mut().reset(at);
    }
    std::future::Future::poll(sleep.as_mut(), cx)
}

/// The timer of [`poll_until`].
pub(crate) type Timer = Option<Pin<Box<Sleep>>>;

/// A request and an inner service answering `status`, to drive a layer
/// alone in its unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) fn request() -> Request {
        let event = Event::new("a.b", serde_json::json!({})).unwrap();
        Request {
            events: vec![Arc::new(event)].into(),
            payload: Arc::new(Payload {
                body: bytes::Bytes::new(),
                headers: Default::default(),
                message_id: "m".into(),
            }),
            attempt: 1,
            journal: None,
            bearer: None,
            even_disabled: false,
        }
    }

    /// Answers every request with `status` (and `Retry-After: retry_after`).
    pub(crate) fn answering(
        status: u16,
        retry_after: Option<Duration>,
    ) -> impl tower::Service<
        Request,
        Response = Attempt,
        Error = std::convert::Infallible,
        Future = std::future::Ready<Result<Attempt, std::convert::Infallible>>,
    > + Clone {
        tower::service_fn(move |_: Request| {
            let verdict = match status {
                200 => Verdict::Delivered,
                _ => Verdict::Retry { after: retry_after },
            };
            std::future::ready(Ok(Attempt {
                verdict,
                status: Some(status),
                latency: Duration::from_millis(1),
                error: None,
                excerpt: None,
                number: 0,
            }))
        })
    }
}
