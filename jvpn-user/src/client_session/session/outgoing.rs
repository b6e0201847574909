//! What the client seals: DATA, KEEPALIVE, REATTACH_REQUEST and TERMINATE, each under the
//! session's current keys with the next client-to-gateway nonce, at the acknowledged version. The
//! nonce counter stops at the gateway's ceiling (spec section 8): going on could only be refused.

use super::{ClientSessionState, SessionRefusal, UNANSWERED_REATTACH_LIMIT};
use crate::client_session::refusal::Closed;
use crate::client_session::versions::PendingReattach;
use crate::crypto::{seal_append, seal_body, seal_into, Direction};
use jvpn_common::control::{Body, ReattachRequest, Terminate, TerminateCause};
use jvpn_common::version::NONCE_CEILING;
use jvpn_common::wire::{Be64, MessageType, WireHeader};

impl ClientSessionState {
    /// Seals one IP packet as DATA at the acknowledged version.
    pub fn seal_data(&mut self, payload: &[u8]) -> Result<Vec<u8>, SessionRefusal> {
        let mut out = Vec::new();
        self.seal_data_into(payload, &mut out)?;
        Ok(out)
    }

    /// Seals one IP packet as DATA into `out` (replacing its contents), reusing its allocation.
    pub fn seal_data_into(
        &mut self,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SessionRefusal> {
        let header = self.next_header(MessageType::Data, self.acked_version)?;
        seal_into(&self.keys, Direction::ClientToGateway, header, payload, out)
            .map_err(SessionRefusal::Seal)
    }

    /// Seals one IP packet as DATA at the end of `out` (a batch of datagrams laid end to end).
    pub fn seal_data_append(
        &mut self,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SessionRefusal> {
        let header = self.next_header(MessageType::Data, self.acked_version)?;
        seal_append(&self.keys, Direction::ClientToGateway, header, payload, out)
            .map_err(SessionRefusal::Seal)
    }

    /// A KEEPALIVE at the acknowledged version.
    pub fn keepalive(&mut self) -> Result<Vec<u8>, SessionRefusal> {
        let header = self.next_header(MessageType::Keepalive, self.acked_version)?;
        let mut out = Vec::new();
        seal_into(
            &self.keys,
            Direction::ClientToGateway,
            header,
            &[],
            &mut out,
        )
        .map_err(SessionRefusal::Seal)?;
        Ok(out)
    }

    /// A REATTACH_REQUEST carrying the acknowledged version, as a new attempt (the previous
    /// attempt, and any challenge it received, is abandoned). Send it from the new transport.
    ///
    /// After [`UNANSWERED_REATTACH_LIMIT`] requests without an answer the core closes itself
    /// instead ([`Closed::Unanswered`]): start a new handshake.
    pub fn reattach_request(&mut self) -> Result<Vec<u8>, SessionRefusal> {
        self.ensure_open()?;
        if self.unanswered_reattaches >= UNANSWERED_REATTACH_LIMIT {
            let closed = Closed::Unanswered(self.unanswered_reattaches);
            self.closed = Some(closed);
            return Err(SessionRefusal::Closed(closed));
        }
        let attempt = self.latest_attempt + 1;
        let body = ReattachRequest {
            acked_version: Be64::new(self.acked_version),
            attempt: Be64::new(attempt),
        };
        let datagram = self.seal_control(self.acked_version, &body)?;
        self.latest_attempt = attempt;
        self.unanswered_reattaches += 1;
        // The gateway may still complete an earlier attempt whose challenge was answered (its
        // REATTACH_ACK at challenged + 1 can arrive after this request left): keep that version.
        let challenged_version = self.pending.and_then(|p| p.challenged_version);
        self.pending = Some(PendingReattach {
            attempt,
            challenged_version,
        });
        Ok(datagram)
    }

    /// A TERMINATE for `cause`; the core is closed afterwards.
    pub fn terminate(&mut self, cause: TerminateCause) -> Result<Vec<u8>, SessionRefusal> {
        let datagram = self.seal_control(self.acked_version, &Terminate::new(cause))?;
        self.closed = Some(Closed::ByClient(cause));
        Ok(datagram)
    }

    /// The header of the next sealed message, consuming a nonce.
    pub(super) fn next_header(
        &mut self,
        message_type: MessageType,
        version: u64,
    ) -> Result<WireHeader, SessionRefusal> {
        self.ensure_open()?;
        if self.next_nonce >= NONCE_CEILING {
            self.closed = Some(Closed::NonceExhausted);
            return Err(SessionRefusal::NonceExhausted);
        }
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        let mut header = WireHeader::new(message_type, self.session_id, version, nonce);
        header.set_hinted_slot(self.slot_hint);
        Ok(header)
    }

    pub(super) fn seal_control<B: Body>(
        &mut self,
        version: u64,
        body: &B,
    ) -> Result<Vec<u8>, SessionRefusal> {
        let header = self.next_header(B::MESSAGE_TYPE, version)?;
        seal_body(&self.keys, Direction::ClientToGateway, header, body)
            .map_err(SessionRefusal::Seal)
    }

    /// Moves the nonce counter, so tests can reach the safety margin without sealing 2^64 messages.
    #[cfg(test)]
    pub(crate) fn set_next_nonce_for_test(&mut self, nonce: u64) {
        self.next_nonce = nonce;
    }
}
