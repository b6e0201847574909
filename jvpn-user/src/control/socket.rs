//! Owning the control socket's path: one daemon per interface, no stale sockets, mode 0600.
//!
//! Ownership is an advisory lock on `IF.lock` beside the socket, held for the daemon's life and
//! released by the kernel however the daemon ends, even by `kill -9`. So a second daemon for the
//! same interface is refused while the first lives, and a socket file left by a dead one is
//! recognised as stale and replaced. The socket is bound under a temporary name, set to 0600 and
//! then renamed into place, so it is never reachable with a wider mode.

use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::UnixListener;

/// Where control sockets live.
pub const RUN_DIR: &str = "/run/jvpn";

/// The control socket of the gateway on `iface`: `/run/jvpn/IF.sock`.
pub fn default_socket_path(iface: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{iface}.sock"))
}

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another live daemon owns this socket.
    #[error("another jvpn gateway is already running with control socket {path}; stop it first (`jvpn status` shows its pid)")]
    AlreadyRunning {
        /// The socket path.
        path: PathBuf,
    },
    /// Something that is not a socket is in the way.
    #[error("{path} exists and is not a socket; move it away and start again")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A file system operation failed.
    #[error("cannot {operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io_error(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SocketError {
    let path = path.to_path_buf();
    move |source| SocketError::Io {
        operation,
        path,
        source,
    }
}

/// Keeps the socket path owned; removing the socket file when dropped (if it is still ours).
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
    /// Device and inode of the socket we bound, so a drop never removes someone else's socket.
    identity: (u64, u64),
    /// Held for the guard's life: the lock is the ownership.
    _lock: File,
}

impl SocketGuard {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.identity {
                // Nothing useful can be done if removal fails while shutting down.
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds the control socket at `path` (creating its directory with mode 0755), refusing if a live
/// daemon owns it and replacing a stale one. Must be called within a tokio runtime.
pub fn bind_control_socket(path: &Path) -> Result<(UnixListener, SocketGuard), SocketError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.as_os_str().is_empty() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(io_error("create directory", dir))?;
    }
    let lock_path = path.with_extension("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_error("open lock file", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(SocketError::AlreadyRunning {
                path: path.to_path_buf(),
            })
        }
        Err(TryLockError::Error(e)) => return Err(io_error("lock", &lock_path)(e)),
    }
    remove_stale_socket(path)?;

    let mut staging = path.as_os_str().to_owned();
    staging.push(format!(".{}.tmp", std::process::id()));
    let staging = PathBuf::from(staging);
    match fs::remove_file(&staging) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("remove", &staging)(e)),
    }
    let listener = std::os::unix::net::UnixListener::bind(&staging)
        .map_err(io_error("bind control socket", &staging))?;
    let placed = fs::set_permissions(&staging, fs::Permissions::from_mode(0o600))
        .map_err(io_error("set mode 0600 on", &staging))
        .and_then(|()| fs::rename(&staging, path).map_err(io_error("move into place", path)));
    if let Err(e) = placed {
        let _ = fs::remove_file(&staging);
        return Err(e);
    }
    let meta = fs::symlink_metadata(path).map_err(io_error("inspect", path))?;
    listener
        .set_nonblocking(true)
        .map_err(io_error("configure", path))?;
    let listener = UnixListener::from_std(listener).map_err(io_error("register", path))?;
    Ok((
        listener,
        SocketGuard {
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            _lock: lock,
        },
    ))
}

/// Removes a socket left by a daemon that died. Called with the lock held, so no daemon that
/// follows this protocol is serving it; a socket that still answers belongs to something else.
fn remove_stale_socket(path: &Path) -> Result<(), SocketError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("inspect", path)(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(SocketError::AlreadyRunning {
            path: path.to_path_buf(),
        });
    }
    fs::remove_file(path).map_err(io_error("remove stale socket", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_0600_in_a_new_0755_dir_and_refuses_a_second_owner() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("run/jvpn/eth9.sock");
        let (listener, guard) = bind_control_socket(&path).expect("first bind");
        let mode = |p: &Path| fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("has parent")), 0o755);
        assert!(matches!(
            bind_control_socket(&path),
            Err(SocketError::AlreadyRunning { .. })
        ));
        drop(listener);
        drop(guard);
        assert!(!path.exists(), "the guard removes its socket");
        let (_listener, _guard) = bind_control_socket(&path).expect("rebind after a clean stop");
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_foreign_file_is_not() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("eth9.sock");
        // A socket nobody listens on any more, as left by a daemon killed with SIGKILL.
        drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
        assert!(path.exists());
        let (_listener, guard) = bind_control_socket(&path).expect("stale socket replaced");
        drop(guard);

        let other = tmp.path().join("eth8.sock");
        fs::write(&other, b"precious").expect("write");
        assert!(matches!(
            bind_control_socket(&other),
            Err(SocketError::NotASocket { .. })
        ));
        assert_eq!(fs::read(&other).expect("still there"), b"precious");
    }
}
