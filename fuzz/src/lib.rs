//! What the fuzz targets share: the fixed keys they seal and open with, and the path their config
//! texts pretend to come from.
//!
//! Each target in `fuzz_targets/` feeds one decoder or state machine of jvpn with hostile input and
//! asserts what must hold for every input (no panic, and the invariants named in the target's own
//! doc). `examples/seed_corpus.rs` writes the seed corpus under `corpus/` from these fixtures.
#![deny(missing_docs)]

use jvpn_user::config::ConfigError;
use jvpn_user::crypto::{PresharedKey, PrivateKey, SessionKeys};
use std::path::Path;

/// The gateway's static private key of the handshake targets.
pub fn gateway_private_key() -> PrivateKey {
    PrivateKey::from_bytes([0x11; 32])
}

/// The one authorised client's static private key.
pub fn client_private_key() -> PrivateKey {
    PrivateKey::from_bytes([0x22; 32])
}

/// The pre-shared key the gateway holds for that client.
pub fn psk() -> PresharedKey {
    PresharedKey::from_bytes([0x33; 32])
}

/// The session keys of the seal and open targets.
pub fn session_keys() -> SessionKeys {
    let mut stored = [0u8; SessionKeys::STORED_LEN];
    for (i, b) in stored.iter_mut().enumerate() {
        *b = i as u8;
    }
    SessionKeys::from_stored(&stored)
}

/// The path config texts are parsed as. Its directory does not exist, so a relative key file path
/// named by a fuzzed config resolves to nothing.
pub fn config_path() -> &'static Path {
    Path::new("/nonexistent/jvpn-fuzz/config.toml")
}

/// Whether a config text may name a file to read. The config targets skip those: a fuzzed absolute
/// path could name anything on the machine (`/proc/kcore`), and reading files is not the decoder
/// under test. A backslash could spell `_file` as a TOML escape, so it is refused too.
pub fn names_a_file(text: &str) -> bool {
    text.contains("_file") || text.contains('\\')
}

/// What a refused config text must get, for both config targets: an error naming a line of the
/// text and a column, with a message, and never a file read (the targets skip texts naming one).
pub fn check_config_error(text: &str, error: &ConfigError) {
    let lines = text.matches('\n').count() + 1;
    match error {
        ConfigError::At { line, column, .. } => {
            assert!(
                (1..=lines).contains(line),
                "line {line} of {lines}: {error}"
            );
            assert!(*column >= 1, "{error}");
        }
        ConfigError::Read { .. } => {
            panic!("read a file from a text that names none: {error}")
        }
    }
    assert!(!error.to_string().is_empty());
}
