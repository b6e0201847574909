//! Where the clustered store keeps what in etcd's key space, under one prefix (default `/jvpn`):
//!
//! | key                          | value                                         | lease        |
//! |------------------------------|-----------------------------------------------|--------------|
//! | `P/s/{id}`                   | the session record, sealed                    | none         |
//! | `P/a/{id}/{to_version}`      | the STATE_CHANGE record to that version, sealed | none       |
//! | `P/i/{id}`                   | issued: creation time in ms (decimal)         | none         |
//! | `P/o/{id}`                   | owner: the node id (decimal)                  | the owner's  |
//! | `P/e`                        | the cluster's nonce epoch counter (decimal)   | none         |
//!
//! Ids are 16 hex digits and versions 16 hex digits, so keys sort as their numbers do and a
//! session's audit records are one range. The owner key lives under its node's lease: when a node
//! stops renewing it, etcd deletes the key, and every node's watch sees that the session has no
//! owner.

use crate::session::SessionId;

/// The key space of one cluster.
#[derive(Clone, Debug)]
pub struct Layout {
    prefix: String,
}

/// What a key of the layout names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A session record.
    Session(SessionId),
    /// An owner key.
    Owner(SessionId),
}

impl Layout {
    /// The layout under `prefix` (no trailing slash).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// The session record of `id`.
    pub fn session(&self, id: SessionId) -> String {
        format!("{}/s/{id}", self.prefix)
    }

    /// Every session record.
    pub fn sessions(&self) -> String {
        format!("{}/s/", self.prefix)
    }

    /// The STATE_CHANGE record of `id` to `version`.
    pub fn audit(&self, id: SessionId, version: u64) -> String {
        format!("{}/a/{id}/{version:016x}", self.prefix)
    }

    /// Every STATE_CHANGE record of `id`.
    pub fn audits(&self, id: SessionId) -> String {
        format!("{}/a/{id}/", self.prefix)
    }

    /// The issued marker of `id`.
    pub fn issued(&self, id: SessionId) -> String {
        format!("{}/i/{id}", self.prefix)
    }

    /// The owner key of `id`.
    pub fn owner(&self, id: SessionId) -> String {
        format!("{}/o/{id}", self.prefix)
    }

    /// Every owner key.
    pub fn owners(&self) -> String {
        format!("{}/o/", self.prefix)
    }

    /// The cluster's nonce epoch counter ([`super::epoch`]).
    pub fn epoch(&self) -> String {
        format!("{}/e", self.prefix)
    }

    /// What `key` names, if it is a session or owner key of this layout.
    pub fn parse(&self, key: &[u8]) -> Option<KeyKind> {
        let key = std::str::from_utf8(key).ok()?;
        let rest = key.strip_prefix(&self.prefix)?;
        let (kind, id) = rest.strip_prefix('/')?.split_once('/')?;
        if id.len() != 16 {
            return None;
        }
        let id = SessionId::new(u64::from_str_radix(id, 16).ok()?)?;
        match kind {
            "s" => Some(KeyKind::Session(id)),
            "o" => Some(KeyKind::Owner(id)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_number() {
        let layout = Layout::new("/jvpn/");
        let id = SessionId::new(0x00ab_0000_0000_0042).unwrap();
        assert_eq!(layout.session(id), "/jvpn/s/00ab000000000042");
        assert_eq!(
            layout.parse(layout.session(id).as_bytes()),
            Some(KeyKind::Session(id))
        );
        assert_eq!(
            layout.parse(layout.owner(id).as_bytes()),
            Some(KeyKind::Owner(id))
        );
        assert_eq!(layout.parse(layout.issued(id).as_bytes()), None);
        assert_eq!(layout.parse(b"/other/s/00ab000000000042"), None);
        assert!(layout.audit(id, 9) < layout.audit(id, 0x10));
        assert!(layout.audit(id, 1).starts_with(&layout.audits(id)));
    }
}
