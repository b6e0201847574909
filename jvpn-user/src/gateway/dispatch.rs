//! One datagram in, its effects out: [`Controller::handle`] reads the header and hands the
//! datagram to its message type's handler ([`super::traffic`] for DATA, KEEPALIVE and
//! TERMINATE, [`super::reattach`] for REATTACH_REQUEST and PATH_RESPONSE, [`super::handshake`]
//! for HELLO). A new message type gets its handler here: an `impl Controller` method that takes
//! the datagram, its source, the time and `out`, and pushes [`Effect`]s.

use super::core::Controller;
use super::effect::Effect;
use crate::events::EventRecord;
use crate::session::Millis;
use jvpn_common::{MessageType, RejectReason, WireHeader};
use std::net::SocketAddr;

impl Controller {
    /// Handles one datagram from `from` received at `now`, pushing what must happen into `out`
    /// (a buffer the caller reuses: the DATA path allocates nothing). The effects are performed
    /// in order by the shell; an [`Effect::WriteTun`] points into `datagram`, opened in place.
    pub fn handle(
        &self,
        datagram: &mut [u8],
        from: SocketAddr,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let (message, session) = match WireHeader::parse(datagram) {
            Ok(h) => (h.message_type(), h.session_id.get()),
            Err(e) => {
                out.push(Effect::Publish(
                    EventRecord::refusal(None, RejectReason::Malformed)
                        .with_peer(from)
                        .with_detail(format!("malformed header in the controller: {e:?}")),
                ));
                return;
            }
        };
        match message {
            Some(MessageType::Data | MessageType::Keepalive) => {
                self.on_traffic(datagram, from, now, out)
            }
            Some(MessageType::Hello) => self.screen_hello(datagram, from, now, out),
            Some(MessageType::ReattachRequest) => {
                self.on_reattach_request(datagram, from, now, out)
            }
            Some(MessageType::PathResponse) => self.on_path_response(datagram, from, now, out),
            Some(MessageType::Terminate) => self.on_terminate(datagram, from, now, out),
            _ => out.push(Effect::Publish(
                EventRecord::refusal(Some(session), RejectReason::Malformed)
                    .with_peer(from)
                    .with_detail("a message type only the gateway sends"),
            )),
        }
    }
}
