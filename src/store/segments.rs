//! Pending records in segment tables (the store's format 2).
//!
//! A subscriber's pending records live in tables of their own, one per
//! range of [`SEGMENT`] sequence numbers: `pending/<subscriber>/<first
//! sequence / SEGMENT, 16 hex digits>`, keyed by sequence number. A
//! commit whose deletes take every record left in a segment deletes the
//! table whole (redb frees its pages without rewriting them) instead of
//! removing the records one by one, copying and rebalancing the tree for
//! each: a backlog that drains costs the disk a few table deletions per
//! thousand events. Only a segment that keeps some records has its
//! delivered ones removed singly.
//!
//! Format 1 kept every pending record in one table, `pending`, keyed by
//! (subscriber, sequence). Opening such a file moves its records into
//! segments, in the same transaction as the open's own (a crash during it
//! leaves the file as it was). The name `pending` then holds a marker
//! table of another type (`format` → 2), so a hookbus from before format 2
//! refuses the file (a table type mismatch) rather than seeing no pending
//! events in it.

use std::collections::HashMap;

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};
use rustc_hash::{FxHashMap, FxHashSet};

/// Sequence numbers per segment table.
pub(super) const SEGMENT: u64 = 256;
const PREFIX: &str = "pending/";

/// Format 1's table of every pending record: (subscriber, sequence) →
/// record.
const LEGACY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("pending");
/// Under format 1's name: `format` → 2.
pub(super) const MARKER: TableDefinition<&str, u64> = TableDefinition::new("pending");
const FORMAT_KEY: &str = "format";
const FORMAT: u64 = 2;

/// A segment table open for writing.
type SegmentTable<'t> = redb::Table<'t, u64, &'static [u8]>;

/// The table of `sub`'s segment `seg`.
pub(super) fn name(sub: &str, seg: u64) -> String {
    format!("{PREFIX}{sub}/{seg:016x}")
}

/// A segment table's definition.
pub(super) fn table(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

/// The subscriber and segment of a segment table's name; None for a
/// name that is not one.
pub(super) fn parse(name: &str) -> Option<(&str, u64)> {
    let (sub, seg) = name.strip_prefix(PREFIX)?.rsplit_once('/')?;
    if seg.len() != 16 || !seg.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((sub, u64::from_str_radix(seg, 16).ok()?))
}

/// The segment tables among `tables`, ordered by subscriber then segment,
/// and the names under the segments' prefix that are not a segment's (a
/// damaged name).
pub(super) fn list(
    tables: impl Iterator<Item = redb::UntypedTableHandle>,
) -> (Vec<(String, u64, String)>, Vec<String>) {
    let mut found = Vec::new();
    let mut damaged = Vec::new();
    for t in tables {
        let name = t.name();
        if !name.starts_with(PREFIX) {
            continue;
        }
        match parse(name) {
            Some((sub, seg)) => found.push((sub.to_owned(), seg, name.to_owned())),
            None => damaged.push(name.to_owned()),
        }
    }
    found.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    (found, damaged)
}

/// The segment tables of `sub`, oldest first.
pub(super) fn of(
    tables: impl Iterator<Item = redb::UntypedTableHandle>,
    sub: &str,
) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = tables
        .filter_map(|t| {
            let (s, seg) = parse(t.name())?;
            (s == sub).then(|| (seg, t.name().to_owned()))
        })
        .collect();
    out.sort_unstable_by_key(|(seg, _)| *seg);
    out
}

/// Brings the file to format 2 in `txn`: a new file gets the marker; a
/// format 1 file has its pending records moved into segments (the counts
/// found, per subscriber, are returned).
pub(super) fn prepare(
    txn: &redb::WriteTransaction,
) -> Result<Option<HashMap<String, u64>>, redb::Error> {
    let exists = txn.list_tables()?.any(|t| t.name() == MARKER.name());
    if exists {
        match txn.open_table(MARKER) {
            Ok(_) => return Ok(None),
            Err(redb::TableError::TableTypeMismatch { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let mut counts: HashMap<String, u64> = HashMap::new();
        {
            let legacy = txn.open_table(LEGACY)?;
            let mut segments = Segments::new(txn);
            for row in legacy.iter()? {
                let (k, v) = row?;
                let (sub, seq) = k.value();
                segments.put(sub, seq, v.value())?;
                *counts.entry(sub.to_owned()).or_default() += 1;
            }
            drop(segments);
            txn.delete_table(legacy)?;
        }
        txn.open_table(MARKER)?.insert(FORMAT_KEY, FORMAT)?;
        return Ok(Some(counts));
    }
    txn.open_table(MARKER)?.insert(FORMAT_KEY, FORMAT)?;
    Ok(None)
}

/// The segment tables a write transaction touches, opened once each, and
/// the removals it asks for, made when it finishes ([`Segments::finish`]).
pub(super) struct Segments<'t, 'a> {
    txn: &'t redb::WriteTransaction,
    /// By segment, then subscriber (few share a segment): found without
    /// allocating.
    open: FxHashMap<u64, Vec<(String, SegmentTable<'t>)>>,
    removes: FxHashMap<(&'a str, u64), FxHashSet<u64>>,
    /// The tables of the file, listed once when a removal needs to know.
    existing: Option<FxHashSet<String>>,
}

impl<'t, 'a> Segments<'t, 'a> {
    pub(super) fn new(txn: &'t redb::WriteTransaction) -> Self {
        Segments {
            txn,
            open: FxHashMap::default(),
            removes: FxHashMap::default(),
            existing: None,
        }
    }

    fn get(&mut self, sub: &str, seg: u64) -> Result<&mut SegmentTable<'t>, redb::Error> {
        let subs = self.open.entry(seg).or_default();
        let at = match subs.iter().position(|(s, _)| s == sub) {
            Some(at) => at,
            None => {
                subs.push((sub.to_owned(), self.txn.open_table(table(&name(sub, seg)))?));
                subs.len() - 1
            }
        };
        Ok(&mut subs[at].1)
    }

    /// The open table of `sub`'s segment `seg`, taken out (None when not
    /// open).
    fn take(&mut self, sub: &str, seg: u64) -> Option<SegmentTable<'t>> {
        let subs = self.open.get_mut(&seg)?;
        let at = subs.iter().position(|(s, _)| s == sub)?;
        Some(subs.swap_remove(at).1)
    }

    /// Writes `sub`'s record `seq`; whether it is new (not a rewrite).
    pub(super) fn put(&mut self, sub: &str, seq: u64, record: &[u8]) -> Result<bool, redb::Error> {
        Ok(self.get(sub, seq / SEGMENT)?.insert(seq, record)?.is_none())
    }

    /// Asks for `sub`'s record `seq` to be removed when the transaction's
    /// writes are done.
    pub(super) fn remove(&mut self, sub: &'a str, seq: u64) {
        self.removes
            .entry((sub, seq / SEGMENT))
            .or_default()
            .insert(seq);
    }

    /// Makes the removals: a segment whose every record is removed is
    /// deleted whole, the others lose their records one by one. `removed`
    /// gets how many records each subscriber lost.
    pub(super) fn finish(
        mut self,
        mut removed: impl FnMut(&'a str, u64),
    ) -> Result<(), redb::Error> {
        let removes = std::mem::take(&mut self.removes);
        for ((sub, seg), seqs) in removes {
            // A table written in this transaction has pages allocated in
            // it, which redb's table deletion does not take (it frees the
            // pages of committed trees): its records are removed one by
            // one, and the table deleted once it has no page left.
            let (t, written) = match self.take(sub, seg) {
                Some(t) => (t, true),
                None => {
                    let name = name(sub, seg);
                    if !self.exists(&name)? {
                        continue;
                    }
                    (self.txn.open_table(table(&name))?, false)
                }
            };
            let len = t.len()?;
            let whole = !written && len <= seqs.len() as u64 && {
                let mut all = true;
                for row in t.iter()? {
                    let (k, _) = row?;
                    if !seqs.contains(&k.value()) {
                        all = false;
                        break;
                    }
                }
                all
            };
            if whole {
                self.txn.delete_table(t)?;
                removed(sub, len);
            } else {
                let mut t = t;
                let mut n = 0;
                for seq in seqs {
                    if t.remove(seq)?.is_some() {
                        n += 1;
                    }
                }
                removed(sub, n);
                if t.len()? == 0 {
                    // Empty: no page left to free.
                    self.txn.delete_table(t)?;
                }
            }
        }
        Ok(())
    }

    /// Whether the table exists (opening it in a write transaction would
    /// create it): the removal of a record never written (delivered before
    /// its commit) may name a segment that is not there.
    fn exists(&mut self, name: &str) -> Result<bool, redb::Error> {
        if self.existing.is_none() {
            self.existing = Some(
                self.txn
                    .list_tables()?
                    .map(|t| t.name().to_owned())
                    .collect(),
            );
        }
        Ok(self.existing.as_ref().is_some_and(|e| e.contains(name)))
    }
}
