//! The gateway's boot epoch: a durable counter bumped at every start, the high bits of every
//! gateway-to-client nonce.
//!
//! Gateway-to-client nonces must never repeat for a session, even across a `kill -9`, but
//! persisting every nonce would put a durable write on the data path. Instead each run takes a
//! fresh epoch and numbers its messages below it: `(epoch << EPOCH_SHIFT) | counter`. The epoch
//! file is replaced atomically (write, fsync, rename, fsync the directory), so a crash leaves the
//! old value or the new one, and the next start goes above both.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Bits of a gateway-to-client nonce below the epoch: 2^40 messages per session per run.
pub const EPOCH_SHIFT: u32 = 40;
/// The largest epoch before nonces would come near the limit (spec section 8).
const MAX_EPOCH: u64 = (1 << (64 - EPOCH_SHIFT - 1)) - 1;
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
}

/// Reads the last epoch in `state_dir`, durably stores the next one and returns it (1 on a fresh
/// directory).
pub fn advance(state_dir: &Path) -> Result<u64, EpochError> {
    let path = state_dir.join(FILE_NAME);
    let io = |source| EpochError::Io {
        path: path.clone(),
        source,
    };
    let previous = match File::open(&path) {
        Ok(mut f) => {
            let mut text = String::new();
            f.read_to_string(&mut text).map_err(io)?;
            text.trim()
                .parse::<u64>()
                .map_err(|_| EpochError::Corrupt {
                    path: path.clone(),
                    content: text.clone(),
                })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io(e)),
    };
    let next = previous + 1;
    if next > MAX_EPOCH {
        return Err(EpochError::Exhausted { path });
    }
    let tmp = state_dir.join(format!("{FILE_NAME}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(format!("{next}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, &path).map_err(io)?;
    File::open(state_dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(next)
}

/// The first gateway-to-client nonce of `epoch`.
pub const fn first_nonce(epoch: u64) -> u64 {
    (epoch << EPOCH_SHIFT) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_strictly_increase_across_restarts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = advance(dir.path()).expect("first start");
        let b = advance(dir.path()).expect("second start");
        let c = advance(dir.path()).expect("third start");
        assert_eq!((a, b, c), (1, 2, 3));
        assert!(first_nonce(b) > first_nonce(a) + (1 << 39));
    }

    #[test]
    fn a_corrupt_file_is_refused_not_reset() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(FILE_NAME), "banana").expect("write");
        let err = advance(dir.path()).expect_err("corrupt epoch");
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join(FILE_NAME)).expect("read"),
            "banana"
        );
    }
}
