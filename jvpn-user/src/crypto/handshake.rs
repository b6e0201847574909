//! The BIRTH handshake, sans-IO: `Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s` on whole HELLO and WELCOME
//! datagrams.
//!
//! The client (initiator) knows the gateway's static public key and the pre-shared key; the gateway
//! (responder) holds its static private key and decides, per client static key, whether the client
//! is authorised and which pre-shared key it uses. HELLO's body is Noise message 1, whose payload is a
//! [`HelloPayload`] with the client's TAI64N timestamp: as in WireGuard, the gateway refuses a
//! timestamp that is not newer than the last one it accepted from that client, so a recorded HELLO
//! never opens a session. WELCOME's body is Noise message 2, whose payload is the [`WelcomePayload`]
//! naming the session, so the session id and the tunnel addresses are authenticated by the
//! handshake; the WELCOME header carries a tag under the new header key, which the client checks.
//!
//! Nothing here does I/O or reads a clock: the caller passes the time in, looks up the client, and
//! stores the accepted timestamp itself. This file holds what both sides share and the client
//! (initiator); the gateway (responder) is [`responder`].

use super::cookie::{mac1_sip_key, open_cookie_reply, CookieError};
use super::keys::{PresharedKey, PrivateKey, PublicKey};
use super::session_keys::{Direction, SessionKeys};
use jvpn_common::abi::{COOKIE_LEN, HEADER_LEN, HELLO_MAC_LEN};
use jvpn_common::control::{
    Body, BodyError, HelloPayload, Tai64N, WelcomePayload, HELLO_BODY_LEN, WELCOME_BODY_LEN,
};
use jvpn_common::hello::HelloMessage;
use jvpn_common::wire::{HeaderError, MessageType, WireHeader};
use jvpn_common::RejectReason;
use snow::params::NoiseParams;
use snow::{Builder, HandshakeState};
use std::mem::size_of;
use std::time::{SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// The Noise protocol name.
pub const NOISE_PROTOCOL: &str = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// Mixed into the handshake hash so a handshake of another protocol or version never completes.
const PROLOGUE: &[u8] = b"jvpn wire v1";
/// `psk2`: the pre-shared key is mixed in at the end of message 2.
const PSK_LOCATION: u8 = 2;

/// Why a handshake message was refused.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The datagram has the wrong length for its message type.
    #[error("{message:?} datagram is {got} bytes, expected {expected}")]
    Length {
        /// The message type expected.
        message: MessageType,
        /// The length the type requires.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// The header is malformed.
    #[error("handshake header is malformed: {0:?}")]
    Header(HeaderError),
    /// The datagram is not the handshake message expected at this point.
    #[error("expected a {expected:?} message, got message type {got}")]
    UnexpectedType {
        /// The type expected.
        expected: MessageType,
        /// The type byte received.
        got: u8,
    },
    /// HELLO did not decrypt with this gateway's static key.
    #[error(
        "HELLO did not decrypt: it was made for another gateway public key or altered in transit"
    )]
    HelloUndecryptable,
    /// The client's static key is not authorised on this gateway.
    #[error("client public key {0} is not authorised; add a [[client]] entry with this public_key to the gateway config")]
    UnknownClient(PublicKey),
    /// The HELLO timestamp is not newer than the last accepted from this client.
    #[error("HELLO from client {client} is not newer than the last one accepted: a replay, or the client's clock went back")]
    Replay {
        /// The client.
        client: PublicKey,
        /// The timestamp of the refused HELLO.
        timestamp: Tai64N,
        /// The last timestamp accepted from this client.
        last_accepted: Tai64N,
    },
    /// WELCOME did not decrypt: keys differ, or it was altered.
    #[error("WELCOME did not decrypt: the gateway public key or pre-shared key differs from the gateway's, or the message was altered")]
    WelcomeUndecryptable,
    /// The WELCOME payload breaks a rule of its layout.
    #[error("WELCOME payload is invalid: {0}")]
    WelcomePayload(#[from] BodyError),
    /// The WELCOME header and payload name different sessions.
    #[error(
        "WELCOME header names session {header:#x} but its authenticated payload names {payload:#x}"
    )]
    SessionMismatch {
        /// The session id in the header.
        header: u64,
        /// The session id in the payload.
        payload: u64,
    },
    /// The WELCOME header tag does not verify under the derived header key.
    #[error("WELCOME header tag does not verify under the new session's header key: the header was altered")]
    WelcomeTag,
    /// This client handshake already consumed a WELCOME that failed; start a new handshake.
    #[error("this handshake already failed on an earlier WELCOME; start a new handshake")]
    Spent,
    /// The Noise library refused an operation (a bug or an invalid key, never a network event).
    #[error("Noise handshake failed: {0}")]
    Noise(#[from] snow::Error),
}

impl HandshakeError {
    /// The reason code under which the gateway counts and reports this refusal.
    pub fn reason(&self) -> RejectReason {
        match self {
            Self::UnknownClient(_) => RejectReason::UnknownClient,
            Self::Replay { .. } => RejectReason::HandshakeReplay,
            Self::HelloUndecryptable | Self::WelcomeUndecryptable | Self::WelcomeTag => {
                RejectReason::BadSeal
            }
            _ => RejectReason::Malformed,
        }
    }
}

/// The TAI64N timestamp of a wall-clock time (for the caller that reads the clock).
pub fn tai64n(time: SystemTime) -> Tai64N {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    Tai64N::from_unix(since_epoch.as_secs(), since_epoch.subsec_nanos())
}

fn noise_params() -> NoiseParams {
    NOISE_PROTOCOL
        .parse()
        .expect("the protocol name is a valid Noise name")
}

/// Checks the length and header of a handshake datagram and returns its header.
fn handshake_header(
    datagram: &[u8],
    expected: MessageType,
    len: usize,
) -> Result<WireHeader, HandshakeError> {
    if datagram.len() != len {
        return Err(HandshakeError::Length {
            message: expected,
            expected: len,
            got: datagram.len(),
        });
    }
    let header = WireHeader::parse(datagram).map_err(HandshakeError::Header)?;
    if header.msg_type != expected as u8 {
        return Err(HandshakeError::UnexpectedType {
            expected,
            got: header.msg_type,
        });
    }
    Ok(header)
}

/// The session keys of a finished handshake.
fn session_keys(state: &mut HandshakeState) -> SessionKeys {
    let (initiator_to_responder, responder_to_initiator) = state.dangerously_get_raw_split();
    let split = (
        Zeroizing::new(initiator_to_responder),
        Zeroizing::new(responder_to_initiator),
    );
    SessionKeys::derive(state.get_handshake_hash(), &split.0, &split.1)
}

/// What a client needs to start a handshake.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    /// The client's static private key.
    pub private_key: PrivateKey,
    /// The gateway's static public key.
    pub gateway_public_key: PublicKey,
    /// The pre-shared key the gateway holds for this client.
    pub psk: PresharedKey,
}

/// A session as the client holds it after a WELCOME.
#[derive(Debug)]
pub struct ClientSession {
    /// The session's keys.
    pub keys: SessionKeys,
    /// The authenticated WELCOME payload: session id and tunnel addresses.
    pub welcome: WelcomePayload,
    /// The WELCOME header (its state_version is the first acknowledged version).
    pub header: WireHeader,
}

/// A client handshake waiting for its WELCOME.
pub struct ClientHandshake {
    /// `None` once a WELCOME reached the Noise state and failed.
    state: Option<HandshakeState>,
    /// The HELLO as sent (mac1 set), to resend with a mac2 when a cookie arrives.
    hello: HelloMessage,
    /// The gateway, whose key seals its COOKIE_REPLY.
    gateway: PublicKey,
}

impl ClientHandshake {
    /// Starts a handshake at `now`; returns the state and the HELLO datagram to send (mac1 set,
    /// no mac2).
    pub fn start(
        identity: &ClientIdentity,
        now: Tai64N,
    ) -> Result<(Self, Vec<u8>), HandshakeError> {
        Self::start_with_cookie(identity, now, None)
    }

    /// As [`Self::start`], with a mac2 under `cookie` if the client holds a live one.
    pub fn start_with_cookie(
        identity: &ClientIdentity,
        now: Tai64N,
        cookie: Option<&[u8; COOKIE_LEN]>,
    ) -> Result<(Self, Vec<u8>), HandshakeError> {
        let mut state = Builder::new(noise_params())
            .local_private_key(identity.private_key.as_bytes())?
            .remote_public_key(identity.gateway_public_key.as_bytes())?
            .psk(PSK_LOCATION, identity.psk.as_bytes())?
            .prologue(PROLOGUE)?
            .build_initiator()?;
        let mut hello = <HelloMessage as bytemuck::Zeroable>::zeroed();
        hello.header = WireHeader::new(MessageType::Hello, 0, 0, 0);
        let payload = HelloPayload { timestamp: now };
        let written = state.write_message(payload.as_body(), &mut hello.noise)?;
        assert_eq!(
            written, HELLO_BODY_LEN,
            "Noise IK message 1 has a fixed size"
        );
        hello.seal_mac1(mac1_sip_key(&identity.gateway_public_key));
        if let Some(cookie) = cookie {
            hello.seal_mac2(cookie);
        }
        let datagram = hello.as_bytes().to_vec();
        let handshake = Self {
            state: Some(state),
            hello,
            gateway: identity.gateway_public_key,
        };
        Ok((handshake, datagram))
    }

    /// The mac1 of this handshake's HELLO (what a COOKIE_REPLY answering it is bound to).
    pub fn hello_mac1(&self) -> [u8; HELLO_MAC_LEN] {
        self.hello.mac1
    }

    /// Takes a COOKIE_REPLY answering this handshake's HELLO: returns the cookie and the same
    /// HELLO with its mac2 under it, to send at once. The Noise state is untouched.
    pub fn accept_cookie(
        &mut self,
        datagram: &[u8],
    ) -> Result<([u8; COOKIE_LEN], Vec<u8>), CookieError> {
        let cookie = open_cookie_reply(&self.gateway, datagram, &self.hello.mac1)?;
        self.hello.seal_mac2(&cookie);
        Ok((cookie, self.hello.as_bytes().to_vec()))
    }

    /// Whether a WELCOME already failed in the Noise state; a new handshake is needed.
    pub fn is_spent(&self) -> bool {
        self.state.is_none()
    }

    /// Completes the handshake with the WELCOME datagram.
    ///
    /// A datagram of the wrong length or type is refused without touching the handshake, so the
    /// client can keep waiting; one that reaches Noise and fails spends it ([`Self::is_spent`]).
    pub fn finish(&mut self, welcome_datagram: &[u8]) -> Result<ClientSession, HandshakeError> {
        let header = handshake_header(
            welcome_datagram,
            MessageType::Welcome,
            HEADER_LEN + WELCOME_BODY_LEN,
        )?;
        let mut state = self.state.take().ok_or(HandshakeError::Spent)?;
        let mut payload = [0u8; size_of::<WelcomePayload>()];
        let read = state
            .read_message(&welcome_datagram[HEADER_LEN..], &mut payload)
            .map_err(|_| HandshakeError::WelcomeUndecryptable)?;
        let welcome = WelcomePayload::from_body(&payload[..read])?;
        let keys = session_keys(&mut state);
        if header.session_id != welcome.session_id {
            return Err(HandshakeError::SessionMismatch {
                header: header.session_id.get(),
                payload: welcome.session_id.get(),
            });
        }
        if !header.tag_verifies(keys.sip_key(Direction::GatewayToClient)) {
            return Err(HandshakeError::WelcomeTag);
        }
        Ok(ClientSession {
            keys,
            welcome,
            header,
        })
    }
}

impl std::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("spent", &self.is_spent())
            .finish_non_exhaustive()
    }
}

mod responder;
pub use responder::{AcceptedHandshake, ClientAdmission, GatewayHandshake};

#[cfg(test)]
mod tests;
