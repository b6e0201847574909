//! The controller's side of the HELLO guard: the mac1 key, the cookie secrets and whether the
//! gateway is under load, and keeping the XDP config map in step with them.
//!
//! "Under load" starts when the handshake queue passes an eighth of its capacity (or overflows)
//! and lasts [`LOAD_HOLD_MS`] after the last such moment, as in WireGuard. While it lasts, the
//! controller and the XDP program both admit only HELLOs with a valid mac2 for their source; the
//! others get a COOKIE_REPLY. [`HelloGuard::tick`], run a few times a second, rotates the cookie
//! secret every `abi::COOKIE_ROTATION_SECS` and pushes the secrets and the load flag into the
//! config map when they change.

use crate::crypto::cookie::{mac1_key, seal_cookie_reply, CookieSecrets};
use crate::crypto::PublicKey;
use crate::session::Millis;
use jvpn_common::hello::HelloMessage;
use jvpn_common::maps::HandshakeGuard;
use jvpn_common::siphash::SipKey;
use jvpn_common::TransportBinding;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// How long the gateway stays under load after the queue was last found filling.
pub const LOAD_HOLD_MS: u64 = 1_000;

/// The controller's HELLO guard.
#[derive(Debug)]
pub struct HelloGuard {
    gateway: PublicKey,
    mac1_key: [u8; 16],
    secrets: Mutex<CookieSecrets>,
    /// Unix ms until which the gateway counts as under load (0: never was).
    under_load_until: AtomicU64,
    /// What the config map was last given: (rotation count, under load).
    pushed: Mutex<(u64, bool)>,
    rotations: AtomicU64,
}

impl HelloGuard {
    /// The guard of the gateway with public key `gateway`, with fresh cookie secrets.
    pub fn new(gateway: PublicKey, now: Millis) -> Self {
        Self {
            gateway,
            mac1_key: mac1_key(&gateway),
            secrets: Mutex::new(CookieSecrets::generate(now / 1000)),
            under_load_until: AtomicU64::new(0),
            pushed: Mutex::new((0, false)),
            rotations: AtomicU64::new(0),
        }
    }

    fn secrets(&self) -> std::sync::MutexGuard<'_, CookieSecrets> {
        self.secrets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `hello`'s mac1 verifies.
    pub fn mac1_verifies(&self, hello: &HelloMessage) -> bool {
        hello.mac1_verifies(SipKey::from_bytes(&self.mac1_key))
    }

    /// Whether `hello` carries a valid mac2 for `source`.
    pub fn mac2_verifies(&self, hello: &HelloMessage, source: &TransportBinding) -> bool {
        self.secrets().mac2_verifies(hello, source)
    }

    /// The COOKIE_REPLY answering `hello` from `source`.
    pub fn cookie_reply(&self, hello: &HelloMessage, source: &TransportBinding) -> Vec<u8> {
        let cookie = self.secrets().cookie_for(source);
        seal_cookie_reply(&self.gateway, &cookie, &hello.mac1)
    }

    /// Records that the handshake queue is filling at `now`.
    pub fn mark_load(&self, now: Millis) {
        self.under_load_until
            .fetch_max(now + LOAD_HOLD_MS, Ordering::Relaxed);
    }

    /// Whether the gateway is under load at `now`.
    pub fn under_load(&self, now: Millis) -> bool {
        now < self.under_load_until.load(Ordering::Relaxed)
    }

    /// `base` with this guard's keys, secrets and load flag.
    pub fn config(&self, base: HandshakeGuard, now: Millis) -> HandshakeGuard {
        let secrets = self.secrets();
        HandshakeGuard {
            mac1_key: self.mac1_key,
            cookie_secret: *secrets.current(),
            previous_cookie_secret: *secrets.previous(),
            under_load: u8::from(self.under_load(now)),
            ..base
        }
    }

    /// Rotates the secret if due; returns whether the config map needs a push (a rotation or a
    /// change of the load flag since the last push, which the caller then makes and confirms
    /// with [`HelloGuard::pushed`]).
    pub fn tick(&self, now: Millis) -> bool {
        if self.secrets().rotate_if_due(now / 1000) {
            self.rotations.fetch_add(1, Ordering::Relaxed);
        }
        let current = (self.rotations.load(Ordering::Relaxed), self.under_load(now));
        *self.pushed.lock().unwrap_or_else(|p| p.into_inner()) != current
    }

    /// Records that the config map got the state of `now`.
    pub fn pushed(&self, now: Millis) {
        let current = (self.rotations.load(Ordering::Relaxed), self.under_load(now));
        *self.pushed.lock().unwrap_or_else(|p| p.into_inner()) = current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PrivateKey;
    use jvpn_common::abi::COOKIE_ROTATION_SECS;

    #[test]
    fn load_lasts_its_hold_time_and_ticks_ask_for_pushes_on_change() {
        let guard = HelloGuard::new(PrivateKey::generate().public_key(), 10_000);
        assert!(!guard.tick(10_000), "nothing changed yet");
        guard.mark_load(10_000);
        assert!(guard.under_load(10_000 + LOAD_HOLD_MS - 1));
        assert!(guard.tick(10_001));
        guard.pushed(10_001);
        assert!(!guard.tick(10_002));
        assert_eq!(
            guard.config(HandshakeGuard::default(), 10_002).under_load,
            1
        );
        assert!(!guard.under_load(10_000 + LOAD_HOLD_MS));
        assert!(guard.tick(10_000 + LOAD_HOLD_MS), "the load ended");
        guard.pushed(10_000 + LOAD_HOLD_MS);
        let before = guard.config(HandshakeGuard::default(), 20_000);
        assert!(
            guard.tick(10_000 + COOKIE_ROTATION_SECS * 1000),
            "a rotation"
        );
        let after = guard.config(HandshakeGuard::default(), 20_000);
        assert_eq!(after.previous_cookie_secret, before.cookie_secret);
        assert_ne!(after.cookie_secret, before.cookie_secret);
        assert_eq!(after.mac1_key, before.mac1_key);
    }
}
