//! The authenticated body of a gateway message, decoded by its type.

use super::refusal::SessionRefusal;
use crate::crypto::{Direction, SealError};
use jvpn_common::control::{
    Body, BodyError, PathChallenge, ReattachAck, Reject, RekeyAck, Terminate,
};
use jvpn_common::wire::MessageType;

/// A gateway-to-client message whose seal opened, with its body parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GatewayMessage<'a> {
    /// DATA: one IP packet (opened in place, inside the datagram).
    Data(&'a [u8]),
    /// KEEPALIVE: an empty body.
    Keepalive,
    /// PATH_CHALLENGE.
    PathChallenge(PathChallenge),
    /// REATTACH_ACK.
    ReattachAck(ReattachAck),
    /// REJECT.
    Reject(Reject),
    /// TERMINATE.
    Terminate(Terminate),
    /// REKEY_ACK.
    RekeyAck(RekeyAck),
}

impl<'a> GatewayMessage<'a> {
    /// Parses the opened `body` of a message of `message_type`.
    pub(crate) fn decode(
        message_type: MessageType,
        body: &'a [u8],
    ) -> Result<Self, SessionRefusal> {
        let malformed = |e: BodyError| SessionRefusal::Malformed(SealError::Body(e));
        Ok(match message_type {
            MessageType::Data => Self::Data(body),
            MessageType::Keepalive if body.is_empty() => Self::Keepalive,
            MessageType::Keepalive => {
                return Err(malformed(BodyError::WrongLength {
                    expected: 0,
                    got: body.len(),
                }))
            }
            MessageType::PathChallenge => {
                Self::PathChallenge(PathChallenge::from_body(body).map_err(malformed)?)
            }
            MessageType::ReattachAck => {
                Self::ReattachAck(ReattachAck::from_body(body).map_err(malformed)?)
            }
            MessageType::Reject => Self::Reject(Reject::from_body(body).map_err(malformed)?),
            MessageType::Terminate => {
                Self::Terminate(Terminate::from_body(body).map_err(malformed)?)
            }
            MessageType::RekeyAck => Self::RekeyAck(RekeyAck::from_body(body).map_err(malformed)?),
            // `open_message` refuses these for this direction already; kept total for safety.
            other @ (MessageType::Hello
            | MessageType::Welcome
            | MessageType::CookieReply
            | MessageType::ReattachRequest
            | MessageType::PathResponse
            | MessageType::RekeyInit) => {
                return Err(SessionRefusal::Malformed(SealError::WrongDirection(
                    other,
                    Direction::GatewayToClient,
                )))
            }
        })
    }

    /// The message's type.
    pub(crate) fn message_type(&self) -> MessageType {
        match self {
            Self::Data(_) => MessageType::Data,
            Self::Keepalive => MessageType::Keepalive,
            Self::PathChallenge(_) => MessageType::PathChallenge,
            Self::ReattachAck(_) => MessageType::ReattachAck,
            Self::Reject(_) => MessageType::Reject,
            Self::Terminate(_) => MessageType::Terminate,
            Self::RekeyAck(_) => MessageType::RekeyAck,
        }
    }
}
