//! Sealing of the records the clustered store keeps in etcd: session secrets never sit in etcd
//! in the clear.
//!
//! Every value is sealed with ChaCha20-Poly1305 under a cluster key that all gateways share
//! (from their config), with the etcd key it is stored under as associated data, so a record
//! cannot be moved to another session's key unnoticed:
//!
//! ```text
//! sealed record:  format u8 (1) | key id u32 LE | nonce [12] | ciphertext | tag [16]
//! ```
//!
//! The key id names the cluster key that sealed the record. Rotation: give every gateway the new
//! key as `current` and the old one in `previous`, restart them one at a time; each mutation
//! reseals its record under the current key, and a record still sealed under an old key stays
//! readable while that key is listed. Once every record was rewritten (or has ended), drop the old
//! key. A record sealed under a key no gateway lists is reported with its key id.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

/// Length of a cluster key.
pub const CLUSTER_KEY_LEN: usize = 32;
/// Format byte of sealed records written by this build.
const SEALED_FORMAT: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// One cluster key and the id records sealed under it carry.
pub struct ClusterKey {
    id: u32,
    key: Zeroizing<[u8; CLUSTER_KEY_LEN]>,
}

impl ClusterKey {
    /// The key `key` with id `id`.
    pub fn new(id: u32, key: [u8; CLUSTER_KEY_LEN]) -> Self {
        Self {
            id,
            key: Zeroizing::new(key),
        }
    }

    /// The id records sealed under this key carry.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.key.as_slice()))
    }
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterKey {{ id: {}, key: <redacted> }}", self.id)
    }
}

/// Why a stored value does not unseal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Shorter than the smallest sealed record.
    #[error("sealed record of {0} bytes is truncated")]
    Truncated(usize),
    /// A format byte this build does not know.
    #[error("unknown sealed-record format {0}")]
    UnknownFormat(u8),
    /// Sealed under a key this gateway does not list.
    #[error("sealed under cluster key id {0}, which this gateway's config does not list; add that key as a previous cluster key")]
    UnknownKey(u32),
    /// The tag does not verify: the record was altered, moved between keys, or sealed under
    /// another key with the same id.
    #[error("does not authenticate under cluster key id {0}: altered, moved, or a different key with the same id")]
    Forged(u32),
    /// Two keys of the keyring share an id.
    #[error("cluster key id {0} is listed twice; give each cluster key its own id")]
    DuplicateKeyId(u32),
}

/// The cluster keys of a gateway: the current one seals, every one listed opens.
#[derive(Debug)]
pub struct Keyring {
    current: ClusterKey,
    previous: Vec<ClusterKey>,
}

impl Keyring {
    /// A keyring sealing under `current` and still opening records sealed under `previous`.
    pub fn new(current: ClusterKey, previous: Vec<ClusterKey>) -> Result<Self, SealError> {
        let mut ids = vec![current.id];
        for key in &previous {
            if ids.contains(&key.id) {
                return Err(SealError::DuplicateKeyId(key.id));
            }
            ids.push(key.id);
        }
        Ok(Self { current, previous })
    }

    /// The id of the key new records are sealed under.
    pub fn current_id(&self) -> u32 {
        self.current.id
    }

    /// Seals `plain` to be stored under the etcd key `at`.
    pub fn seal(&self, at: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
        out.push(SEALED_FORMAT);
        out.extend_from_slice(&self.current.id.to_le_bytes());
        out.extend_from_slice(&nonce);
        let sealed = self
            .current
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: at,
                },
            )
            // ChaCha20-Poly1305 only fails on inputs past 2^38 bytes; a record is under 70 KiB.
            .expect("a session record fits one ChaCha20-Poly1305 message");
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens `sealed`, read from the etcd key `at`.
    pub fn open(&self, at: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < HEADER_LEN + TAG_LEN {
            return Err(SealError::Truncated(sealed.len()));
        }
        if sealed[0] != SEALED_FORMAT {
            return Err(SealError::UnknownFormat(sealed[0]));
        }
        let mut id = [0u8; 4];
        id.copy_from_slice(&sealed[1..5]);
        let id = u32::from_le_bytes(id);
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or(SealError::UnknownKey(id))?;
        key.cipher()
            .decrypt(
                Nonce::from_slice(&sealed[5..HEADER_LEN]),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: at,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Forged(id))
    }

    /// The key id a sealed record names, if it has a header.
    pub fn key_id_of(sealed: &[u8]) -> Option<u32> {
        let bytes = sealed.get(1..5)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32, byte: u8) -> ClusterKey {
        ClusterKey::new(id, [byte; CLUSTER_KEY_LEN])
    }

    #[test]
    fn a_sealed_record_opens_under_its_key_and_hides_the_plaintext() {
        let ring = Keyring::new(key(1, 7), vec![]).unwrap();
        let plain = b"session secrets that must not be in etcd";
        let sealed = ring.seal(b"/jvpn/s/1", plain);
        assert!(!sealed.windows(plain.len()).any(|w| w == plain));
        assert_eq!(Keyring::key_id_of(&sealed), Some(1));
        assert_eq!(ring.open(b"/jvpn/s/1", &sealed).unwrap().as_slice(), plain);
        // Random nonces: sealing twice never gives the same bytes.
        assert_ne!(sealed, ring.seal(b"/jvpn/s/1", plain));
    }

    #[test]
    fn tampering_moving_or_truncating_is_refused() {
        let ring = Keyring::new(key(1, 7), vec![]).unwrap();
        let sealed = ring.seal(b"/jvpn/s/1", b"record");
        let cases: Vec<(&str, Vec<u8>, &[u8], SealError)> = vec![
            (
                "moved to another key",
                sealed.clone(),
                b"/jvpn/s/2",
                SealError::Forged(1),
            ),
            (
                "a flipped ciphertext bit",
                {
                    let mut s = sealed.clone();
                    s[HEADER_LEN] ^= 1;
                    s
                },
                b"/jvpn/s/1",
                SealError::Forged(1),
            ),
            (
                "truncated",
                sealed[..10].to_vec(),
                b"/jvpn/s/1",
                SealError::Truncated(10),
            ),
            (
                "unknown format",
                {
                    let mut s = sealed.clone();
                    s[0] = 9;
                    s
                },
                b"/jvpn/s/1",
                SealError::UnknownFormat(9),
            ),
        ];
        for (what, bytes, at, want) in cases {
            assert_eq!(ring.open(at, &bytes).unwrap_err(), want, "{what}");
        }
    }

    #[test]
    fn rotation_keeps_old_records_readable_and_seals_under_the_new_key() {
        let old = Keyring::new(key(1, 7), vec![]).unwrap();
        let sealed_old = old.seal(b"k", b"before rotation");
        let rotated = Keyring::new(key(2, 9), vec![key(1, 7)]).unwrap();
        assert_eq!(
            rotated.open(b"k", &sealed_old).unwrap().as_slice(),
            b"before rotation"
        );
        let sealed_new = rotated.seal(b"k", b"after rotation");
        assert_eq!(Keyring::key_id_of(&sealed_new), Some(2));
        // A gateway not yet given the new key names it rather than guessing.
        assert_eq!(
            old.open(b"k", &sealed_new).unwrap_err(),
            SealError::UnknownKey(2)
        );
        // Once the old key is dropped, a record still sealed under it is reported with its id.
        let dropped = Keyring::new(key(2, 9), vec![]).unwrap();
        assert_eq!(
            dropped.open(b"k", &sealed_old).unwrap_err(),
            SealError::UnknownKey(1)
        );
    }

    #[test]
    fn a_different_key_under_a_reused_id_is_detected() {
        let a = Keyring::new(key(1, 7), vec![]).unwrap();
        let b = Keyring::new(key(1, 8), vec![]).unwrap();
        assert_eq!(
            b.open(b"k", &a.seal(b"k", b"x")).unwrap_err(),
            SealError::Forged(1)
        );
    }

    #[test]
    fn duplicate_key_ids_are_refused() {
        assert_eq!(
            Keyring::new(key(3, 1), vec![key(4, 2), key(3, 5)]).unwrap_err(),
            SealError::DuplicateKeyId(3)
        );
    }
}
