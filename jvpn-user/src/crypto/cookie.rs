//! The HELLO MAC keys and the cookie exchange, sans-IO (WireGuard's mac1/mac2/cookie, adapted to
//! SipHash so the XDP program can check them; layouts in `jvpn_common::abi`).
//!
//! - [`mac1_key`]: every client derives it from the gateway's public key, so mac1 proves only
//!   that the sender knows which gateway it talks to: enough to drop scanners and random floods in
//!   XDP before any DH.
//! - [`CookieSecrets`]: the gateway's random cookie secret, rotated every
//!   [`COOKIE_ROTATION_SECS`]; the previous one stays valid for one more period. A source's
//!   cookie is `jvpn_common::hello::cookie(secret, source)`, which XDP recomputes.
//! - [`seal_cookie_reply`] / [`open_cookie_reply`]: the cookie travels to the client encrypted
//!   with XChaCha20-Poly1305 under a key derived from the gateway's public key, with the HELLO's
//!   mac1 as associated data, so a client accepts only a cookie answering the HELLO it sent, and
//!   an off-path attacker cannot plant one.

use super::keys::PublicKey;
use blake2::{Blake2s256, Digest};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use jvpn_common::abi::{
    COOKIE_LEN, COOKIE_REPLY_LEN, COOKIE_REPLY_NONCE_LEN, COOKIE_ROTATION_SECS, HEADER_LEN,
    HELLO_MAC_LEN,
};
use jvpn_common::hello::{cookie, HelloMessage};
use jvpn_common::siphash::SipKey;
use jvpn_common::{MessageType, TransportBinding, WireHeader};
use rand::RngCore;
use zeroize::Zeroizing;

/// Label of the mac1 key derivation.
const MAC1_LABEL: &[u8] = b"jvpn mac1 v1";
/// Label of the COOKIE_REPLY key derivation.
const COOKIE_LABEL: &[u8] = b"jvpn cookie v1";

fn derive(label: &[u8], gateway: &PublicKey) -> [u8; 32] {
    let mut hash = Blake2s256::new();
    hash.update(label);
    hash.update(gateway.as_bytes());
    hash.finalize().into()
}

/// The mac1 key of HELLOs to `gateway`: BLAKE2s-256("jvpn mac1 v1" || public key), first 16 bytes.
pub fn mac1_key(gateway: &PublicKey) -> [u8; 16] {
    let full = derive(MAC1_LABEL, gateway);
    let mut key = [0u8; 16];
    key.copy_from_slice(&full[..16]);
    key
}

/// [`mac1_key`] as the SipHash key.
pub fn mac1_sip_key(gateway: &PublicKey) -> SipKey {
    SipKey::from_bytes(&mac1_key(gateway))
}

/// Why a COOKIE_REPLY was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CookieError {
    /// Not a COOKIE_REPLY: wrong length or header.
    #[error("not a COOKIE_REPLY ({0} bytes); ignoring it")]
    NotACookieReply(usize),
    /// It did not decrypt: meant for another HELLO or gateway, or forged.
    #[error("COOKIE_REPLY does not answer this HELLO (or is forged); ignoring it")]
    Undecryptable,
}

/// The gateway's cookie secrets: the current and the previous, as the XDP config map holds them.
#[derive(Clone)]
pub struct CookieSecrets {
    current: Zeroizing<[u8; 16]>,
    previous: Zeroizing<[u8; 16]>,
    rotated_at_secs: u64,
}

impl CookieSecrets {
    /// Fresh random secrets, rotated at `now_secs`.
    pub fn generate(now_secs: u64) -> Self {
        let mut current = Zeroizing::new([0u8; 16]);
        let mut previous = Zeroizing::new([0u8; 16]);
        rand::rngs::OsRng.fill_bytes(&mut current[..]);
        rand::rngs::OsRng.fill_bytes(&mut previous[..]);
        Self {
            current,
            previous,
            rotated_at_secs: now_secs,
        }
    }

    /// Rotates if the current secret is [`COOKIE_ROTATION_SECS`] old at `now_secs`; `true` if it did
    /// (push the secrets into the dataplane then).
    pub fn rotate_if_due(&mut self, now_secs: u64) -> bool {
        if now_secs.saturating_sub(self.rotated_at_secs) < COOKIE_ROTATION_SECS {
            return false;
        }
        *self.previous = *self.current;
        rand::rngs::OsRng.fill_bytes(&mut self.current[..]);
        self.rotated_at_secs = now_secs;
        true
    }

    /// The current secret.
    pub fn current(&self) -> &[u8; 16] {
        &self.current
    }

    /// The previous secret.
    pub fn previous(&self) -> &[u8; 16] {
        &self.previous
    }

    /// The cookie to give `source` now.
    pub fn cookie_for(&self, source: &TransportBinding) -> [u8; COOKIE_LEN] {
        cookie(&self.current, source)
    }

    /// Whether `hello` carries a valid mac2 for `source` under either secret.
    pub fn mac2_verifies(&self, hello: &HelloMessage, source: &TransportBinding) -> bool {
        [&*self.current, &*self.previous]
            .iter()
            .any(|secret| hello.mac2_verifies(&cookie(secret, source)))
    }
}

impl std::fmt::Debug for CookieSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSecrets")
            .field("rotated_at_secs", &self.rotated_at_secs)
            .finish_non_exhaustive()
    }
}

fn cipher(gateway: &PublicKey) -> XChaCha20Poly1305 {
    let key = Zeroizing::new(derive(COOKIE_LABEL, gateway));
    XChaCha20Poly1305::new((&*key).into())
}

/// The COOKIE_REPLY giving `cookie` to the sender of the HELLO whose mac1 is `mac1`.
pub fn seal_cookie_reply(
    gateway: &PublicKey,
    cookie: &[u8; COOKIE_LEN],
    mac1: &[u8; HELLO_MAC_LEN],
) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(COOKIE_REPLY_LEN);
    datagram.extend_from_slice(WireHeader::new(MessageType::CookieReply, 0, 0, 0).as_bytes());
    let mut nonce = [0u8; COOKIE_REPLY_NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    datagram.extend_from_slice(&nonce);
    let sealed = cipher(gateway)
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: cookie,
                aad: mac1,
            },
        )
        .expect("XChaCha20-Poly1305 seals any 16 bytes");
    datagram.extend_from_slice(&sealed);
    debug_assert_eq!(datagram.len(), COOKIE_REPLY_LEN);
    datagram
}

/// Whether `datagram` is a COOKIE_REPLY at all (length and header), before any decryption.
pub fn is_cookie_reply(datagram: &[u8]) -> bool {
    datagram.len() == COOKIE_REPLY_LEN
        && WireHeader::parse(datagram)
            .is_ok_and(|h| h.message_type() == Some(MessageType::CookieReply))
}

/// The cookie in a COOKIE_REPLY from `gateway` answering the HELLO whose mac1 is `mac1`.
pub fn open_cookie_reply(
    gateway: &PublicKey,
    datagram: &[u8],
    mac1: &[u8; HELLO_MAC_LEN],
) -> Result<[u8; COOKIE_LEN], CookieError> {
    if !is_cookie_reply(datagram) {
        return Err(CookieError::NotACookieReply(datagram.len()));
    }
    let nonce = &datagram[HEADER_LEN..HEADER_LEN + COOKIE_REPLY_NONCE_LEN];
    let opened = cipher(gateway)
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: &datagram[HEADER_LEN + COOKIE_REPLY_NONCE_LEN..],
                aad: mac1,
            },
        )
        .map_err(|_| CookieError::Undecryptable)?;
    opened
        .as_slice()
        .try_into()
        .map_err(|_| CookieError::Undecryptable)
}

#[cfg(test)]
mod tests;
