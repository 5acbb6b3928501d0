//! Per-endpoint rate limits: a token bucket (as GCRA: one theoretical
//! arrival time, no background refill) shared by every delivery of an
//! endpoint, and the token a bus subscription takes for its next delivery in
//! [`Sink::poll_ready`](crate::Sink::poll_ready).
//!
//! A subscription waits for its token before it reserves a sending slot, so
//! a delivery waiting for a token holds none, and the events behind it stay
//! in the mailbox under its overflow policy. A retry waits for a token too
//! (every request counts), also without its slot.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

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

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("interval", &self.interval)
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
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

    /// Waits for a token, counted in the endpoint's stats while it waits.
    pub(crate) async fn acquire(&self, state: &RateWaits) {
        let mut waiting = None;
        loop {
            match self.try_acquire() {
                Ok(()) => return,
                Err(at) => {
                    if waiting.is_none() {
                        state.limited.fetch_add(1, Relaxed);
                        waiting = Some(WaitingToken::new(state));
                    }
                    tokio::time::sleep_until(at).await;
                }
            }
        }
    }
}

/// Counts a delivery as waiting for a token while it lives.
struct WaitingToken<'a>(&'a RateWaits);

impl<'a> WaitingToken<'a> {
    fn new(state: &'a RateWaits) -> WaitingToken<'a> {
        state.waiting.fetch_add(1, Relaxed);
        WaitingToken(state)
    }
}

impl Drop for WaitingToken<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Relaxed);
    }
}

/// The same count, owned (kept across `poll_ready` calls).
struct WaitingTokenOwned(Arc<RateWaits>);

impl Drop for WaitingTokenOwned {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Relaxed);
    }
}

/// The token one bus subscription takes for its next delivery.
pub(crate) struct NextToken {
    limiter: Arc<RateLimiter>,
    state: Arc<RateWaits>,
    wait: Mutex<TokenWait>,
}

#[derive(Default)]
struct TokenWait {
    held: bool,
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: Option<WaitingTokenOwned>,
}

impl fmt::Debug for NextToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextToken")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl NextToken {
    pub(crate) fn new(limiter: Arc<RateLimiter>, state: Arc<RateWaits>) -> NextToken {
        NextToken {
            limiter,
            state,
            wait: Mutex::new(TokenWait::default()),
        }
    }

    fn wait(&self) -> std::sync::MutexGuard<'_, TokenWait> {
        self.wait.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ready once a token is held for the next delivery; `Pending` wakes
    /// `cx` when one may be free.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut w = self.wait();
        if w.held {
            return Poll::Ready(());
        }
        loop {
            match self.limiter.try_acquire() {
                Ok(()) => {
                    w.held = true;
                    w.sleep = None;
                    w.waiting = None;
                    return Poll::Ready(());
                }
                Err(at) => {
                    if w.waiting.is_none() {
                        self.state.limited.fetch_add(1, Relaxed);
                        self.state.waiting.fetch_add(1, Relaxed);
                        w.waiting = Some(WaitingTokenOwned(self.state.clone()));
                    }
                    let sleep = match w.sleep.take() {
                        Some(mut s) => {
                            s.as_mut().reset(at);
                            w.sleep.insert(s)
                        }
                        None => w.sleep.insert(Box::pin(tokio::time::sleep_until(at))),
                    };
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    /// Hands the token taken by `poll_ready` to the delivery that follows;
    /// false if none was taken (the delivery then waits for one itself).
    pub(crate) fn take(&self) -> bool {
        std::mem::take(&mut self.wait().held)
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

    #[test]
    fn invalid_settings_are_refused() {
        assert!(RateLimiter::new(0, Duration::from_secs(1), 1).is_err());
        assert!(RateLimiter::new(1, Duration::ZERO, 1).is_err());
        assert!(RateLimiter::new(1, Duration::from_secs(1), 0).is_err());
        assert!(RateLimiter::new(10, Duration::from_nanos(5), 1).is_err());
        assert!(RateLimiter::new(u32::MAX, Duration::from_secs(3600), u32::MAX).is_ok());
    }
}
