//! What a source has done: the counters and the per-partition state shared
//! by the handle, the consuming thread and librdkafka's callbacks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

/// What a [`KafkaSource`](super::KafkaSource) has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceStats {
    /// Records read from Kafka.
    pub consumed: u64,
    /// Events the bus accepted (decoded or mapped).
    pub emitted: u64,
    /// Of `emitted`: events made by the `map_foreign` closure.
    pub mapped: u64,
    /// Records copied to the dead-letter topic.
    pub dead_lettered: u64,
    /// Records that were not CloudEvents, with no dead-letter topic to go to.
    pub refused: u64,
    /// Records the dead-letter topic could not take (refused for good, or
    /// still failing after
    /// [`dead_letter_attempts`](super::KafkaSourceBuilder::dead_letter_attempts)):
    /// logged and announced with their headers, key, offset and reason,
    /// then skipped.
    pub skipped: u64,
    /// The source's own failures (consume errors, failed dead-letter sends,
    /// failed commits), each also announced as `hookbus.kafka_source_failed`.
    pub errors: u64,
    /// Successful offset commits.
    pub commits: u64,
    /// Times the source paused fetching because, while it waited for room
    /// in the bus, it had read ahead as many records as it holds: it
    /// resumes once, when half of them are handled.
    pub pauses: u64,
    /// Records read ahead while the source waits for room in the bus, not
    /// yet handled (now).
    pub held: u64,
    /// Whether the source is still consuming.
    pub running: bool,
    /// The partitions this member has been assigned, by topic and number.
    pub partitions: Vec<PartitionStats>,
}

/// One partition in [`SourceStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionStats {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
    /// Whether it is assigned to this member now.
    pub assigned: bool,
    /// The offset after the last record handled (the next to read), once
    /// one was.
    pub position: Option<i64>,
    /// The last offset committed for the group, as this member saw it.
    pub committed: Option<i64>,
    /// The partition's high watermark from librdkafka's statistics (every
    /// `statistics.interval.ms`; `None` until the first report, or when
    /// statistics are off). Some brokers report it late or wrong.
    pub high_watermark: Option<i64>,
    /// `high_watermark - position` (or `- committed` before the first
    /// record): records not yet handled, when both are known.
    pub lag: Option<i64>,
}

#[derive(Default)]
pub(super) struct PartitionState {
    pub(super) assigned: bool,
    pub(super) position: Option<i64>,
    pub(super) committed: Option<i64>,
    pub(super) high_watermark: Option<i64>,
}

/// State shared by the handle, the consuming thread and librdkafka's
/// callbacks (which run on that thread, inside `poll`).
#[derive(Default)]
pub(super) struct Shared {
    pub(super) consumed: AtomicU64,
    pub(super) emitted: AtomicU64,
    pub(super) mapped: AtomicU64,
    pub(super) dead_lettered: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) skipped: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) commits: AtomicU64,
    pub(super) pauses: AtomicU64,
    pub(super) held: AtomicU64,
    pub(super) running: AtomicBool,
    /// Set by a revocation (in the rebalance callback), so the consuming
    /// thread drops the records it holds of partitions no longer its own.
    pub(super) revoked: Mutex<Vec<(String, i32)>>,
    pub(super) any_revoked: AtomicBool,
    /// By topic, then partition (looked up with a borrowed topic name on
    /// every record, so without allocating).
    pub(super) partitions: Mutex<PartitionMap>,
}

pub(super) type PartitionMap = BTreeMap<String, BTreeMap<i32, PartitionState>>;

impl Shared {
    pub(super) fn partitions(&self) -> MutexGuard<'_, PartitionMap> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes partitions taken away by a rebalance.
    pub(super) fn revoke(&self, topic: &str, partition: i32) {
        self.revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((topic.to_owned(), partition));
        self.any_revoked.store(true, Relaxed);
    }

    /// The partitions revoked since the last call.
    pub(super) fn take_revoked(&self) -> Vec<(String, i32)> {
        if !self.any_revoked.swap(false, Relaxed) {
            return Vec::new();
        }
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(super) fn with_partition(
        &self,
        topic: &str,
        partition: i32,
        f: impl FnOnce(&mut PartitionState),
    ) {
        let mut map = self.partitions();
        match map.get_mut(topic) {
            Some(partitions) => f(partitions.entry(partition).or_default()),
            None => f(map
                .entry(topic.to_owned())
                .or_default()
                .entry(partition)
                .or_default()),
        }
    }

    pub(super) fn snapshot(&self) -> SourceStats {
        let partitions = self
            .partitions()
            .iter()
            .flat_map(|(topic, partitions)| partitions.iter().map(move |(p, s)| (topic, p, s)))
            .map(|(topic, partition, s)| {
                let handled = s.position.or(s.committed);
                PartitionStats {
                    topic: topic.clone(),
                    partition: *partition,
                    assigned: s.assigned,
                    position: s.position,
                    committed: s.committed,
                    high_watermark: s.high_watermark,
                    lag: match (s.high_watermark, handled) {
                        (Some(high), Some(at)) => Some((high - at).max(0)),
                        _ => None,
                    },
                }
            })
            .collect();
        SourceStats {
            consumed: self.consumed.load(Relaxed),
            emitted: self.emitted.load(Relaxed),
            mapped: self.mapped.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            refused: self.refused.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            errors: self.errors.load(Relaxed),
            commits: self.commits.load(Relaxed),
            pauses: self.pauses.load(Relaxed),
            held: self.held.load(Relaxed),
            running: self.running.load(Relaxed),
            partitions,
        }
    }
}
