//! The tokio driver of one client session: the handshake over UDP, sending and receiving, the
//! jump to a new transport, re-handshakes and keepalives.
//!
//! [`ClientConnection`] wraps the sans-IO [`ClientSessionState`] with sockets and timers. Every
//! method takes `&self`, so one task can read the tunnel device and [`ClientConnection::send`]
//! while another [`ClientConnection::recv`]s and a third jumps.
//!
//! A jump is make-before-break: [`ClientConnection::jump`] opens a new socket, sends
//! REATTACH_REQUEST from it, answers the PATH_CHALLENGE from it, and only when the REATTACH_ACK
//! arrives switches sending and receiving to it (under the core's lock, so no DATA is sealed at the
//! old version and sent from the new socket). Until then the old socket carries traffic both ways.
//! The old socket is closed at the switch: anything still in flight to it is dropped.
//!
//! Deciding *when* to jump is not this type's business: [`ClientConnection::liveness`] and
//! [`ClientConnection::local_addr`] are what a supervisor watches (`jvpn client` does, in
//! `tunnel_client`: silence and route changes), and it calls `jump`.

use super::bind::{open_transport, LocalBinding};
use super::birth::{handshake, send};
use super::connection_error::ConnectionError;
use super::options::ConnectOptions;
use super::session::{ClientSessionState, ClientSnapshot};
use super::stats::{ConnectionCounters, Liveness, Stats};
use super::ClientEvent;
use crate::config::ClientSettings;
use crate::crypto::ClientIdentity;
use crate::datapath::gso::Datagrams;
use crate::datapath::segment::Packets;
use jvpn_common::control::{TerminateCause, WelcomePayload};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Events that arrived on a new transport during a jump, held for [`ClientConnection::recv`].
const CARRIED_EVENTS: usize = 256;
/// Receive buffer: the largest UDP payload.
const RECEIVE_BUFFER: usize = u16::MAX as usize;

/// One transport: a socket connected to the gateway.
#[derive(Clone, Debug)]
struct Transport {
    socket: Arc<UdpSocket>,
    binding: LocalBinding,
    local: SocketAddr,
}

/// What [`ClientConnection::recv`] owns while it waits.
struct Receiver {
    transport: watch::Receiver<Transport>,
    carried: mpsc::Receiver<ClientEvent>,
    buffer: Vec<u8>,
}

/// A client session with its transport: see the module documentation.
pub struct ClientConnection {
    identity: ClientIdentity,
    gateway: SocketAddr,
    options: ConnectOptions,
    core: Mutex<ClientSessionState>,
    transport: watch::Sender<Transport>,
    receiver: tokio::sync::Mutex<Receiver>,
    carried: mpsc::Sender<ClientEvent>,
    /// Jumps and re-handshakes replace the transport; one at a time.
    transport_change: tokio::sync::Mutex<()>,
    stats: Stats,
    /// Upstream packets held while a rekey is pending ([`rekey`]).
    held: Mutex<rekey::Held>,
}

/// Opens a transport at `local` and runs a handshake over it.
async fn establish(
    identity: &ClientIdentity,
    gateway: SocketAddr,
    local: &LocalBinding,
    options: &ConnectOptions,
) -> Result<(ClientSessionState, Transport), ConnectionError> {
    let socket = open_transport(local, gateway)?;
    let session = handshake(identity, &socket, gateway, options).await?;
    let core = ClientSessionState::new(session)?;
    let local_addr = socket
        .local_addr()
        .map_err(ConnectionError::io("read the local address"))?;
    tracing::info!(session = format_args!("{:#x}", core.session_id()), state_version = core.acked_version(), %gateway, local = %local_addr, "session established");
    let transport = Transport {
        socket: Arc::new(socket),
        binding: local.clone(),
        local: local_addr,
    };
    Ok((core, transport))
}

impl ClientConnection {
    /// Runs the handshake with `gateway` from a transport at `local`.
    pub async fn connect(
        identity: ClientIdentity,
        gateway: SocketAddr,
        local: LocalBinding,
        options: ConnectOptions,
    ) -> Result<Self, ConnectionError> {
        let (core, transport) = establish(&identity, gateway, &local, &options).await?;
        let stats = Stats::new(Instant::now());
        stats.handshake_done();
        let (transport, transport_rx) = watch::channel(transport);
        let (carried, carried_rx) = mpsc::channel(CARRIED_EVENTS);
        Ok(Self {
            identity,
            gateway,
            options,
            core: Mutex::new(core),
            transport,
            receiver: tokio::sync::Mutex::new(Receiver {
                transport: transport_rx,
                carried: carried_rx,
                buffer: vec![0; RECEIVE_BUFFER],
            }),
            carried,
            transport_change: tokio::sync::Mutex::new(()),
            stats,
            held: Mutex::default(),
        })
    }

    /// Resolves the gateway of `settings` (the first address of `local`'s family) and connects.
    pub async fn connect_with_settings(
        settings: &ClientSettings,
        local: LocalBinding,
        options: ConnectOptions,
    ) -> Result<Self, ConnectionError> {
        let host = settings.gateway_address();
        let mut addresses = match tokio::net::lookup_host(host.clone()).await {
            Ok(addresses) => addresses,
            Err(source) => return Err(ConnectionError::Resolve { host, source }),
        };
        let Some(gateway) =
            addresses.find(|a| local.address.is_none_or(|l| l.is_ipv4() == a.is_ipv4()))
        else {
            return Err(ConnectionError::NoAddress { host });
        };
        Self::connect(settings.identity(), gateway, local, options).await
    }

    fn core(&self) -> MutexGuard<'_, ClientSessionState> {
        self.core
            .lock()
            .expect("client core lock poisoned: a panic inside the core")
    }

    fn current(&self) -> Transport {
        self.transport.borrow().clone()
    }

    /// The current transport's socket; read under the core's lock when sealing, so a message
    /// sealed at the old version never leaves from a socket the jump already switched to.
    fn current_socket(&self) -> Arc<UdpSocket> {
        self.transport.borrow().socket.clone()
    }

    /// The session id.
    pub fn session_id(&self) -> u64 {
        self.core().session_id()
    }

    /// The latest acknowledged state_version.
    pub fn state_version(&self) -> u64 {
        self.core().acked_version()
    }

    /// Everything the core decides with.
    pub fn snapshot(&self) -> ClientSnapshot {
        self.core().snapshot()
    }

    /// The WELCOME of the current session: tunnel addresses, MTU, keepalive interval.
    pub fn welcome(&self) -> WelcomePayload {
        *self.core().welcome()
    }

    /// The keepalive interval the gateway asked for, if any.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        match self.welcome().keepalive_interval_secs.get() {
            0 => None,
            secs => Some(Duration::from_secs(secs.into())),
        }
    }

    /// The gateway's address.
    pub fn gateway(&self) -> SocketAddr {
        self.gateway
    }

    /// The current transport's local address (the source the route chose).
    pub fn local_addr(&self) -> SocketAddr {
        self.current().local
    }

    /// Where the current transport was opened.
    pub fn local_binding(&self) -> LocalBinding {
        self.current().binding
    }

    /// Datagram and byte counters.
    pub fn counters(&self) -> ConnectionCounters {
        self.stats.counters()
    }

    /// When the client last sent and last accepted a datagram.
    pub fn liveness(&self) -> Liveness {
        self.stats.liveness()
    }

    /// Seals one IP packet and sends it on the current transport.
    pub async fn send(&self, packet: &[u8]) -> Result<(), ConnectionError> {
        let (datagram, socket) = {
            let mut core = self.core();
            (core.seal_data(packet)?, self.current_socket())
        };
        send(&socket, &datagram).await?;
        self.stats.sent(packet.len());
        Ok(())
    }

    /// Seals a batch of IP packets (one TUN read, cut) into `datagrams` under one lock of the
    /// core, and sends them on the current transport with UDP GSO. A packet that cannot be
    /// sealed is skipped (counted by the caller's error); the rest still go.
    pub async fn send_packets(
        &self,
        packets: &Packets,
        datagrams: &mut Datagrams,
    ) -> Result<(), ConnectionError> {
        match self.hold_or_release(packets) {
            rekey::Upstream::Held => return Ok(()),
            rekey::Upstream::Send { earlier } => self.send_held(earlier).await?,
        }
        datagrams.clear();
        let mut bytes = 0;
        let (socket, refused) = {
            let mut core = self.core();
            let mut refused = None;
            for packet in packets.iter() {
                match datagrams.push_with(|out| core.seal_data_append(packet, out)) {
                    Ok(()) => bytes += packet.len(),
                    Err(e) => refused = Some(e),
                }
            }
            (self.current_socket(), refused)
        };
        if !datagrams.is_empty() {
            datagrams
                .send(&socket, None)
                .await
                .map_err(ConnectionError::io("send to the gateway"))?;
            self.stats.sent_many(datagrams.len(), bytes);
        }
        match refused {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Sends a KEEPALIVE on the current transport.
    pub async fn keepalive(&self) -> Result<(), ConnectionError> {
        let (datagram, socket) = {
            let mut core = self.core();
            (core.keepalive()?, self.current_socket())
        };
        send(&socket, &datagram).await?;
        self.stats.sent(0);
        Ok(())
    }

    /// Sends TERMINATE; the session is closed afterwards.
    pub async fn terminate(&self, cause: TerminateCause) -> Result<(), ConnectionError> {
        let (datagram, socket) = {
            let mut core = self.core();
            (core.terminate(cause)?, self.current_socket())
        };
        send(&socket, &datagram).await?;
        self.stats.sent(0);
        Ok(())
    }

    /// Sends a KEEPALIVE whenever nothing was sent for `interval` (keeps NAT bindings alive);
    /// runs until sending fails. Spawn it beside the connection.
    pub async fn run_keepalives(&self, interval: Duration) -> Result<(), ConnectionError> {
        loop {
            let due = self.liveness().last_sent + interval;
            if Instant::now() >= due {
                self.keepalive().await?;
            } else {
                tokio::time::sleep_until(due).await;
            }
        }
    }

    /// The next event from the gateway: DATA, KEEPALIVE, REJECT, TERMINATE (after which the
    /// session is closed). Refused datagrams are counted and skipped; a stray PATH_CHALLENGE is
    /// answered from the socket it arrived on. A fatal refusal ends the session:
    /// [`ConnectionError::needs_rehandshake`].
    pub async fn recv(&self) -> Result<ClientEvent, ConnectionError> {
        let mut receiver = self.receiver.lock().await;
        let Receiver {
            transport,
            carried,
            buffer,
        } = &mut *receiver;
        loop {
            let socket = transport.borrow_and_update().socket.clone();
            let len = tokio::select! {
                biased;
                Some(event) = carried.recv() => return Ok(event),
                _ = transport.changed() => continue,
                received = socket.recv(buffer) => match received {
                    Ok(len) => len,
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(ConnectionError::io("receive from the gateway")(e)),
                },
            };
            let result = self.core().handle(&buffer[..len]);
            match self.account(result)? {
                Some(ClientEvent::PathChallenge { response, .. }) => {
                    send(&socket, &response).await?;
                    self.stats.sent(0);
                }
                Some(event @ ClientEvent::Rekeyed { .. }) => {
                    let held = self.take_held();
                    self.send_held(held).await?;
                    return Ok(event);
                }
                Some(event) => return Ok(event),
                None => {}
            }
        }
    }

    /// Counts the outcome of one datagram; `None` for a refusal the session survives, and for a
    /// REJECT reporting a replay, which is information only: logged and counted here, it reaches
    /// neither a jump in flight nor [`Self::recv`]'s caller, so neither gives anything up on it.
    fn account(
        &self,
        result: Result<ClientEvent, super::SessionRefusal>,
    ) -> Result<Option<ClientEvent>, ConnectionError> {
        match result {
            Ok(ClientEvent::ReplayReported {
                reason,
                gateway_version,
                rejected_nonce,
            }) => {
                self.stats.replay_reported();
                tracing::info!(
                    reason = reason.name(),
                    gateway_version,
                    rejected_nonce,
                    "the gateway refused a replayed copy of an earlier message; nothing changes"
                );
                Ok(None)
            }
            Ok(event) => {
                let data = match &event {
                    ClientEvent::Data(packet) => packet.len(),
                    _ => 0,
                };
                self.stats.received(data);
                Ok(Some(event))
            }
            Err(e) if e.is_fatal() => {
                tracing::warn!(error = %e, "session closed");
                Err(e.into())
            }
            Err(e) => {
                self.stats.rejected();
                tracing::debug!(error = %e, "gateway datagram dropped");
                Ok(None)
            }
        }
    }
}

impl std::fmt::Debug for ClientConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConnection")
            .field("gateway", &self.gateway)
            .field("local", &self.local_addr())
            .field("core", &self.snapshot())
            .finish_non_exhaustive()
    }
}

mod jump;
pub mod receive;
mod rekey;
#[cfg(test)]
mod tests;
