//! Delivery trouble made visible: the first failed attempt of an endpoint
//! logs at `warn` (with the status, the error and the start of the
//! receiver's answer), later failures at `debug` with one `warn` per
//! [`TROUBLE_WARN_INTERVAL`] saying how many failed meanwhile, and the first
//! success after them logs once at `info`. It knows nothing of the
//! endpoint, only what an attempt said ([`Attempt`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use super::attempt::Attempt;

/// The least time between two `warn` lines about one failing endpoint.
pub const TROUBLE_WARN_INTERVAL: Duration = Duration::from_secs(60);

/// The longest response excerpt written to the log (the delivery log keeps
/// more).
const LOGGED_EXCERPT: usize = 200;

/// One endpoint's failure streak, as the log sees it.
#[derive(Debug, Default)]
pub(crate) struct Trouble {
    /// Set while a streak is on (a delivered attempt reads only this).
    failing: AtomicBool,
    inner: Mutex<Streak>,
}

#[derive(Debug, Default)]
struct Streak {
    /// When the first failed attempt of the streak ended (None: healthy).
    since: Option<(Instant, OffsetDateTime)>,
    /// Failed attempts in the streak.
    failed: u64,
    /// When the last `warn` was written, and the count then.
    warned: Option<(Instant, u64)>,
}

/// What a failed attempt says, for the log.
pub(crate) struct Failure<'a> {
    pub(crate) webhook: &'a str,
    pub(crate) url: &'a str,
    pub(crate) event_id: &'a str,
    /// The attempt (its number, status, error and the start of the answer).
    pub(crate) answer: &'a Attempt,
    /// The wait before the next attempt, or None when the delivery gives up.
    pub(crate) retry_in: Option<Duration>,
}

fn excerpt(text: Option<&str>) -> Option<&str> {
    let text = text?;
    let end = text
        .char_indices()
        .nth(LOGGED_EXCERPT)
        .map_or(text.len(), |(i, _)| i);
    Some(&text[..end])
}

impl Trouble {
    fn streak(&self) -> std::sync::MutexGuard<'_, Streak> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the current failure streak began (None while healthy).
    pub(crate) fn failing_since(&self) -> Option<OffsetDateTime> {
        self.streak().since.map(|(_, t)| t)
    }

    /// A failed attempt: `warn` if it is the first of a streak or the last
    /// `warn` is [`TROUBLE_WARN_INTERVAL`] old, else `debug`.
    pub(crate) fn failed(&self, f: &Failure<'_>) {
        let now = Instant::now();
        let (first, quiet) = {
            let mut s = self.streak();
            s.failed += 1;
            let first = s.since.is_none();
            if first {
                s.since = Some((now, OffsetDateTime::now_utc()));
                self.failing.store(true, Relaxed);
            }
            let due = s
                .warned
                .is_none_or(|(at, _)| now.duration_since(at) >= TROUBLE_WARN_INTERVAL);
            if !due {
                (false, None)
            } else {
                let quiet = s.warned.map(|(_, n)| s.failed - n - 1);
                s.warned = Some((now, s.failed));
                (first, Some(quiet.unwrap_or(0)))
            }
        };
        let (r, response) = (f.answer, excerpt(f.answer.excerpt.as_deref()));
        let next = f
            .retry_in
            .map_or_else(|| "none (given up)".to_owned(), |d| format!("in {d:?}"));
        match quiet {
            Some(_) if first => tracing::warn!(
                webhook = %f.webhook, url = %f.url, event_id = %f.event_id,
                attempt = r.number, status = ?r.status, error = ?r.error,
                response = ?response, next_attempt = %next,
                "hookbus: webhook delivery failing"
            ),
            Some(quiet) => tracing::warn!(
                webhook = %f.webhook, url = %f.url, event_id = %f.event_id,
                attempt = r.number, status = ?r.status, error = ?r.error,
                response = ?response, next_attempt = %next,
                failed_since_last_warning = quiet,
                "hookbus: webhook delivery still failing"
            ),
            None => tracing::debug!(
                webhook = %f.webhook, event_id = %f.event_id, attempt = r.number,
                status = ?r.status, error = ?r.error, next_attempt = %next,
                "hookbus: webhook attempt failed"
            ),
        }
    }

    /// A delivered attempt: ends a streak, logged once at `info`.
    pub(crate) fn delivered(&self, webhook: &str, url: &str) {
        if !self.failing.load(Relaxed) {
            return;
        }
        let ended = {
            let mut s = self.streak();
            if s.since.is_none() {
                return;
            }
            let ended = (s.since.map(|(at, _)| at.elapsed()), s.failed);
            *s = Streak::default();
            self.failing.store(false, Relaxed);
            ended
        };
        tracing::info!(
            webhook = %webhook, url = %url, failed_attempts = ended.1,
            failing_for = ?ended.0.unwrap_or_default(),
            "hookbus: webhook delivery recovered"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_cuts_at_a_char_boundary() {
        let long = "é".repeat(300);
        assert_eq!(
            excerpt(Some(&long)).unwrap().chars().count(),
            LOGGED_EXCERPT
        );
        assert_eq!(excerpt(Some("short")), Some("short"));
        assert_eq!(excerpt(None), None);
    }
}
