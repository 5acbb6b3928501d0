//! The consumer's librdkafka context: rebalances, commits, statistics and
//! logs, run on the consuming thread inside `poll`.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError as RdError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::stats::Shared;
use crate::kafka::config::Settings;
use crate::kafka::producer::log;

/// The consumer's context: rebalances, commits, statistics and logs.
pub(super) struct SourceContext {
    pub(super) shared: Arc<Shared>,
    pub(super) redact: Settings,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let message = self.redact.redact(message);
        log(level, fac, &message);
    }

    fn error(&self, error: RdError, reason: &str) {
        let reason = self.redact.redact(reason);
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }

    fn stats(&self, statistics: Statistics) {
        let mut map = self.shared.partitions();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || p.hi_offset < 0 {
                    continue;
                }
                if let Some(state) = map.get_mut(topic).and_then(|t| t.get_mut(partition)) {
                    state.high_watermark = Some(p.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Records are handled one at a time on the thread that runs this
            // callback, and an offset is stored only once its record is
            // settled: commit what is stored before another member takes
            // the partitions over. Records read ahead and not yet handled
            // are dropped by the consuming thread; the new owner reads them.
            commit(consumer, &self.shared);
            for e in tpl.elements() {
                self.shared
                    .with_partition(e.topic(), e.partition(), |s| s.assigned = false);
                self.shared.revoke(e.topic(), e.partition());
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            for e in tpl.elements() {
                self.shared
                    .with_partition(e.topic(), e.partition(), |s| s.assigned = true);
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.shared.commits.fetch_add(1, Relaxed);
                for e in offsets.elements() {
                    if let Offset::Offset(at) = e.offset() {
                        self.shared
                            .with_partition(e.topic(), e.partition(), |s| s.committed = Some(at));
                    }
                }
            }
            // Nothing stored since the last commit: nothing to do.
            Err(RdError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.shared.errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "hookbus: Kafka source offset commit failed; it is retried with the next commit");
            }
        }
    }
}

/// Commits the stored offsets now. The commit callback records the result
/// when the consumer is next polled; a sync commit that succeeded records it
/// here too, since the last one (at shutdown) is followed by no poll: the
/// offsets stored before it are the ones committed.
pub(super) fn commit(consumer: &BaseConsumer<SourceContext>, shared: &Shared) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {
            for state in shared
                .partitions()
                .values_mut()
                .flat_map(std::collections::BTreeMap::values_mut)
            {
                if state.position.is_some() {
                    state.committed = state.position;
                }
            }
        }
        Err(RdError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            shared.errors.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, "hookbus: Kafka source offset commit failed");
        }
    }
}
