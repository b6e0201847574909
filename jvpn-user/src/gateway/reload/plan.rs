//! What a reload would change, decided without I/O: [`plan`] compares the running config with the
//! edited one and either refuses (a setting that only a restart can change) or lists the clients
//! added, removed, changed and renamed, and the client keys whose sessions must end.
//!
//! A client is the same client when its public key is the same. Its sessions keep running (no
//! version change) when its pre-shared key, tunnel addresses and allowed networks are also the
//! same; a new name alone is only a rename. A removed client, or one whose pre-shared key or
//! addresses changed, loses its sessions: they were keyed with, or routed by, what the config no
//! longer says. (A changed public key is a removal plus an addition.)

use crate::config::{ClientEntry, GatewaySettings};
use crate::gateway::routes::ClientKey;
use std::collections::HashSet;

/// What the edited config changes among the clients.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClientChanges {
    /// Names of clients whose key the running config did not authorise.
    pub added: Vec<String>,
    /// Names (as they were) of clients whose key the edited config no longer authorises.
    pub removed: Vec<String>,
    /// Names of clients whose pre-shared key or addresses changed.
    pub changed: Vec<String>,
    /// Clients only renamed, as `old -> new`; their sessions go on.
    pub renamed: Vec<String>,
    /// How many clients are exactly as they were.
    pub unchanged: usize,
    /// The client keys whose live sessions must be terminated (removed and changed clients).
    pub revoked: HashSet<ClientKey>,
}

/// Compares the running config with the edited one: `Err(setting)` names a setting that differs
/// and cannot change while the gateway runs; otherwise the client changes.
pub fn plan(old: &GatewaySettings, new: &GatewaySettings) -> Result<ClientChanges, &'static str> {
    if let Some(setting) = fixed_setting_changed(old, new) {
        return Err(setting);
    }
    let mut changes = ClientChanges::default();
    for before in old.clients() {
        let key = *before.public_key.as_bytes();
        match new.client(&before.public_key) {
            None => {
                changes.removed.push(before.name.clone());
                changes.revoked.insert(key);
            }
            Some(after) if !same_authority(before, after) => {
                changes.changed.push(after.name.clone());
                changes.revoked.insert(key);
            }
            Some(after) if after.name != before.name => changes
                .renamed
                .push(format!("{} -> {}", before.name, after.name)),
            Some(_) => changes.unchanged += 1,
        }
    }
    changes.added = new
        .clients()
        .iter()
        .filter(|c| old.client(&c.public_key).is_none())
        .map(|c| c.name.clone())
        .collect();
    Ok(changes)
}

/// Whether `after` authorises exactly what `before` did: the same pre-shared key (the sessions'
/// keys derive from it) and the same addresses (cryptokey routing and the WELCOME the client got).
pub(crate) fn same_authority(before: &ClientEntry, after: &ClientEntry) -> bool {
    before.psk == after.psk
        && before.ipv4 == after.ipv4
        && before.ipv6 == after.ipv6
        && before.allowed_ips == after.allowed_ips
}

/// The first setting outside the client list that differs, by its name in the config file.
/// These are read once at start: the socket, the XDP interface, the store, the TUN device, the
/// gateway's own key, the timers and the handshake path's threads.
fn fixed_setting_changed(old: &GatewaySettings, new: &GatewaySettings) -> Option<&'static str> {
    let checks: [(&'static str, bool); 13] = [
        ("private_key", old.public_key() != new.public_key()),
        ("port", old.port != new.port),
        ("listen", old.listen != new.listen),
        ("iface", old.iface != new.iface),
        ("state_dir", old.state_dir != new.state_dir),
        ("tun", old.tun != new.tun),
        ("mtu", old.mtu != new.mtu),
        ("[tunnel]", old.tunnel != new.tunnel),
        (
            "keepalive_interval_secs / keepalive_timeout_secs / idle_timeout_secs",
            old.timeouts != new.timeouts,
        ),
        (
            "max_sessions_per_client",
            old.handshake.max_sessions_per_client != new.handshake.max_sessions_per_client,
        ),
        (
            "handshake_workers",
            old.handshake.workers != new.handshake.workers,
        ),
        (
            "handshake_queue",
            old.handshake.queue != new.handshake.queue,
        ),
        (
            "[cluster]",
            match (&old.cluster, &new.cluster) {
                (None, None) => false,
                (Some(a), Some(b)) => a.differs_from(b),
                _ => true,
            },
        ),
    ];
    checks
        .into_iter()
        .find_map(|(name, changed)| changed.then_some(name))
}

#[cfg(test)]
mod tests;
