//! The core of the bus, below both [`bus`](crate::bus) (the public face) and
//! [`subscriber`](crate::subscriber) (the tasks): the routing table, the
//! mailboxes, the one `offer` path that `emit` and `publish` share, the taps'
//! broadcast ring, and the bus actor ([`actor`]) that owns the registry of
//! subscriber tasks, the bus's announcements and shutdown.
//!
//! # The data path
//!
//! ```text
//! emit ─ filter (no interest: counted, done) ─ table lookup: matching routes
//!      ─ each route: condition ─ Block routes: reserve a place (all or none)
//!      ─ each route: push into its mailbox (overflow policy applied there)
//!      ─ the subscriber's task wakes and dispatches
//! ```
//!
//! There is no shared channel between emitters and subscribers: a channel
//! that every subscriber reads makes every emit cost something for every
//! subscriber (the first generation's ~50 ns per subscriber that did not
//! match), and a full shared channel refuses events on behalf of lossy
//! subscribers. Routing at the emitter makes the cost proportional to the
//! subscribers that match, puts every drop at the slow subscriber's own
//! mailbox, and makes "all or nothing" a matter of reserving a place in the
//! `Block` mailboxes before pushing into any.
//!
//! Arrows point one way: `bus` → `subscriber` → `hub`. What a subscriber
//! task needs from here is its [`Route`] (mailbox, control, condition) and a
//! [`Lifecycle`] handle on the bus actor ([`actor`]), to which it reports
//! its `hookbus.*` announcements, leaving the table and its end.

mod actor;
pub(crate) mod counter;
mod error;
mod group;
pub(crate) mod journal;
mod mailbox;
mod options;
mod routes;
mod tap;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::event::{Event, IntoEvent, Source};
use crate::pattern::Pattern;
use crate::stats::{SubscriberReport, SubscriberStats};

pub(crate) use actor::{Announce, Lifecycle};
pub use error::{BuildError, EmitError, SubscribeError};
pub(crate) use journal::{Commit, Journal, Refusal};
pub(crate) use mailbox::{Mailbox, Pushed};
pub use options::{BatchConfig, OverflowPolicy, SubscriberOptions};
#[cfg(feature = "webhook")]
pub(crate) use options::{millis, millis_vec};
pub use tap::{DEFAULT_TAP_CAPACITY, Tap};

/// How long shutdown waits for aborted subscriber tasks to end.
const ABORT_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// A subscriber's condition, run on the emitting thread before the mailbox.
pub(crate) type Condition = Box<dyn Fn(&Event) -> bool + Send + Sync>;

/// Abort requests and the close deadline, from shutdown. (Stopping is
/// closing the mailbox: the task drains what it holds and ends.)
#[derive(Debug, Default)]
pub(crate) struct Control {
    abort: AtomicBool,
    /// Set by shutdown: when the sink's `close` must be done.
    deadline: Mutex<Option<Instant>>,
}

impl Control {
    pub(crate) fn abort_requested(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }
    pub(crate) fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The event attribute a keyed route is routed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyAttr {
    /// The `subject` attribute.
    Subject,
    /// The `source` attribute.
    Source,
    /// An extension attribute (`tenant`, `partitionkey`, …).
    Extension(Box<str>),
}

impl KeyAttr {
    /// Parses an attribute name: `subject`, `source`, or a valid extension
    /// name.
    pub(crate) fn parse(name: &str) -> Result<KeyAttr, SubscribeError> {
        match name {
            "subject" => Ok(KeyAttr::Subject),
            "source" => Ok(KeyAttr::Source),
            "id" | "type" | "time" | "specversion" | "datacontenttype" | "dataschema" | "data" => {
                Err(SubscribeError::InvalidOption(format!(
                    "cannot route on the {name:?} attribute: a key is `subject`, `source` or an extension attribute (e.g. `tenant`)"
                )))
            }
            _ => {
                crate::event::validate_extension_name(name).map_err(|e| {
                    SubscribeError::InvalidOption(format!("invalid key attribute {name:?}: {e}"))
                })?;
                Ok(KeyAttr::Extension(name.into()))
            }
        }
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            KeyAttr::Subject => "subject",
            KeyAttr::Source => "source",
            KeyAttr::Extension(name) => name,
        }
    }

    /// The event's value of this attribute, as the HTTP binding writes it.
    #[inline]
    pub(crate) fn value_of<'e>(&self, event: &'e Event) -> Option<Cow<'e, str>> {
        match self {
            KeyAttr::Subject => event.subject().map(Cow::Borrowed),
            KeyAttr::Source => Some(Cow::Borrowed(event.source())),
            KeyAttr::Extension(name) => event.extension(name).map(|v| v.to_wire_string()),
        }
    }
}

/// A keyed route takes only events whose attribute has this value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteKey {
    pub(crate) attr: KeyAttr,
    pub(crate) value: Box<str>,
}

impl std::fmt::Display for RouteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.attr.name(), self.value)
    }
}

/// What an event must be to reach a route: its patterns, its key and its
/// condition. [`Hub::reroute`] replaces it in place (a webhook's `update`),
/// so it sits behind an `ArcSwap`; an emit that runs the condition holds the
/// `Arc` it loaded while the table was read-locked, so it runs the condition
/// of the routing it matched.
pub(crate) struct Routing {
    /// One or more patterns, without repeats; the event's type matches one.
    pub(crate) patterns: Box<[Pattern]>,
    /// Routed only events with this attribute value.
    pub(crate) key: Option<RouteKey>,
    /// Two of the patterns can match the same type (several patterns, not
    /// all exact): a walk of the table must skip this route's repeats.
    pub(crate) overlaps: bool,
    pub(crate) condition: Option<Condition>,
}

impl Routing {
    /// `patterns` sorted and without repeats.
    fn new(patterns: Vec<Pattern>, key: Option<RouteKey>, condition: Option<Condition>) -> Routing {
        let overlaps = patterns.len() > 1 && !patterns.iter().all(Pattern::is_exact);
        Routing {
            patterns: patterns.into_boxed_slice(),
            key,
            overlaps,
            condition,
        }
    }
}

/// One subscriber as the hub sees it. Shared by the routing table, the
/// registry, the subscriber's task and its handle.
pub(crate) struct Route {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    /// Its patterns, key and condition: written only under the table's
    /// write lock (subscribe, [`Hub::reroute`]).
    pub(crate) routing: arc_swap::ArcSwap<Routing>,
    /// `routing.overlaps` and whether `routing` has a condition, as atomics
    /// for the emit path's walk (written with `routing`, under the table's
    /// write lock, read under its read lock: the lock orders them).
    pub(crate) overlaps: AtomicBool,
    pub(crate) conditioned: AtomicBool,
    /// Its routing may be replaced ([`Hub::reroute`]): then it never shares
    /// a ring with others (no shape), as a group member's mailbox cannot
    /// follow it.
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(crate) reroutable: bool,
    pub(crate) mailbox: Mailbox,
    pub(crate) control: Control,
    /// A durable subscriber's record of its events (feature `durable`).
    pub(crate) journal: Option<Arc<dyn Journal>>,
    /// Subscribers with the same shape receive the same events and may share
    /// a ring ([`group`]): the shape's fingerprint, when it has one.
    pub(crate) shape: Option<std::num::NonZeroU64>,
    /// A member counted in its group (cleared when it leaves the table).
    pub(crate) grouped: AtomicBool,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routing = self.routing.load();
        f.debug_struct("Route")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("patterns", &routing.patterns)
            .field("key", &routing.key)
            .finish_non_exhaustive()
    }
}

/// What a route is made of, besides its mailbox.
pub(crate) struct RouteSpec {
    pub(crate) name: Arc<str>,
    pub(crate) patterns: Vec<Pattern>,
    pub(crate) key: Option<RouteKey>,
    pub(crate) condition: Option<Condition>,
    pub(crate) limit: Option<u64>,
    pub(crate) journal: Option<Arc<dyn Journal>>,
    /// The route may be re-routed later ([`Hub::reroute`]); it then never
    /// joins a group.
    pub(crate) reroutable: bool,
}

impl RouteSpec {
    /// Sorts the patterns and drops repeats.
    fn normalize(&mut self) {
        self.patterns.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        self.patterns.dedup_by(|a, b| a.as_str() == b.as_str());
    }

    /// The fingerprint of the shape shared by subscribers that receive the
    /// same events (see [`group`]), when these options allow a group: no
    /// condition, limit, store or batching; `Block` or `DropOldest`; a
    /// capacity a ring is made for; not re-routable; and no pattern that can match the bus's
    /// own `hookbus.*` events (a member's drops are counted without their
    /// types, and drops of those must never be announced).
    fn shape(&self, options: &SubscriberOptions) -> Option<std::num::NonZeroU64> {
        use std::hash::{Hash, Hasher};
        let eligible = self.condition.is_none()
            && !self.reroutable
            && self.limit.is_none()
            && self.journal.is_none()
            && options.batch.is_none()
            && options.overflow != OverflowPolicy::DropNewest
            && options.capacity <= group::MAX_GROUP_CAPACITY
            && self
                .patterns
                .iter()
                .all(|p| p.first_literal().is_some_and(|l| l != "hookbus"));
        if !eligible {
            return None;
        }
        let mut h = rustc_hash::FxHasher::default();
        for p in &self.patterns {
            p.as_str().hash(&mut h);
        }
        if let Some(key) = &self.key {
            key.attr.name().hash(&mut h);
            key.value.hash(&mut h);
        }
        options.capacity.hash(&mut h);
        Some(std::num::NonZeroU64::new(h.finish()).unwrap_or(std::num::NonZeroU64::MIN))
    }
}

impl Route {
    #[cfg(test)]
    pub(crate) fn new(id: u64, mut spec: RouteSpec, options: &SubscriberOptions) -> Route {
        spec.normalize();
        let mailbox = Mailbox::new(
            options.capacity,
            options.overflow,
            options.batch.is_some(),
            spec.limit,
        );
        Route::with_mailbox(id, spec, mailbox, None)
    }

    /// `spec` normalized.
    fn with_mailbox(
        id: u64,
        spec: RouteSpec,
        mailbox: Mailbox,
        shape: Option<std::num::NonZeroU64>,
    ) -> Route {
        let routing = Routing::new(spec.patterns, spec.key, spec.condition);
        Route {
            id,
            name: spec.name,
            overlaps: AtomicBool::new(routing.overlaps),
            conditioned: AtomicBool::new(routing.condition.is_some()),
            routing: arc_swap::ArcSwap::from_pointee(routing),
            reroutable: spec.reroutable,
            mailbox,
            control: Control::default(),
            journal: spec.journal,
            shape,
            grouped: AtomicBool::new(false),
        }
    }

    /// Whether `other` has this route's patterns, key and capacity.
    fn same_shape(&self, patterns: &[Pattern], key: &Option<RouteKey>, capacity: usize) -> bool {
        let routing = self.routing.load();
        self.mailbox.capacity() == capacity
            && routing.key == *key
            && routing.patterns.len() == patterns.len()
            && routing
                .patterns
                .iter()
                .zip(patterns)
                .all(|(a, b)| a.as_str() == b.as_str())
    }

    /// The patterns as one text (`a, b`), and the key after them.
    pub(crate) fn describe(&self) -> String {
        let routing = self.routing.load();
        let mut text = routing
            .patterns
            .iter()
            .map(Pattern::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(key) = &routing.key {
            text.push_str(&format!(" [{key}]"));
        }
        text
    }

    pub(crate) fn stats(&self) -> SubscriberStats {
        self.stats_of(&self.mailbox.snapshot())
    }

    fn stats_of(&self, snap: &mailbox::Snapshot) -> SubscriberStats {
        let c = snap.counts;
        SubscriberStats {
            id: self.id,
            name: self.name.to_string(),
            pattern: self.describe(),
            received: c.received,
            filtered: c.filtered,
            accepted: c.received - c.filtered,
            delivered: c.delivered,
            failed: c.failed,
            dropped: c.dropped,
            mailbox_len: snap.queued,
            in_flight: c.in_flight,
        }
    }

    /// Asks the task to deliver what it has and end (unsubscribe).
    pub(crate) fn request_stop(&self) {
        self.mailbox.close();
    }

    fn request_abort(&self) {
        self.control.abort.store(true, Ordering::Release);
        self.request_stop();
    }
}

/// Why [`Hub::reroute`] refused.
#[cfg_attr(not(feature = "webhook"), allow(dead_code))] // re-routed by webhook updates
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RerouteError {
    /// The subscriber was not made re-routable (it may share a ring).
    #[error(
        "this subscriber cannot be re-routed (only one made re-routable, never a group member, can)"
    )]
    NotReroutable,
    /// No pattern given.
    #[error("a subscriber needs at least one pattern")]
    NoPattern,
    /// The subscriber is no longer routed (unsubscribed, its limit reached,
    /// or the bus shut down).
    #[error("the subscriber is no longer routed")]
    Gone,
}

/// How an offer went.
pub(crate) enum Offer {
    /// Taken by at least one subscriber (queued, filtered or dropped there).
    Accepted,
    /// No subscriber's pattern matches (or every one stopped taking events).
    Unmatched,
    /// This `Block` subscriber's mailbox is full; nobody got the event.
    Full(Arc<Route>),
    /// A durable subscriber's store cannot take events (the reason); nobody
    /// got the event.
    StoreFailed(journal::StoreFailure),
    /// A durable subscriber's store is behind (its write buffer is full);
    /// nobody got the event.
    StoreBusy(Arc<dyn Journal>, journal::StoreFailure),
    /// The bus is shut down.
    Closed,
}

/// One matching route during an offer whose conditions run with no lock
/// held.
struct Target {
    route: Arc<Route>,
    /// The routing it matched by, when it has a condition (loaded while
    /// the table was read-locked).
    routing: Option<Arc<Routing>>,
    accepted: bool,
    reserved: bool,
}

/// A few values without allocating: up to 8 inline, then a `Vec`.
struct Small<T> {
    inline: [Option<T>; 8],
    len: usize,
    spill: Vec<T>,
}

impl<T> Small<T> {
    fn new() -> Small<T> {
        Small {
            inline: [const { None }; 8],
            len: 0,
            spill: Vec::new(),
        }
    }
    fn push(&mut self, t: T) {
        if self.len < self.inline.len() {
            self.inline[self.len] = Some(t);
            self.len += 1;
        } else {
            self.spill.push(t);
        }
    }
    fn iter(&self) -> impl Iterator<Item = &T> {
        self.inline[..self.len]
            .iter()
            .flatten()
            .chain(self.spill.iter())
    }
    fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.inline[..self.len]
            .iter_mut()
            .flatten()
            .chain(self.spill.iter_mut())
    }
}

/// State shared by every [`Bus`](crate::Bus) handle.
pub(crate) struct Hub {
    filter: routes::Filter,
    table: RwLock<routes::Table>,
    /// The broadcast ring the taps read.
    ring: tap::Ring,
    /// How long shutdown lets a durable subscriber finish what it has under
    /// way before it keeps the rest in its store.
    durable_grace: std::time::Duration,
    /// The bus actor ([`actor`]): the subscriber tasks, announcements,
    /// shutdown.
    lifecycle: Lifecycle,
    /// Set once shutdown began: no new subscriber (checked and set under
    /// this lock, so a subscriber is either in the report or never made).
    admission: Mutex<bool>,
    /// The live subscribers by id (subscription order), for the synchronous
    /// `stats()`: added at registration, removed by the actor.
    directory: Mutex<BTreeMap<u64, Arc<Route>>>,
    /// Offers in progress; shutdown waits for them before closing mailboxes.
    offering: AtomicUsize,
    closed: AtomicBool,
    closed_notify: tokio::sync::Notify,
    source: Option<Source>,
    pub(crate) defaults: SubscriberOptions,
    pub(crate) runtime: tokio::runtime::Handle,
    next_id: AtomicU64,
    pub(crate) emitted: counter::ThreadCounter,
    pub(crate) unmatched: counter::ThreadCounter,
    pub(crate) rejected_full: AtomicU64,
    pub(crate) report: tokio::sync::OnceCell<Vec<SubscriberReport>>,
}

impl Hub {
    pub(crate) fn new(
        source: Option<Cow<'static, str>>,
        defaults: SubscriberOptions,
        runtime: tokio::runtime::Handle,
        tap_capacity: usize,
        durable_grace: std::time::Duration,
        lifecycle: Lifecycle,
    ) -> Hub {
        Hub {
            filter: routes::Filter::default(),
            table: RwLock::default(),
            ring: tap::Ring::new(tap_capacity),
            durable_grace,
            lifecycle,
            admission: Mutex::new(false),
            directory: Mutex::default(),
            offering: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            closed_notify: tokio::sync::Notify::new(),
            source: source.map(Source::new),
            defaults,
            runtime,
            next_id: AtomicU64::new(1),
            emitted: counter::ThreadCounter::default(),
            unmatched: counter::ThreadCounter::default(),
            rejected_full: AtomicU64::new(0),
            report: tokio::sync::OnceCell::new(),
        }
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether some live subscriber's pattern matches `event_type`.
    #[inline]
    pub(crate) fn wants(&self, event_type: &str) -> bool {
        self.filter.may_match(event_type)
            && (self.ring.is_tapped() || self.wants_in_table(event_type))
    }

    /// A tap opened (`true`) or closed: while one is open, the filter lets
    /// every type through, so every emit is built and reaches the ring.
    pub(crate) fn tapped(&self, open: bool) {
        self.write_table().count_tap(open, &self.filter);
    }

    fn wants_in_table(&self, event_type: &str) -> bool {
        self.read_table().any_open_for_type(event_type)
    }

    fn read_table(&self) -> std::sync::RwLockReadGuard<'_, routes::Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_table(&self) -> std::sync::RwLockWriteGuard<'_, routes::Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    fn prepare(&self, event: Event) -> Arc<Event> {
        let mut event = event;
        if !event.has_source()
            && let Some(src) = &self.source
        {
            event.set_source(src);
        }
        Arc::new(event)
    }

    /// `emit`: never waits.
    #[inline]
    pub(crate) fn emit<E: IntoEvent>(&self, event: E) -> Result<(), EmitError> {
        self.emit_into(event, None)
    }

    /// `emit`, handing the commits of the durable subscribers that took the
    /// event to `commits`: awaited, they say it is on disk (as `publish`
    /// waits for them). Never waits itself.
    #[inline]
    pub(crate) fn emit_into<E: IntoEvent>(
        &self,
        event: E,
        commits: Option<&mut Vec<Commit>>,
    ) -> Result<(), EmitError> {
        if !self.filter.may_match(event.event_type()) {
            return self.unmatched(event);
        }
        let event = self.prepare(event.into_event()?);
        match self.offer(&event, commits) {
            Offer::Accepted => Ok(()),
            Offer::StoreFailed(error) | Offer::StoreBusy(_, error) => {
                self.rejected_full.fetch_add(1, Ordering::Relaxed);
                Err(EmitError::Store(unwrap_event(event), error))
            }
            Offer::Unmatched => Ok(()),
            Offer::Full(_) => {
                self.rejected_full.fetch_add(1, Ordering::Relaxed);
                Err(EmitError::Full(unwrap_event(event)))
            }
            Offer::Closed => Err(EmitError::Closed(unwrap_event(event))),
        }
    }

    /// `publish`: waits for room in full `Block` mailboxes, and for durable
    /// subscribers' stores to have the event on disk.
    pub(crate) async fn publish<E: IntoEvent>(&self, event: E) -> Result<(), EmitError> {
        take_turn().await;
        self.publish_now(event).await
    }

    /// `publish` once the caller took its turn ([`take_turn`]).
    pub(crate) async fn publish_now<E: IntoEvent>(&self, event: E) -> Result<(), EmitError> {
        if !self.filter.may_match(event.event_type()) {
            return self.unmatched(event);
        }
        let event = self.prepare(event.into_event()?);
        let mut commits = Vec::new();
        loop {
            match self.offer(&event, Some(&mut commits)) {
                Offer::Accepted => {
                    for commit in commits {
                        if let Err(error) = commit.await {
                            // Taken in memory (and delivered from there while
                            // the process lives), but not on disk.
                            return Err(EmitError::Store(unwrap_event(event), error));
                        }
                    }
                    return Ok(());
                }
                Offer::StoreFailed(error) => {
                    self.rejected_full.fetch_add(1, Ordering::Relaxed);
                    return Err(EmitError::Store(unwrap_event(event), error));
                }
                Offer::StoreBusy(journal, _) => {
                    // Wait for the store's next commit (or the bus closing),
                    // then offer again.
                    let progress = journal.progress();
                    let closed = self.closed_notify.notified();
                    tokio::pin!(closed);
                    closed.as_mut().enable();
                    // A commit between the offer and `progress` would not
                    // wake us: look once more.
                    if self.is_closed() || !matches!(journal.refusal(), Some(Refusal::Busy(_))) {
                        continue;
                    }
                    tokio::select! {
                        _ = progress => {}
                        _ = closed => {}
                    }
                }
                Offer::Unmatched => return Ok(()),
                Offer::Closed => return Err(EmitError::Closed(unwrap_event(event))),
                Offer::Full(route) => {
                    let room = route.mailbox.space();
                    let closed = self.closed_notify.notified();
                    tokio::pin!(room, closed);
                    room.as_mut().enable();
                    closed.as_mut().enable();
                    // Room made (or the bus closed) between the offer and
                    // `enable` would not wake us: look once more.
                    if route.mailbox.has_room() || !route.mailbox.is_open() || self.is_closed() {
                        continue;
                    }
                    tokio::select! {
                        _ = room => {}
                        _ = closed => {}
                    }
                }
            }
        }
    }

    #[inline]
    fn unmatched<E: IntoEvent>(&self, event: E) -> Result<(), EmitError> {
        self.unmatched.bump();
        if self.is_closed() {
            return Err(EmitError::Closed(event.into_event()?));
        }
        Ok(())
    }

    /// The one path by which an event reaches mailboxes: look up the routes
    /// it matches, run their conditions, reserve a place in every `Block`
    /// mailbox that takes it (or give every reservation back and report the
    /// full one), then push into each.
    ///
    /// With `commits`, each durable subscriber that took the event adds the
    /// future that completes once its store has the event on disk.
    ///
    /// Open taps see the event once it was offered (taken, or matched by
    /// nobody); never one the bus refused.
    pub(crate) fn offer(&self, event: &Arc<Event>, commits: Option<&mut Vec<Commit>>) -> Offer {
        let outcome = self.offer_to_routes(event, commits);
        if matches!(outcome, Offer::Accepted | Offer::Unmatched) {
            self.ring.send(event);
        }
        outcome
    }

    /// Counts an offer's outcome while the offer is still in progress, so a
    /// shutdown (which waits for offers in progress) reports every emit that
    /// returned `Ok`.
    fn count(&self, outcome: &Offer) {
        match outcome {
            Offer::Accepted => self.emitted.bump(),
            Offer::Unmatched => self.unmatched.bump(),
            _ => {}
        }
    }

    fn offer_to_routes(&self, event: &Arc<Event>, commits: Option<&mut Vec<Commit>>) -> Offer {
        self.offering.fetch_add(1, Ordering::SeqCst);
        let _done = OfferGuard(&self.offering);
        if self.closed.load(Ordering::SeqCst) {
            return Offer::Closed;
        }
        let table = self.read_table();
        // One walk of the table: the routes the event reaches, borrowed from
        // it while it is read-locked.
        let mut matched: Small<&Arc<Route>> = Small::new();
        let mut conditioned = false;
        table.for_each_match(event, |route| {
            conditioned |= route.conditioned.load(Ordering::Relaxed);
            matched.push(route);
        });
        if !conditioned {
            // No user code to run: reserve and push while the table is
            // read-locked, straight from it (nothing cloned). Events evicted
            // from DropOldest mailboxes are dropped last, with no lock held
            // (dropping one may run a typed value's `Drop`).
            let mut evicted = Vec::new();
            let outcome =
                deliver_matched(table.has_refusing(), &matched, event, &mut evicted, commits);
            drop(matched);
            drop(table);
            self.count(&outcome);
            drop(_done);
            drop(evicted);
            return outcome;
        }
        // Conditions are the user's code: they run with no lock held, so the
        // targets hold their own references.
        let mut owned: Small<Target> = Small::new();
        for route in matched.iter() {
            let routing = route
                .conditioned
                .load(Ordering::Relaxed)
                .then(|| route.routing.load_full());
            owned.push(Target {
                route: Arc::clone(route),
                routing,
                accepted: true,
                reserved: false,
            });
        }
        drop(matched);
        drop(table);
        let mut panics = Vec::new();
        for t in owned.iter_mut() {
            if let Some(condition) = t.routing.as_ref().and_then(|r| r.condition.as_ref()) {
                match std::panic::catch_unwind(AssertUnwindSafe(|| condition(event))) {
                    Ok(ok) => t.accepted = ok,
                    Err(panic) => {
                        t.accepted = false;
                        panics.push((t.route.clone(), crate::sink::panic_message(&panic)));
                    }
                }
            }
        }
        let mut evicted = Vec::new();
        let outcome = deliver(event, &mut owned, &mut evicted, commits);
        self.count(&outcome);
        drop(_done);
        for (route, message) in panics {
            self.condition_panicked(&route, event, &message);
        }
        drop(evicted);
        outcome
    }

    fn condition_panicked(&self, route: &Route, event: &Event, message: &str) {
        tracing::warn!(subscriber = %route.name, event_id = %event.id(), panic = message, "hookbus: a subscriber's condition panicked; the event counts as filtered");
        if crate::catalog::bus::is_bus_event(event.event_type()) {
            return;
        }
        crate::catalog::bus::HandlerFailed::announce(
            self,
            false,
            &route.name,
            route.id,
            &[event],
            crate::sink::FailureKind::Panic.to_string(),
            format!("condition panicked: {message}"),
        );
    }

    /// Announces one of the bus's own `hookbus.*` events (typed, from
    /// [`catalog::bus`](crate::catalog::bus)): the bus actor emits it. Never
    /// waits, never fails loudly (what it reports is also in the stats and
    /// the log); nothing is built when nobody listens.
    pub(crate) fn announce<T: crate::TypedEvent>(&self, event: T) {
        if !self.filter.may_match(T::TYPE) {
            self.unmatched.bump();
            return;
        }
        Announce::announce(&self.lifecycle, event);
    }

    /// The actor's side of [`announce`](Self::announce).
    pub(crate) fn emit_announcement(&self, event: Event) {
        let _ = self.emit(event);
    }

    /// A handle on the bus actor, for a subscriber task.
    pub(crate) fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.clone()
    }

    /// Adds a subscriber: makes its route (a mailbox of its own, or a place
    /// in the group of subscribers of its shape; `prepare` runs before it is
    /// routed), puts it in the routing table (before this returns, so an
    /// emit after it reaches the subscriber), and hands its task, started by
    /// `spawn`, to the bus actor. Refused once shutdown has begun, so a
    /// subscriber either is in the shutdown report or was never created.
    pub(crate) fn register(
        &self,
        spec: RouteSpec,
        options: &SubscriberOptions,
        prepare: impl FnOnce(&Route),
        spawn: impl FnOnce(Arc<Route>) -> JoinHandle<()>,
    ) -> Result<Arc<Route>, SubscribeError> {
        let closed = self.admission.lock().unwrap_or_else(|e| e.into_inner());
        if *closed {
            return Err(SubscribeError::Closed);
        }
        let (id, group_id) = (self.next_id(), self.next_id());
        let route =
            self.write_table()
                .subscribe(id, spec, options, group_id, prepare, &self.filter);
        let join = spawn(route.clone());
        self.directory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(route.id, route.clone());
        // Under the admission lock: the actor hears of every subscriber
        // before it hears of the shutdown.
        if let Err(actor::Msg::Started(route, join)) = self
            .lifecycle
            .send(actor::Msg::Started(route.clone(), join))
        {
            // The actor is gone (its runtime shut down): nothing would run.
            join.abort();
            self.unroute(&route);
            self.forget(route.id);
            return Err(SubscribeError::Closed);
        }
        Ok(route)
    }

    /// Re-routes a live subscriber in place: under the table's write lock its
    /// route leaves the places of its old patterns and key and takes those
    /// of `patterns` and `key`, with `condition` in place of its old one.
    /// An emit sees the old routing or the new one, never neither, never
    /// both; the mailbox, the task, the counters and a durable subscriber's
    /// journal stay the same.
    ///
    /// Only a route made re-routable ([`RouteSpec::reroutable`], never a
    /// group member) can be; one that left the table (unsubscribed, its
    /// limit reached, the bus shut down) cannot.
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))] // re-routed by webhook updates
    pub(crate) fn reroute(
        &self,
        route: &Arc<Route>,
        mut patterns: Vec<Pattern>,
        key: Option<RouteKey>,
        condition: Option<Condition>,
    ) -> Result<(), RerouteError> {
        if !route.reroutable || route.shape.is_some() {
            return Err(RerouteError::NotReroutable);
        }
        if patterns.is_empty() {
            return Err(RerouteError::NoPattern);
        }
        patterns.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        patterns.dedup_by(|a, b| a.as_str() == b.as_str());
        let routing = Routing::new(patterns, key, condition);
        self.write_table().reroute(route, routing, &self.filter)
    }

    /// Takes a subscriber out of the routing table (unsubscribe, limit
    /// reached, task ended). Events already in its mailbox stay there.
    pub(crate) fn unroute(&self, route: &Route) {
        if route.mailbox.member_of().is_some() {
            // A group member takes nothing more from the ring (a `Block`
            // member stops holding it), whatever ended it.
            route.mailbox.close();
        }
        self.write_table().remove(route, &self.filter);
    }

    /// A subscriber task ended (told by the actor).
    fn forget(&self, id: u64) {
        self.directory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    pub(crate) fn stats(&self) -> Vec<SubscriberStats> {
        let routes: Vec<Arc<Route>> = self
            .directory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        routes.iter().map(|r| r.stats()).collect()
    }

    /// Shuts down once; later calls get the first call's report.
    pub(crate) async fn shutdown(self: &Arc<Self>, deadline: Instant) -> Vec<SubscriberReport> {
        self.report
            .get_or_init(|| self.shutdown_now(deadline))
            .await
            .clone()
    }

    /// Closes the bus to emits and new subscribers, and has the actor shut
    /// down what runs.
    async fn shutdown_now(self: &Arc<Self>, deadline: Instant) -> Vec<SubscriberReport> {
        // No new subscriber from here on. Emits stay open until the actor
        // takes the shutdown, so the announcements queued before it (a
        // store that failed, a handler that failed) are emitted first.
        let directory = {
            let mut closed = self.admission.lock().unwrap_or_else(|e| e.into_inner());
            *closed = true;
            std::mem::take(&mut *self.directory.lock().unwrap_or_else(|e| e.into_inner()))
        };
        let (reply, report) = tokio::sync::oneshot::channel();
        let asked = self.lifecycle.send(actor::Msg::Shutdown {
            hub: Arc::clone(self),
            deadline,
            reply,
        });
        if asked.is_ok()
            && let Ok(report) = report.await
        {
            return report;
        }
        // The actor is gone (the bus's runtime shut down, and its tasks with
        // it): report every subscriber as not completed.
        let entries = directory.into_values().map(|r| (r, None)).collect();
        self.shut_down(entries, deadline).await
    }

    /// The actor's shutdown: waits for offers in progress, closes every
    /// mailbox and the taps' ring, waits for the tasks (within `deadline`,
    /// durable ones within their grace) and reports on each. A subscriber
    /// without a task (`None`) did not complete.
    async fn shut_down(
        &self,
        entries: Vec<(Arc<Route>, Option<JoinHandle<()>>)>,
        deadline: Instant,
    ) -> Vec<SubscriberReport> {
        self.closed.store(true, Ordering::SeqCst);
        self.closed_notify.notify_waiters();
        // An offer that began before `closed` was set finishes pushing before
        // the mailboxes close, so every `Ok` emit is in some mailbox and in
        // the report. Offers are short (no waiting inside); the deadline
        // bounds this anyway.
        while self.offering.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        for (route, _) in &entries {
            *route
                .control
                .deadline
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(deadline);
            route.mailbox.close();
        }
        // Taps end once they have read what the ring holds.
        self.ring.close();
        let mut reports = Vec::with_capacity(entries.len());
        let mut aborted = Vec::new();
        let entries_journals: Vec<Arc<dyn Journal>> = entries
            .iter()
            .filter_map(|(route, _)| route.journal.clone())
            .collect();
        for (route, mut join) in entries {
            // A durable subscriber does not wait out its backoffs: it gets
            // `durable_grace` to finish what it has under way; then, once its
            // store has every pending event on disk (retry schedules
            // included), it stops and a restart resumes them.
            let durable = route.journal.is_some();
            let grace_end = deadline.min(Instant::now() + self.durable_grace);
            let mut kept_in_store = false;
            let completed = match join.as_mut() {
                Some(join) if durable => {
                    if tokio::time::timeout_at(grace_end, &mut *join).await.is_ok() {
                        true
                    } else {
                        let journal = route.journal.as_ref().expect("durable");
                        kept_in_store = matches!(
                            tokio::time::timeout_at(deadline, journal.commit()).await,
                            Ok(Ok(()))
                        );
                        // Without the store's word, wait to the deadline.
                        !kept_in_store && tokio::time::timeout_at(deadline, join).await.is_ok()
                    }
                }
                Some(join) => tokio::time::timeout_at(deadline, join).await.is_ok(),
                None => false,
            };
            if !completed {
                // The deadline is the deadline: nothing starts after it. A
                // sync handler running on its thread finishes there; its
                // task starts nothing more, and async work is dropped.
                route.request_abort();
                if let Some(join) = join.take() {
                    join.abort();
                    aborted.push(join);
                }
            }
            let snap = route.mailbox.snapshot();
            let stats = route.stats_of(&snap);
            let pending = stats.mailbox_len + stats.in_flight;
            reports.push(SubscriberReport {
                pending,
                kept: if kept_in_store { pending } else { 0 },
                unfinished: stats.in_flight - snap.unstarted,
                unflushed: snap.counts.unflushed,
                completed,
                stats,
            });
        }
        // Durable subscribers: what they recorded (deliveries, dead letters,
        // and the pending events a restart resumes) reaches the disk before
        // the report, within the deadline.
        for e in entries_journals {
            let _ = tokio::time::timeout_at(deadline, e.commit()).await;
        }
        // Aborted tasks end at their next poll (one in a sync handler, when
        // the handler returns): give them a moment, so that what they hold
        // (a durable subscriber's hold on its store, say) is let go by the
        // time the report is out. Bounded: a handler that never returns
        // does not hold shutdown.
        if !aborted.is_empty() {
            let _ =
                tokio::time::timeout(ABORT_GRACE, futures_util::future::join_all(aborted)).await;
        }
        reports
    }
}

/// An offer's first step for one route that takes the event: a durable
/// subscriber's journal must take events, and a `Block` mailbox must have a
/// place, which this reserves (`Ok(true)`). The refusal otherwise.
fn admit(route: &Arc<Route>) -> Result<bool, Offer> {
    if let Some(journal) = &route.journal
        && let Some(refusal) = journal.refusal()
    {
        return Err(match refusal {
            Refusal::Busy(error) => Offer::StoreBusy(Arc::clone(journal), error),
            Refusal::Failed(error) => Offer::StoreFailed(error),
        });
    }
    // A group's ring is claimed by every emit that writes it (refused only
    // while a `Block` member holds it full); a `Block` mailbox reserves.
    if route.mailbox.group_ring().is_some() || route.mailbox.policy() == OverflowPolicy::Block {
        if !route.mailbox.reserve() {
            return Err(Offer::Full(Arc::clone(route)));
        }
        return Ok(true);
    }
    Ok(false)
}

/// An offer's second step for one route: into the mailbox (counted as
/// filtered when not `accepted`). A durable subscriber records the event in
/// its journal before the push (so its task never finishes an event not yet
/// recorded) and forgets it again when the mailbox did not queue it.
/// Returns whether the mailbox counted the event at all.
fn push_into(
    route: &Route,
    event: &Arc<Event>,
    accepted: bool,
    reserved: bool,
    evicted: &mut Vec<Arc<Event>>,
    commits: &mut Option<&mut Vec<Commit>>,
) -> bool {
    let journal = route.journal.as_ref().filter(|_| accepted);
    if let Some(journal) = journal {
        journal.append(event);
    }
    let (pushed, old) = route.mailbox.push(event, accepted, reserved);
    if let Some(journal) = journal {
        if pushed == Pushed::Taken {
            if let Some(commits) = commits.as_deref_mut() {
                commits.push(journal.commit());
            }
        } else {
            journal.discard(event);
        }
        if let Some(old) = &old {
            journal.discard(old);
        }
    }
    evicted.extend(old);
    pushed != Pushed::Refused
}

/// Delivers to the routes an event matched (none has a condition), with
/// the table still read-locked: admit each (all or none), then push into
/// each. While no route in the table can refuse (only lossy, memory
/// subscribers), there is nothing to admit.
fn deliver_matched(
    refusing: bool,
    matched: &Small<&Arc<Route>>,
    event: &Arc<Event>,
    evicted: &mut Vec<Arc<Event>>,
    mut commits: Option<&mut Vec<Commit>>,
) -> Offer {
    // What each admit reserved, as it said (a policy read again later could
    // differ).
    let mut reserved: Small<bool> = Small::new();
    let mut refused = None;
    if refusing {
        for route in matched.iter() {
            match admit(route) {
                Ok(r) => reserved.push(r),
                Err(offer) => {
                    refused = Some(offer);
                    break;
                }
            }
        }
    }
    if let Some(refused) = refused {
        // Give back the places reserved so far.
        for (route, _) in matched.iter().zip(reserved.iter()).filter(|(_, r)| **r) {
            route.mailbox.unreserve();
        }
        return refused;
    }
    let mut taken = false;
    let mut flags = reserved.iter();
    for route in matched.iter() {
        let reserved = flags.next().copied().unwrap_or(false);
        taken |= push_into(route, event, true, reserved, evicted, &mut commits);
    }
    if taken {
        Offer::Accepted
    } else {
        Offer::Unmatched
    }
}

/// Delivers to the targets (their conditions already run): admit each that
/// accepted the event (all or none), then push into each.
fn deliver(
    event: &Arc<Event>,
    targets: &mut Small<Target>,
    evicted: &mut Vec<Arc<Event>>,
    mut commits: Option<&mut Vec<Commit>>,
) -> Offer {
    let mut refused = None;
    for t in targets.iter_mut().filter(|t| t.accepted) {
        match admit(&t.route) {
            Ok(reserved) => t.reserved = reserved,
            Err(offer) => {
                refused = Some(offer);
                break;
            }
        }
    }
    if let Some(refused) = refused {
        for t in targets.iter_mut().filter(|t| t.reserved) {
            t.route.mailbox.unreserve();
        }
        return refused;
    }
    let mut taken = false;
    for t in targets.iter_mut() {
        taken |= push_into(
            &t.route,
            event,
            t.accepted,
            t.reserved,
            evicted,
            &mut commits,
        );
    }
    if taken {
        Offer::Accepted
    } else {
        Offer::Unmatched
    }
}

/// Takes part in tokio's cooperative scheduling, as tokio's own channels'
/// `send` does: spends a unit of the task's budget, and yields first when
/// it is spent. A task publishing in a loop then gives the subscribers it
/// woke a turn on its worker, instead of leaving them all to the other
/// workers (a cross-thread hand-over and free per event). Called before an
/// offer, so that a `publish` dropped while it yields leaves the event
/// emitted to nobody.
pub(crate) async fn take_turn() {
    tokio::task::coop::consume_budget().await;
}

struct OfferGuard<'a>(&'a AtomicUsize);

impl Drop for OfferGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

fn unwrap_event(arc: Arc<Event>) -> Event {
    Arc::try_unwrap(arc).unwrap_or_else(|arc| (*arc).clone())
}
