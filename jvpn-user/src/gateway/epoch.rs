//! The gateway's boot epoch: a durable counter bumped at every start, the high bits of every
//! gateway-to-client nonce.
//!
//! Gateway-to-client nonces must never repeat for a session, even across a `kill -9`, but
//! persisting every nonce would put a durable write on the data path. Instead each run takes a
//! fresh epoch and numbers its messages below it: `(epoch << EPOCH_SHIFT) | counter`.
//!
//! The epoch is kept twice: in the store (`meta.boot_epoch`, beside the sessions whose nonces it
//! numbers) and in the `boot-epoch` file. A start takes the larger of the two plus one, writes the
//! store, then replaces the file atomically (write, fsync, rename, fsync the directory), so a
//! crash anywhere leaves values the next start goes above, and losing the file alone never
//! restarts the count at 1. A store that has issued sessions but holds no epoch (written by an
//! earlier jvpn) with no file either is refused: the epochs its sessions used are unknown.
//!
//! Neither part can carry into the other: a session whose counter nears 2^EPOCH_SHIFT is ended
//! ([`counter_exhausted`]), and the epoch stops at [`MAX_EPOCH`], which keeps every nonce below
//! 2^63.

use crate::store::private::private_file_options;
use crate::store::{RedbStore, StoreError};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Bits of a gateway-to-client nonce below the epoch: 2^40 messages per session per run.
pub const EPOCH_SHIFT: u32 = 40;
/// The largest epoch: nonces stay below 2^63, far from the ceiling of spec section 8.
pub const MAX_EPOCH: u64 = (1 << (64 - EPOCH_SHIFT - 1)) - 1;
/// The counter bits of a nonce.
const COUNTER_MASK: u64 = (1 << EPOCH_SHIFT) - 1;
/// Counter values kept unused at the top of an epoch's range: a session whose counter enters them
/// is terminated by the timers, and a nonce is never taken from the last one, so the counter can
/// never carry into the epoch bits.
pub const COUNTER_MARGIN: u64 = 1 << 32;
const FILE_NAME: &str = "boot-epoch";

/// Why the epoch could not be advanced.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    /// The file could not be read, written or synced.
    #[error(
        "cannot update the boot epoch file {path}: {source}; check that the state dir is writable"
    )]
    Io {
        /// The epoch file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds something other than a number.
    #[error("the boot epoch file {path} is corrupt ({content:?}); restore it from backup, or remove the state dir to start afresh")]
    Corrupt {
        /// The epoch file.
        path: PathBuf,
        /// What it held.
        content: String,
    },
    /// Every epoch was used.
    #[error("the boot epoch in {path} is exhausted; remove the state dir to start afresh")]
    Exhausted {
        /// The epoch file.
        path: PathBuf,
    },
    /// Neither the file nor the store knows the last epoch, but the store issued sessions.
    #[error("the boot epoch file {path} is missing and the store, written by an earlier jvpn, does not record the epoch its sessions used; restore the file from backup, or move the state dir aside to start afresh (clients re-handshake)")]
    Unknown {
        /// The epoch file.
        path: PathBuf,
    },
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The epoch this start takes, from the last epoch in the file and in the store, and whether the
/// store ever issued a session; `None` if the last epoch is unknown (see the module doc).
pub fn next_epoch(file: Option<u64>, stored: Option<u64>, store_used: bool) -> Option<u64> {
    let previous = match (file, stored) {
        (None, None) if store_used => return None,
        (file, stored) => file.unwrap_or(0).max(stored.unwrap_or(0)),
    };
    previous.checked_add(1)
}

/// Reads the last epoch from `state_dir`'s file and from `store`, durably stores the next one in
/// both and returns it (1 on a fresh directory).
pub fn advance(state_dir: &Path, store: &RedbStore) -> Result<u64, EpochError> {
    let path = state_dir.join(FILE_NAME);
    let io = |source| EpochError::Io {
        path: path.clone(),
        source,
    };
    let from_file = match File::open(&path) {
        Ok(mut f) => {
            let mut text = String::new();
            f.read_to_string(&mut text).map_err(io)?;
            Some(
                text.trim()
                    .parse::<u64>()
                    .map_err(|_| EpochError::Corrupt {
                        path: path.clone(),
                        content: text.clone(),
                    })?,
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let stored = store.boot_epoch()?;
    if from_file != stored {
        tracing::warn!(
            file = ?from_file,
            store = ?stored,
            "the boot epoch file and the store disagree; continuing above both"
        );
    }
    let next = next_epoch(from_file, stored, store.has_issued()?)
        .ok_or_else(|| EpochError::Unknown { path: path.clone() })?;
    if next > MAX_EPOCH {
        return Err(EpochError::Exhausted { path });
    }
    store.record_boot_epoch(next)?;
    let tmp = state_dir.join(format!("{FILE_NAME}.tmp"));
    let mut f = private_file_options().open(&tmp).map_err(io)?;
    f.write_all(format!("{next}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, &path).map_err(io)?;
    File::open(state_dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(next)
}

/// Whether a session whose next gateway-to-client nonce is `next_nonce` has entered the margin at
/// the top of its epoch's counter range and must be terminated.
pub const fn counter_exhausted(next_nonce: u64) -> bool {
    next_nonce & COUNTER_MASK >= COUNTER_MASK - COUNTER_MARGIN
}

/// Whether `nonce` is the last counter value of its epoch, which is never used: taking it would
/// leave the next nonce in the following epoch's range.
pub const fn is_last_of_epoch(nonce: u64) -> bool {
    nonce & COUNTER_MASK == COUNTER_MASK
}

/// The first gateway-to-client nonce of `epoch`.
pub const fn first_nonce(epoch: u64) -> u64 {
    (epoch << EPOCH_SHIFT) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> RedbStore {
        RedbStore::open(dir).expect("open store")
    }

    #[test]
    fn epochs_strictly_increase_across_restarts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path());
        let a = advance(dir.path(), &store).expect("first start");
        let b = advance(dir.path(), &store).expect("second start");
        let c = advance(dir.path(), &store).expect("third start");
        assert_eq!((a, b, c), (1, 2, 3));
        assert!(first_nonce(b) > first_nonce(a) + (1 << 39));
        assert_eq!(store.boot_epoch().expect("read"), Some(3));
    }

    #[test]
    fn a_lost_epoch_file_continues_from_the_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let store = open(dir.path());
            for _ in 0..5 {
                advance(dir.path(), &store).expect("start");
            }
        }
        fs::remove_file(dir.path().join(FILE_NAME)).expect("kill the epoch file");
        let store = open(dir.path());
        assert_eq!(advance(dir.path(), &store).expect("restart"), 6);
        assert_eq!(
            fs::read_to_string(dir.path().join(FILE_NAME)).expect("read"),
            "6\n"
        );
    }

    #[test]
    fn the_larger_of_file_and_store_wins() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path());
        advance(dir.path(), &store).expect("start");
        fs::write(dir.path().join(FILE_NAME), "41\n").expect("write");
        assert_eq!(advance(dir.path(), &store).expect("restart"), 42);
        store.record_boot_epoch(100).expect("write store");
        assert_eq!(advance(dir.path(), &store).expect("restart"), 101);
    }

    #[test]
    fn next_epoch_decisions() {
        // (file, store, store used) -> next
        let cases = [
            ((None, None, false), Some(1)),
            ((None, None, true), None),
            ((Some(4), None, true), Some(5)),
            ((None, Some(7), true), Some(8)),
            ((Some(3), Some(9), true), Some(10)),
            ((Some(9), Some(3), false), Some(10)),
            ((Some(u64::MAX), None, false), None),
        ];
        for ((file, stored, used), expected) in cases {
            assert_eq!(
                next_epoch(file, stored, used),
                expected,
                "file {file:?} store {stored:?} used {used}"
            );
        }
    }

    #[test]
    fn the_epoch_stops_below_the_sign_bit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path());
        store.record_boot_epoch(MAX_EPOCH - 1).expect("write store");
        assert_eq!(advance(dir.path(), &store).expect("last epoch"), MAX_EPOCH);
        assert!(first_nonce(MAX_EPOCH) < 1 << 63);
        assert!(matches!(
            advance(dir.path(), &store),
            Err(EpochError::Exhausted { .. })
        ));
    }

    #[test]
    fn the_counter_ends_before_it_reaches_the_next_epoch() {
        let epoch = 5u64 << EPOCH_SHIFT;
        let last = epoch | COUNTER_MASK;
        let margin_start = last - COUNTER_MARGIN;
        assert!(!counter_exhausted(first_nonce(5)));
        assert!(!counter_exhausted(margin_start - 1));
        assert!(counter_exhausted(margin_start));
        assert!(counter_exhausted(last));
        assert!(!is_last_of_epoch(last - 1));
        assert!(is_last_of_epoch(last));
        assert_eq!(
            (last + 1) >> EPOCH_SHIFT,
            6,
            "one more would be the next epoch's"
        );
    }

    #[test]
    fn a_corrupt_file_is_refused_not_reset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path());
        fs::write(dir.path().join(FILE_NAME), "banana").expect("write");
        let err = advance(dir.path(), &store).expect_err("corrupt epoch");
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join(FILE_NAME)).expect("read"),
            "banana"
        );
    }
}
