//! How hard an endpoint may be pushed right now: its adaptive concurrency
//! limit ([`Aimd`], whose behaviour the public docs of
//! [`WebhookBuilder::adaptive_concurrency`](super::WebhookBuilder::adaptive_concurrency)
//! describe) and its pause after a `Retry-After` ([`Pressure`]), with their
//! layers ([`Adaptive`], [`Pause`]).
//!
//! The controller sees answers in windows of `max(limit, 5)` (about one
//! round trip; never fewer than 5, so one slow answer is not a trend) and
//! ignores answers to requests sent before the last change of the limit
//! (they tell about the old one). It decreases by × 0.9, not × 0.5: it
//! probes the receiver's capacity by going one above it, once per window,
//! and halving on every probe would run at about 75 % of the capacity (the
//! TCP saw-tooth); × 0.9 stays within 10 % of it, as Vector's default does.
//! The baseline latency follows lower window means at once (halfway), never
//! higher ones, except at limit 1 where our load cannot queue: there it is
//! reset, so a receiver slower for good pulls the limit down to 1 once and
//! it grows again from the new baseline.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use super::attempt::{Attempt, Request, Timer, Verdict, poll_until};

/// The factor of a decrease.
const DECREASE: f64 = 0.9;
/// A window mean within this multiple of the baseline is stable latency.
const STABLE: f64 = 1.5;
/// A window mean above this multiple of the baseline is overload.
const HIGH: f64 = 2.0;
/// The fewest answers in a window.
const MIN_WINDOW: usize = 5;

/// What one answer says about the receiver's load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Signal {
    /// An answer (2xx) that took this long.
    Latency(Duration),
    /// 429, 502, 503, 504, a timeout or a failed connection.
    Overload,
}

impl Signal {
    /// The signal of an attempt, if it carries one (a 4xx or a 500 tells
    /// nothing about load; neither does a request refused before sending).
    pub(crate) fn of(r: &Attempt) -> Option<Signal> {
        match (r.verdict, r.status) {
            (Verdict::Delivered, _) => Some(Signal::Latency(r.latency)),
            (_, Some(429 | 502 | 503 | 504)) => Some(Signal::Overload),
            (Verdict::Retry { .. }, None) => Some(Signal::Overload),
            _ => None,
        }
    }
}

/// The AIMD controller of one endpoint's in-flight limit (no I/O, no clock:
/// it only sees answers).
#[derive(Debug)]
pub(crate) struct Aimd {
    max: usize,
    limit: usize,
    /// Seconds.
    baseline: Option<f64>,
    /// Bumped by every change; answers to older requests are ignored.
    generation: u64,
    window: Window,
}

#[derive(Debug, Default)]
struct Window {
    answers: usize,
    overloaded: bool,
    latency_sum: f64,
    samples: usize,
    /// A request had to wait for a slot.
    limited: bool,
}

impl Aimd {
    /// A controller between 1 and `max` (at least 1), starting at 1.
    pub(crate) fn new(max: usize) -> Aimd {
        Aimd {
            max: max.max(1),
            limit: 1,
            baseline: None,
            generation: 0,
            window: Window::default(),
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The generation a request sent now belongs to.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// A request had to wait for a slot: the limit is in use.
    pub(crate) fn saw_limit(&mut self) {
        self.window.limited = true;
    }

    /// Takes one answer to a request sent in `generation`; returns the new
    /// limit when it changes.
    pub(crate) fn observe(&mut self, signal: Signal, generation: u64) -> Option<usize> {
        if generation != self.generation {
            return None;
        }
        let w = &mut self.window;
        w.answers += 1;
        match signal {
            Signal::Overload => w.overloaded = true,
            Signal::Latency(d) => {
                w.latency_sum += d.as_secs_f64();
                w.samples += 1;
            }
        }
        if w.answers < self.limit.max(MIN_WINDOW) {
            return None;
        }
        let w = std::mem::take(&mut self.window);
        let rtt = (w.samples > 0).then(|| w.latency_sum / w.samples as f64);
        let high = matches!((rtt, self.baseline), (Some(r), Some(b)) if r > b * HIGH);
        let stable = match (rtt, self.baseline) {
            (Some(r), Some(b)) => r <= b * STABLE,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let old = self.limit;
        if w.overloaded || high {
            self.limit = ((old as f64 * DECREASE) as usize).min(old - 1).max(1);
        } else if stable && w.limited {
            self.limit = (old + 1).min(self.max);
        }
        if let Some(r) = rtt {
            self.baseline = match self.baseline {
                None => Some(r),
                // At limit 1 our own requests cannot queue at the receiver.
                Some(_) if old == 1 && !w.overloaded => Some(r),
                Some(b) if r < b => Some(b + (r - b) * 0.5),
                keep => keep,
            };
        }
        if self.limit != old {
            self.generation += 1;
        }
        (self.limit != old).then_some(self.limit)
    }
}

/// An endpoint's pause (after a `Retry-After` on 429 or 503) and its
/// current adaptive limit, for all its deliveries and its stats.
#[derive(Debug, Default)]
pub(crate) struct Pressure {
    /// The adaptive limit of its bus subscription; 0 when not adaptive.
    limit: AtomicUsize,
    /// Set while a pause may be on (the fast path reads only this).
    paused: AtomicBool,
    until: Mutex<Option<(Instant, OffsetDateTime)>>,
}

impl Pressure {
    pub(crate) fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Relaxed);
    }

    /// The adaptive limit, if the endpoint has one.
    pub(crate) fn limit(&self) -> Option<usize> {
        Some(self.limit.load(Relaxed)).filter(|&l| l > 0)
    }

    fn until(&self) -> std::sync::MutexGuard<'_, Option<(Instant, OffsetDateTime)>> {
        self.until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pauses the endpoint for `d` from now (a later pause wins over an
    /// earlier one).
    pub(crate) fn pause(&self, d: Duration) {
        // Never past MAX_WAIT, so neither clock can overflow.
        let d = d.min(super::retry::MAX_WAIT);
        let at = Instant::now() + d;
        let mut until = self.until();
        if until.is_none_or(|(u, _)| u < at) {
            *until = Some((at, OffsetDateTime::now_utc() + d));
            self.paused.store(true, Relaxed);
        }
    }

    /// An answer 429 or 503 with `Retry-After` pauses the endpoint, for at
    /// most `cap` (the event's policy's `max_retry_after`).
    pub(crate) fn observe(&self, r: &Attempt, cap: Duration) {
        if let (Verdict::Retry { after: Some(after) }, Some(429 | 503)) = (r.verdict, r.status)
            && !after.is_zero()
        {
            let after = after.min(cap);
            tracing::debug!(?after, "hookbus: webhook endpoint paused (Retry-After)");
            self.pause(after);
        }
    }

    /// When the pause ends, while one is on.
    pub(crate) fn paused_until(&self) -> Option<Instant> {
        if !self.paused.load(Relaxed) {
            return None;
        }
        let mut until = self.until();
        match *until {
            Some((at, _)) if at > Instant::now() => Some(at),
            _ => {
                *until = None;
                self.paused.store(false, Relaxed);
                None
            }
        }
    }

    /// The same, as a wall-clock time for the stats.
    pub(crate) fn paused_until_utc(&self) -> Option<OffsetDateTime> {
        self.paused_until()?;
        self.until().map(|(_, t)| t)
    }
}

/// The pause layer: `poll_ready` waits while the endpoint is paused (a
/// subscription's events stay in the mailbox meanwhile, under its overflow
/// policy; a retry waits holding no token and no slot). The retry policy,
/// which sees every answer, starts a pause ([`Pressure::observe`]). Ours:
/// tower has no layer that pauses on an answer.
pub(crate) struct Pause<S> {
    inner: S,
    pressure: Arc<Pressure>,
    timer: Timer,
}

impl<S> Pause<S> {
    pub(crate) fn new(inner: S, pressure: Arc<Pressure>) -> Self {
        Pause {
            inner,
            pressure,
            timer: None,
        }
    }
}

impl<S: Clone> Clone for Pause<S> {
    fn clone(&self) -> Self {
        Pause::new(self.inner.clone(), self.pressure.clone())
    }
}

impl<S: tower::Service<R>, R> tower::Service<R> for Pause<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // The hot path: one atomic load when no pause is on.
        while let Some(until) = self.pressure.paused_until() {
            std::task::ready!(poll_until(&mut self.timer, until, cx));
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.inner.call(req)
    }
}

type Acquire =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send + Sync>>;

/// The shared state of the adaptive concurrency layer: a semaphore whose
/// permits follow the [`Aimd`] limit. A rise adds permits; a fall takes
/// free ones away at once and the others as their requests finish.
pub(crate) struct AdaptiveLimit {
    semaphore: Arc<Semaphore>,
    state: Mutex<(Aimd, usize)>,
    /// Where the stats read the limit.
    pressure: Arc<Pressure>,
}

impl AdaptiveLimit {
    /// Between 1 and `max`; the limit is published in `pressure`.
    pub(crate) fn new(max: usize, pressure: Arc<Pressure>) -> AdaptiveLimit {
        let aimd = Aimd::new(max.min(Semaphore::MAX_PERMITS));
        pressure.set_limit(aimd.limit());
        AdaptiveLimit {
            semaphore: Arc::new(Semaphore::new(aimd.limit())),
            state: Mutex::new((aimd, 0)),
            pressure,
        }
    }

    /// The controller and the permits owed (to take away as requests
    /// finish, after the limit fell below the requests in flight).
    fn state(&self) -> std::sync::MutexGuard<'_, (Aimd, usize)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the controller how an attempt sent in `generation` went, and
    /// applies a new limit.
    fn feedback(&self, r: &Attempt, generation: u64) {
        let Some(signal) = Signal::of(r) else { return };
        let mut state = self.state();
        let (aimd, owed) = &mut *state;
        let old = aimd.limit();
        let Some(new) = aimd.observe(signal, generation) else {
            return;
        };
        if new > old {
            let paid = (new - old).min(*owed);
            *owed -= paid;
            self.semaphore.add_permits(new - old - paid);
        } else {
            let taken = self.semaphore.forget_permits(old - new);
            *owed += old - new - taken;
        }
        self.pressure.set_limit(new);
    }
}

/// A permit of the adaptive layer: given back when its request ends, or
/// taken away if the limit fell meanwhile.
struct Permit(Option<OwnedSemaphorePermit>, Arc<AdaptiveLimit>);

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.1.state();
        if state.1 > 0
            && let Some(p) = self.0.take()
        {
            state.1 -= 1;
            p.forget();
        }
    }
}

/// The adaptive concurrency layer: like `tower::limit::ConcurrencyLimit`
/// (which serves the fixed limit), with a limit that follows the answers
/// ([`Aimd`]). Ours because tower's limits are fixed.
pub(crate) struct Adaptive<S> {
    inner: S,
    limit: Arc<AdaptiveLimit>,
    permit: Option<OwnedSemaphorePermit>,
    acquiring: Option<Acquire>,
}

impl<S> Adaptive<S> {
    pub(crate) fn new(inner: S, limit: Arc<AdaptiveLimit>) -> Self {
        Adaptive {
            inner,
            limit,
            permit: None,
            acquiring: None,
        }
    }
}

impl<S: Clone> Clone for Adaptive<S> {
    fn clone(&self) -> Self {
        Adaptive::new(self.inner.clone(), self.limit.clone())
    }
}

impl<S> tower::Service<Request> for Adaptive<S>
where
    S: tower::Service<Request, Response = Attempt>,
    S::Future: Send + 'static,
{
    type Response = Attempt;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Attempt, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if self.permit.is_none() {
            if self.acquiring.is_none() {
                match self.limit.semaphore.clone().try_acquire_owned() {
                    Ok(p) => self.permit = Some(p),
                    Err(_) => {
                        // The limit is in use: it may grow.
                        self.limit.state().0.saw_limit();
                        let semaphore = self.limit.semaphore.clone();
                        self.acquiring = Some(Box::pin(semaphore.acquire_owned()));
                    }
                }
            }
            if let Some(acquiring) = &mut self.acquiring {
                // The semaphore is never closed.
                self.permit = std::task::ready!(acquiring.as_mut().poll(cx)).ok();
                self.acquiring = None;
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let permit = Permit(self.permit.take(), self.limit.clone());
        let generation = self.limit.state().0.generation();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let r = answer.await?;
            permit.1.feedback(&r, generation);
            drop(permit);
            Ok(r)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds `n` answers of the current generation.
    fn feed(c: &mut Aimd, n: usize, signal: Signal) {
        for _ in 0..n {
            c.observe(signal, c.generation());
        }
    }

    /// A window of the current limit's size (at least 5), limited, of answers
    /// taking `latency`.
    fn window(c: &mut Aimd, latency: Duration) {
        c.saw_limit();
        feed(c, c.limit().max(MIN_WINDOW), Signal::Latency(latency));
    }

    #[test]
    fn grows_by_one_per_limited_window_of_stable_latency() {
        let mut c = Aimd::new(20);
        assert_eq!(c.limit(), 1);
        for expected in 2..=20 {
            window(&mut c, MS);
            assert_eq!(c.limit(), expected);
        }
        window(&mut c, MS);
        assert_eq!(c.limit(), 20, "bounded by concurrency");
        // Not in use: no growth.
        let mut idle = Aimd::new(20);
        feed(&mut idle, 50, Signal::Latency(MS));
        assert_eq!(idle.limit(), 1);
    }

    #[test]
    fn an_overload_takes_a_tenth_off_once_per_window() {
        let mut c = Aimd::new(100);
        for _ in 0..49 {
            window(&mut c, MS);
        }
        assert_eq!(c.limit(), 50);
        let sent_before = c.generation();
        c.observe(Signal::Overload, sent_before);
        feed(&mut c, 49, Signal::Latency(MS));
        assert_eq!(c.limit(), 45, "⌊50 × 0.9⌋");
        // The other answers to requests sent at 50 change nothing.
        for _ in 0..100 {
            assert_eq!(c.observe(Signal::Overload, sent_before), None);
        }
        assert_eq!(c.limit(), 45);
        // Small limits go down by one, never below 1.
        let mut small = Aimd::new(10);
        window(&mut small, MS);
        window(&mut small, MS);
        assert_eq!(small.limit(), 3);
        for expected in [2, 1, 1] {
            feed(&mut small, MIN_WINDOW, Signal::Overload);
            assert_eq!(small.limit(), expected);
        }
    }

    #[test]
    fn rising_latency_holds_then_decreases() {
        let mut c = Aimd::new(100);
        for _ in 0..19 {
            window(&mut c, MS);
        }
        assert_eq!(c.limit(), 20);
        // 1.7 × the baseline: not stable, not clearly above: hold.
        window(&mut c, MS * 17 / 10);
        assert_eq!(c.limit(), 20);
        // 2.5 ×: decrease.
        window(&mut c, MS * 5 / 2);
        assert_eq!(c.limit(), 18);
        // Back to the baseline: growth again.
        window(&mut c, MS);
        assert_eq!(c.limit(), 19);
    }

    #[test]
    fn a_receiver_slower_for_good_gets_a_new_baseline_at_limit_one() {
        let mut c = Aimd::new(10);
        for _ in 0..4 {
            window(&mut c, MS);
        }
        assert_eq!(c.limit(), 5);
        for _ in 0..4 {
            window(&mut c, MS * 5);
        }
        assert_eq!(c.limit(), 1);
        window(&mut c, MS * 5);
        window(&mut c, MS * 5);
        assert_eq!(c.limit(), 2, "5 ms is the new baseline");
    }

    #[test]
    fn settles_near_a_simulated_capacity() {
        // A receiver that takes 20 at once and refuses the rest, in rounds
        // of `limit` requests: the limit never passes 21 and stays between
        // 18 and 21.
        let mut c = Aimd::new(64);
        let mut seen = Vec::new();
        for _ in 0..2000 {
            let limit = c.limit();
            c.saw_limit();
            let g = c.generation();
            for i in 0..limit {
                let s = if i < 20 {
                    Signal::Latency(MS)
                } else {
                    Signal::Overload
                };
                c.observe(s, g);
            }
            seen.push(c.limit());
        }
        assert!(seen.iter().all(|&l| l <= 21), "{seen:?}");
        assert!(seen[100..].iter().all(|&l| l >= 18), "{seen:?}");
    }

    #[test]
    fn load_signals() {
        let a = |verdict, status| Attempt {
            verdict,
            status,
            latency: MS,
            error: None,
            excerpt: None,
            number: 0,
        };
        let retry = Verdict::Retry { after: None };
        assert_eq!(
            Signal::of(&a(Verdict::Delivered, Some(200))),
            Some(Signal::Latency(MS))
        );
        for s in [429, 502, 503, 504] {
            assert_eq!(Signal::of(&a(retry, Some(s))), Some(Signal::Overload));
        }
        assert_eq!(Signal::of(&a(retry, None)), Some(Signal::Overload));
        assert_eq!(Signal::of(&a(retry, Some(500))), None);
        assert_eq!(Signal::of(&a(Verdict::Final, Some(400))), None);
        assert_eq!(Signal::of(&a(Verdict::Final, None)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_ends_and_a_later_one_wins() {
        let p = Pressure::default();
        assert_eq!(p.paused_until(), None);
        let start = Instant::now();
        p.pause(Duration::from_secs(30));
        p.pause(Duration::from_secs(10));
        assert_eq!(p.paused_until(), Some(start + Duration::from_secs(30)));
        assert!(p.paused_until_utc().is_some());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(p.paused_until(), None);
        assert_eq!(p.paused_until_utc(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_up_to_the_cap_and_the_layer_waits() {
        use super::super::attempt::testing::answering;
        use tower::ServiceExt;
        let answer = |status, after| Attempt {
            verdict: Verdict::Retry { after },
            status: Some(status),
            latency: MS,
            error: None,
            excerpt: None,
            number: 0,
        };
        let pressure = Arc::new(Pressure::default());
        let start = Instant::now();
        // The event's policy obeys at most 10 s.
        pressure.observe(
            &answer(429, Some(Duration::from_secs(60))),
            Duration::from_secs(10),
        );
        assert_eq!(
            pressure.paused_until(),
            Some(start + Duration::from_secs(10))
        );
        let mut svc = Pause::new(answering(200, None), pressure.clone());
        svc.ready().await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // A 503 without Retry-After, or a 500 with it, pauses nothing.
        pressure.observe(&answer(503, None), Duration::from_secs(10));
        pressure.observe(&answer(500, Some(MS)), Duration::from_secs(10));
        assert_eq!(pressure.paused_until(), None);
    }

    #[tokio::test]
    async fn the_adaptive_layer_follows_the_limit() {
        use super::super::attempt::testing::{answering, request};
        use tower::{Service, ServiceExt};
        let pressure = Arc::new(Pressure::default());
        let limit = Arc::new(AdaptiveLimit::new(8, pressure.clone()));
        assert_eq!(pressure.limit(), Some(1));
        let ok = Adaptive::new(answering(200, None), limit.clone());
        let mut a = ok.clone();
        a.ready().await.unwrap();
        // A second one waits: the limit is in use.
        let mut b = ok.clone();
        assert!(futures_util::poll!(b.ready()).is_pending());
        drop(b);
        a.call(request()).await.unwrap();
        for _ in 0..4 {
            let mut s = ok.clone();
            s.ready().await.unwrap().call(request()).await.unwrap();
        }
        assert_eq!(
            pressure.limit(),
            Some(2),
            "a window of 5 answers, limited, stable"
        );
        let (mut a, mut b) = (ok.clone(), ok.clone());
        a.ready().await.unwrap();
        b.ready().await.unwrap();
        let mut c = ok.clone();
        assert!(futures_util::poll!(c.ready()).is_pending(), "two slots");
        drop((a, b, c));
        // Overload answers bring it down again.
        let busy = Adaptive::new(answering(503, None), limit.clone());
        for _ in 0..5 {
            let mut s = busy.clone();
            s.ready().await.unwrap().call(request()).await.unwrap();
        }
        assert_eq!(pressure.limit(), Some(1));
        let mut a = ok.clone();
        a.ready().await.unwrap();
        let mut b = ok.clone();
        assert!(futures_util::poll!(b.ready()).is_pending(), "one slot");
    }
}
