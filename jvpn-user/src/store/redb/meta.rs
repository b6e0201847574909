//! The `meta` table beyond the format: the boot epoch of the last start, kept beside the sessions
//! whose gateway-to-client nonces it numbers ([`crate::gateway::epoch`]), and whether any session
//! was ever issued.

use super::{RedbStore, BOOT_EPOCH, ISSUED, META};
use crate::store::StoreError;
use redb::{ReadableDatabase, ReadableTable};

impl RedbStore {
    /// The boot epoch the last start recorded, if any start did.
    pub fn boot_epoch(&self) -> Result<Option<u64>, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.db_err("begin read", e))?;
        let meta = txn
            .open_table(META)
            .map_err(|e| self.db_err("open meta", e))?;
        let epoch = meta
            .get(BOOT_EPOCH)
            .map_err(|e| self.db_err("read boot epoch", e))?
            .map(|g| g.value());
        Ok(epoch)
    }

    /// Durably records `epoch` as this start's boot epoch.
    pub fn record_boot_epoch(&self, epoch: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.db_err("begin", e))?;
        txn.open_table(META)
            .map_err(|e| self.db_err("open meta", e))?
            .insert(BOOT_EPOCH, epoch)
            .map_err(|e| self.db_err("write boot epoch", e))?;
        txn.commit()
            .map_err(|e| self.db_err("commit boot epoch", e))
    }

    /// Whether any session id was ever issued from this store (so nonces of some epoch were
    /// used).
    pub fn has_issued(&self) -> Result<bool, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| self.db_err("begin read", e))?;
        let issued = txn
            .open_table(ISSUED)
            .map_err(|e| self.db_err("open issued_ids", e))?;
        let first = issued.first().map_err(|e| self.db_err("read issued", e))?;
        Ok(first.is_some())
    }
}
