//! `cargo xtask bench flood` (`cargo bench -p jvpn-tests --bench flood`, as root): what floods at
//! the gateway port cost an established tunnel and a new client (issue 8, defect 4), beside the
//! same measured without a flood in the same run.
//!
//! The tunnel bench's topology and daemons (real `jvpn gateway` with XDP and TUN, real `jvpn
//! client` with TUN, through a router namespace). For each phase (no flood, then each flood):
//! - **Throughput**: iperf3 TCP upstream through the tunnel while the flood runs.
//! - **Handshake**: a new client (`ClientConnection::connect`, the real client code, cookie
//!   exchange included) from the client namespace, timed from its first HELLO to its session.
//!
//! Floods, each of at least `--count` datagrams (1,000,000), from a raw socket in the router
//! namespace, as fast as it sends: spoofed HELLOs with a valid mac1 from 240 spoofed sources of
//! the gateway's link; and garbage mixed with headers of unknown sessions carrying forged tags.
//! Options: `--seconds N` per iperf3 run (5), `--count N` (1000000), `--quick` (2 s, 300000).
//! Writes `flood.json`. Makes no performance assertions.

#![deny(unsafe_code)]

use jvpn_common::abi::DEFAULT_PORT;
use jvpn_common::siphash::SipKey;
use jvpn_common::{MessageType, WireHeader};
use jvpn_tests::attacker::Noise;
use jvpn_tests::bench::daemons::Vpn;
use jvpn_tests::bench::iperf::{self, IperfServer};
use jvpn_tests::bench::report::Report;
use jvpn_tests::bench::topology::{Topology, GATEWAY_ADDR, TUNNEL_GATEWAY_ADDR};
use jvpn_tests::bench::Args;
use jvpn_tests::spoof::{fresh_hello, ipv4_udp, RawSender, StopOnDrop};
use jvpn_user::client_session::{ClientConnection, ConnectOptions, LocalBinding};
use jvpn_user::config::read_private_key_file;
use jvpn_user::crypto::cookie::mac1_sip_key;
use jvpn_user::crypto::handshake::tai64n;
use jvpn_user::crypto::{ClientHandshake, ClientIdentity, PresharedKey};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

/// New handshakes per phase (the client key holds at most 8 live sessions: 1 + 3 phases x 2).
const HANDSHAKES: usize = 2;

#[derive(Clone, Copy, Debug)]
struct Options {
    seconds: u64,
    count: u64,
}

impl Options {
    fn parse() -> Self {
        let mut options = Self {
            seconds: 5,
            count: 1_000_000,
        };
        let mut args = Args::from_env();
        while let Some(arg) = args.next_flag() {
            match arg.as_str() {
                "--seconds" => options.seconds = args.number("--seconds").max(1),
                "--count" => options.count = args.number("--count"),
                "--quick" => (options.seconds, options.count) = (2, 300_000),
                other => panic!("unknown option {other}; use --seconds N, --count N or --quick"),
            }
        }
        options
    }
}

/// What a phase floods the gateway with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flood {
    None,
    SpoofedHellos,
    GarbageAndForged,
}

impl Flood {
    fn key(self) -> &'static str {
        match self {
            Flood::None => "no_flood",
            Flood::SpoofedHellos => "spoofed_hellos",
            Flood::GarbageAndForged => "garbage_and_forged",
        }
    }
}

/// The frames of a flood, rotated until it ends.
fn frames(flood: Flood, template: &[u8], mac1_key: SipKey) -> Vec<Vec<u8>> {
    let mut noise = Noise::new(0x9e37_79b9_7f4a_7c15);
    let gateway = SocketAddrV4::new(GATEWAY_ADDR, DEFAULT_PORT);
    (0..4096u32)
        .map(|i| {
            let source = Ipv4Addr::new(10, 200, 0, 10 + (i % 240) as u8);
            let port = 1024 + i as u16;
            let payload = match flood {
                Flood::SpoofedHellos => fresh_hello(template, &mut noise, mac1_key),
                Flood::GarbageAndForged if i % 2 == 0 => noise.bytes(64 + i as usize % 512),
                _ => {
                    let session = noise.next_u64() | 1;
                    let mut header = WireHeader::new(MessageType::Data, session, 1, 1 + i as u64);
                    header.tag = jvpn_common::wire::Be64::new(noise.next_u64());
                    [header.as_bytes().as_slice(), &noise.bytes(64)].concat()
                }
            };
            ipv4_udp(SocketAddrV4::new(source, port), gateway, &payload)
        })
        .collect()
}

/// Sends `frames` in rotation from a raw socket in the router namespace until `done` and at
/// least `count`; returns the datagrams sent.
fn run_flood(router: &Path, frames: &[Vec<u8>], count: u64, done: &AtomicBool) -> u64 {
    jvpn_tests::netns::enter(router);
    RawSender::open().flood(frames, count, done)
}

/// Times `HANDSHAKES` new handshakes from the client namespace, in seconds (infinite: failed).
fn handshakes(client: &Path, identity: &ClientIdentity) -> Vec<f64> {
    let identity = identity.clone();
    std::thread::scope(|s| {
        s.spawn(move || {
            jvpn_tests::netns::enter(client);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            (0..HANDSHAKES)
                .map(|_| {
                    let started = Instant::now();
                    let connected = runtime.block_on(ClientConnection::connect(
                        identity.clone(),
                        SocketAddr::new(GATEWAY_ADDR.into(), DEFAULT_PORT),
                        LocalBinding::any(),
                        ConnectOptions::default(),
                    ));
                    match connected {
                        Ok(_) => started.elapsed().as_secs_f64(),
                        Err(e) => {
                            eprintln!("a new handshake failed: {e}");
                            f64::INFINITY
                        }
                    }
                })
                .collect()
        })
        .join()
        .expect("the handshake thread")
    })
}

fn main() {
    jvpn_tests::require_root();
    let options = Options::parse();
    let mut report = Report::start();
    let topology = Topology::build();
    let _iperf = IperfServer::start(&topology.gateway);
    let mut vpn = Vpn::start(&topology);
    let gateway_key =
        read_private_key_file(&vpn.dir().join("gateway.key")).expect("the gateway key");
    let identity = ClientIdentity {
        private_key: read_private_key_file(&vpn.dir().join("client.key")).expect("the client key"),
        gateway_public_key: gateway_key.public_key(),
        psk: PresharedKey::none(),
    };
    let (_, template) = ClientHandshake::start(&identity, tai64n(SystemTime::now())).unwrap();
    let mac1_key = mac1_sip_key(&identity.gateway_public_key);

    let (router, client) = (topology.router.path(), topology.client.path());
    for flood in [Flood::None, Flood::SpoofedHellos, Flood::GarbageAndForged] {
        eprintln!("phase {}", flood.key());
        let frames = frames(flood, &template, mac1_key);
        let done = AtomicBool::new(false);
        let (sent, throughput, took, flood_seconds) = std::thread::scope(|s| {
            let started = Instant::now();
            let flooder = (flood != Flood::None)
                .then(|| s.spawn(|| run_flood(&router, &frames, options.count, &done)));
            let stop = StopOnDrop(&done);
            if flooder.is_some() {
                // The flood first fills the buckets and the handshake queue.
                std::thread::sleep(Duration::from_millis(500));
            }
            let throughput = iperf::tcp(
                &topology.client,
                TUNNEL_GATEWAY_ADDR,
                options.seconds,
                false,
            );
            let took = handshakes(&client, &identity);
            drop(stop);
            let sent = flooder.map_or(0, |f| f.join().expect("the flood"));
            (sent, throughput, took, started.elapsed().as_secs_f64())
        });
        vpn.check_running();
        let worst = took.iter().cloned().fold(0.0, f64::max);
        let key = flood.key();
        if flood == Flood::None {
            report.add(format!("{key}.throughput"), throughput.mbit_per_s, "Mbit/s");
            report.add(format!("{key}.handshake_worst"), worst * 1e3, "ms");
        } else {
            report.add(format!("{key}.datagrams"), sent as f64, "datagrams");
            report.add(
                format!("{key}.rate"),
                sent as f64 / flood_seconds / 1e6,
                "Mpps",
            );
            report.add_vs(
                format!("{key}.throughput"),
                throughput.mbit_per_s,
                "Mbit/s",
                "no_flood.throughput",
            );
            report.add_vs(
                format!("{key}.handshake_worst"),
                worst * 1e3,
                "ms",
                "no_flood.handshake_worst",
            );
        }
    }
    report.print();
    let path = report.write_as("flood");
    println!("\nresults written to {}", path.display());
}
