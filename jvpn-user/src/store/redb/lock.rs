//! Opening the store file while another gateway may hold it: redb's exclusive lock refuses a
//! second opener; the gateway that holds it is named from the owner file the opener writes.

use super::database_error;
use crate::store::StoreError;
use redb::{Database, DatabaseError};
use std::fs;
use std::path::Path;

/// How long a start waits for the lock of a gateway that is gone: right after a `kill -9` the
/// kernel may still be releasing the dead process's lock on the file when the next start (a
/// supervisor's restart) opens it.
const DEAD_OWNER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the store file, refusing it while another live gateway holds it ([`StoreError::Locked`]).
/// A lock whose recorded owner is no longer running is waited for, up to [`DEAD_OWNER_PATIENCE`].
pub(super) fn open_unlocked(path: &Path, owner_path: &Path) -> Result<Database, StoreError> {
    let deadline = std::time::Instant::now() + DEAD_OWNER_PATIENCE;
    loop {
        match Database::create(path) {
            Ok(db) => return Ok(db),
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                let owner: Option<u32> = fs::read_to_string(owner_path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                let owner_gone =
                    owner.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
                if !owner_gone || std::time::Instant::now() >= deadline {
                    return Err(StoreError::Locked {
                        path: path.to_owned(),
                        owner,
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(database_error(path, "open", e)),
        }
    }
}
