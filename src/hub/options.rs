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
    #[serde(with = "millis")]
    pub max_wait: Duration,
}

/// A duration in settings files: whole milliseconds (`serde(with)`); one
/// longer than `u64::MAX` ms is written as `u64::MAX`.
pub(crate) mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(to_millis(d))
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
    pub(super) fn to_millis(d: &Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A list of [`millis`].
#[cfg(feature = "webhook")]
pub(crate) mod millis_vec {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub(crate) fn serialize<S: Serializer>(d: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(d.iter().map(super::millis::to_millis))
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Ok(Vec::<u64>::deserialize(d)?
            .into_iter()
            .map(Duration::from_millis)
            .collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_too_long_for_u64_millis_is_written_as_the_largest() {
        let batch = BatchConfig {
            max_size: 1,
            max_wait: Duration::MAX,
        };
        let json = serde_json::to_value(batch).unwrap();
        assert_eq!(json["max_wait"], u64::MAX);
        let back: BatchConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back.max_wait, Duration::from_millis(u64::MAX));

        #[cfg(feature = "webhook")]
        {
            #[derive(serde::Serialize)]
            struct Waits(#[serde(with = "millis_vec")] Vec<Duration>);
            let json = serde_json::to_value(Waits(vec![Duration::MAX, Duration::from_millis(7)]));
            assert_eq!(json.unwrap(), serde_json::json!([u64::MAX, 7]));
        }
    }
}
