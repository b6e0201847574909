//! Holders of secret bytes outside the key types: zeroized when dropped, never printed.
//!
//! [`Secret`] carries key material through the state machine and the store (a session's stored
//! keys, the header key a handshake hands to the machine); [`SecretText`] carries a key written
//! inline in a config file from the TOML parser to the key type. Their `Debug` says what they are
//! and how long, never the bytes, so a `{:?}` of a session, an input or a raw config is safe to
//! log.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::ops::Deref;
use zeroize::{Zeroize, Zeroizing};

/// A secret value, zeroized when dropped, redacted in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T: Zeroize>(Zeroizing<T>);

impl<T: Zeroize> Secret<T> {
    /// Takes ownership of `value`; it is zeroized when this is dropped.
    pub fn new(value: T) -> Self {
        Self(Zeroizing::new(value))
    }
}

impl<T: Zeroize> Deref for Secret<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: Zeroize + AsRef<[u8]>> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.as_ref().len())
    }
}

/// A key written inline in a config file, as the TOML parser read it.
#[derive(Default)]
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| Self(Zeroizing::new(s)))
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{ClientIdentity, PresharedKey, PrivateKey, SessionKeys};

    /// Whether `shown` contains `bytes` as Rust prints a byte array, or as hex, or as base64.
    fn shows(shown: &str, bytes: &[u8]) -> bool {
        use base64::Engine as _;
        let decimal = bytes[..4]
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let hex: String = bytes[..4].iter().map(|b| format!("{b:02x}")).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        shown.contains(&decimal) || shown.contains(&hex) || shown.contains(&b64[..8])
    }

    #[test]
    fn no_type_holding_keys_prints_them() {
        let private: [u8; 32] = core::array::from_fn(|i| 0x40 + i as u8);
        let psk: [u8; 32] = core::array::from_fn(|i| 0x80 + i as u8);
        let stored: [u8; SessionKeys::STORED_LEN] = core::array::from_fn(|i| 0xa0 + i as u8);
        let identity = ClientIdentity {
            private_key: PrivateKey::from_bytes(private),
            gateway_public_key: PrivateKey::from_bytes(psk).public_key(),
            psk: PresharedKey::from_bytes(psk),
        };
        let keys = SessionKeys::from_stored(&stored);
        let shown = [
            format!("{identity:?}"),
            format!("{:?}", PrivateKey::from_bytes(private)),
            format!("{:?}", PresharedKey::from_bytes(psk)),
            format!("{keys:?}"),
            format!("{:?}", Secret::new(stored.to_vec())),
        ];
        for text in &shown {
            assert!(!shows(text, &private), "private key in {text}");
            assert!(!shows(text, &psk), "psk in {text}");
            for part in stored.chunks(16) {
                assert!(!shows(text, part), "session key in {text}");
            }
        }
    }

    #[test]
    fn debug_never_shows_the_bytes() {
        let secret = Secret::new(vec![0xab_u8; 48]);
        let shown = format!("{secret:?}");
        assert_eq!(shown, "Secret(48 bytes)");
        let key = Secret::new([0xcd_u8; 16]);
        assert_eq!(format!("{key:?}"), "Secret(16 bytes)");
        let text: SecretText = toml::from_str::<std::collections::HashMap<String, SecretText>>(
            "k = \"c2VjcmV0LWtleS10ZXh0\"",
        )
        .expect("parse")
        .remove("k")
        .expect("present");
        assert_eq!(text.as_str(), "c2VjcmV0LWtleS10ZXh0");
        assert!(!format!("{text:?}").contains("c2Vj"));
    }
}
