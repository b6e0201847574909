//! A steady stream of small UDP datagrams from the client namespace to a receiver in the gateway
//! namespace, each carrying its sequence number and send time, so that after a jump the first
//! datagram sent after it can be told apart from the ones that were already on their way.
//!
//! The sender and the receiver are threads of this process, each moved into its namespace, so
//! send and receive times come from one monotonic clock ([`now_ns`]). The stream goes either
//! through the tunnel (to the gateway's tunnel address; the `jvpn client` picks the uplink) or bare
//! (to the gateway's veth address from a socket bound to one uplink, `SO_BINDTODEVICE`), where
//! [`Stream::switch`] is the baseline's "jump": later datagrams leave from the other uplink's
//! socket.

use jvpn_tests::bench::topology::{Topology, Uplink, GATEWAY_ADDR, TUNNEL_GATEWAY_ADDR, UPLINKS};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The receiver's port (all addresses of the gateway namespace).
const STREAM_PORT: u16 = 5300;
/// Bytes of every datagram: tag, sequence number, send time, padding.
const DATAGRAM_LEN: usize = 64;
/// How long the receiver keeps listening after the sender stopped, for datagrams in flight.
const DRAIN: Duration = Duration::from_millis(200);
/// Tags told apart the datagrams of successive streams on the same port.
static NEXT_TAG: AtomicU32 = AtomicU32::new(0x6a76_0000);

/// Nanoseconds on the run's monotonic clock.
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Which way the stream goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Through the tunnel: to 10.99.0.1, over whichever uplink the `jvpn client` uses.
    Tunnel,
    /// Bare: to the gateway's veth address, from a socket bound to one uplink.
    Bare,
}

/// One datagram the receiver got.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    /// Its sequence number.
    pub seq: u64,
    /// When it was sent.
    pub sent_ns: u64,
    /// When the receiver had it.
    pub received_ns: u64,
}

/// What a finished stream sent and what arrived.
#[derive(Debug)]
pub struct Recording {
    /// Send time of every datagram, indexed by sequence number.
    pub sent_ns: Vec<u64>,
    /// Every distinct datagram that arrived, in order of arrival.
    pub arrivals: Vec<Arrival>,
}

/// A running stream.
#[derive(Debug)]
pub struct Stream {
    stop_sender: Arc<AtomicBool>,
    stop_receiver: Arc<AtomicBool>,
    uplink: Arc<AtomicUsize>,
    sender: JoinHandle<Vec<u64>>,
    receiver: JoinHandle<Vec<Arrival>>,
}

impl Stream {
    /// Starts the receiver, then a sender of one datagram every `interval` (bare: from wifi).
    pub fn start(topology: &Topology, route: Route, interval: Duration) -> Self {
        let tag = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
        let stop_sender = Arc::new(AtomicBool::new(false));
        let stop_receiver = Arc::new(AtomicBool::new(false));
        let uplink = Arc::new(AtomicUsize::new(0));
        let (ready, bound) = std::sync::mpsc::channel();
        let receiver = {
            let stop = stop_receiver.clone();
            let ns = topology.gateway.path();
            std::thread::spawn(move || {
                jvpn_tests::netns::enter(&ns);
                let socket = UdpSocket::bind(SocketAddrV4::new(0.into(), STREAM_PORT))
                    .expect("binding the stream receiver");
                socket
                    .set_read_timeout(Some(Duration::from_millis(20)))
                    .expect("setting a receive timeout");
                ready.send(()).expect("signalling the receiver is bound");
                receive(&socket, tag, &stop)
            })
        };
        bound.recv().expect("the receiver thread started");
        let sender = {
            let stop = stop_sender.clone();
            let uplink = uplink.clone();
            let ns = topology.client.path();
            std::thread::spawn(move || {
                jvpn_tests::netns::enter(&ns);
                let sockets = open_senders(route);
                send(&sockets, &uplink, tag, interval, &stop)
            })
        };
        Self {
            stop_sender,
            stop_receiver,
            uplink,
            sender,
            receiver,
        }
    }

    /// Bare streams only: datagrams sent from now on leave from `uplink`'s socket.
    pub fn switch(&self, uplink: Uplink) {
        self.uplink.store(uplink, Ordering::SeqCst);
    }

    /// Stops the sender, waits for datagrams in flight, stops the receiver.
    pub fn finish(self) -> Recording {
        self.stop_sender.store(true, Ordering::SeqCst);
        let sent_ns = self.sender.join().expect("the stream sender panicked");
        std::thread::sleep(DRAIN);
        self.stop_receiver.store(true, Ordering::SeqCst);
        let arrivals = self.receiver.join().expect("the stream receiver panicked");
        Recording { sent_ns, arrivals }
    }
}

/// The sender's sockets: one for the tunnel, or one per uplink for the bare route.
fn open_senders(route: Route) -> Vec<UdpSocket> {
    let connect = |destination: std::net::Ipv4Addr, device: Option<&str>| {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .expect("a UDP socket");
        if let Some(device) = device {
            socket
                .bind_device(Some(device.as_bytes()))
                .unwrap_or_else(|e| panic!("binding the stream sender to {device}: {e}"));
        }
        let to = SocketAddr::from((destination, STREAM_PORT));
        socket
            .connect(&to.into())
            .unwrap_or_else(|e| panic!("connecting the stream sender to {to}: {e}"));
        UdpSocket::from(socket)
    };
    match route {
        Route::Tunnel => vec![connect(TUNNEL_GATEWAY_ADDR, None)],
        Route::Bare => UPLINKS
            .iter()
            .map(|uplink| connect(GATEWAY_ADDR, Some(uplink)))
            .collect(),
    }
}

/// Sends one datagram every `interval` until `stop`; returns the send times.
fn send(
    sockets: &[UdpSocket],
    uplink: &AtomicUsize,
    tag: u32,
    interval: Duration,
    stop: &AtomicBool,
) -> Vec<u64> {
    let mut sent = Vec::new();
    let mut datagram = [0u8; DATAGRAM_LEN];
    datagram[..4].copy_from_slice(&tag.to_le_bytes());
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let socket = &sockets[uplink.load(Ordering::SeqCst) % sockets.len()];
        let sent_ns = now_ns();
        datagram[4..12].copy_from_slice(&(sent.len() as u64).to_le_bytes());
        datagram[12..20].copy_from_slice(&sent_ns.to_le_bytes());
        // A datagram the kernel refuses is lost like one dropped on the way; the analysis counts it.
        let _ = socket.send(&datagram);
        sent.push(sent_ns);
        next += interval;
        let now = Instant::now();
        match next.checked_duration_since(now) {
            Some(wait) => std::thread::sleep(wait),
            // Late (the machine was busy): keep the pace from now rather than send a burst.
            None => next = now,
        }
    }
    sent
}

/// Receives until `stop`; returns each distinct datagram of stream `tag` once.
fn receive(socket: &UdpSocket, tag: u32, stop: &AtomicBool) -> Vec<Arrival> {
    let mut arrivals = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut buffer = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok(len) = socket.recv(&mut buffer) else {
            continue;
        };
        let received_ns = now_ns();
        let word = |range: std::ops::Range<usize>| {
            u64::from_le_bytes(buffer[range].try_into().expect("8 bytes"))
        };
        if len != DATAGRAM_LEN || buffer[..4] != tag.to_le_bytes() {
            continue;
        }
        let (seq, sent_ns) = (word(4..12), word(12..20));
        if seen.insert(seq) {
            arrivals.push(Arrival {
                seq,
                sent_ns,
                received_ns,
            });
        }
    }
    arrivals
}
