//! Long-term keys: X25519 static keys and the pre-shared key, their text form and their generation.
//!
//! The text form is WireGuard's: standard base64 with padding, 44 characters for 32 bytes, so keys
//! can be moved between a config file, a key file and a terminal. Secret keys are zeroized when
//! dropped and never printed by `Debug`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore as _;
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver as _, DefaultResolver};
use std::fmt;
use std::str::FromStr;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of every key here: an X25519 private or public key, or a pre-shared key.
pub const KEY_LEN: usize = 32;

/// Why a key's text does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    /// The text is not base64.
    #[error("is not valid base64 ({0}); use the 44-character key printed by `jvpn keygen`")]
    Base64(#[from] base64::DecodeError),
    /// The text decodes, but not to 32 bytes.
    #[error(
        "decodes to {0} bytes but a key is 32; use the 44-character key printed by `jvpn keygen`"
    )]
    Length(usize),
}

fn decode_key(text: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyParseError> {
    let decoded = Zeroizing::new(BASE64.decode(text.trim())?);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if decoded.len() != KEY_LEN {
        return Err(KeyParseError::Length(decoded.len()));
    }
    key.copy_from_slice(&decoded);
    Ok(key)
}

/// Equality of two secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_key() -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(&mut key[..]);
    key
}

/// An X25519 static private key (a client's or the gateway's).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey([u8; KEY_LEN]);

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}
impl Eq for PrivateKey {}

impl PrivateKey {
    /// A new key from the operating system's random generator. Any 32 bytes are a valid X25519
    /// private key: X25519 clamps them when it uses them.
    pub fn generate() -> Self {
        Self(*random_key())
    }

    /// The key with these bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key, for the Noise handshake.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The matching public key, computed by the same X25519 implementation the handshake uses.
    pub fn public_key(&self) -> PublicKey {
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .expect("snow's default resolver provides Curve25519 (feature use-curve25519)");
        dh.set(&self.0);
        let mut public = [0u8; KEY_LEN];
        public.copy_from_slice(dh.pubkey());
        PublicKey(public)
    }

    /// Decodes the base64 text form.
    pub fn from_base64(text: &str) -> Result<Self, KeyParseError> {
        decode_key(text).map(|k| Self(*k))
    }

    /// The base64 text form (a secret: zeroized when dropped).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.0))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(public {})", self.public_key())
    }
}

/// An X25519 public key. Displayed in its base64 text form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// The key with these bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Decodes the base64 text form.
    pub fn from_base64(text: &str) -> Result<Self, KeyParseError> {
        decode_key(text).map(|k| Self(*k))
    }

    /// The base64 text form.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

impl FromStr for PublicKey {
    type Err = KeyParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_base64(s)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// The pre-shared key mixed into the handshake (Noise `psk2`): a second, symmetric secret that
/// keeps a recorded handshake confidential even if X25519 is broken later.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PresharedKey([u8; KEY_LEN]);

impl PartialEq for PresharedKey {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}
impl Eq for PresharedKey {}

impl PresharedKey {
    /// The all-zero key used when none is configured, as WireGuard does: the handshake then has
    /// plain `IK` security, without the post-quantum margin a secret pre-shared key adds.
    pub const fn none() -> Self {
        Self([0; KEY_LEN])
    }

    /// A new key from the operating system's random generator.
    pub fn generate() -> Self {
        Self(*random_key())
    }

    /// The key with these bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key, for the Noise handshake.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Decodes the base64 text form.
    pub fn from_base64(text: &str) -> Result<Self, KeyParseError> {
        decode_key(text).map(|k| Self(*k))
    }

    /// The base64 text form (a secret: zeroized when dropped).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.0))
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7748 section 6.1: Alice's private key and the public key it gives.
    #[test]
    fn public_key_matches_rfc7748() {
        let hex = |s: &str| -> [u8; 32] {
            core::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        };
        let private = PrivateKey::from_bytes(hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        assert_eq!(
            private.public_key().as_bytes(),
            &hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
    }

    #[test]
    fn text_form_round_trips_and_refuses_bad_input() {
        let private = PrivateKey::generate();
        let text = private.to_base64();
        assert_eq!(text.len(), 44);
        assert_eq!(PrivateKey::from_base64(&text), Ok(private.clone()));
        let public = private.public_key();
        assert_eq!(public.to_string().parse::<PublicKey>(), Ok(public));
        let psk = PresharedKey::generate();
        assert_eq!(PresharedKey::from_base64(&psk.to_base64()), Ok(psk));

        assert!(matches!(
            PublicKey::from_base64("not base64!"),
            Err(KeyParseError::Base64(_))
        ));
        assert_eq!(
            PublicKey::from_base64("AAAA"),
            Err(KeyParseError::Length(3))
        );
        assert_ne!(PrivateKey::generate(), PrivateKey::generate());
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let private = PrivateKey::generate();
        let shown = format!("{private:?}");
        assert!(!shown.contains(private.to_base64().as_str()));
        let psk = PresharedKey::generate();
        assert!(!format!("{psk:?}").contains(psk.to_base64().as_str()));
    }
}
