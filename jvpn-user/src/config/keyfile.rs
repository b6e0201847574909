//! Key files and `jvpn keygen`: writing fresh keys to files only their owner can read, and reading
//! them back with their permissions checked.
//!
//! A key file holds one key in its base64 text form and a newline, like WireGuard's. Secret key
//! files are created mode 0600 and never overwritten; a secret key file that group or others can
//! access is refused, as OpenSSH refuses such a private key, because the key must be considered
//! leaked.

use crate::crypto::keys::{KeyParseError, PresharedKey, PrivateKey, PublicKey};
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Mode of every secret key file written here.
pub const SECRET_FILE_MODE: u32 = 0o600;

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file to create exists already.
    #[error("{} already exists; jvpn never overwrites a key: remove it or choose another path", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be written.
    #[error("cannot write key file {}: {source}; check that its directory exists and is writable", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be read.
    #[error("cannot read key file {}: {source}; create it with `jvpn keygen` or fix the path", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A secret key file is accessible by group or others.
    #[error("key file {} is accessible by group or others (mode {mode:04o}); run `chmod 600 {}`", path.display(), path.display())]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold a key.
    #[error("key file {} {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with its contents.
        #[source]
        source: KeyParseError,
    },
}

/// Creates `path` with mode 0600 holding `text` and a newline; refuses to replace an existing file.
fn write_secret_file(path: &Path, text: &str) -> Result<(), KeyFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(SECRET_FILE_MODE)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeyFileError::Exists {
                path: path.to_owned(),
            },
            _ => KeyFileError::Write {
                path: path.to_owned(),
                source,
            },
        })?;
    let write_error = |source| KeyFileError::Write {
        path: path.to_owned(),
        source,
    };
    // The mode given to open() is filtered by the umask; set it explicitly so it is exactly 0600.
    file.set_permissions(fs::Permissions::from_mode(SECRET_FILE_MODE))
        .map_err(write_error)?;
    file.write_all(Zeroizing::new(format!("{text}\n")).as_bytes())
        .map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

/// Reads a secret key file, refusing one that group or others can access.
fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    let read_error = |source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    };
    let mode = fs::metadata(path).map_err(read_error)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(read_error)
}

/// `jvpn keygen`: makes a new X25519 key pair, writes the private key to `private_key_path` (mode
/// 0600, never replacing a file) and returns the public key for the caller to print.
pub fn keygen(private_key_path: &Path) -> Result<PublicKey, KeyFileError> {
    let private = PrivateKey::generate();
    write_secret_file(private_key_path, &private.to_base64())?;
    Ok(private.public_key())
}

/// `jvpn keygen --psk`: makes a new pre-shared key and writes it to `path` (mode 0600).
pub fn genpsk(path: &Path) -> Result<(), KeyFileError> {
    write_secret_file(path, &PresharedKey::generate().to_base64())
}

/// Reads a private key file written by [`keygen`].
pub fn read_private_key_file(path: &Path) -> Result<PrivateKey, KeyFileError> {
    PrivateKey::from_base64(&read_secret_file(path)?).map_err(|source| KeyFileError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Reads a pre-shared key file written by [`genpsk`].
pub fn read_psk_file(path: &Path) -> Result<PresharedKey, KeyFileError> {
    PresharedKey::from_base64(&read_secret_file(path)?).map_err(|source| KeyFileError::Parse {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_0600_key_whose_public_key_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.key");
        let public = keygen(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 45, "44 base64 characters and a newline");
        assert_eq!(read_private_key_file(&path).unwrap().public_key(), public);
        assert!(matches!(keygen(&path), Err(KeyFileError::Exists { .. })));
        assert_eq!(
            read_private_key_file(&path).unwrap().public_key(),
            public,
            "a refused keygen leaves the old key in place"
        );

        let psk_path = dir.path().join("psk");
        genpsk(&psk_path).unwrap();
        assert!(read_psk_file(&psk_path).is_ok());
    }

    #[test]
    fn secret_files_open_to_others_or_holding_garbage_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("open.key");
        keygen(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_private_key_file(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::Permissions { mode: 0o644, .. }));
        assert!(err.to_string().contains("chmod 600"), "{err}");

        let garbage = dir.path().join("garbage.key");
        write_secret_file(&garbage, "AAAA").unwrap();
        let err = read_private_key_file(&garbage).unwrap_err();
        assert!(matches!(
            err,
            KeyFileError::Parse {
                source: KeyParseError::Length(3),
                ..
            }
        ));

        let missing = dir.path().join("missing.key");
        let err = read_psk_file(&missing).unwrap_err();
        assert!(matches!(err, KeyFileError::Read { .. }));
        assert!(err.to_string().contains("jvpn keygen"), "{err}");
    }
}
