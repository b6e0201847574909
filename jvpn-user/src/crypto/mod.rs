//! The cryptographic protocol layer, sans-IO: keys, the Noise handshake and message sealing.
//!
//! - [`keys`]: X25519 static keys and the pre-shared key, their base64 text form, generation.
//! - [`handshake`]: the BIRTH handshake (`Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s`) on HELLO and
//!   WELCOME datagrams, with the WireGuard-style timestamp replay check.
//! - [`cookie`]: the HELLO's mac1 key, the cookie secrets and the sealed COOKIE_REPLY.
//! - [`session_keys`]: the header key and the two direction keys a handshake yields.
//! - [`secret`]: zeroizing, redacted holders of key material the other modules pass around.
//! - [`seal`]: the header tag and the ChaCha20-Poly1305 seal of every later message.
//!
//! Nothing here opens a socket or reads a clock; the wire layouts it fills are those of
//! `jvpn_common::wire` and `jvpn_common::control`.

pub mod cookie;
pub mod handshake;
pub mod keys;
pub mod rekey;
pub mod seal;
pub mod secret;
pub mod session_keys;

pub use handshake::{
    AcceptedHandshake, ClientAdmission, ClientHandshake, ClientIdentity, ClientSession,
    GatewayHandshake, HandshakeError,
};
pub use keys::{KeyParseError, PresharedKey, PrivateKey, PublicKey};
pub use rekey::{RekeyError, RekeyInitiator};
pub use seal::{
    open_body, open_in_place, open_message, seal_append, seal_body, seal_into, seal_message,
    SealError,
};
pub use secret::{Secret, SecretText};
pub use session_keys::{Direction, SessionKeys};
