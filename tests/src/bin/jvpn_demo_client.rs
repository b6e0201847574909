//! The demo's client: a session that jumps between two uplinks while old-path packets keep
//! arriving, driven with the wire-protocol test client so the demo can also show what the
//! dataplane refuses. Run by `cargo xtask demo` inside the client namespace; prints one line per
//! step.
//!
//! Usage: `jvpn-demo-client GATEWAY_ADDR CLIENT_KEY_FILE GATEWAY_PUBLIC_KEY JUMPS
//!         UPLINK=ADDR UPLINK=ADDR` (e.g. `wifi=10.77.1.2 lte=10.77.2.2`).

use jvpn_common::MessageType;
use jvpn_tests::wire_client::{socket, WireClient};
use jvpn_user::config::read_private_key_file;
use jvpn_user::crypto::{ClientIdentity, PresharedKey, PublicKey};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const PACKETS_PER_HOP: usize = 40;
const PAYLOAD: [u8; 1000] = [0x5a; 1000];

struct Uplink {
    name: String,
    socket: UdpSocket,
}

fn uplink(spec: &str) -> Uplink {
    let (name, addr) = spec
        .split_once('=')
        .unwrap_or_else(|| panic!("uplink {spec:?}: expected NAME=ADDRESS"));
    let ip: IpAddr = addr
        .parse()
        .unwrap_or_else(|e| panic!("uplink {spec:?}: {e}"));
    Uplink {
        name: name.to_string(),
        socket: socket(SocketAddr::new(ip, 0)),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [gateway, key_file, gateway_key, jumps, first, second] = args.as_slice() else {
        eprintln!("usage: jvpn-demo-client GATEWAY KEY_FILE GATEWAY_PUBLIC_KEY JUMPS UPLINK=ADDR UPLINK=ADDR");
        std::process::exit(2);
    };
    let gateway: SocketAddr = gateway.parse().expect("gateway address");
    let jumps: usize = jumps.parse().expect("number of jumps");
    let identity = ClientIdentity {
        private_key: read_private_key_file(std::path::Path::new(key_file)).expect("client key"),
        gateway_public_key: PublicKey::from_base64(gateway_key).expect("gateway public key"),
        psk: PresharedKey::none(),
    };
    let uplinks = [uplink(first), uplink(second)];

    let mut client = WireClient::handshake(&identity, &uplinks[0].socket, gateway);
    println!(
        "client: session {:016x} born over {} at version {}",
        client.id, uplinks[0].name, client.acked
    );
    let mut bytes = 0usize;
    let mut current = 0;
    for jump in 1..=jumps {
        for _ in 0..PACKETS_PER_HOP {
            let datagram = client.data(&PAYLOAD);
            uplinks[current]
                .socket
                .send_to(&datagram, gateway)
                .expect("send DATA");
            bytes += PAYLOAD.len();
            std::thread::sleep(Duration::from_millis(5));
        }
        // A packet sealed on the old path that will still arrive there after the jump.
        let late = client.seal(MessageType::Data, client.acked, &PAYLOAD);
        let next = 1 - current;
        let from = client.acked;
        let started = Instant::now();
        let version = client.jump(&uplinks[next].socket);
        println!(
            "client: jump {jump}: {} -> {}, version {from} -> {version}, path validated and committed in {:.1} ms",
            uplinks[current].name,
            uplinks[next].name,
            started.elapsed().as_secs_f64() * 1e3
        );
        uplinks[current]
            .socket
            .send_to(&late, gateway)
            .expect("send late DATA");
        println!(
            "client:   a late packet at version {from} still arrives on {}: the XDP program must drop it",
            uplinks[current].name
        );
        current = next;
    }
    let terminate = client.terminate();
    uplinks[current]
        .socket
        .send_to(&terminate, gateway)
        .expect("send TERMINATE");
    println!(
        "client: session {:016x} ends; {jumps} jumps, {bytes} bytes of DATA sent, last acknowledged version {}",
        client.id, client.acked
    );
}
