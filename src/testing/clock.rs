//! Running retry and disable policies under Tokio's paused clock.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::ClockError;

/// Whether the current Tokio runtime's clock is paused
/// (`#[tokio::test(start_paused = true)]` or `tokio::time::pause()`).
/// Outside a runtime it is `false`.
///
/// It spins for a few microseconds of real time and looks whether Tokio's
/// clock moved: a paused clock moves only when told to or when the runtime
/// has nothing to do, never during a synchronous call.
pub fn clock_is_paused() -> bool {
    let before = Instant::now();
    let real = std::time::Instant::now();
    while real.elapsed() < Duration::from_micros(20) {
        std::hint::spin_loop();
    }
    Instant::now() == before
}

/// Lets `by` of virtual time pass on a paused clock, with every timer in
/// it firing in order and the tasks it wakes running in between: retries,
/// backoffs, `Retry-After` waits, rate limits and delays happen as they
/// would over `by` of real time, in no real time at all.
///
/// It is a sleep that Tokio's paused clock skips through: whenever every
/// task waits, the clock jumps to the next timer. Requests to a
/// [`TestReceiver`](super::TestReceiver) on the same runtime are answered
/// in between (their I/O is ready at once on 127.0.0.1), so a request
/// timeout never fires spuriously. What keeps the runtime busy (a task that
/// loops on `yield_now`) keeps the clock from jumping.
///
/// Returns [`ClockError::NotPaused`] at once if the clock is not paused
/// (days would take days).
///
/// ```
/// # #[cfg(feature = "webhook")]
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use hookbus::{Bus, Event};
/// use hookbus::testing::{self, BusProbe, Reply, TestReceiver};
/// use hookbus::webhook::{RetryPolicy, WebhookSink};
/// use serde_json::json;
/// use std::time::Duration;
///
/// const DAY: Duration = Duration::from_secs(24 * 3600);
///
/// // An endpoint that fails every request, and a subscriber on the Svix
/// // schedule (8 attempts over about 27.5 hours) that disables the
/// // endpoint after 2 dead-lettered deliveries.
/// let receiver = TestReceiver::builder().default_reply(Reply::unavailable()).start().await?;
/// let bus = Bus::new()?;
/// let disabled = BusProbe::new(&bus, "hookbus.endpoint_disabled")?;
/// let sink = WebhookSink::builder(receiver.url())
///     .name("orders")
///     .retry(RetryPolicy::standard_webhooks())
///     .disable_after(Some(2))
///     .build()?;
/// let _subscription = sink.subscribe(&bus)?;
/// bus.emit(Event::new("order.placed", json!({"id": 1}))?)?;
/// bus.emit(Event::new("order.placed", json!({"id": 2}))?)?;
///
/// // Advance 3 days: the endpoint is disabled, and that was announced.
/// testing::advance(3 * DAY).await?;
/// assert!(!sink.is_enabled());
/// let announced = disabled.of_type("hookbus.endpoint_disabled");
/// assert_eq!(announced.len(), 1);
/// assert_eq!(announced[0].data()["webhook"], "orders");
/// assert_eq!(receiver.stats().requests, 16);
/// # Ok(()) }
/// # #[cfg(not(feature = "webhook"))]
/// # fn main() {}
/// ```
pub async fn advance(by: Duration) -> Result<(), ClockError> {
    if !clock_is_paused() {
        return Err(ClockError::NotPaused);
    }
    tokio::time::sleep(by).await;
    Ok(())
}

/// Runs `until` on a paused clock, letting virtual time pass (as
/// [`advance`] does) until it completes or `limit` has passed; returns its
/// output and the virtual time it took.
///
/// `until` should wait on a signal, such as a
/// [`BusProbe`](super::BusProbe) or [`TestReceiver`](super::TestReceiver)
/// wait (give those a [wait timeout](super::BusProbe::wait_timeout) at
/// least as long as `limit`), never poll in a loop: a busy task keeps the
/// clock from moving.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use hookbus::testing::{self, ClockError};
/// use std::time::Duration;
///
/// let hour = Duration::from_secs(3600);
/// let (answer, took) = testing::advance_until(2 * hour, async {
///     tokio::time::sleep(hour).await;
///     42
/// })
/// .await?;
/// assert_eq!((answer, took), (42, hour));
///
/// let late = testing::advance_until(hour, tokio::time::sleep(2 * hour)).await;
/// assert_eq!(late, Err(ClockError::Deadline { limit: hour }));
/// # Ok(()) }
/// ```
pub async fn advance_until<F: Future>(
    limit: Duration,
    until: F,
) -> Result<(F::Output, Duration), ClockError> {
    if !clock_is_paused() {
        return Err(ClockError::NotPaused);
    }
    let start = Instant::now();
    match tokio::time::timeout(limit, until).await {
        Ok(output) => Ok((output, start.elapsed())),
        Err(_) => Err(ClockError::Deadline { limit }),
    }
}
