//! Checks of the machine before a command runs: root, the interface, which gateway socket to use.
//!
//! Done up front so the operator reads "no interface eth9" instead of an `ENODEV` from deep inside
//! the loader. The root check reads the owner of `/proc/self`, which the kernel sets to the
//! process's effective uid, so it needs no unsafe code.

use super::error::CliError;
use super::validate::{GatewayOptions, SocketChoice};
use crate::control::{default_socket_path, RUN_DIR};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Whether the process runs with effective uid 0. If `/proc` is unreadable, assume root and let
/// the kernel have the last word.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").map_or(true, |m| m.uid() == 0)
}

/// Everything `jvpn gateway` needs before it starts: root, and an existing interface.
pub fn gateway(options: &GatewayOptions) -> Result<(), CliError> {
    if !is_root() {
        return Err(CliError::NotRoot {
            command: "gateway",
            what: RUN_DIR,
        });
    }
    // Asked of the kernel in this process's network namespace: /sys/class/net shows the
    // namespace sysfs was mounted in, which differs under `nsenter --net`.
    if nix::net::if_::if_nametoindex(options.iface.as_str()).is_err() {
        return Err(CliError::NoSuchInterface {
            iface: options.iface.clone(),
        });
    }
    Ok(())
}

/// The socket a client command should use, and the interface it belongs to when known.
pub fn resolve_socket(choice: &SocketChoice) -> Result<(PathBuf, Option<String>), CliError> {
    match choice {
        SocketChoice::Iface(iface) => Ok((default_socket_path(iface), Some(iface.clone()))),
        SocketChoice::Path(path) => Ok((path.clone(), None)),
        SocketChoice::OnlyOne => {
            let mut ifaces = running_gateways(Path::new(RUN_DIR));
            match ifaces.len() {
                0 => Err(CliError::NoGateway { dir: RUN_DIR }),
                1 => {
                    let iface = ifaces.remove(0);
                    Ok((default_socket_path(&iface), Some(iface)))
                }
                _ => Err(CliError::SeveralGateways { ifaces }),
            }
        }
    }
}

/// Interfaces that have a control socket in `dir`, sorted.
fn running_gateways(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ifaces: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|name| name.strip_suffix(".sock"))
                .map(str::to_string)
        })
        .collect();
    ifaces.sort();
    ifaces
}
