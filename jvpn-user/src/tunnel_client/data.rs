//! The client's two data loops: TUN -> session (read, cut, seal, send with UDP GSO) and
//! session -> TUN (read a GRO run, open each datagram in place, write the accepted packets with
//! their TCP segments merged). Every buffer lives as long as its loop.

use super::{binding, Client, TunnelClientError};
use crate::client_session::{ClientEvent, ConnectionError, ReceiveBatch};
use crate::datapath::coalesce::TunWrites;
use crate::datapath::gso::Datagrams;
use crate::tun::ReadBatch;
use jvpn_common::control::TerminateCause;
use jvpn_common::RejectReason;
use std::sync::atomic::Ordering;

/// Most TUN reads the upstream loop sends together (the first awaited, the rest queued).
const UPSTREAM_BATCH_READS: usize = 8;
/// The upstream loop takes no more queued reads once it holds this many packets (a GSO run's
/// most), so a batch stays about one superpacket's worth and a rekey's hold keeps room.
const UPSTREAM_BATCH_PACKETS: usize = 64;

impl Client {
    /// TUN -> session: each read (up to a 64 KiB TCP superpacket, cut into wire-sized packets),
    /// with the reads already queued behind it while they bring fewer than
    /// [`UPSTREAM_BATCH_PACKETS`] packets (a burst of ACKs), is sealed under one lock and sent
    /// with UDP GSO. The batch forms before anything is sealed, so a jump or a rekey between two
    /// reads finds nothing sealed at the version it leaves.
    pub(super) async fn upstream(&self) -> Result<(), TunnelClientError> {
        let mut batch = ReadBatch::default();
        let mut datagrams = Datagrams::default();
        loop {
            self.tun.recv_packets(&mut batch).await?;
            for _ in 1..UPSTREAM_BATCH_READS {
                if batch.packets().len() >= UPSTREAM_BATCH_PACKETS
                    || !self.tun.try_recv_more(&mut batch)?
                {
                    break;
                }
            }
            if let Err(e) = self
                .connection
                .send_packets(batch.packets(), &mut datagrams)
                .await
            {
                tracing::debug!(error = %e, "a tunnel packet was not sent");
            }
        }
    }

    /// Session -> TUN, a run of datagrams at a time; a session that cannot go on is replaced by
    /// a new handshake. What a run accepted is written before its events are acted on.
    pub(super) async fn downstream(&self) -> Result<(), TunnelClientError> {
        let mut batch = ReceiveBatch::default();
        let mut writes = TunWrites::default();
        loop {
            let received = self.connection.recv_batch(&mut batch, &mut writes).await;
            if !writes.is_empty() {
                if let Err(e) = self.tun.send_batch(&mut writes).await {
                    tracing::warn!(error = %e, "cannot write a packet to the tunnel");
                }
            }
            match received {
                Ok(()) => {
                    for event in batch.events.drain(..) {
                        self.on_event(event).await?;
                    }
                }
                Err(e) if e.needs_rehandshake() => {
                    tracing::warn!(error = %e, "the session ended; starting a new handshake");
                    self.connection.rehandshake(binding(&self.uplink())).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Acts on a gateway message other than DATA.
    async fn on_event(&self, event: ClientEvent) -> Result<(), TunnelClientError> {
        match event {
            ClientEvent::Rejected {
                reason: RejectReason::TransportMismatch,
                gateway_version,
                ..
            } if gateway_version == self.connection.state_version() => {
                // Sealed by the gateway, so it is not a forgery; it means our outer address
                // changed on the way (a NAT). Many may arrive for one change: one reattach.
                self.mismatch_at_version
                    .store(gateway_version, Ordering::Relaxed);
                self.transport_changed.notify_one();
            }
            ClientEvent::Terminated { cause } => {
                tracing::warn!(
                    ?cause,
                    "terminated by the gateway: {}; starting a new handshake",
                    crate::client_session::refusal::cause_text(cause)
                );
                match self.connection.rehandshake(binding(&self.uplink())).await {
                    // Removed, or re-keyed under another key or address: a new handshake is
                    // worth one try (only its addresses may have changed), not an endless loop.
                    Err(ConnectionError::HandshakeTimedOut { .. })
                        if cause == TerminateCause::ClientRemoved =>
                    {
                        return Err(TunnelClientError::NoLongerAuthorised { cause });
                    }
                    other => {
                        other?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
