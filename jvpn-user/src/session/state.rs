//! The session record the controller keeps and the store persists, and the timers that age it.
//!
//! A [`Session`] is plain data: the state machine ([`super::machine`]) derives a new record from an
//! old one, and the store ([`crate::store`]) writes it with a compare-and-set on its
//! `state_version`. Time is an input everywhere ([`Millis`]), so nothing here reads a clock.

use super::id::SessionId;
use crate::crypto::Secret;
use jvpn_common::abi::HEADER_KEY_LEN;
use jvpn_common::control::Tai64N;
use jvpn_common::maps::{SessionEntry, SessionState, TransportBinding};
use zeroize::Zeroize;

/// Time in milliseconds, Unix-epoch based. The gateway feeds the machine its monotonic controller
/// clock (`gateway::clock`: the wall clock at start, advanced monotonically), so a wall-clock step
/// fires no timer; it reports these times as wall-clock time. The machine also tolerates time going
/// backwards.
pub type Millis = u64;

/// Length of a client's static public key (X25519).
pub const CLIENT_KEY_LEN: usize = 32;

/// One session as the controller and the store know it. Its keys are zeroized when it is dropped
/// and never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The session's id, never reused on this gateway.
    pub id: SessionId,
    /// Lifecycle state.
    pub state: SessionState,
    /// Incremented by exactly one on every transition (spec sections 2 and 3), never otherwise.
    pub state_version: u64,
    /// The transport DATA must come from; the all-zero binding before the handshake completes.
    pub binding: TransportBinding,
    /// The client's static public key, as authenticated by the handshake.
    pub client_key: [u8; CLIENT_KEY_LEN],
    /// The client-to-gateway SipHash key of the header tag (the one the XDP map holds), filled
    /// by the handshake.
    pub header_key: [u8; HEADER_KEY_LEN],
    /// Key material the handshake fills (header and AEAD keys of both directions); opaque to the
    /// machine and the store, which only carry it. Empty once the store has recorded the session
    /// TERMINATED.
    pub secrets: Secret<Vec<u8>>,
    /// When the session was born.
    pub created_at: Millis,
    /// When the last transition happened (equal to `created_at` at BIRTH).
    pub changed_at: Millis,
    /// When traffic from the client was last seen. Telemetry: it changes without a version
    /// increment, so the store only holds the value as of the last transition.
    pub last_rx: Millis,
    /// The timestamp of the HELLO that created the session (all zero before the handshake).
    /// Stored so that, after a restart, a captured HELLO of the same client is still refused as
    /// a replay: the gateway accepts only HELLOs newer than every one it accepted before.
    pub hello_timestamp: Tai64N,
}

impl Session {
    /// A session in BIRTH at version 0 (spec section 2), before the handshake binds a transport.
    pub fn birth(id: SessionId, client_key: [u8; CLIENT_KEY_LEN], now: Millis) -> Self {
        Self {
            id,
            state: SessionState::Birth,
            state_version: 0,
            binding: TransportBinding::default(),
            client_key,
            header_key: [0; HEADER_KEY_LEN],
            secrets: Secret::default(),
            created_at: now,
            changed_at: now,
            last_rx: now,
            hello_timestamp: Tai64N::default(),
        }
    }

    /// Removes the session's keys (header key and secrets): what the store does when it records
    /// the session TERMINATED.
    pub fn wipe_keys(&mut self) {
        self.header_key.zeroize();
        self.secrets = Secret::default();
    }

    /// The entry the XDP program enforces for this session.
    pub fn map_entry(&self) -> SessionEntry {
        SessionEntry {
            state_version: self.state_version,
            header_key: self.header_key,
            transport: self.binding,
            state: self.state as u8,
            _pad: [0; 3],
            // Assigned by the dataplane when it writes the entry.
            replay_slot: 0,
            session_id: self.id.get(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // `secrets` zeroizes itself; the header key is a plain array.
        self.header_key.zeroize();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("state_version", &self.state_version)
            .field("binding", &self.binding)
            .field("client_key", &self.client_key)
            .field("header_key", &"..")
            .field("secrets", &self.secrets)
            .field("created_at", &self.created_at)
            .field("changed_at", &self.changed_at)
            .field("last_rx", &self.last_rx)
            .field("hello_timestamp", &self.hello_timestamp)
            .finish()
    }
}

/// The timers of the machine (configuration, not state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    keepalive_timeout: Millis,
    idle_timeout: Millis,
}

/// Why a pair of timeouts is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimersError {
    /// A zero keepalive timeout would move every session to RECOVERING at once.
    #[error("keepalive timeout must be above 0 ms; set `keepalive_timeout` in the gateway config")]
    ZeroKeepalive,
    /// The idle timeout must leave time to recover.
    #[error(
        "idle timeout ({idle_ms} ms) must be longer than the keepalive timeout ({keepalive_ms} ms), \
         or sessions end without a chance to reattach; raise `idle_timeout` in the gateway config"
    )]
    IdleNotAfterKeepalive {
        /// The keepalive timeout given.
        keepalive_ms: Millis,
        /// The idle timeout given.
        idle_ms: Millis,
    },
}

impl Timers {
    /// Default keepalive timeout: a client keepalives every 10 s (WireGuard uses 25 s for its
    /// optional one); three missed keepalives move the session to RECOVERING.
    pub const DEFAULT_KEEPALIVE_TIMEOUT: Millis = 30_000;
    /// Default idle timeout: WireGuard's `REJECT_AFTER_TIME`, 180 s.
    pub const DEFAULT_IDLE_TIMEOUT: Millis = 180_000;

    /// Timers with these timeouts, both counted from the last traffic seen.
    pub fn new(keepalive_timeout: Millis, idle_timeout: Millis) -> Result<Self, TimersError> {
        if keepalive_timeout == 0 {
            return Err(TimersError::ZeroKeepalive);
        }
        if idle_timeout <= keepalive_timeout {
            return Err(TimersError::IdleNotAfterKeepalive {
                keepalive_ms: keepalive_timeout,
                idle_ms: idle_timeout,
            });
        }
        Ok(Self {
            keepalive_timeout,
            idle_timeout,
        })
    }

    /// Silence after which an ATTACHED session goes RECOVERING.
    pub const fn keepalive_timeout(&self) -> Millis {
        self.keepalive_timeout
    }

    /// Silence after which a session ends.
    pub const fn idle_timeout(&self) -> Millis {
        self.idle_timeout
    }
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            keepalive_timeout: Self::DEFAULT_KEEPALIVE_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_refuse_unusable_pairs() {
        assert_eq!(Timers::new(0, 10), Err(TimersError::ZeroKeepalive));
        assert!(matches!(
            Timers::new(10, 10),
            Err(TimersError::IdleNotAfterKeepalive { .. })
        ));
        let t = Timers::new(10, 11).unwrap();
        assert_eq!((t.keepalive_timeout(), t.idle_timeout()), (10, 11));
        let d = Timers::default();
        assert!(Timers::new(d.keepalive_timeout(), d.idle_timeout()).is_ok());
    }

    #[test]
    fn birth_is_version_zero_and_maps_to_a_whole_entry() {
        let id = SessionId::new(5).unwrap();
        let s = Session::birth(id, [1; CLIENT_KEY_LEN], 1_000);
        assert_eq!((s.state, s.state_version), (SessionState::Birth, 0));
        let e = s.map_entry();
        assert_eq!(e.state, SessionState::Birth as u8);
        assert_eq!(e.state_version, 0);
    }
}
