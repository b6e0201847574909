//! The gateway's side of the BIRTH handshake (the Noise responder): read a HELLO, ask the caller
//! whether its client key is authorised and with which pre-shared key, refuse a timestamp that is
//! not newer than the last accepted, then write the WELCOME and derive the session keys.

use super::{handshake_header, noise_params, session_keys, HandshakeError, PROLOGUE, PSK_LOCATION};
use crate::crypto::keys::{PresharedKey, PrivateKey, PublicKey, KEY_LEN};
use crate::crypto::session_keys::{Direction, SessionKeys};
use jvpn_common::abi::{HEADER_LEN, HELLO_LEN};
use jvpn_common::control::{Body, HelloPayload, Tai64N, WelcomePayload, WELCOME_BODY_LEN};
use jvpn_common::hello::HelloMessage;
use jvpn_common::wire::{HeaderError, MessageType, WireHeader};
use snow::{Builder, HandshakeState};
use std::mem::size_of;

/// The gateway's decision about a client key that sent a valid HELLO.
#[derive(Clone, Debug)]
pub struct ClientAdmission {
    /// The pre-shared key for this client.
    pub psk: PresharedKey,
    /// The newest HELLO timestamp accepted from this client so far, if any.
    pub last_timestamp: Option<Tai64N>,
}

/// What the gateway sends and keeps after accepting a HELLO.
#[derive(Debug)]
pub struct AcceptedHandshake {
    /// The session's keys.
    pub keys: SessionKeys,
    /// The WELCOME datagram (header tagged under the new header key, Noise message 2).
    pub datagram: Vec<u8>,
}

/// A gateway handshake that read a valid HELLO from an authorised client.
pub struct GatewayHandshake {
    state: HandshakeState,
    client: PublicKey,
    timestamp: Tai64N,
}

impl GatewayHandshake {
    /// Reads a HELLO datagram (its length and reserved bytes; its MACs are the caller's, checked
    /// before any DH is spent on it).
    ///
    /// `admit` is asked about the client's static key once the HELLO has decrypted; it returns
    /// `None` for an unauthorised key, or the client's pre-shared key and the last timestamp
    /// accepted from it. A HELLO not newer than that is a [`HandshakeError::Replay`].
    pub fn read_hello(
        gateway_private_key: &PrivateKey,
        hello_datagram: &[u8],
        admit: impl FnOnce(&PublicKey) -> Option<ClientAdmission>,
    ) -> Result<Self, HandshakeError> {
        handshake_header(hello_datagram, MessageType::Hello, HELLO_LEN)?;
        let hello_message =
            HelloMessage::from_bytes(hello_datagram).expect("the length was checked just above");
        if hello_message.reserved != [0; 4] {
            return Err(HandshakeError::Header(HeaderError::Reserved));
        }
        let mut state = Builder::new(noise_params())
            .local_private_key(gateway_private_key.as_bytes())?
            .prologue(PROLOGUE)?
            .build_responder()?;
        let mut payload = [0u8; size_of::<HelloPayload>()];
        let read = state
            .read_message(&hello_message.noise, &mut payload)
            .map_err(|_| HandshakeError::HelloUndecryptable)?;
        let hello = HelloPayload::from_body(&payload[..read])?;
        let mut client = [0u8; KEY_LEN];
        client.copy_from_slice(
            state
                .get_remote_static()
                .expect("IK message 1 carries the initiator's static key"),
        );
        let client = PublicKey::from_bytes(client);
        let admission = admit(&client).ok_or(HandshakeError::UnknownClient(client))?;
        if let Some(last_accepted) = admission.last_timestamp {
            if hello.timestamp <= last_accepted {
                return Err(HandshakeError::Replay {
                    client,
                    timestamp: hello.timestamp,
                    last_accepted,
                });
            }
        }
        state.set_psk(usize::from(PSK_LOCATION), admission.psk.as_bytes())?;
        Ok(Self {
            state,
            client,
            timestamp: hello.timestamp,
        })
    }

    /// The client's static public key.
    pub fn client_public_key(&self) -> &PublicKey {
        &self.client
    }

    /// The HELLO's timestamp: store it as the client's last accepted once the session exists.
    pub fn timestamp(&self) -> Tai64N {
        self.timestamp
    }

    /// Accepts the client: writes the WELCOME with `welcome` as its payload behind `header`
    /// (a WELCOME header naming the same session), tags the header, and yields the session keys.
    pub fn accept(
        mut self,
        header: WireHeader,
        welcome: &WelcomePayload,
    ) -> Result<AcceptedHandshake, HandshakeError> {
        let message_type = header.validate().map_err(HandshakeError::Header)?;
        if message_type != MessageType::Welcome {
            return Err(HandshakeError::UnexpectedType {
                expected: MessageType::Welcome,
                got: header.msg_type,
            });
        }
        welcome.check()?;
        if header.session_id != welcome.session_id {
            return Err(HandshakeError::SessionMismatch {
                header: header.session_id.get(),
                payload: welcome.session_id.get(),
            });
        }
        let mut datagram = vec![0u8; HEADER_LEN + WELCOME_BODY_LEN];
        let written = self
            .state
            .write_message(welcome.as_body(), &mut datagram[HEADER_LEN..])?;
        assert_eq!(
            written, WELCOME_BODY_LEN,
            "Noise IK message 2 has a fixed size"
        );
        let keys = session_keys(&mut self.state);
        let mut header = header;
        header.seal(keys.sip_key(Direction::GatewayToClient));
        datagram[..HEADER_LEN].copy_from_slice(header.as_bytes());
        Ok(AcceptedHandshake { keys, datagram })
    }
}

impl std::fmt::Debug for GatewayHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHandshake")
            .field("client", &self.client)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}
