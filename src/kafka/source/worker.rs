//! The consuming thread: poll, decode (or map, or refuse), hand to the bus,
//! store the offset; and the stop signal it watches.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use base64::Engine as _;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::context::{SourceContext, commit};
use super::dead_letter::{DeadLetter, DeadLetterFailure};
use super::stats::Shared;
use super::{
    DEAD_LETTER_RETRY, FROM_KAFKA_EXTENSION, ForeignRecord, HOLD_BYTES, HOLD_RECORDS, MapFn,
    POLL_INTERVAL,
};
use crate::bus::Bus;
use crate::catalog::bus::{KafkaRecordRefused, KafkaSourceFailed};
use crate::event::{Event, ExtensionValue, TypedEvent};
use crate::hub::EmitError;
use crate::kafka::message::{DecodeError, decode};
use crate::sink::BoxFuture;

/// The stop signal, for both sides: the consuming thread waits on it
/// blocking (between dead-letter retries), the event it is publishing
/// waits on it asynchronously.
pub(super) struct Stop {
    flag: Mutex<bool>,
    changed: Condvar,
    watch: watch::Sender<bool>,
}

impl Stop {
    pub(super) fn new() -> Stop {
        Stop {
            flag: Mutex::new(false),
            changed: Condvar::new(),
            watch: watch::Sender::new(false),
        }
    }

    pub(super) fn trigger(&self) {
        *self.flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.changed.notify_all();
        self.watch.send_replace(true);
    }

    fn is_set(&self) -> bool {
        *self.flag.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout`; `true` if stopped meanwhile.
    fn wait(&self, timeout: Duration) -> bool {
        let flag = self.flag.lock().unwrap_or_else(|e| e.into_inner());
        let (flag, _) = self
            .changed
            .wait_timeout_while(flag, timeout, |stopped| !*stopped)
            .unwrap_or_else(|e| e.into_inner());
        *flag
    }
}

/// An event waiting for room in the bus: `None` when the source was
/// stopped first.
type Waiting = BoxFuture<Option<Result<(), EmitError>>>;

/// Records read ahead while the source waited for room in the bus, to
/// handle next, in order; and their size.
#[derive(Default)]
pub(super) struct Held {
    records: VecDeque<OwnedMessage>,
    bytes: usize,
}

impl Held {
    fn push(&mut self, message: OwnedMessage) {
        self.bytes += record_size(&message);
        self.records.push_back(message);
    }

    fn pop(&mut self) -> Option<OwnedMessage> {
        let message = self.records.pop_front()?;
        self.bytes -= record_size(&message);
        Some(message)
    }

    /// As much as the source holds before it pauses fetching.
    fn is_full(&self) -> bool {
        self.records.len() >= HOLD_RECORDS || self.bytes >= HOLD_BYTES
    }

    /// Down to half of that: time to fetch again.
    fn is_low(&self) -> bool {
        self.records.len() <= HOLD_RECORDS / 2 && self.bytes <= HOLD_BYTES / 2
    }

    /// Drops the records of partitions no longer assigned.
    fn drop_partitions(&mut self, revoked: &[(String, i32)]) {
        let before = self.records.len();
        self.records.retain(|m| {
            !revoked
                .iter()
                .any(|(t, p)| t == m.topic() && *p == m.partition())
        });
        if self.records.len() != before {
            self.bytes = self.records.iter().map(record_size).sum();
            tracing::debug!(
                dropped = before - self.records.len(),
                "hookbus: Kafka source dropped read-ahead records of revoked partitions (their new owner reads them)"
            );
        }
    }
}

/// A record's key, value and headers, in bytes.
fn record_size(message: &impl Message) -> usize {
    message.key().map_or(0, <[u8]>::len)
        + message.payload().map_or(0, <[u8]>::len)
        + message.headers().map_or(0, |h| {
            h.iter()
                .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
                .sum()
        })
}

/// How many bytes of a key or header value an announcement shows.
const SHOWN_BYTES: usize = 4096;

/// A key or header value in an announcement: the text when it is UTF-8,
/// else `{"base64": ..}`; longer than [`SHOWN_BYTES`], its size and the
/// base64 of its start.
fn bytes_json(bytes: &[u8]) -> Value {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    if bytes.len() > SHOWN_BYTES {
        return json!({"size": bytes.len(), "base64_prefix": b64(&bytes[..SHOWN_BYTES])});
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => json!({"base64": b64(bytes)}),
    }
}

/// Wakes the consuming thread when the event it waits on can move on.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// What to do after a record.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// The consuming thread.
pub(super) struct Worker {
    pub(super) consumer: BaseConsumer<SourceContext>,
    pub(super) bus: Bus,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) shared: Arc<Shared>,
    pub(super) stop: Arc<Stop>,
    pub(super) dead_letter: Option<DeadLetter>,
    pub(super) map: Option<Arc<MapFn>>,
    pub(super) restore_key: bool,
    pub(super) max_record_bytes: usize,
    /// Records read while the source waited for room in the bus, to handle
    /// next, in order.
    pub(super) held: RefCell<Held>,
    /// Whether the source paused its partitions (because `held` was full).
    pub(super) paused: Cell<bool>,
}

impl Worker {
    pub(super) fn run(self) {
        while !self.stop.is_set() {
            let held = self.held.borrow_mut().pop();
            if held.is_some() {
                self.note_held();
            }
            if let Some(message) = held {
                // Fetch again once half of what was read ahead is handled,
                // so the next records arrive while the rest is.
                if self.paused.get() && self.held.borrow().is_low() {
                    self.pause(false);
                }
                if self.handle(&message) == Flow::Stop {
                    break;
                }
                continue;
            }
            if self.paused.get() {
                self.pause(false);
            }
            let polled = self.consumer.poll(POLL_INTERVAL);
            self.drop_revoked();
            match polled {
                None => {}
                Some(Err(e)) => self.failed("consume", &e.to_string()),
                Some(Ok(message)) if self.handle(&message) == Flow::Stop => break,
                Some(Ok(_)) => {}
            }
        }
        self.finish();
    }

    /// Publishes how many records are held, for the stats.
    fn note_held(&self) {
        let n = self.held.borrow().records.len();
        self.shared.held.store(n as u64, Relaxed);
    }

    /// Forgets the read-ahead records of partitions revoked by a rebalance
    /// (which runs inside `poll`): their new owner reads them.
    fn drop_revoked(&self) {
        let revoked = self.shared.take_revoked();
        if !revoked.is_empty() {
            self.held.borrow_mut().drop_partitions(&revoked);
            self.note_held();
        }
    }

    /// One record: decode (or map, or refuse), hand to the bus, store its
    /// offset.
    fn handle(&self, message: &impl Message) -> Flow {
        self.shared.consumed.fetch_add(1, Relaxed);
        let headers: Vec<(&str, &[u8])> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key, h.value.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let size = record_size(message);
        let decoded = if size > self.max_record_bytes {
            Err(DecodeError::TooLarge {
                size,
                limit: self.max_record_bytes,
            })
        } else {
            decode(message.payload(), headers.iter().copied())
        };
        let event = match decoded {
            Ok(event) => Some(event),
            Err(reason) => match self.map_foreign(message, &headers, &reason) {
                Some(event) => {
                    self.shared.mapped.fetch_add(1, Relaxed);
                    Some(event)
                }
                None => {
                    if self.refuse(message, &headers, &reason) == Flow::Stop {
                        return Flow::Stop;
                    }
                    None
                }
            },
        };
        if let Some(mut event) = event {
            self.restore_key(&mut event, message.key());
            event.set_extension(
                FROM_KAFKA_EXTENSION,
                ExtensionValue::String(message.topic().to_owned()),
            );
            if self.publish_traced(event) == Flow::Stop {
                return Flow::Stop;
            }
            self.shared.emitted.fetch_add(1, Relaxed);
        }
        self.store(message.topic(), message.partition(), message.offset() + 1);
        Flow::Continue
    }

    /// Publishes an event that carries a trace context inside a
    /// `hookbus.kafka.receive` span continuing it (with the feature `trace`,
    /// the span's context is a child of the event's `traceparent`), so what
    /// the bus does with the event logs under the same trace. The event's
    /// extension itself is kept as it came: it names the starting trace.
    fn publish_traced(&self, event: Event) -> Flow {
        let Some(parent) = event.traceparent() else {
            return self.publish(event);
        };
        let span = tracing::info_span!(
            "hookbus.kafka.receive",
            trace_id = %parent.trace_id(),
            parent_id = %parent.parent_id(),
        );
        let state = event
            .tracestate()
            .and_then(|s| crate::trace::TraceState::parse(s).ok());
        crate::trace::continue_in(&span, &parent, state);
        span.in_scope(|| self.publish(event))
    }

    fn restore_key(&self, event: &mut Event, key: Option<&[u8]>) {
        if !self.restore_key || event.extension("partitionkey").is_some() {
            return;
        }
        if let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok())
            && !key.is_empty()
        {
            event.set_extension("partitionkey", ExtensionValue::String(key.to_owned()));
        }
    }

    fn map_foreign(
        &self,
        message: &impl Message,
        headers: &[(&str, &[u8])],
        reason: &DecodeError,
    ) -> Option<Event> {
        let map = self.map.as_ref()?;
        let record = ForeignRecord {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            value: message.payload(),
            headers,
            reason,
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map(&record))) {
            Ok(event) => event,
            Err(panic) => {
                let message = crate::sink::panic_message(&panic);
                self.failed(
                    "map_foreign",
                    &format!("the map_foreign closure panicked: {message}"),
                );
                None
            }
        }
    }

    /// Waits until the bus accepted the event (room in every `Block`
    /// subscriber that takes it), or the source is stopped.
    ///
    /// Usually the bus takes the event at once, on the first poll. When a
    /// `Block` subscriber is full, this thread waits for room, and every
    /// [`POLL_INTERVAL`] serves the consumer: rebalances, statistics and
    /// the group membership (`max.poll.interval.ms`) go on, and the records
    /// it returns are held, in order, for after this one. Once it holds
    /// [`HOLD_RECORDS`] (or [`HOLD_BYTES`]) it pauses the partitions, once;
    /// they are resumed, once, when half of the held records are handled.
    /// (Pausing and resuming per wait made librdkafka drop and fetch again
    /// what it had read ahead, for every event: a throughput cliff.)
    fn publish(&self, event: Event) -> Flow {
        let bus = self.bus.clone();
        let mut stop = self.stop.watch.subscribe();
        let mut waiting: Waiting = Box::pin(async move {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => None,
                r = bus.publish(event) => Some(r),
            }
        });
        let outcome = match waiting
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => self.wait(waiting),
        };
        match outcome {
            Some(Ok(())) => Flow::Continue,
            // Stopped while waiting (the event went to nobody), or the bus
            // is shut down: leave the offset unstored so the record is read
            // again later.
            None | Some(Err(EmitError::Closed(_))) => Flow::Stop,
            Some(Err(e)) => {
                self.failed("publish", &e.to_string());
                Flow::Stop
            }
        }
    }

    /// Drives the waiting event on this thread (parked between wake-ups),
    /// serving the consumer every [`POLL_INTERVAL`] meanwhile.
    fn wait(&self, mut waiting: Waiting) -> Option<Result<(), EmitError>> {
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let _runtime = self.runtime.enter();
        let mut next_serve = Instant::now() + POLL_INTERVAL;
        loop {
            if let Poll::Ready(outcome) = waiting.as_mut().poll(&mut cx) {
                return outcome;
            }
            let now = Instant::now();
            if now >= next_serve {
                self.read_ahead();
                if self.stop.is_set() || self.bus.is_closed() {
                    // The event went to nobody (stopped, or the bus and
                    // perhaps its runtime are gone): its offset stays
                    // unstored.
                    return None;
                }
                next_serve = now + POLL_INTERVAL;
                continue;
            }
            std::thread::park_timeout(next_serve - now);
        }
    }

    /// Serves the consumer without blocking, holding the records it
    /// returns; pauses the partitions once the held records are as many as
    /// the source keeps.
    fn read_ahead(&self) {
        // A record that arrives while paused comes from a partition assigned
        // after the pause: pause again (once per call) to stop it too.
        let mut arrived_paused = false;
        let mut repaused = false;
        loop {
            if self.held.borrow().is_full() && (!self.paused.get() || (arrived_paused && !repaused))
            {
                repaused = self.paused.get();
                self.pause(true);
            }
            let polled = self.consumer.poll(Duration::ZERO);
            self.drop_revoked();
            match polled {
                None => break,
                Some(Ok(message)) => {
                    arrived_paused |= self.paused.get();
                    self.held.borrow_mut().push(message.detach());
                    self.note_held();
                }
                Some(Err(e)) => self.failed("consume", &e.to_string()),
            }
        }
    }

    /// Pauses (or resumes) fetching for every partition assigned now.
    fn pause(&self, pause: bool) {
        self.paused.set(pause);
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let result = if pause {
            self.shared.pauses.fetch_add(1, Relaxed);
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, pause, "hookbus: Kafka source could not pause/resume its partitions");
        }
    }

    /// A record that is neither a CloudEvent nor mapped: dead-letter it (or
    /// count it as refused) and say so on the bus. A record the dead-letter
    /// topic cannot take is skipped after at most `attempts` sends, with
    /// its headers, key, offset and reason in the log and the announcement.
    fn refuse(
        &self,
        message: &impl Message,
        headers: &[(&str, &[u8])],
        reason: &DecodeError,
    ) -> Flow {
        let mut announcement = KafkaRecordRefused {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            kind: reason.kind().to_owned(),
            reason: reason.to_string(),
            dead_letter_topic: self.dead_letter.as_ref().map(|d| d.topic.clone()),
            key: message.key().map(bytes_json),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), bytes_json(v)))
                .collect(),
            skipped: false,
            dead_letter_error: None,
            dead_letter_attempts: None,
        };
        let Some(dead) = &self.dead_letter else {
            self.shared.refused.fetch_add(1, Relaxed);
            tracing::warn!(
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                reason = %reason,
                "hookbus: Kafka record is not a CloudEvent and there is no dead-letter topic; refused"
            );
            return self.publish_announcement(announcement);
        };
        let (attempts, failure) = match self.dead_letter_send(dead, message, headers, reason) {
            Ok(()) => {
                self.shared.dead_lettered.fetch_add(1, Relaxed);
                self.announce(announcement);
                return Flow::Continue;
            }
            Err(None) => return Flow::Stop,
            Err(Some(failed)) => failed,
        };
        self.shared.skipped.fetch_add(1, Relaxed);
        announcement.skipped = true;
        announcement.dead_letter_error = Some(failure.to_string());
        announcement.dead_letter_attempts = Some(attempts);
        tracing::error!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            reason = %reason,
            dead_letter_topic = %dead.topic,
            dead_letter_error = %failure,
            attempts,
            key = ?announcement.key,
            headers = ?announcement.headers,
            "hookbus: Kafka record is not a CloudEvent and the dead-letter topic cannot take it; skipped"
        );
        self.publish_announcement(announcement)
    }

    /// Copies the record to the dead-letter topic, up to `attempts` times
    /// (once if the failure is permanent). `Err(None)`: stopped meanwhile;
    /// `Err(Some(..))`: the attempts made and the last failure.
    fn dead_letter_send(
        &self,
        dead: &DeadLetter,
        message: &impl Message,
        headers: &[(&str, &[u8])],
        reason: &DecodeError,
    ) -> Result<(), Option<(u32, DeadLetterFailure)>> {
        let mut wait = DEAD_LETTER_RETRY.0;
        let mut attempt = 1;
        loop {
            let e = match dead.send(message, headers, reason) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let last = e.is_permanent() || attempt >= dead.attempts;
            let next = if last {
                format!("giving up after {attempt} attempt(s)")
            } else {
                format!("retrying in {wait:?}")
            };
            self.failed(
                "dead_letter",
                &format!(
                    "could not copy {}/{}@{} to dead-letter topic {:?}: {e}; {next}",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    dead.topic
                ),
            );
            if last {
                return Err(Some((attempt, e)));
            }
            if self.sleep_serving(wait) {
                return Err(None);
            }
            wait = (wait * 2).min(DEAD_LETTER_RETRY.1);
            attempt += 1;
        }
    }

    /// Waits `duration` (between dead-letter attempts) while serving the
    /// consumer every [`POLL_INTERVAL`], as a wait for room does; `true` if
    /// stopped meanwhile.
    fn sleep_serving(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if self.stop.wait(left.min(POLL_INTERVAL)) {
                return true;
            }
            self.read_ahead();
        }
    }

    /// Announces a refused record that is nowhere else to be found: waits
    /// for room like any event.
    fn publish_announcement(&self, announcement: KafkaRecordRefused) -> Flow {
        match Event::typed(announcement) {
            Ok(event) => self.publish(event),
            Err(_) => Flow::Continue,
        }
    }

    fn store(&self, topic: &str, partition: i32, next: i64) {
        let mut tpl = TopicPartitionList::with_capacity(1);
        let stored = tpl
            .add_partition_offset(topic, partition, Offset::Offset(next))
            .and_then(|()| self.consumer.store_offsets(&tpl));
        match stored {
            Ok(()) => self
                .shared
                .with_partition(topic, partition, |s| s.position = Some(next)),
            // The partition was taken away meanwhile (e.g. after
            // max.poll.interval.ms): its new owner reads the record again.
            Err(e) => self.failed(
                "store_offset",
                &format!("offset {next} of {topic}/{partition} not stored: {e}"),
            ),
        }
    }

    fn failed(&self, kind: &str, error: &str) {
        self.shared.errors.fetch_add(1, Relaxed);
        tracing::warn!(kind, error, "hookbus: Kafka source failure");
        self.announce(KafkaSourceFailed {
            kind: kind.to_owned(),
            error: error.to_owned(),
        });
    }

    /// Emits one of the source's `hookbus.*` events (typed, from
    /// [`catalog::bus`](crate::catalog::bus)) without waiting.
    fn announce<T: TypedEvent>(&self, event: T) {
        if !self.bus.has_subscribers(T::TYPE) {
            return;
        }
        if let Err(e) = self.bus.emit(event) {
            tracing::warn!(event_type = T::TYPE, error = %e, "hookbus: Kafka source announcement not emitted");
        }
    }

    /// Commits what the bus accepted and leaves the group.
    fn finish(self) {
        commit(&self.consumer, &self.shared);
        // What was read ahead and not handled is read again by whoever
        // consumes the partitions next.
        self.shared.held.store(0, Relaxed);
        self.consumer.unsubscribe();
        for state in self
            .shared
            .partitions()
            .values_mut()
            .flat_map(BTreeMap::values_mut)
        {
            state.assigned = false;
        }
        drop(self.consumer);
        self.shared.running.store(false, Relaxed);
    }
}
