//! The batched receive path of [`ClientConnection`]: one read takes a whole run of gateway
//! datagrams (UDP GRO, [`crate::datapath::gro`]); each is opened in place and judged on its own by
//! the core, exactly as [`ClientConnection::recv`] judges one, and the accepted DATA packets go
//! into a [`TunWrites`] batch that merges consecutive TCP segments for the TUN device.

use super::{ClientConnection, Receiver};
use crate::client_session::birth::send;
use crate::client_session::connection_error::ConnectionError;
use crate::client_session::session::Handled;
use crate::client_session::ClientEvent;
use crate::datapath::coalesce::TunWrites;
use crate::datapath::gro::{self, Received};
use std::io::ErrorKind;
use std::sync::{Arc, Weak};
use tokio::net::UdpSocket;

/// The buffers of [`ClientConnection::recv_batch`], reused from read to read, and the events
/// other than DATA that the last read brought.
#[derive(Debug, Default)]
pub struct ReceiveBatch {
    run: Received,
    /// The socket switched to UDP GRO last (each transport's socket is switched when first read
    /// here; weak, so a replaced transport's socket still closes at the switch).
    gro_socket: Weak<UdpSocket>,
    /// KEEPALIVE, REJECT, REATTACH_ACK, TERMINATE in the order they came.
    pub events: Vec<ClientEvent>,
}

impl ReceiveBatch {
    /// Switches `socket` to UDP GRO unless it is already.
    fn read_runs_from(&mut self, socket: &Arc<UdpSocket>) {
        if self
            .gro_socket
            .upgrade()
            .is_some_and(|s| Arc::ptr_eq(&s, socket))
        {
            return;
        }
        if let Err(e) = gro::enable(socket) {
            tracing::debug!(error = %e, "no UDP GRO on the transport; reading one datagram at a time");
        }
        self.gro_socket = Arc::downgrade(socket);
    }
}

impl ClientConnection {
    /// Waits for the next run of gateway datagrams and judges each: accepted DATA packets are
    /// added to `packets` (the caller writes them to the TUN device), other events to
    /// `batch.events` (cleared first); a PATH_CHALLENGE is answered from the socket it arrived
    /// on. Returns once a run brought something. A fatal refusal returns the error at once;
    /// `packets` keeps what was accepted before it.
    ///
    /// The transport's socket is switched to UDP GRO when first read here: use this or
    /// [`Self::recv`] on a connection, not both.
    pub async fn recv_batch(
        &self,
        batch: &mut ReceiveBatch,
        packets: &mut TunWrites,
    ) -> Result<(), ConnectionError> {
        batch.events.clear();
        let mut receiver = self.receiver.lock().await;
        let Receiver {
            transport, carried, ..
        } = &mut *receiver;
        loop {
            let socket = transport.borrow_and_update().socket.clone();
            batch.read_runs_from(&socket);
            tokio::select! {
                biased;
                Some(event) = carried.recv() => {
                    match event {
                        ClientEvent::Data(packet) => packets.push(&packet),
                        other => batch.events.push(other),
                    }
                    return Ok(());
                }
                _ = transport.changed() => continue,
                received = batch.run.recv(&socket) => match received {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(ConnectionError::io("receive from the gateway")(e)),
                },
            }
            let mut accepted = 0;
            let mut challenges = Vec::new();
            let mut rekeyed = false;
            for datagram in batch.run.datagrams_mut() {
                // One datagram at a time under the core's lock, so the sending task is not held
                // off for a whole run.
                let result = self.core().handle_in_place(datagram);
                match result {
                    Ok(Handled::Packet(packet)) => {
                        self.stats.received(packet.len());
                        packets.push(packet);
                        accepted += 1;
                    }
                    // Counted (and a replay report logged and dropped) as `recv` does.
                    Ok(Handled::Event(event)) => match self.account(Ok(event))? {
                        Some(ClientEvent::PathChallenge { response, .. }) => {
                            challenges.push(response)
                        }
                        Some(event @ ClientEvent::Rekeyed { .. }) => {
                            rekeyed = true;
                            batch.events.push(event);
                        }
                        Some(other) => batch.events.push(other),
                        None => {}
                    },
                    Err(e) if e.is_fatal() => {
                        tracing::warn!(error = %e, "session closed");
                        return Err(e.into());
                    }
                    Err(e) => {
                        self.stats.rejected();
                        tracing::debug!(error = %e, "gateway datagram dropped");
                    }
                }
            }
            for response in challenges {
                send(&socket, &response).await?;
                self.stats.sent(0);
            }
            if rekeyed {
                // What was held while the rekey was pending leaves under the new keys.
                let held = self.take_held();
                self.send_held(held).await?;
            }
            // A run whose datagrams were all refused brings nothing: wait for the next.
            if accepted > 0 || !batch.events.is_empty() {
                return Ok(());
            }
        }
    }
}
