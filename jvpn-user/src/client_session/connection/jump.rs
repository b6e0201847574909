//! Moving a session to another transport: the make-before-break jump (REATTACH_REQUEST, the
//! PATH_CHALLENGE answered from the new socket, the switch at REATTACH_ACK) and the re-handshake
//! that replaces a session which cannot go on.

use super::{establish, ClientConnection, Transport, RECEIVE_BUFFER};
use crate::client_session::bind::{open_transport, LocalBinding};
use crate::client_session::birth::send;
use crate::client_session::connection_error::ConnectionError;
use crate::client_session::ClientEvent;
use jvpn_common::RejectReason;
use std::io::ErrorKind;
use std::sync::Arc;
use tokio::time::{timeout_at, Instant};

/// Reject reasons after which a jump tries again with a new attempt rather than giving up.
fn worth_retrying(reason: RejectReason) -> bool {
    matches!(
        reason,
        RejectReason::PathValidation | RejectReason::ConcurrentMutation | RejectReason::RejectRate
    )
}

impl ClientConnection {
    /// Moves the session to a new transport opened at `to` and returns the new state_version.
    ///
    /// The old transport carries traffic until the gateway acknowledges. On
    /// [`ConnectionError::ReattachTimedOut`] or [`ConnectionError::ReattachRejected`] it stays in
    /// use; a fatal error closes the session ([`ConnectionError::needs_rehandshake`]). Dropping the
    /// future midway may leave the gateway moved and the client not, which the next jump detects
    /// as ambiguous.
    pub async fn jump(&self, to: LocalBinding) -> Result<u64, ConnectionError> {
        let _one_at_a_time = self.transport_change.lock().await;
        let socket = Arc::new(open_transport(&to, self.gateway)?);
        let local = socket
            .local_addr()
            .map_err(ConnectionError::io("read the local address"))?;
        let mut buffer = vec![0u8; RECEIVE_BUFFER];
        for round in 0..self.options.reattach_attempts {
            let request = self.core().reattach_request()?;
            send(&socket, &request).await?;
            self.stats.sent(0);
            let deadline = Instant::now() + self.options.wait(self.options.reattach_wait, round);
            loop {
                let len = match timeout_at(deadline, socket.recv(&mut buffer)).await {
                    Err(_elapsed) => break,
                    Ok(Ok(len)) => len,
                    Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => continue,
                    Ok(Err(e)) => return Err(ConnectionError::io("receive from the gateway")(e)),
                };
                let result = {
                    let mut core = self.core();
                    let result = core.handle(&buffer[..len]);
                    if let Ok(ClientEvent::ReattachAcked { .. }) = result {
                        self.transport.send_replace(Transport {
                            socket: socket.clone(),
                            binding: to.clone(),
                            local,
                        });
                    }
                    result
                };
                match self.account(result)? {
                    Some(ClientEvent::PathChallenge { response, .. }) => {
                        send(&socket, &response).await?;
                        self.stats.sent(0);
                    }
                    Some(ClientEvent::ReattachAcked {
                        new_version,
                        binding,
                    }) => {
                        self.stats.jumped();
                        tracing::info!(state_version = new_version, local = %local, %binding, "jumped to a new transport");
                        return Ok(new_version);
                    }
                    Some(ClientEvent::Rejected { reason, .. }) if worth_retrying(reason) => break,
                    Some(ClientEvent::Rejected {
                        reason,
                        gateway_version,
                        ..
                    }) => {
                        return Err(ConnectionError::ReattachRejected {
                            binding: to.to_string(),
                            reason,
                            gateway_version,
                        })
                    }
                    Some(ClientEvent::Terminated { cause }) => {
                        return Err(ConnectionError::Terminated { cause })
                    }
                    Some(event) => self.carry(event),
                    None => {}
                }
            }
        }
        Err(ConnectionError::ReattachTimedOut {
            binding: to.to_string(),
            attempts: self.options.reattach_attempts,
        })
    }

    /// Hands an event that arrived on the new transport during a jump to [`Self::recv`]; one that
    /// does not fit is dropped and counted as rejected.
    fn carry(&self, event: ClientEvent) {
        if self.carried.try_send(event).is_err() {
            self.stats.rejected();
        }
    }

    /// Starts a new session (a new handshake) on a transport opened at `to`, replacing the
    /// current session and transport; returns the new session id. The way out after an error that
    /// [`ConnectionError::needs_rehandshake`].
    pub async fn rehandshake(&self, to: LocalBinding) -> Result<u64, ConnectionError> {
        let _one_at_a_time = self.transport_change.lock().await;
        let (core, transport) = establish(&self.identity, self.gateway, &to, &self.options).await?;
        let session_id = core.session_id();
        {
            let mut current = self.core();
            *current = core;
            self.transport.send_replace(transport);
        }
        self.stats.handshake_done();
        Ok(session_id)
    }
}
