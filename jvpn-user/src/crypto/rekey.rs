//! The rekey key exchange, sans-IO: one round trip of `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`
//! whose pre-shared key comes from the session's current keys (docs/rekey.md).
//!
//! ```text
//! psk      = HKDF-Expand(HKDF-Extract(salt = "jvpn v1 rekey", ikm = current keys), "jvpn v1 rekey psk", 32)
//! prologue = "jvpn rekey v1" || session_id (8, BE) || acked state_version (8, BE)
//! REKEY_INIT carries message 1: psk, e        REKEY_ACK carries message 2: e, ee
//! new keys = SessionKeys::derive(handshake hash, split keys), header keys kept from the current keys
//! ```
//!
//! The ephemeral-ephemeral DH (`ee`) gives forward secrecy: once both ends drop the ephemerals and
//! the old keys, nothing recorded can be opened again. The psk authenticates the exchange to the
//! two ends of this session (a third party without the current keys cannot complete it), and the
//! prologue binds it to the session and to the version it starts from, so a message of one rekey
//! never completes another. The header keys stay for the session's life: the XDP program verifies
//! the client's tag with one key per session, so a retried REKEY_INIT and in-flight messages keep
//! verifying (docs/rekey.md says what that costs and why it is enough).

use super::session_keys::SessionKeys;
use blake2::Blake2s256;
use hkdf::SimpleHkdf;
use jvpn_common::control::REKEY_NOISE_LEN;
use snow::{Builder, HandshakeState};
use zeroize::Zeroizing;

/// The Noise pattern of a rekey.
pub const REKEY_NOISE_PROTOCOL: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
const PSK_SALT: &[u8] = b"jvpn v1 rekey";
const PSK_LABEL: &[u8] = b"jvpn v1 rekey psk";
const PROLOGUE_LABEL: &[u8] = b"jvpn rekey v1";

/// Why a rekey message was refused.
#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    /// The Noise message did not verify: it was made under other keys, for another session or
    /// version, or altered.
    #[error("rekey message of session {session:016x} at version {version} did not verify: made under other keys or for another version; the session keeps its keys")]
    Unverified {
        /// The session.
        session: u64,
        /// The version the rekey starts from.
        version: u64,
    },
    /// The Noise library refused to build or write a message (a bug, never a network event).
    #[error("Noise rekey failed: {0}")]
    Noise(#[from] snow::Error),
}

/// The client's half of a rekey in flight: its ephemeral key, kept until REKEY_ACK arrives.
pub struct RekeyInitiator {
    state: HandshakeState,
    session: u64,
    version: u64,
}

impl RekeyInitiator {
    /// Starts a rekey of session `session` at acknowledged version `version` under `current`
    /// keys; returns the initiator and Noise message 1 for the REKEY_INIT body.
    pub fn start(
        current: &SessionKeys,
        session: u64,
        version: u64,
    ) -> Result<(Self, [u8; REKEY_NOISE_LEN]), RekeyError> {
        let psk = psk(current);
        let prologue = prologue(session, version);
        let mut state = Builder::new(noise_params())
            .prologue(&prologue)?
            .psk(0, &psk)?
            .build_initiator()?;
        let mut message = [0u8; REKEY_NOISE_LEN];
        let len = state.write_message(&[], &mut message)?;
        debug_assert_eq!(len, REKEY_NOISE_LEN, "NNpsk0 message 1 is e and a tag");
        Ok((
            Self {
                state,
                session,
                version,
            },
            message,
        ))
    }

    /// The version this rekey starts from.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Completes the rekey with Noise message 2 from REKEY_ACK: the new keys, with the header
    /// keys of `current`. The initiator is spent either way (a failed message 2 means start over).
    pub fn finish(
        mut self,
        current: &SessionKeys,
        ack: &[u8; REKEY_NOISE_LEN],
    ) -> Result<SessionKeys, RekeyError> {
        let mut payload = [0u8; REKEY_NOISE_LEN];
        self.state
            .read_message(ack, &mut payload)
            .map_err(|_| RekeyError::Unverified {
                session: self.session,
                version: self.version,
            })?;
        Ok(new_keys(&mut self.state, current))
    }
}

impl std::fmt::Debug for RekeyInitiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RekeyInitiator")
            .field("session", &format_args!("{:016x}", self.session))
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The gateway's half: answers Noise message 1 of a REKEY_INIT for session `session` at
/// `version` under `current` keys; returns the new keys and Noise message 2 for REKEY_ACK. Its
/// ephemeral key lives only inside this call.
pub fn respond(
    current: &SessionKeys,
    session: u64,
    version: u64,
    init: &[u8; REKEY_NOISE_LEN],
) -> Result<(SessionKeys, [u8; REKEY_NOISE_LEN]), RekeyError> {
    let psk = psk(current);
    let prologue = prologue(session, version);
    let mut state = Builder::new(noise_params())
        .prologue(&prologue)?
        .psk(0, &psk)?
        .build_responder()?;
    let mut payload = [0u8; REKEY_NOISE_LEN];
    state
        .read_message(init, &mut payload)
        .map_err(|_| RekeyError::Unverified { session, version })?;
    let mut message = [0u8; REKEY_NOISE_LEN];
    let len = state.write_message(&[], &mut message)?;
    debug_assert_eq!(len, REKEY_NOISE_LEN, "NNpsk0 message 2 is e and a tag");
    Ok((new_keys(&mut state, current), message))
}

fn noise_params() -> snow::params::NoiseParams {
    REKEY_NOISE_PROTOCOL
        .parse()
        .expect("the rekey Noise protocol name is valid")
}

fn psk(current: &SessionKeys) -> Zeroizing<[u8; 32]> {
    let hkdf = SimpleHkdf::<Blake2s256>::new(Some(PSK_SALT), &current.to_stored()[..]);
    let mut psk = Zeroizing::new([0u8; 32]);
    hkdf.expand(PSK_LABEL, &mut psk[..])
        .expect("HKDF-BLAKE2s expands 32 bytes");
    psk
}

fn prologue(session: u64, version: u64) -> [u8; PROLOGUE_LABEL.len() + 16] {
    let mut out = [0u8; PROLOGUE_LABEL.len() + 16];
    out[..PROLOGUE_LABEL.len()].copy_from_slice(PROLOGUE_LABEL);
    out[PROLOGUE_LABEL.len()..PROLOGUE_LABEL.len() + 8].copy_from_slice(&session.to_be_bytes());
    out[PROLOGUE_LABEL.len() + 8..].copy_from_slice(&version.to_be_bytes());
    out
}

fn new_keys(state: &mut HandshakeState, current: &SessionKeys) -> SessionKeys {
    let (initiator_to_responder, responder_to_initiator) = state.dangerously_get_raw_split();
    let split = (
        Zeroizing::new(initiator_to_responder),
        Zeroizing::new(responder_to_initiator),
    );
    SessionKeys::derive(state.get_handshake_hash(), &split.0, &split.1).with_header_keys_of(current)
}

#[cfg(test)]
mod tests;
