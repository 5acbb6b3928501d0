//! Retry policy: how many attempts, how long between them, and which outcomes
//! are worth another attempt.
//!
//! | outcome | what happens |
//! |---|---|
//! | 2xx | delivered |
//! | connection error, timeout, 408, 429, 5xx | retried after a backoff (`Retry-After` honoured, bounded) |
//! | 410 Gone | final; the endpoint is disabled |
//! | 3xx | final: redirects are never followed |
//! | other 4xx | final |

use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::hub::{millis, millis_vec};

/// The longest wait a delivery schedules: a backoff, a `Retry-After` or an
/// endpoint pause longer than this (up to [`Duration::MAX`], which the
/// settings accept as "no cap") is cut to it, so no deadline computed from
/// it can overflow. About 100 years: longer than any process lives.
pub const MAX_WAIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How the delay before each retry is chosen.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// `initial × 2^(retry-1)`, capped at `max`.
    Exponential {
        /// Delay before the first retry.
        #[serde(with = "millis")]
        initial: Duration,
        /// Longest delay.
        #[serde(with = "millis")]
        max: Duration,
    },
    /// Explicit delays: entry `i` is waited before attempt `i + 2`; the last
    /// entry repeats if there are more attempts than entries.
    Schedule(#[serde(with = "millis_vec")] Vec<Duration>),
}

/// Retry settings of an endpoint. Default: 3 attempts, exponential backoff
/// from 500 ms to 30 s, ±20 % jitter, `Retry-After` honoured up to 5 minutes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (≥ 1).
    pub max_attempts: u32,
    /// The delays.
    pub backoff: Backoff,
    /// Jitter as a fraction of the delay (0.2 = ±20 %).
    pub jitter: f64,
    /// The longest `Retry-After` obeyed; longer ones are cut to this (and
    /// every wait to [`MAX_WAIT`]).
    #[serde(with = "millis")]
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::Exponential {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(30),
            },
            jitter: 0.2,
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// `max_attempts` attempts with exponential backoff from `initial` up to `max`.
    pub fn exponential(max_attempts: u32, initial: Duration, max: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            backoff: Backoff::Exponential { initial, max },
            ..RetryPolicy::default()
        }
    }

    /// The Standard Webhooks / Svix schedule: the first attempt immediately,
    /// then retries 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after the
    /// failure before each (8 attempts), ±20 % jitter, `Retry-After`
    /// honoured up to 5 minutes. The waits add up to 27 h 35 min 5 s before
    /// jitter (22 h 4 min to 33 h 6 min with it), plus the attempts' own
    /// time. Combine it with [`WebhookBuilder::retry_for`](super::WebhookBuilder::retry_for)
    /// for the events worth it.
    ///
    /// ```
    /// use hookbus::webhook::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let p = RetryPolicy::standard_webhooks();
    /// assert_eq!(p.max_attempts, 8);
    /// let total: Duration = (2..=8).map(|a| p.base_delay(a)).sum();
    /// assert_eq!(total, Duration::from_secs(27 * 3600 + 35 * 60 + 5));
    /// ```
    pub fn standard_webhooks() -> RetryPolicy {
        let s = Duration::from_secs;
        RetryPolicy {
            max_attempts: 8,
            backoff: Backoff::Schedule(vec![
                s(5),
                s(300),
                s(1800),
                s(7200),
                s(18000),
                s(36000),
                s(36000),
            ]),
            ..RetryPolicy::default()
        }
    }

    /// Sets the number of attempts.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Sets the jitter fraction.
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Checks the settings, saying what is wrong.
    pub fn validate(&self) -> Result<(), RetryPolicyError> {
        if self.max_attempts == 0 {
            return Err(RetryPolicyError::NoAttempts);
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(RetryPolicyError::Jitter(self.jitter));
        }
        if let Backoff::Schedule(s) = &self.backoff
            && s.is_empty()
            && self.max_attempts > 1
        {
            return Err(RetryPolicyError::EmptySchedule);
        }
        Ok(())
    }

    /// The delay before attempt `attempt` (2 for the first retry), before
    /// jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let retry = attempt.saturating_sub(1).max(1);
        match &self.backoff {
            Backoff::Exponential { initial, max } => {
                let factor = 2u32.saturating_pow(retry - 1);
                initial.saturating_mul(factor).min(*max)
            }
            Backoff::Schedule(s) => s
                .get(retry as usize - 1)
                .or(s.last())
                .copied()
                .unwrap_or_default(),
        }
    }

    /// The delay before attempt `attempt`, with jitter and the server's
    /// `Retry-After` (waited at least, up to `max_retry_after`), never more
    /// than [`MAX_WAIT`].
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let base = self.base_delay(attempt);
        // `delay` is public and the fields are too: an unchecked jitter
        // (negative, above 1, infinite) or a delay near `Duration::MAX` must
        // not panic here (`gen_range` on an empty range, `mul_f64` overflow).
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let jittered = if jitter > 0.0 && !base.is_zero() {
            let f = rand::thread_rng().gen_range(1.0 - jitter..=1.0 + jitter);
            Duration::try_from_secs_f64(base.as_secs_f64() * f).unwrap_or(Duration::MAX)
        } else {
            base
        };
        let delay = match retry_after {
            Some(ra) => jittered.max(self.retry_after(ra)),
            None => jittered,
        };
        delay.min(MAX_WAIT)
    }

    /// A server's `Retry-After` as obeyed: at most `max_retry_after`, and
    /// never more than [`MAX_WAIT`].
    pub fn retry_after(&self, requested: Duration) -> Duration {
        requested.min(self.max_retry_after).min(MAX_WAIT)
    }
}

/// What is wrong with a [`RetryPolicy`] ([`RetryPolicy::validate`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RetryPolicyError {
    /// `max_attempts` is 0.
    #[error("retry max_attempts must be at least 1")]
    NoAttempts,
    /// The jitter is not within 0..=1 (or is not a number).
    #[error("retry jitter must be within 0..=1, got {0}")]
    Jitter(f64),
    /// A schedule without delays for a policy that retries.
    #[error("retry schedule is empty but max_attempts > 1")]
    EmptySchedule,
}

// A NaN jitter is unequal to itself, which is all `Eq` needs to tolerate
// here: errors are compared by kind.
impl Eq for RetryPolicyError {}

/// What the response status means for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx.
    Success,
    /// Worth another attempt: 408, 429, 5xx.
    Retryable,
    /// 410 Gone: stop and disable the endpoint.
    Gone,
    /// Anything else: final.
    Final,
}

/// Classifies an HTTP status.
pub fn classify(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Success,
        408 | 429 | 500..=599 => StatusClass::Retryable,
        410 => StatusClass::Gone,
        _ => StatusClass::Final,
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}
