//! Keeping the state directory private: it holds every live session's keys (`sessions.redb`), so
//! it is 0700 and every file in it 0600, owned by the gateway's user.
//!
//! New directories and files are created with those modes. An existing directory or file with
//! any group or other permission bit (as earlier jvpn versions left them: 0755 and 0644) is
//! narrowed with `chmod` at start and a warning is logged, rather than refused: the gateway owns
//! the directory, every earlier installation has those modes, and refusing would only move the
//! same `chmod` to the operator. A directory or file owned by another user is refused: someone
//! else controls what the gateway would trust.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the state directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file in the state directory.
pub const FILE_MODE: u32 = 0o600;
/// Permission bits that must not be set: any access by group or others.
const GROUP_OTHER: u32 = 0o077;

/// Why the state directory cannot be made private.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// Creating, reading or narrowing a path failed.
    #[error("cannot {operation} {path}: {source}; run the gateway as the owner of the state dir, or pass another --state-dir")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The path belongs to another user.
    #[error("{path} is owned by uid {owner}, not by this gateway's uid {uid}; run `chown -R {uid} {path}` if it is the gateway's, or pass another --state-dir")]
    ForeignOwner {
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The gateway's effective uid.
        uid: u32,
    },
    /// Something other than a directory or a regular file is in the state directory.
    #[error("{path} is neither a directory nor a regular file; move it out of the state dir")]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
}

fn io_error(operation: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PrivacyError {
    let path = path.to_owned();
    move |source| PrivacyError::Io {
        operation,
        path,
        source,
    }
}

/// Creates `dir` (and its missing parents) with mode 0700, or makes an existing one private;
/// then makes every entry in it private (see the module doc).
pub fn ensure_private_dir(dir: &Path) -> Result<(), PrivacyError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(io_error("create", dir))?;
    narrow(dir, DIR_MODE)?;
    for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
        let path = entry.map_err(io_error("list", dir))?.path();
        let meta = fs::symlink_metadata(&path).map_err(io_error("inspect", &path))?;
        if meta.is_file() {
            narrow(&path, FILE_MODE)?;
        } else if meta.is_dir() {
            narrow(&path, DIR_MODE)?;
        } else {
            return Err(PrivacyError::NotRegular { path });
        }
    }
    Ok(())
}

/// Opens (creating with mode 0600) `path` for appending, as a way to create a file private.
pub fn create_private_file(path: &Path) -> Result<(), PrivacyError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(io_error("create", path))?;
    narrow(path, FILE_MODE)
}

/// Options that create a file with mode 0600, for files written whole.
pub fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE);
    options
}

/// Removes group and other bits from `path`'s mode (to at most `mode`), with a warning when it
/// had any; refuses a path owned by another user.
fn narrow(path: &Path, mode: u32) -> Result<(), PrivacyError> {
    let meta = fs::symlink_metadata(path).map_err(io_error("inspect", path))?;
    let uid = nix::unistd::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(PrivacyError::ForeignOwner {
            path: path.to_owned(),
            owner: meta.uid(),
            uid,
        });
    }
    let found = meta.mode() & 0o7777;
    if found & GROUP_OTHER == 0 {
        return Ok(());
    }
    let narrowed = found & mode;
    fs::set_permissions(path, fs::Permissions::from_mode(narrowed))
        .map_err(io_error("chmod", path))?;
    tracing::warn!(
        path = %path.display(),
        from = %format_args!("{found:04o}"),
        to = %format_args!("{narrowed:04o}"),
        "the state dir holds session keys: removed group and other access"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").mode() & 0o7777
    }

    #[test]
    fn a_new_dir_is_created_private() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("a/b");
        ensure_private_dir(&dir).expect("create");
        assert_eq!(mode(&dir), DIR_MODE);
        create_private_file(&dir.join("f")).expect("create file");
        assert_eq!(mode(&dir.join("f")), FILE_MODE);
    }

    #[test]
    fn a_lax_dir_and_its_files_are_narrowed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("sessions.redb");
        fs::write(&file, b"x").expect("write");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod file");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
        ensure_private_dir(dir.path()).expect("narrow");
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&file), 0o600);
    }

    #[test]
    fn a_file_created_lax_is_narrowed_on_create() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("store.owner");
        fs::write(&file, b"1\n").expect("write");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).expect("chmod");
        create_private_file(&file).expect("narrow");
        assert_eq!(mode(&file), 0o600);
    }

    #[test]
    fn a_dir_owned_by_someone_else_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let theirs = dir.path().join("theirs");
        fs::create_dir(&theirs).expect("mkdir");
        nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(65534)), None)
            .expect("chown (the tests run as root)");
        let err = ensure_private_dir(&theirs).expect_err("foreign owner");
        assert!(
            matches!(err, PrivacyError::ForeignOwner { owner: 65534, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chown -R"), "{err}");
    }
}
