//! The batched TUN reads of the gateway's downstream (`TunDevice::try_recv_packets`) and the
//! client's upstream (`TunDevice::try_recv_more`, which appends): after an awaited read, the
//! reads already queued are taken without waiting, each exactly once and in order, and an empty
//! queue says so at once instead of blocking. A real TUN device in a fresh
//! namespace; the packets are UDP datagrams the namespace's own stack routes into it.
//!
//! ```text
//!  test ns:  UDP socket 10.77.0.1 --route 10.77.0.0/24--> TUN (10.77.0.1/24) --> TunDevice
//!            (nothing answers inside the tunnel: every datagram is read from the device)
//! ```

use jvpn_tests::netns::{unique_name, Netns};
use jvpn_user::tun::{packet_addresses, ReadBatch, TunDevice};
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::Duration;

const TUN_ADDRESS: &str = "10.77.0.1/24";
const PEER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const PATIENCE: Duration = Duration::from_secs(5);

/// The UDP payload of an IPv4 packet without options.
fn udp_payload(packet: &[u8]) -> &[u8] {
    &packet[28..]
}

#[test]
fn queued_tun_reads_are_taken_without_waiting_each_once_and_in_order() {
    let ns = Netns::new("t");
    let tun_name = unique_name("u");
    ns.run(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let address = TUN_ADDRESS.parse().expect("address");
            let tun = TunDevice::create(&tun_name, 1400, &[address]).expect("the TUN device");
            let mut batch = ReadBatch::default();
            assert!(
                tun.try_recv_packets(&mut batch)
                    .expect("no error")
                    .is_none(),
                "nothing is queued yet: the non-waiting read must say so, not block"
            );

            let socket = UdpSocket::bind("10.77.0.1:0").expect("bind");
            let payloads: Vec<Vec<u8>> = (1..=4u8).map(|i| vec![i; 100 * usize::from(i)]).collect();
            for payload in &payloads {
                socket
                    .send_to(payload, (PEER, 9))
                    .expect("sent into the tunnel");
            }

            let first = tokio::time::timeout(PATIENCE, tun.recv_packets(&mut batch))
                .await
                .expect("the first packet within the patience")
                .expect("read");
            let first: Vec<Vec<u8>> = first.iter().map(<[u8]>::to_vec).collect();
            assert_eq!(first.len(), 1, "one UDP datagram is one packet");
            let mut got = vec![udp_payload(&first[0]).to_vec()];
            // The rest were queued before the first read returned: taken without waiting.
            while let Some(packets) = tun.try_recv_packets(&mut batch).expect("no error") {
                for packet in packets.iter() {
                    assert_eq!(
                        packet_addresses(packet),
                        Some((IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)), IpAddr::V4(PEER)))
                    );
                    got.push(udp_payload(packet).to_vec());
                }
            }
            assert_eq!(got, payloads, "every queued read once, in order");
            assert!(tun
                .try_recv_packets(&mut batch)
                .expect("no error")
                .is_none());

            // The client's upstream: queued reads appended to the awaited one's packets.
            for payload in &payloads {
                socket
                    .send_to(payload, (PEER, 9))
                    .expect("sent into the tunnel");
            }
            tokio::time::timeout(PATIENCE, tun.recv_packets(&mut batch))
                .await
                .expect("the first packet within the patience")
                .expect("read");
            let mut reads = 1;
            while tun.try_recv_more(&mut batch).expect("no error") {
                reads += 1;
            }
            let appended: Vec<Vec<u8>> = batch
                .packets()
                .iter()
                .map(|packet| udp_payload(packet).to_vec())
                .collect();
            assert_eq!(reads, payloads.len(), "one read per datagram");
            assert_eq!(
                appended, payloads,
                "the batch holds every read once, in order"
            );
            assert!(!tun.try_recv_more(&mut batch).expect("no error"));
            assert_eq!(
                batch.packets().len(),
                payloads.len(),
                "an empty queue appends nothing"
            );
        });
    });
}
