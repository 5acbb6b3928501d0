//! The routing table: which subscribers an event type reaches.
//!
//! Emitting costs work only for the subscribers that match:
//!
//! - **exact types** (`order.placed`) are one hash lookup;
//! - **wildcard patterns** live in a trie over segments (`order.*`,
//!   `audit.**`, `*.failed`): a lookup walks only the branches the type's
//!   segments lead to;
//! - **`*`** subscribers are a plain list;
//! - the rare pattern with two or more `**` is matched one by one.
//!
//! Adding or removing a subscriber touches only its own bucket or trie path
//! (no rebuild of the whole table). In front of the table sits a 4096-bit
//! filter over the first two bytes of every type some pattern could match:
//! for a type nobody wants, `emit` answers "no" with two byte reads and one
//! relaxed atomic load, without touching the table's lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustc_hash::FxHashMap;

use super::group::Ring;
use super::{KeyAttr, Mailbox, RerouteError, Route, RouteSpec, Routing, SubscriberOptions};
use crate::event::Event;
use crate::pattern::{Pattern, Segment};

const FILTER_WORDS: usize = 64;
const FILTER_SLOTS: usize = FILTER_WORDS * 64;

/// The filter slot of a type that starts with bytes `b0`, `b1` (`0` past the end).
#[inline]
fn slot(b0: u8, b1: u8) -> usize {
    (((b0 & 63) as usize) << 6) | (b1 & 63) as usize
}

/// The lock-free front of the table.
#[derive(Debug)]
pub(crate) struct Filter {
    /// Some pattern can match types of any prefix (`*`, `*.x`, `**.x`).
    broad: AtomicBool,
    bits: [AtomicU64; FILTER_WORDS],
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            broad: AtomicBool::new(false),
            bits: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Filter {
    /// `false` means no pattern can match `event_type`; `true` means look in
    /// the table.
    #[inline]
    pub(crate) fn may_match(&self, event_type: &str) -> bool {
        if self.broad.load(Ordering::Relaxed) {
            return true;
        }
        let b = event_type.as_bytes();
        let s = slot(
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        );
        self.bits[s >> 6].load(Ordering::Relaxed) & (1 << (s & 63)) != 0
    }
}

/// A trie node: children by literal segment, by `*` and by `**`, and the
/// subscribers whose pattern ends here.
#[derive(Debug, Default)]
struct Node {
    literal: FxHashMap<Box<str>, Node>,
    one: Option<Box<Node>>,
    any: Option<Box<Node>>,
    here: Vec<Arc<Route>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.here.is_empty() && self.literal.is_empty() && self.one.is_none() && self.any.is_none()
    }

    fn insert(&mut self, segments: &[Segment], route: Arc<Route>) {
        match segments.split_first() {
            None => self.here.push(route),
            Some((Segment::Literal(l), rest)) => self
                .literal
                .entry(l.clone())
                .or_default()
                .insert(rest, route),
            Some((Segment::One, rest)) => self.one.get_or_insert_default().insert(rest, route),
            Some((Segment::Any, rest)) => self.any.get_or_insert_default().insert(rest, route),
        }
    }

    /// Removes the route; prunes nodes left empty. Returns whether it was found.
    fn remove(&mut self, segments: &[Segment], id: u64) -> bool {
        fn child(node: &mut Option<Box<Node>>, rest: &[Segment], id: u64) -> bool {
            let Some(n) = node else { return false };
            let found = n.remove(rest, id);
            if n.is_empty() {
                *node = None;
            }
            found
        }
        match segments.split_first() {
            None => remove_id(&mut self.here, id),
            Some((Segment::Literal(l), rest)) => {
                let Some(n) = self.literal.get_mut(l) else {
                    return false;
                };
                let found = n.remove(rest, id);
                if n.is_empty() {
                    self.literal.remove(l);
                }
                found
            }
            Some((Segment::One, rest)) => child(&mut self.one, rest, id),
            Some((Segment::Any, rest)) => child(&mut self.any, rest, id),
        }
    }

    /// Visits the routes whose pattern matches `segs[i..]` from this node.
    /// Patterns here have at most one `**`, so each matching route is
    /// reached by exactly one path.
    fn visit<'a>(&'a self, segs: &[&str], f: &mut impl FnMut(&'a Arc<Route>)) {
        match segs.split_first() {
            None => self.here.iter().for_each(&mut *f),
            Some((head, rest)) => {
                if let Some(n) = self.literal.get(*head) {
                    n.visit(rest, f);
                }
                if let Some(n) = &self.one {
                    n.visit(rest, f);
                }
            }
        }
        if let Some(n) = &self.any {
            // `**` takes 0..=len segments.
            for skip in 0..=segs.len() {
                n.visit(&segs[skip..], f);
            }
        }
    }
}

fn remove_id(list: &mut Vec<Arc<Route>>, id: u64) -> bool {
    match list.iter().position(|r| r.id == id) {
        Some(i) => {
            list.swap_remove(i);
            true
        }
        None => false,
    }
}

/// Where a pattern is kept in the table.
enum Place {
    All,
    Exact,
    Trie(Vec<Segment>),
    Complex,
}

fn place(pattern: &Pattern) -> Place {
    if pattern.is_catch_all() {
        return Place::All;
    }
    if pattern.is_exact() {
        return Place::Exact;
    }
    let segments = pattern.segments();
    if segments
        .iter()
        .filter(|s| matches!(s, Segment::Any))
        .count()
        > 1
    {
        Place::Complex
    } else {
        Place::Trie(segments)
    }
}

/// Routes by pattern: exact types in a hash map, wildcards in the trie,
/// `*` in a list, the rare pattern with several `**` matched one by one.
/// A route with several patterns is kept once per pattern.
#[derive(Debug, Default)]
struct ByPattern {
    exact: FxHashMap<Box<str>, Vec<Arc<Route>>>,
    all: Vec<Arc<Route>>,
    trie: Node,
    complex: Vec<Arc<Route>>,
}

impl ByPattern {
    fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.all.is_empty()
            && self.trie.is_empty()
            && self.complex.is_empty()
    }

    fn add(&mut self, pattern: &Pattern, route: Arc<Route>) {
        match place(pattern) {
            Place::All => self.all.push(route),
            Place::Exact => self
                .exact
                .entry(pattern.as_str().into())
                .or_default()
                .push(route),
            Place::Trie(segments) => self.trie.insert(&segments, route),
            Place::Complex => self.complex.push(route),
        }
    }

    fn remove(&mut self, pattern: &Pattern, id: u64) -> bool {
        match place(pattern) {
            Place::All => remove_id(&mut self.all, id),
            Place::Exact => match self.exact.get_mut(pattern.as_str()) {
                Some(list) => {
                    let found = remove_id(list, id);
                    if list.is_empty() {
                        self.exact.remove(pattern.as_str());
                    }
                    found
                }
                None => false,
            },
            Place::Trie(segments) => self.trie.remove(&segments, id),
            Place::Complex => remove_id(&mut self.complex, id),
        }
    }

    /// Visits the routes with a pattern that matches `event_type`: once per
    /// matching pattern (the table removes the repeats).
    fn visit<'a>(&'a self, event_type: &str, f: &mut impl FnMut(&'a Arc<Route>)) {
        if !self.exact.is_empty()
            && let Some(routes) = self.exact.get(event_type)
        {
            routes.iter().for_each(&mut *f);
        }
        self.all.iter().for_each(&mut *f);
        if !self.trie.is_empty() {
            // Types have at most 255 bytes, so at most 128 segments.
            let mut buf = [""; 128];
            let mut n = 0;
            for seg in event_type.split('.') {
                if n == buf.len() {
                    return;
                }
                buf[n] = seg;
                n += 1;
            }
            self.trie.visit(&buf[..n], f);
        }
        for r in &self.complex {
            if r.routing
                .load()
                .patterns
                .iter()
                .any(|p| p.matches(event_type))
            {
                f(r);
            }
        }
    }
}

/// The routes keyed on one attribute (`tenant`, `subject`, …), by the
/// attribute's value: an event reaches only the routes under its own value.
#[derive(Debug)]
struct KeyIndex {
    attr: KeyAttr,
    by_value: FxHashMap<Box<str>, ByPattern>,
    routes: usize,
}

/// The table behind the filter. Written under the hub's lock, read under it.
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// Routes without a key.
    unkeyed: ByPattern,
    /// Keyed routes, one index per attribute in use (usually one).
    keyed: Vec<KeyIndex>,
    /// Every keyed route by pattern alone, for questions about a type
    /// without an event (`has_subscribers`).
    keyed_any: ByPattern,
    /// Patterns per filter slot, and patterns that make the filter useless.
    slot_counts: Vec<u32>,
    broad: u32,
    /// Routes that can refuse an event (`Block`, or durable): while there
    /// are none, an offer has nothing to reserve and pushes at once.
    refusing: usize,
    /// Routes with patterns that can match the same type (see
    /// [`Route::overlaps`]): while there are none, a walk needs no record of
    /// the routes it has seen.
    overlapping: usize,
    /// Subscribers that may share a ring, by their shape's fingerprint: the
    /// group the subscribers of that shape join, or, before there is one,
    /// the first of the shape (with a mailbox of its own).
    shapes: FxHashMap<std::num::NonZeroU64, Arc<Route>>,
}

/// Whether a route can refuse an event: a `Block` mailbox may be full, a
/// durable subscriber's store may be behind.
/// A group counts as one whatever its members: every emit that writes its
/// ring claims a place first (see [`Ring::reserve`]).
pub(crate) fn can_refuse(route: &Route) -> bool {
    route.journal.is_some()
        || route.mailbox.group_ring().is_some()
        || route.mailbox.policy() == crate::hub::OverflowPolicy::Block
}

/// Route ids already visited in one walk: up to 16 inline, then a set.
struct Seen {
    inline: [u64; 16],
    len: usize,
    spill: Option<rustc_hash::FxHashSet<u64>>,
}

impl Seen {
    fn new() -> Seen {
        Seen {
            inline: [0; 16],
            len: 0,
            spill: None,
        }
    }

    /// Records `id`; `false` when it was recorded already.
    fn first_time(&mut self, id: u64) -> bool {
        if let Some(set) = &mut self.spill {
            return set.insert(id);
        }
        if self.inline[..self.len].contains(&id) {
            return false;
        }
        if self.len < self.inline.len() {
            self.inline[self.len] = id;
            self.len += 1;
        } else {
            let mut set: rustc_hash::FxHashSet<u64> = self.inline.iter().copied().collect();
            set.insert(id);
            self.spill = Some(set);
        }
        true
    }
}

impl Table {
    /// Visits every route that `event` reaches, each once: its type matches
    /// one of the route's patterns, and the route's key (if any) matches the
    /// event's attribute. The same table and event give the same routes in
    /// the same order.
    pub(crate) fn for_each_match<'a>(&'a self, event: &Event, mut f: impl FnMut(&'a Arc<Route>)) {
        let ty = event.event_type();
        if self.overlapping == 0 {
            self.walk(event, ty, &mut f);
            return;
        }
        let mut seen = Seen::new();
        self.walk(event, ty, &mut |r: &'a Arc<Route>| {
            if !r.overlaps.load(Ordering::Relaxed) || seen.first_time(r.id) {
                f(r);
            }
        });
    }

    fn walk<'a>(&'a self, event: &Event, ty: &str, f: &mut impl FnMut(&'a Arc<Route>)) {
        self.unkeyed.visit(ty, f);
        for index in &self.keyed {
            if let Some(value) = index.attr.value_of(event)
                && let Some(routes) = index.by_value.get(&*value)
            {
                routes.visit(ty, f);
            }
        }
    }

    /// Whether some open route's pattern matches `event_type`, whatever its
    /// key.
    pub(crate) fn any_open_for_type(&self, event_type: &str) -> bool {
        let mut any = false;
        self.unkeyed
            .visit(event_type, &mut |r: &Arc<Route>| any |= r.mailbox.is_open());
        if !any && !self.keyed_any.is_empty() {
            self.keyed_any
                .visit(event_type, &mut |r: &Arc<Route>| any |= r.mailbox.is_open());
        }
        any
    }

    /// Whether some route can refuse an event (see [`can_refuse`]).
    pub(crate) fn has_refusing(&self) -> bool {
        self.refusing > 0
    }

    /// Makes a subscriber's route and puts it in the table: with a mailbox of
    /// its own, or, when another subscriber of the same shape is there, as a
    /// member of that shape's group (made now, with the id `group_id`, if it
    /// is the second). `prepare` runs before the route is in the table.
    pub(crate) fn subscribe(
        &mut self,
        id: u64,
        mut spec: RouteSpec,
        options: &SubscriberOptions,
        group_id: u64,
        prepare: impl FnOnce(&Route),
        filter: &Filter,
    ) -> Arc<Route> {
        spec.normalize();
        let shape = spec.shape(options);
        let joins = shape.and_then(|fp| {
            self.shapes
                .get(&fp)?
                .same_shape(&spec.patterns, &spec.key, options.capacity)
                .then_some(fp)
        });
        let Some(fp) = joins else {
            let mailbox = Mailbox::new(
                options.capacity,
                options.overflow,
                options.batch.is_some(),
                spec.limit,
            );
            let route = Arc::new(Route::with_mailbox(id, spec, mailbox, shape));
            prepare(&route);
            if let Some(fp) = shape {
                // (A fingerprint taken by another shape: no group for it.)
                self.shapes.entry(fp).or_insert_with(|| route.clone());
            }
            self.add(route.clone(), filter);
            return route;
        };
        let existing = self
            .shapes
            .get(&fp)
            .filter(|r| r.mailbox.group_ring().is_some())
            .cloned();
        let (group, new_group) = match existing {
            Some(group) => (group, false),
            None => {
                let ring = Arc::new(Ring::new(options.capacity));
                let group_spec = RouteSpec {
                    name: format!(
                        "group:{}",
                        spec.patterns
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                    .into(),
                    patterns: spec.patterns.clone(),
                    key: spec.key.clone(),
                    condition: None,
                    limit: None,
                    journal: None,
                    reroutable: false,
                };
                let group =
                    Route::with_mailbox(group_id, group_spec, Mailbox::group(ring), Some(fp));
                (Arc::new(group), true)
            }
        };
        let ring = group
            .mailbox
            .group_ring()
            .expect("a group's mailbox")
            .clone();
        let member = Arc::new(Route::with_mailbox(
            id,
            spec,
            Mailbox::member(ring.clone(), options.overflow),
            shape,
        ));
        member.grouped.store(true, Ordering::Release);
        prepare(&member);
        ring.members.fetch_add(1, Ordering::AcqRel);
        if new_group {
            // From now on the shape's subscribers join the group; the first
            // keeps its own mailbox.
            self.shapes.insert(fp, group.clone());
            self.add(group, filter);
        }
        member
    }

    /// A member leaves its group; the group leaves the table with its last
    /// member. Returns whether it was a member.
    fn leave_group(&mut self, route: &Route, ring: &Arc<Ring>, filter: &Filter) -> bool {
        if !route.grouped.swap(false, Ordering::AcqRel) {
            return false;
        }
        if ring.members.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(fp) = route.shape
            && self
                .shapes
                .get(&fp)
                .is_some_and(|g| g.mailbox.group_ring().is_some_and(|r| Arc::ptr_eq(r, ring)))
            && let Some(group) = self.shapes.remove(&fp)
        {
            self.remove(&group, filter);
        }
        true
    }

    pub(crate) fn add(&mut self, route: Arc<Route>, filter: &Filter) {
        let routing = route.routing.load_full();
        for pattern in routing.patterns.iter() {
            self.count(pattern, 1, filter);
        }
        self.refusing += usize::from(can_refuse(&route));
        self.overlapping += usize::from(routing.overlaps);
        self.place(route, &routing);
    }

    /// Puts the route in the places of `routing`'s patterns and key.
    fn place(&mut self, route: Arc<Route>, routing: &Routing) {
        match &routing.key {
            None => {
                for pattern in routing.patterns.iter() {
                    self.unkeyed.add(pattern, route.clone());
                }
            }
            Some(key) => {
                let index = match self.keyed.iter().position(|i| i.attr == key.attr) {
                    Some(i) => &mut self.keyed[i],
                    None => {
                        self.keyed.push(KeyIndex {
                            attr: key.attr.clone(),
                            by_value: FxHashMap::default(),
                            routes: 0,
                        });
                        self.keyed.last_mut().expect("just pushed")
                    }
                };
                index.routes += 1;
                let routes = index.by_value.entry(key.value.clone()).or_default();
                for pattern in routing.patterns.iter() {
                    routes.add(pattern, route.clone());
                    self.keyed_any.add(pattern, route.clone());
                }
            }
        }
    }

    /// Takes the route out of the places of `routing`'s patterns and key;
    /// returns whether it was there.
    fn unplace(&mut self, id: u64, routing: &Routing) -> bool {
        let mut found = false;
        match &routing.key {
            None => {
                for pattern in routing.patterns.iter() {
                    found |= self.unkeyed.remove(pattern, id);
                }
            }
            Some(key) => {
                if let Some(i) = self.keyed.iter().position(|i| i.attr == key.attr) {
                    let index = &mut self.keyed[i];
                    if let Some(routes) = index.by_value.get_mut(&key.value) {
                        for pattern in routing.patterns.iter() {
                            found |= routes.remove(pattern, id);
                            self.keyed_any.remove(pattern, id);
                        }
                        if routes.is_empty() {
                            index.by_value.remove(&key.value);
                        }
                    }
                    if found {
                        index.routes -= 1;
                        if index.routes == 0 {
                            self.keyed.swap_remove(i);
                        }
                    }
                }
            }
        }
        found
    }

    /// Removes the route; returns whether it was there.
    pub(crate) fn remove(&mut self, route: &Route, filter: &Filter) -> bool {
        if let Some(ring) = route.mailbox.member_of() {
            return self.leave_group(route, &ring.clone(), filter);
        }
        if let Some(fp) = route.shape
            && self.shapes.get(&fp).is_some_and(|r| r.id == route.id)
        {
            self.shapes.remove(&fp);
        }
        let routing = route.routing.load_full();
        let found = self.unplace(route.id, &routing);
        if found {
            for pattern in routing.patterns.iter() {
                self.count(pattern, -1, filter);
            }
            self.refusing -= usize::from(can_refuse(route));
            self.overlapping -= usize::from(routing.overlaps);
        }
        found
    }

    /// Gives a route in the table a new routing (see
    /// [`Hub::reroute`](super::Hub::reroute)). The filter counts the new
    /// patterns before the old ones leave it, so the lock-free filter never
    /// hides a type that the old or the new routing takes; the table itself
    /// changes under the write lock, so a walk sees one routing or the
    /// other. A route with a shape (one that may share a ring) is refused.
    #[cfg_attr(not(any(feature = "webhook", test)), allow(dead_code))]
    pub(crate) fn reroute(
        &mut self,
        route: &Arc<Route>,
        routing: Routing,
        filter: &Filter,
    ) -> Result<(), RerouteError> {
        if route.shape.is_some() || route.mailbox.member_of().is_some() {
            return Err(RerouteError::NotReroutable);
        }
        let old = route.routing.load_full();
        for pattern in routing.patterns.iter() {
            self.count(pattern, 1, filter);
        }
        if !self.unplace(route.id, &old) {
            for pattern in routing.patterns.iter() {
                self.count(pattern, -1, filter);
            }
            return Err(RerouteError::Gone);
        }
        self.overlapping -= usize::from(old.overlaps);
        self.overlapping += usize::from(routing.overlaps);
        route.overlaps.store(routing.overlaps, Ordering::Relaxed);
        route
            .conditioned
            .store(routing.condition.is_some(), Ordering::Relaxed);
        let routing = Arc::new(routing);
        route.routing.store(routing.clone());
        self.place(route.clone(), &routing);
        for pattern in old.patterns.iter() {
            self.count(pattern, -1, filter);
        }
        Ok(())
    }

    /// A tap makes the filter broad while it is open (it observes every
    /// type).
    pub(crate) fn count_tap(&mut self, open: bool, filter: &Filter) {
        self.broad = if open {
            self.broad.saturating_add(1)
        } else {
            self.broad.saturating_sub(1)
        };
        filter.broad.store(self.broad > 0, Ordering::Release);
    }

    /// Keeps the filter's per-slot counts and publishes the bits they imply.
    fn count(&mut self, pattern: &Pattern, delta: i32, filter: &Filter) {
        if self.slot_counts.is_empty() {
            self.slot_counts = vec![0; FILTER_SLOTS];
        }
        let mut slots = [usize::MAX; 2];
        match pattern.first_literal().map(str::as_bytes) {
            Some(&[b0, b1, ..]) => slots[0] = slot(b0, b1),
            Some(&[b0]) => {
                // `a.*` matches `a.x` ("a."); `a.**` also matches `a` itself.
                slots = [slot(b0, b'.'), slot(b0, 0)];
            }
            _ => {
                self.broad = self.broad.saturating_add_signed(delta);
                filter.broad.store(self.broad > 0, Ordering::Release);
                return;
            }
        }
        for s in slots.into_iter().filter(|&s| s != usize::MAX) {
            let c = &mut self.slot_counts[s];
            *c = c.saturating_add_signed(delta);
            let word = &filter.bits[s >> 6];
            if *c > 0 {
                word.fetch_or(1 << (s & 63), Ordering::Release);
            } else {
                word.fetch_and(!(1 << (s & 63)), Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::SubscriberOptions;
    use proptest::prelude::*;

    fn route_of(id: u64, patterns: &[String], key: Option<(&str, &str)>) -> Arc<Route> {
        Arc::new(Route::new(
            id,
            crate::hub::RouteSpec {
                name: "t".into(),
                patterns: patterns.iter().map(|p| Pattern::new(p).unwrap()).collect(),
                key: key.map(|(attr, value)| crate::hub::RouteKey {
                    attr: KeyAttr::parse(attr).unwrap(),
                    value: value.into(),
                }),
                condition: None,
                limit: None,
                journal: None,
                reroutable: false,
            },
            &SubscriberOptions::default(),
        ))
    }

    fn route(id: u64, pattern: &str) -> Arc<Route> {
        route_of(id, &[pattern.to_owned()], None)
    }

    fn event(ty: &str, tenant: Option<&str>) -> Event {
        let mut b = Event::builder(ty.to_owned());
        if let Some(t) = tenant {
            b = b.extension("tenant", t);
        }
        b.build().unwrap()
    }

    /// The ids the table visits, in visit order (not sorted: repeats show).
    fn visited(table: &Table, ev: &Event) -> Vec<u64> {
        let mut ids = Vec::new();
        table.for_each_match(ev, |r| ids.push(r.id));
        ids
    }

    fn matches(table: &Table, ty: &str) -> Vec<u64> {
        let mut ids = visited(table, &event(ty, None));
        ids.sort_unstable();
        ids
    }

    /// Segments from a small alphabet, so patterns and types collide often.
    fn segment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "ab", "*", "**"])
    }

    fn pattern() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..5)
            .prop_map(|s| s.join("."))
            .prop_filter("a valid pattern", |p| Pattern::new(p).is_ok())
    }

    fn event_type() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "c"]), 1..6)
            .prop_map(|s| s.join("."))
    }

    proptest! {
        /// The table finds exactly the routes whose pattern matches, each
        /// once, before and after removals; the filter never hides a match.
        #[test]
        fn the_table_agrees_with_pattern_matching(
            patterns in prop::collection::vec(pattern(), 1..24),
            types in prop::collection::vec(event_type(), 1..16),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let filter = Filter::default();
            let mut table = Table::default();
            let mut live: Vec<Arc<Route>> = Vec::new();
            for (i, p) in patterns.iter().enumerate() {
                let r = route(i as u64, p);
                table.add(r.clone(), &filter);
                live.push(r);
            }
            for ix in removed {
                if live.is_empty() {
                    break;
                }
                let r = live.remove(ix.index(live.len()));
                prop_assert!(table.remove(&r, &filter));
                prop_assert!(!table.remove(&r, &filter));
            }
            for ty in &types {
                let mut expected: Vec<u64> = live
                    .iter()
                    .filter(|r| r.routing.load().patterns.iter().any(|p| p.matches(ty)))
                    .map(|r| r.id)
                    .collect();
                expected.sort_unstable();
                prop_assert_eq!(matches(&table, ty), expected.clone(), "type {}", ty);
                if !expected.is_empty() {
                    prop_assert!(filter.may_match(ty), "the filter hid {}", ty);
                }
            }
            for r in &live {
                prop_assert!(table.remove(r, &filter));
            }
            prop_assert!(table.unkeyed.is_empty() && table.keyed_any.is_empty() && table.keyed.is_empty());
            prop_assert!(!filter.broad.load(Ordering::Relaxed));
            prop_assert!(filter.bits.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        }

        /// Routes with several patterns and optional tenant keys: each
        /// event visits exactly the routes with a matching pattern and key,
        /// each once (however many of its patterns match), before and after
        /// removals; the counters go back to zero.
        #[test]
        fn several_patterns_and_keys_visit_each_route_once(
            routes in prop::collection::vec(
                (prop::collection::vec(pattern(), 1..4), prop::option::of(prop::sample::select(vec!["t1", "t2", "t3"]))),
                1..24,
            ),
            events in prop::collection::vec((event_type(), prop::option::of(prop::sample::select(vec!["t1", "t2", "t4"]))), 1..16),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let filter = Filter::default();
            let mut table = Table::default();
            let mut live: Vec<Arc<Route>> = Vec::new();
            for (i, (patterns, tenant)) in routes.iter().enumerate() {
                let r = route_of(i as u64, patterns, tenant.map(|t| ("tenant", t)));
                table.add(r.clone(), &filter);
                live.push(r);
            }
            for ix in removed {
                if live.is_empty() {
                    break;
                }
                let r = live.remove(ix.index(live.len()));
                prop_assert!(table.remove(&r, &filter));
                prop_assert!(!table.remove(&r, &filter));
            }
            for (ty, tenant) in &events {
                let ev = event(ty, *tenant);
                let mut expected: Vec<u64> = live
                    .iter()
                    .filter(|r| r.routing.load().patterns.iter().any(|p| p.matches(ty)))
                    .filter(|r| match &r.routing.load().key {
                        None => true,
                        Some(k) => Some(&*k.value) == *tenant,
                    })
                    .map(|r| r.id)
                    .collect();
                expected.sort_unstable();
                let mut got = visited(&table, &ev);
                let n = got.len();
                got.sort_unstable();
                got.dedup();
                prop_assert_eq!(n, got.len(), "a route was visited twice for {}", ty);
                prop_assert_eq!(&got, &expected, "type {} tenant {:?}", ty, tenant);
                if !expected.is_empty() {
                    prop_assert!(filter.may_match(ty), "the filter hid {}", ty);
                    prop_assert!(table.any_open_for_type(ty));
                }
            }
            for r in &live {
                prop_assert!(table.remove(r, &filter));
            }
            prop_assert!(table.unkeyed.is_empty() && table.keyed_any.is_empty() && table.keyed.is_empty());
            prop_assert_eq!(table.overlapping, 0);
            prop_assert!(!filter.broad.load(Ordering::Relaxed));
            prop_assert!(filter.bits.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        }
    }

    fn routing(patterns: &[String], key: Option<(&str, &str)>) -> Routing {
        let mut patterns: Vec<Pattern> =
            patterns.iter().map(|p| Pattern::new(p).unwrap()).collect();
        patterns.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        patterns.dedup_by(|a, b| a.as_str() == b.as_str());
        let key = key.map(|(attr, value)| crate::hub::RouteKey {
            attr: KeyAttr::parse(attr).unwrap(),
            value: value.into(),
        });
        Routing::new(patterns, key, None)
    }

    proptest! {
        /// Routes re-routed to other patterns and keys (some twice): each
        /// event visits exactly the routes whose routing *now* matches, each
        /// once; the filter never hides a match; a removed route cannot be
        /// re-routed; the counters go back to zero.
        #[test]
        fn rerouted_routes_are_found_by_their_new_routing_only(
            routes in prop::collection::vec(
                (prop::collection::vec(pattern(), 1..4), prop::option::of(prop::sample::select(vec!["t1", "t2"]))),
                1..16,
            ),
            reroutes in prop::collection::vec(
                (any::<prop::sample::Index>(), prop::collection::vec(pattern(), 1..4), prop::option::of(prop::sample::select(vec!["t1", "t2", "t3"]))),
                0..12,
            ),
            events in prop::collection::vec((event_type(), prop::option::of(prop::sample::select(vec!["t1", "t2", "t3"]))), 1..16),
        ) {
            let filter = Filter::default();
            let mut table = Table::default();
            let mut live: Vec<Arc<Route>> = Vec::new();
            for (i, (patterns, tenant)) in routes.iter().enumerate() {
                let r = route_of(i as u64, patterns, tenant.map(|t| ("tenant", t)));
                table.add(r.clone(), &filter);
                live.push(r);
            }
            for (ix, patterns, tenant) in &reroutes {
                let r = live[ix.index(live.len())].clone();
                let key = tenant.map(|t| ("tenant", t));
                prop_assert_eq!(table.reroute(&r, routing(patterns, key), &filter), Ok(()));
            }
            for (ty, tenant) in &events {
                let ev = event(ty, *tenant);
                let mut expected: Vec<u64> = live
                    .iter()
                    .filter(|r| {
                        let routing = r.routing.load();
                        routing.patterns.iter().any(|p| p.matches(ty))
                            && routing.key.as_ref().is_none_or(|k| Some(&*k.value) == *tenant)
                    })
                    .map(|r| r.id)
                    .collect();
                expected.sort_unstable();
                let mut got = visited(&table, &ev);
                let n = got.len();
                got.sort_unstable();
                got.dedup();
                prop_assert_eq!(n, got.len(), "a route was visited twice for {}", ty);
                prop_assert_eq!(&got, &expected, "type {} tenant {:?}", ty, tenant);
                if !expected.is_empty() {
                    prop_assert!(filter.may_match(ty), "the filter hid {}", ty);
                }
            }
            for r in &live {
                prop_assert!(table.remove(r, &filter));
                prop_assert_eq!(
                    table.reroute(r, routing(&["a".to_owned()], None), &filter),
                    Err(RerouteError::Gone)
                );
            }
            prop_assert!(table.unkeyed.is_empty() && table.keyed_any.is_empty() && table.keyed.is_empty());
            prop_assert_eq!(table.overlapping, 0);
            prop_assert!(!filter.broad.load(Ordering::Relaxed));
            prop_assert!(filter.bits.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        }
    }

    /// A re-routable subscriber never joins a group nor becomes the one a
    /// group forms around (it has no shape); one that has a shape (a solo
    /// others may join, or a member) cannot be re-routed.
    #[test]
    fn only_a_subscriber_without_a_shape_is_rerouted() {
        let filter = Filter::default();
        let mut table = Table::default();
        let opts = SubscriberOptions::default();
        let reroutable = |p: &str| RouteSpec {
            reroutable: true,
            ..spec(p)
        };
        let a = table.subscribe(1, reroutable("a.b"), &opts, 2, |_| {}, &filter);
        let b = table.subscribe(3, reroutable("a.b"), &opts, 4, |_| {}, &filter);
        assert!(a.shape.is_none() && b.shape.is_none());
        assert!(a.mailbox.member_of().is_none() && b.mailbox.member_of().is_none());
        let solo = table.subscribe(5, spec("a.b"), &opts, 6, |_| {}, &filter);
        let member = table.subscribe(7, spec("a.b"), &opts, 8, |_| {}, &filter);
        assert!(member.mailbox.member_of().is_some());
        for shaped in [&solo, &member] {
            assert_eq!(
                table.reroute(shaped, routing(&["c".to_owned()], None), &filter),
                Err(RerouteError::NotReroutable)
            );
        }
        // a.b: a, b, the solo and the group.
        assert_eq!(visited(&table, &event("a.b", None)).len(), 4);
        table
            .reroute(
                &a,
                routing(
                    &["c.*".to_owned(), "c.**".to_owned()],
                    Some(("tenant", "t1")),
                ),
                &filter,
            )
            .unwrap();
        assert_eq!(visited(&table, &event("a.b", None)).len(), 3);
        assert_eq!(visited(&table, &event("c.d", Some("t1"))), vec![1]);
        assert!(visited(&table, &event("c.d", Some("t2"))).is_empty());
        assert_eq!(table.overlapping, 1);
        assert!(filter.may_match("c.d") && filter.may_match("a.b"));
        for r in [&a, &b, &solo, &member] {
            assert!(table.remove(r, &filter));
        }
        assert_eq!(table.overlapping, 0);
        assert!(table.shapes.is_empty() && table.keyed.is_empty());
        assert!(filter.bits.iter().all(|w| w.load(Ordering::Relaxed) == 0));
    }

    fn spec(pattern: &str) -> RouteSpec {
        RouteSpec {
            name: "t".into(),
            patterns: vec![Pattern::new(pattern).unwrap()],
            key: None,
            condition: None,
            limit: None,
            journal: None,
            reroutable: false,
        }
    }

    /// Subscribers of one shape: the first keeps a mailbox of its own, the
    /// others share one group entry; another shape (a capacity, a
    /// condition, `DropNewest`, a pattern that reaches `hookbus.*`) does not
    /// join. The group leaves the table with its last member.
    #[test]
    fn subscribers_of_one_shape_share_one_group_entry() {
        let filter = Filter::default();
        let mut table = Table::default();
        let opts = SubscriberOptions::default();
        let mut ids = 100;
        let mut sub = |table: &mut Table, spec: RouteSpec, opts: &SubscriberOptions| {
            ids += 2;
            table.subscribe(ids, spec, opts, ids + 1, |_| {}, &filter)
        };
        let solo = sub(&mut table, spec("a.b"), &opts);
        let members: Vec<_> = (0..5)
            .map(|_| sub(&mut table, spec("a.b"), &opts))
            .collect();
        assert!(solo.mailbox.member_of().is_none());
        assert!(members.iter().all(|m| m.mailbox.member_of().is_some()));
        assert_eq!(visited(&table, &event("a.b", None)).len(), 2);
        let mut block = opts.clone();
        block.overflow = crate::hub::OverflowPolicy::Block;
        let blocking = sub(&mut table, spec("a.b"), &block);
        assert!(blocking.mailbox.member_of().is_some());
        assert!(table.has_refusing());
        let mut other = Vec::new();
        let mut bigger = opts.clone();
        bigger.capacity += 1;
        other.push(sub(&mut table, spec("a.b"), &bigger));
        let mut newest = opts.clone();
        newest.overflow = crate::hub::OverflowPolicy::DropNewest;
        other.push(sub(&mut table, spec("a.b"), &newest));
        let mut conditioned = spec("a.b");
        conditioned.condition = Some(Box::new(|_| true));
        other.push(sub(&mut table, conditioned, &opts));
        for _ in 0..2 {
            other.push(sub(&mut table, spec("*"), &opts));
        }
        assert!(other.iter().all(|r| r.mailbox.member_of().is_none()));
        assert_eq!(visited(&table, &event("a.b", None)).len(), 2 + other.len());
        assert!(table.remove(&blocking, &filter));
        assert!(!table.remove(&blocking, &filter));
        // A group is admitted (its ring claimed) while it is in the table.
        assert!(table.has_refusing());
        for m in &members {
            assert!(table.remove(m, &filter));
        }
        assert_eq!(visited(&table, &event("a.b", None)).len(), 1 + other.len());
        assert!(!table.has_refusing());
        for r in other.iter().chain([&solo]) {
            assert!(table.remove(r, &filter));
        }
        assert!(table.shapes.is_empty() && table.unkeyed.is_empty());
        assert!(filter.bits.iter().all(|w| w.load(Ordering::Relaxed) == 0));
    }

    /// Many routes that overlap, all matching one event: the record of
    /// routes seen spills from its inline array to a set and still visits
    /// each once.
    #[test]
    fn many_overlapping_routes_visit_once_each() {
        let filter = Filter::default();
        let mut table = Table::default();
        let patterns = vec!["a.*".to_owned(), "a.**".to_owned(), "*".to_owned()];
        for id in 0..100 {
            table.add(route_of(id, &patterns, None), &filter);
        }
        let ids = visited(&table, &event("a.b", None));
        assert_eq!(ids.len(), 100);
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 100);
    }
}
