//! Application records: a small key/value table of its own (`records`),
//! written synchronously, for settings that must outlive a restart next to
//! the pending deliveries (the management API keeps its endpoint
//! definitions here). Keys are namespaced by the caller (e.g.
//! `manage/endpoint/wh_…`); nothing else in the store reads this table.

use redb::{ReadableDatabase, TableDefinition};

use super::error::{Fault, Operation, fault};
use super::writer::guard;
use super::{Store, StoreError};

/// The application records.
pub(super) const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");

impl Store {
    /// Writes (or replaces) a record and commits it before returning, so a
    /// record written is there after a crash.
    pub fn put_record(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write_records(|t| t.insert(key, value).map(drop).map_err(fault))
    }

    /// Removes a record (committed before returning); whether it was there.
    pub fn remove_record(&self, key: &str) -> Result<bool, StoreError> {
        self.write_records(|t| t.remove(key).map(|old| old.is_some()).map_err(fault))
    }

    /// Every record whose key starts with `prefix`, in key order.
    pub fn records(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let shared = &self.shared.0;
        let read = guard(|| -> Result<_, Fault> {
            let txn = shared.db().begin_read().map_err(fault)?;
            let table = match txn.open_table(RECORDS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(fault(e)),
            };
            let mut out = Vec::new();
            for row in table.range(prefix..).map_err(fault)? {
                let (k, v) = row.map_err(fault)?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                out.push((k.value().to_owned(), v.value().to_vec()));
            }
            Ok(out)
        });
        match read {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(StoreError::io(&shared.path, Operation::Read, e)),
            Err(panic) => Err(StoreError::corrupted(&shared.path, Operation::Read, panic)),
        }
    }

    fn write_records<R>(
        &self,
        f: impl FnOnce(&mut redb::Table<&str, &[u8]>) -> Result<R, Fault>,
    ) -> Result<R, StoreError> {
        let shared = &self.shared.0;
        if let Some(failed) = shared.last_error() {
            return Err(failed);
        }
        let written = guard(|| {
            let txn = shared.db().begin_write().map_err(fault)?;
            let r = {
                let mut table = txn.open_table(RECORDS).map_err(fault)?;
                f(&mut table)?
            };
            txn.commit().map_err(fault)?;
            Ok(r)
        });
        match written {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(StoreError::io(&shared.path, Operation::WriteRecord, e)),
            Err(panic) => Err(StoreError::corrupted(
                &shared.path,
                Operation::WriteRecord,
                panic,
            )),
        }
    }
}
