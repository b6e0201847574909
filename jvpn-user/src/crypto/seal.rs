//! Sealing and opening of every message after the handshake: DATA, KEEPALIVE and control bodies.
//!
//! A sealed message is the 40-byte header, whose tag is SipHash-2-4 of its first 32 bytes under the
//! session's header key, then the body encrypted with ChaCha20-Poly1305 under the sender's direction
//! key, then the 16-byte Poly1305 tag. The AEAD nonce is the header's 64-bit packet nonce as
//! WireGuard forms it (4 zero bytes, then the nonce little-endian); nonces never repeat within a
//! direction, and each direction has its own key. The whole header, tag included, is the associated
//! data, so nothing in it can change without the seal failing. Opening checks the header rules, the
//! tag and the AEAD, in that order, and hands out nothing before all of them pass.
//!
//! The AEAD is ring's ChaCha20-Poly1305 (BoringSSL's assembly, AVX2 where the CPU has it): on
//! the data path it was 2-3x the speed of the RustCrypto crate, whose Poly1305 AVX2 backend
//! calls each intrinsic out of line (BENCHMARKS.md, `peers`). The output is the same RFC 8439
//! construction, byte for byte (a test seals with one and opens with the other).

use super::session_keys::{Direction, SessionKeys};
use jvpn_common::abi::HEADER_LEN;
use jvpn_common::control::{sealed_len, Body, BodyError, AEAD_TAG_LEN};
use jvpn_common::wire::{HeaderError, MessageType, WireHeader};
use jvpn_common::RejectReason;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};

/// Why a message could not be sealed or opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Shorter than a header and an AEAD tag.
    #[error("datagram is {0} bytes, shorter than a header and an AEAD tag")]
    Truncated(usize),
    /// The header breaks a rule of the wire format.
    #[error("header is malformed: {0:?}")]
    Header(HeaderError),
    /// HELLO and WELCOME carry Noise messages, COOKIE_REPLY its own sealed cookie: none is
    /// sealed with session keys.
    #[error("{0:?} is a handshake message; it is not AEAD-sealed")]
    HandshakeMessage(MessageType),
    /// The message type never travels in this direction.
    #[error("{0:?} never travels {1:?}")]
    WrongDirection(MessageType, Direction),
    /// The header tag does not verify under the session's header key.
    #[error("header tag does not verify under the session's header key")]
    BadTag,
    /// The body did not open: wrong key or direction, or the message was altered.
    #[error("AEAD seal did not open: wrong key or direction, or the message was altered")]
    BadSeal,
    /// The body is too long to seal.
    #[error("body of {0} bytes is too long to seal")]
    TooLong(usize),
    /// The message opened but is not the expected type.
    #[error("expected a {expected:?} message, got {got:?}")]
    UnexpectedType {
        /// The type expected.
        expected: MessageType,
        /// The type received.
        got: MessageType,
    },
    /// The message opened but its body breaks its layout.
    #[error("body is invalid: {0}")]
    Body(BodyError),
}

impl SealError {
    /// The reason code under which this refusal is counted and reported.
    pub fn reason(&self) -> RejectReason {
        match self {
            Self::BadTag => RejectReason::BadTag,
            Self::BadSeal => RejectReason::BadSeal,
            _ => RejectReason::Malformed,
        }
    }
}

/// The ChaCha20-Poly1305 nonce of the packet nonce `nonce`: 4 zero bytes, then `nonce`
/// little-endian (as WireGuard does).
pub fn aead_nonce(nonce: u64) -> [u8; NONCE_LEN] {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[4..].copy_from_slice(&nonce.to_le_bytes());
    bytes
}

fn cipher(keys: &SessionKeys, direction: Direction) -> LessSafeKey {
    // A 32-byte key is the only thing `UnboundKey::new` checks, and the type guarantees it.
    let key = UnboundKey::new(&CHACHA20_POLY1305, keys.aead_key(direction))
        .expect("a ChaCha20-Poly1305 key is 32 bytes");
    LessSafeKey::new(key)
}

/// Checks that `header` is a valid sealed message type for `direction`.
fn check_header(header: &WireHeader, direction: Direction) -> Result<MessageType, SealError> {
    let message_type = header.validate().map_err(SealError::Header)?;
    if matches!(
        message_type,
        MessageType::Hello | MessageType::Welcome | MessageType::CookieReply
    ) {
        return Err(SealError::HandshakeMessage(message_type));
    }
    let allowed = match direction {
        Direction::ClientToGateway => message_type.sent_by_client(),
        Direction::GatewayToClient => !matches!(
            message_type,
            MessageType::ReattachRequest | MessageType::PathResponse
        ),
    };
    if !allowed {
        return Err(SealError::WrongDirection(message_type, direction));
    }
    Ok(message_type)
}

/// Seals `body` behind `header` (whose tag is computed here) into `out`, replacing its contents.
pub fn seal_into(
    keys: &SessionKeys,
    direction: Direction,
    header: WireHeader,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    out.clear();
    seal_append(keys, direction, header, body, out)
}

/// Seals `body` behind `header` at the end of `out`, after what it holds (a batch of datagrams
/// laid end to end); encrypts in place there. On error `out` is as it was.
pub fn seal_append(
    keys: &SessionKeys,
    direction: Direction,
    mut header: WireHeader,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    check_header(&header, direction)?;
    header.seal(keys.sip_key(direction));
    let start = out.len();
    out.reserve(sealed_len(body.len()));
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    let (head, payload) = out[start..].split_at_mut(HEADER_LEN);
    let sealed = cipher(keys, direction).seal_in_place_separate_tag(
        Nonce::assume_unique_for_key(aead_nonce(header.nonce.get())),
        Aad::from(&*head),
        payload,
    );
    match sealed {
        Ok(tag) => {
            out.extend_from_slice(tag.as_ref());
            Ok(())
        }
        Err(_) => {
            out.truncate(start);
            Err(SealError::TooLong(body.len()))
        }
    }
}

/// Seals `body` behind `header` into a new datagram.
pub fn seal_message(
    keys: &SessionKeys,
    direction: Direction,
    header: WireHeader,
    body: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::new();
    seal_into(keys, direction, header, body, &mut out)?;
    Ok(out)
}

/// Verifies and decrypts `datagram` in place; returns its header and the plaintext body, which
/// lies inside `datagram`. On any error the buffer's contents are unspecified and must be dropped:
/// after a failed AEAD check the body is zeroed (ring decrypts while it authenticates), so a
/// caller that tries other keys keeps a copy first.
pub fn open_in_place<'a>(
    keys: &SessionKeys,
    direction: Direction,
    datagram: &'a mut [u8],
) -> Result<(WireHeader, &'a mut [u8]), SealError> {
    if datagram.len() < HEADER_LEN + AEAD_TAG_LEN {
        return Err(SealError::Truncated(datagram.len()));
    }
    let header = WireHeader::parse(datagram).map_err(SealError::Header)?;
    check_header(&header, direction)?;
    if !header.tag_verifies(keys.sip_key(direction)) {
        return Err(SealError::BadTag);
    }
    let (head, rest) = datagram.split_at_mut(HEADER_LEN);
    let (body, tag) = rest.split_at_mut(rest.len() - AEAD_TAG_LEN);
    let tag = Tag::try_from(&*tag).map_err(|_| SealError::BadSeal)?;
    cipher(keys, direction)
        .open_in_place_separate_tag(
            Nonce::assume_unique_for_key(aead_nonce(header.nonce.get())),
            Aad::from(&*head),
            tag,
            body,
            0..,
        )
        .map_err(|_| SealError::BadSeal)?;
    Ok((header, body))
}

/// Verifies and decrypts `datagram`; returns its header and plaintext body.
pub fn open_message(
    keys: &SessionKeys,
    direction: Direction,
    datagram: &[u8],
) -> Result<(WireHeader, Vec<u8>), SealError> {
    let mut buffer = datagram.to_vec();
    let (header, body) = open_in_place(keys, direction, &mut buffer)?;
    Ok((header, body.to_vec()))
}

/// Seals a control body: `header` must be of the body's message type.
pub fn seal_body<B: Body>(
    keys: &SessionKeys,
    direction: Direction,
    header: WireHeader,
    body: &B,
) -> Result<Vec<u8>, SealError> {
    if header.msg_type != B::MESSAGE_TYPE as u8 {
        return Err(SealError::UnexpectedType {
            expected: B::MESSAGE_TYPE,
            got: MessageType::from_u8(header.msg_type)
                .ok_or(SealError::Header(HeaderError::UnknownType))?,
        });
    }
    seal_message(keys, direction, header, body.as_body())
}

/// Opens a control message of type `B` and parses its body.
pub fn open_body<B: Body>(
    keys: &SessionKeys,
    direction: Direction,
    datagram: &[u8],
) -> Result<(WireHeader, B), SealError> {
    let (header, body) = open_message(keys, direction, datagram)?;
    let got =
        MessageType::from_u8(header.msg_type).ok_or(SealError::Header(HeaderError::UnknownType))?;
    if got != B::MESSAGE_TYPE {
        return Err(SealError::UnexpectedType {
            expected: B::MESSAGE_TYPE,
            got,
        });
    }
    let parsed = B::from_body(&body).map_err(SealError::Body)?;
    Ok((header, parsed))
}

#[cfg(test)]
mod tests;
