//! [`RedbStore`]: the embedded, crash-safe session store, one redb file in the state directory.
//!
//! Tables:
//!
//! | table        | key                  | value                                            |
//! |--------------|----------------------|--------------------------------------------------|
//! | `sessions`   | (id, 0)              | the current session record ([`super::codec`])    |
//! |              | (id, v), v >= 1      | the STATE_CHANGE record of the increment to v    |
//! | `issued_ids` | session id           | when it was issued (ms)                          |
//! | `meta`       | name                 | `format`: the layout version of the file;        |
//! |              |                      | `boot_epoch`: the epoch of the last start        |
//!
//! A session's record and its audit records share one table and sort together, so a CAS rewrites
//! one B-tree leaf for both rather than one in each of two tables: with random ids, touched leaves
//! are what a group commit pays for.
//!
//! Every compare-and-set runs in one redb write transaction committed with
//! [`redb::Durability::Immediate`] (fsync before `commit` returns), so the session record, its
//! audit records and the issued id are on disk together or not at all. A crash at any point leaves
//! the last committed transaction; redb repairs its allocator on the next open. redb also takes an
//! exclusive lock on the file, so two gateways never share a store.
//!
//! Submodules: `meta` (the boot epoch in `meta`), `keys_at_rest` (a TERMINATED record is written
//! without keys), `lock` (opening the file while another gateway may hold it).

pub(super) mod keys_at_rest;
mod lock;
mod meta;

use self::keys_at_rest::at_rest;
use super::codec::{self, CodecError};
use super::private;
use super::validate::{self, MutationRefused};
use super::{BatchItem, CasOutcome, CasRequest, Expected, SessionStore, StoreError};
use crate::session::{Session, SessionId, StateChange};
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, Table, TableDefinition};
use std::io::Write as _;
use std::path::{Path, PathBuf};

const SESSIONS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("sessions");
/// Second key part of a session's current record; audit records use their `to_version` (>= 1).
const CURRENT: u64 = 0;
const ISSUED: TableDefinition<u64, u64> = TableDefinition::new("issued_ids");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Layout version of the store file, kept in `meta`.
pub const STORE_FORMAT: u64 = 1;
/// File name of the store inside the state directory.
pub const STORE_FILE: &str = "sessions.redb";
/// Key in `meta` of the boot epoch of the last start ([`crate::gateway::epoch`]).
const BOOT_EPOCH: &str = "boot_epoch";
/// File in the state directory naming the pid that holds the store, for the "locked" error.
pub const OWNER_FILE: &str = "store.owner";

/// The redb-backed [`SessionStore`].
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish()
    }
}

struct Tables<'t> {
    sessions: Table<'t, (u64, u64), &'static [u8]>,
    issued: Table<'t, u64, u64>,
}

impl RedbStore {
    /// Opens (creating if needed) the store in `state_dir`, e.g. [`super::DEFAULT_STATE_DIR`].
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        private::ensure_private_dir(state_dir)?;
        let path = state_dir.join(STORE_FILE);
        // Creating the file ourselves first gives it mode 0600 before redb writes a key to it, and
        // turns "permission denied" into an error that names the file.
        private::create_private_file(&path)?;
        let owner_path = state_dir.join(OWNER_FILE);
        let db = lock::open_unlocked(&path, &owner_path)?;
        private::private_file_options()
            .open(&owner_path)
            .and_then(|mut f| f.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .map_err(|source| StoreError::StateDirUnusable {
                dir: state_dir.to_owned(),
                source,
            })?;
        let store = Self { db, path };
        store.initialise()?;
        Ok(store)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the tables of an empty file and checks the format of an existing one.
    fn initialise(&self) -> Result<(), StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| self.db_err("begin init", e))?;
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| self.db_err("open meta", e))?;
            let found = meta
                .get("format")
                .map_err(|e| self.db_err("read format", e))?
                .map(|g| g.value());
            match found {
                None => {
                    meta.insert("format", STORE_FORMAT)
                        .map_err(|e| self.db_err("write format", e))?;
                }
                Some(STORE_FORMAT) => {}
                Some(found) => {
                    return Err(StoreError::IncompatibleFormat {
                        path: self.path.clone(),
                        found,
                        supported: STORE_FORMAT,
                    })
                }
            }
            let mut sessions = txn
                .open_table(SESSIONS)
                .map_err(|e| self.db_err("create sessions", e))?;
            self.wipe_terminated_keys(&mut sessions)?;
            txn.open_table(ISSUED)
                .map_err(|e| self.db_err("create issued_ids", e))?;
        }
        txn.commit().map_err(|e| self.db_err("commit init", e))
    }

    /// The sessions table in a fresh read transaction (a consistent snapshot).
    fn read_sessions(&self) -> Result<ReadOnlyTable<(u64, u64), &'static [u8]>, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.db_err("begin read", e))?;
        txn.open_table(SESSIONS)
            .map_err(|e| self.db_err("open sessions", e))
    }

    fn db_err(&self, op: &'static str, e: impl Into<redb::Error>) -> StoreError {
        database_error(&self.path, op, e)
    }

    fn corrupt(&self, key: String, source: CodecError) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            key,
            source,
        }
    }

    /// One CAS inside an open write transaction. Validates before writing, so a refused or
    /// conflicting item writes nothing.
    fn apply(
        &self,
        t: &mut Tables<'_>,
        id: SessionId,
        expected: Expected,
        new: &Session,
        audit: &[StateChange],
    ) -> Result<BatchItem, StoreError> {
        let key = id.get();
        let stored = match t
            .sessions
            .get((key, CURRENT))
            .map_err(|e| self.db_err("read session", e))?
        {
            Some(g) => Some(
                codec::decode_session(g.value())
                    .map_err(|e| self.corrupt(format!("session {id}"), e))?,
            ),
            None => None,
        };
        match (expected, &stored) {
            (Expected::Absent, _) => {
                if t.issued
                    .get(key)
                    .map_err(|e| self.db_err("read issued", e))?
                    .is_some()
                {
                    return Ok(Ok(CasOutcome::IdAlreadyIssued));
                }
            }
            (Expected::Version(v), Some(s)) if s.state_version == v => {}
            (Expected::Version(_), _) => return Ok(Ok(CasOutcome::Conflict { current: stored })),
        }
        if let Err(refused) = validate::check(id, stored.as_ref(), new, audit) {
            return Ok(Err(refused));
        }
        let record = match codec::encode_session(&at_rest(new)) {
            Ok(r) => r,
            Err(_) => return Ok(Err(MutationRefused::SecretsTooLong(new.secrets.len()))),
        };
        t.sessions
            .insert((key, CURRENT), record.as_slice())
            .map_err(|e| self.db_err("write session", e))?;
        for change in audit {
            let bytes = codec::encode_state_change(change);
            t.sessions
                .insert((key, change.to_version), bytes.as_slice())
                .map_err(|e| self.db_err("write audit", e))?;
        }
        if expected == Expected::Absent {
            t.issued
                .insert(key, new.created_at)
                .map_err(|e| self.db_err("write issued", e))?;
        }
        Ok(Ok(CasOutcome::Committed))
    }

    /// Runs `f` over the tables in one durable write transaction.
    fn write<R>(
        &self,
        f: impl FnOnce(&Self, &mut Tables<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.db_err("begin", e))?;
        let result = {
            let mut tables = Tables {
                sessions: txn
                    .open_table(SESSIONS)
                    .map_err(|e| self.db_err("open sessions", e))?,
                issued: txn
                    .open_table(ISSUED)
                    .map_err(|e| self.db_err("open issued_ids", e))?,
            };
            f(self, &mut tables)?
        };
        txn.commit().map_err(|e| self.db_err("commit", e))?;
        Ok(result)
    }
}

impl SessionStore for RedbStore {
    fn compare_and_set(
        &self,
        id: SessionId,
        expected: Expected,
        new: &Session,
        audit: &[StateChange],
    ) -> Result<CasOutcome, StoreError> {
        self.write(|s, t| s.apply(t, id, expected, new, audit))?
            .map_err(|source| StoreError::Refused { id, source })
    }

    fn compare_and_set_batch(&self, batch: &[CasRequest]) -> Result<Vec<BatchItem>, StoreError> {
        self.write(|s, t| {
            batch
                .iter()
                .map(|r| s.apply(t, r.session.id, r.expected, &r.session, &r.audit))
                .collect()
        })
    }

    fn get(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        let table = self.read_sessions()?;
        let guard = table
            .get((id.get(), CURRENT))
            .map_err(|e| self.db_err("read session", e))?;
        guard
            .map(|g| codec::decode_session(g.value()))
            .transpose()
            .map_err(|e| self.corrupt(format!("session {id}"), e))
    }

    fn list(&self) -> Result<Vec<Session>, StoreError> {
        let table = self.read_sessions()?;
        let rows = table
            .range::<(u64, u64)>(..)
            .map_err(|e| self.db_err("list sessions", e))?;
        // Audit records sort between the current records; a scan in key order beats a lookup per
        // id, and listing is rare (start-up reconciliation, the CLI).
        let mut sessions = Vec::new();
        for row in rows {
            let (k, v) = row.map_err(|e| self.db_err("list sessions", e))?;
            let (id, part) = k.value();
            if part == CURRENT {
                let s = codec::decode_session(v.value()).map_err(|e| {
                    self.corrupt(
                        format!("session {}", crate::session::SessionId::show(id)),
                        e,
                    )
                })?;
                sessions.push(s);
            }
        }
        Ok(sessions)
    }

    fn audit(&self, id: SessionId) -> Result<Vec<StateChange>, StoreError> {
        let table = self.read_sessions()?;
        let key = id.get();
        let rows = table
            .range((key, CURRENT + 1)..=(key, u64::MAX))
            .map_err(|e| self.db_err("read audit", e))?;
        rows.map(|row| {
            let (k, v) = row.map_err(|e| self.db_err("read audit", e))?;
            let (_, version) = k.value();
            codec::decode_state_change(v.value())
                .map_err(|e| self.corrupt(format!("audit {id} v{version}"), e))
        })
        .collect()
    }

    fn is_issued(&self, id: SessionId) -> Result<bool, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.db_err("begin read", e))?;
        let table = txn
            .open_table(ISSUED)
            .map_err(|e| self.db_err("open issued_ids", e))?;
        Ok(table
            .get(id.get())
            .map_err(|e| self.db_err("read issued", e))?
            .is_some())
    }
}

pub(super) fn database_error(
    path: &Path,
    op: &'static str,
    e: impl Into<redb::Error>,
) -> StoreError {
    StoreError::Database {
        path: path.to_owned(),
        op,
        source: Box::new(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_of_another_format_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        drop(RedbStore::open(dir.path()).unwrap());
        {
            let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert("format", 99).unwrap();
            txn.commit().unwrap();
        }
        match RedbStore::open(dir.path()) {
            Err(e @ StoreError::IncompatibleFormat { found: 99, .. }) => {
                assert!(e.to_string().contains("move the file aside"), "{e}");
            }
            other => panic!("expected IncompatibleFormat, got {other:?}"),
        }
    }

    #[test]
    fn a_corrupt_record_is_reported_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        drop(RedbStore::open(dir.path()).unwrap());
        {
            let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(SESSIONS)
                .unwrap()
                .insert((0x2a, CURRENT), [1u8, 2, 3].as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let id = SessionId::new(0x2a).unwrap();
        match store.get(id) {
            Err(e @ StoreError::Corrupt { .. }) => {
                assert!(e.to_string().contains("session 000000000000002a"), "{e}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(matches!(store.list(), Err(StoreError::Corrupt { .. })));
    }
}
