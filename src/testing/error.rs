//! The errors of the testing kit.

use std::net::SocketAddr;
use std::time::Duration;

/// Why a [`TestReceiver`](super::TestReceiver) could not start, or a reply
/// could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiverError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The fail rate is not a fraction from 0 to 1.
    #[error("fail rate {0} is outside 0..=1 (0.3 fails 30% of requests)")]
    FailRate(f64),
    /// A [`Reply`](super::Reply) cannot be sent as given.
    #[error("invalid reply: {0}")]
    Reply(String),
}

/// A wait that did not see what it waited for. Waits never hang: each has a
/// deadline (virtual time under a paused clock).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The deadline passed first.
    #[error("waited {waited:?} for {what}; seen so far: {seen}")]
    TimedOut {
        /// What was awaited, e.g. `3 requests`.
        what: String,
        /// How long the wait lasted.
        waited: Duration,
        /// How many of the awaited things had arrived.
        seen: usize,
    },
    /// What was awaited can no longer arrive (the receiver stopped, the
    /// probe's subscription ended).
    #[error("stopped while waiting for {what}; seen so far: {seen}")]
    Stopped {
        /// What was awaited.
        what: String,
        /// How many of the awaited things had arrived.
        seen: usize,
    },
}

/// Why a paused-clock helper did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// The Tokio clock is not paused: advancing days would take days. Use
    /// `#[tokio::test(start_paused = true)]` (tokio's `test-util` feature)
    /// or call `tokio::time::pause()` first.
    #[error(
        "the Tokio clock is not paused: use #[tokio::test(start_paused = true)] or tokio::time::pause()"
    )]
    NotPaused,
    /// What was awaited had not happened when `limit` of virtual time had
    /// passed.
    #[error("not done after {limit:?} of (virtual) time")]
    Deadline {
        /// The limit given.
        limit: Duration,
    },
}
