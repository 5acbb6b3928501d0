//! Per-endpoint rate limits: a token bucket (as GCRA: one theoretical
//! arrival time, no background refill) shared by every delivery of an
//! endpoint, and the layer that takes a token before each attempt
//! ([`RateLimit`]). In a bus subscription the stack is polled ready by
//! [`Sink::poll_ready`](crate::Sink::poll_ready): the token is taken before
//! the sending slot, and the events behind it stay in the mailbox under its
//! overflow policy. A retry waits for a token too (every request counts),
//! also without a slot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::attempt::{Timer, poll_until};

/// What is wrong with a [`rate_limit`](super::WebhookBuilder::rate_limit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// `n` is 0.
    #[error("rate_limit needs at least 1 request per period, got 0")]
    NoRequests,
    /// `per` is zero.
    #[error("rate_limit needs a period of more than zero")]
    NoPeriod,
    /// The burst is 0.
    #[error("rate_limit_burst must be at least 1 (1 means no burst, evenly spaced requests)")]
    NoBurst,
    /// More than one request per nanosecond.
    #[error("rate_limit of {n} per {per:?} is more than one request per nanosecond")]
    TooFast {
        /// The requests.
        n: u32,
        /// The period.
        per: Duration,
    },
    /// A burst without a rate.
    #[error("rate_limit_burst is set without rate_limit(n, per)")]
    BurstWithoutRate,
}

/// An endpoint's waits for tokens, for its stats.
#[derive(Debug, Default)]
pub(crate) struct RateWaits {
    /// Requests that had to wait for a token, since the start.
    pub(crate) limited: AtomicU64,
    /// Deliveries waiting for a token now.
    pub(crate) waiting: AtomicU64,
}

/// `n` requests per `per`, bursts of up to `burst` at once.
pub(crate) struct RateLimiter {
    /// Time between requests at the steady rate (`per / n`).
    interval: Duration,
    /// How far ahead of the steady rate a burst may run
    /// (`interval × (burst − 1)`).
    tolerance: Duration,
    /// The theoretical arrival time of the next request at the steady rate:
    /// the bucket itself, shared with the limiter an update replaces (see
    /// [`continuing`](Self::continuing)).
    tat: Arc<Mutex<Option<Instant>>>,
}

impl RateLimiter {
    /// Checks the settings: `n`, `per` and `burst` must be more than zero and
    /// `per / n` at least a nanosecond.
    pub(crate) fn new(n: u32, per: Duration, burst: u32) -> Result<RateLimiter, RateLimitError> {
        if n == 0 {
            return Err(RateLimitError::NoRequests);
        }
        if per.is_zero() {
            return Err(RateLimitError::NoPeriod);
        }
        if burst == 0 {
            return Err(RateLimitError::NoBurst);
        }
        let interval = per / n;
        if interval.is_zero() {
            return Err(RateLimitError::TooFast { n, per });
        }
        Ok(RateLimiter {
            interval,
            tolerance: interval.saturating_mul(burst - 1),
            tat: Arc::new(Mutex::new(None)),
        })
    }

    /// Whether `other` has the same rate and burst.
    pub(crate) fn same_rate(&self, other: &RateLimiter) -> bool {
        self.interval == other.interval && self.tolerance == other.tolerance
    }

    /// This limiter on `old`'s bucket: what `old` let through counts here
    /// too (a [`WebhookManager::update`](super::WebhookManager::update)
    /// never gives an endpoint a fresh bucket).
    pub(crate) fn continuing(mut self, old: &RateLimiter) -> RateLimiter {
        self.tat = old.tat.clone();
        self
    }

    /// Takes a token now, or says when one may be free (another delivery
    /// may take it first: try again then).
    pub(crate) fn try_acquire(&self) -> Result<(), Instant> {
        let now = Instant::now();
        let mut tat = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        let next = tat.map_or(now, |t| t.max(now));
        let ahead = next.duration_since(now);
        if ahead > self.tolerance {
            return Err(next - self.tolerance);
        }
        *tat = Some(next + self.interval);
        Ok(())
    }

    /// Gives back a token taken and not used.
    fn give_back(&self) {
        let mut tat = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = tat.as_mut() {
            *t -= self.interval;
        }
    }
}

/// Counts a delivery as waiting for a token while it lives.
struct WaitingToken(Arc<RateWaits>);

impl WaitingToken {
    fn new(state: &Arc<RateWaits>) -> WaitingToken {
        state.limited.fetch_add(1, Relaxed);
        state.waiting.fetch_add(1, Relaxed);
        WaitingToken(state.clone())
    }
}

impl Drop for WaitingToken {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Relaxed);
    }
}

/// The rate-limit layer: `poll_ready` takes a token of the endpoint's
/// bucket (waiting for one, counted in its stats) before the layers inside
/// it reserve a sending slot, so a delivery waiting for a token holds none.
/// A token taken by a service dropped before its `call` goes back.
///
/// Ours, not `tower::limit::RateLimit`: that one is a fixed window per
/// service instance (each clone of a stack would get its own budget, and
/// an update a fresh one); here one bucket per endpoint is shared by its
/// subscription, its emitter, `retry_failed`, `test` and an `update`, and
/// a burst is bounded ([`RateLimiter`]).
pub(crate) struct RateLimit<S> {
    inner: S,
    limiter: Arc<RateLimiter>,
    waits: Arc<RateWaits>,
    held: bool,
    timer: Timer,
    waiting: Option<WaitingToken>,
}

impl<S> RateLimit<S> {
    pub(crate) fn new(inner: S, limiter: Arc<RateLimiter>, waits: Arc<RateWaits>) -> Self {
        RateLimit {
            inner,
            limiter,
            waits,
            held: false,
            timer: None,
            waiting: None,
        }
    }
}

impl<S: Clone> Clone for RateLimit<S> {
    fn clone(&self) -> Self {
        RateLimit::new(self.inner.clone(), self.limiter.clone(), self.waits.clone())
    }
}

impl<S> Drop for RateLimit<S> {
    fn drop(&mut self) {
        if self.held {
            self.limiter.give_back();
        }
    }
}

impl<S: tower::Service<R>, R> tower::Service<R> for RateLimit<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        while !self.held {
            match self.limiter.try_acquire() {
                Ok(()) => {
                    self.held = true;
                    self.waiting = None;
                }
                Err(at) => {
                    if self.waiting.is_none() {
                        self.waiting = Some(WaitingToken::new(&self.waits));
                    }
                    std::task::ready!(poll_until(&mut self.timer, at, cx));
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.held = false;
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_steady_rate() {
        let l = RateLimiter::new(5, Duration::from_secs(1), 5).unwrap();
        let start = Instant::now();
        for _ in 0..5 {
            assert!(l.try_acquire().is_ok());
        }
        assert_eq!(
            l.try_acquire(),
            Err(start + Duration::from_millis(200)),
            "the 6th waits 200 ms"
        );
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(l.try_acquire().is_ok());
        assert!(l.try_acquire().is_err());
        // Idle for long: the bucket refills to the burst, no more.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..5 {
            assert!(l.try_acquire().is_ok());
        }
        assert!(l.try_acquire().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_takes_a_token_when_ready_and_gives_back_one_unused() {
        use super::super::attempt::testing::{answering, request};
        use tower::{Service, ServiceExt};
        let limiter = Arc::new(RateLimiter::new(1, Duration::from_secs(1), 1).unwrap());
        let waits = Arc::new(RateWaits::default());
        let mut a = RateLimit::new(answering(200, None), limiter.clone(), waits.clone());
        let mut b = a.clone();
        a.ready().await.unwrap();
        // The one token is a's: b waits, counted in the stats.
        assert!(futures_util::poll!(b.ready()).is_pending());
        assert_eq!(waits.waiting.load(Relaxed), 1);
        // a is dropped unused: its token goes back, and b takes it.
        drop(a);
        b.ready().await.unwrap();
        assert_eq!(waits.waiting.load(Relaxed), 0);
        assert_eq!(waits.limited.load(Relaxed), 1);
        b.call(request()).await.unwrap();
        // Used: the next one waits for the steady rate.
        let start = Instant::now();
        b.ready().await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
