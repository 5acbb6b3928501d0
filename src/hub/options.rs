//! The settings every subscriber kind shares: plain data, so they can come
//! from a config file. Re-exported as `hookbus::subscriber::*`.

use std::time::Duration;

use super::error::SubscribeError;

/// What a subscriber does when its mailbox is full. See the
/// [subscriber docs](crate::subscriber#overflow-policies).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Lossless: while the mailbox is full, `emit` of an event this
    /// subscriber takes returns `Full` (nobody gets it) and `publish` waits.
    Block,
    /// Evict the oldest waiting event to make room (the default).
    #[default]
    DropOldest,
    /// Refuse the new event.
    DropNewest,
}

impl OverflowPolicy {
    /// The policy's name as it is serialized: `block`, `drop_oldest`,
    /// `drop_newest`.
    pub fn as_str(self) -> &'static str {
        match self {
            OverflowPolicy::Block => "block",
            OverflowPolicy::DropOldest => "drop_oldest",
            OverflowPolicy::DropNewest => "drop_newest",
        }
    }
}

/// Batching: hand the handler up to `max_size` events at once, waiting at most
/// `max_wait` after the first one for the batch to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchConfig {
    /// Most events in one batch (≥ 1).
    pub max_size: usize,
    /// Longest a partial batch waits before it is delivered anyway.
    #[serde(with = "duration_ms")]
    pub max_wait: Duration,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// The settings every subscriber kind shares. Plain data: it can come from a
/// config file. Defaults: capacity 1024, [`OverflowPolicy::DropOldest`], no
/// batching, concurrency 1.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SubscriberOptions {
    /// Mailbox capacity (≥ 1).
    pub capacity: usize,
    /// What to do when the mailbox is full.
    pub overflow: OverflowPolicy,
    /// Optional batching.
    pub batch: Option<BatchConfig>,
    /// Async handler or sink calls in flight at once (≥ 1).
    pub concurrency: usize,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        SubscriberOptions {
            capacity: 1024,
            overflow: OverflowPolicy::DropOldest,
            batch: None,
            concurrency: 1,
        }
    }
}

impl SubscriberOptions {
    /// Checks the options, saying what is wrong.
    pub fn validate(&self) -> Result<(), SubscribeError> {
        if self.capacity == 0 {
            return Err(SubscribeError::InvalidOption(
                "mailbox capacity must be at least 1".into(),
            ));
        }
        if self.concurrency == 0 {
            return Err(SubscribeError::InvalidOption(
                "concurrency must be at least 1".into(),
            ));
        }
        if let Some(b) = &self.batch {
            if b.max_size == 0 {
                return Err(SubscribeError::InvalidOption(
                    "batch max_size must be at least 1".into(),
                ));
            }
            if b.max_wait.is_zero() {
                return Err(SubscribeError::InvalidOption(
                    "batch max_wait must be more than zero".into(),
                ));
            }
        }
        Ok(())
    }
}
