//! The batched data path shared by the client and the gateway: what sits between the TUN device
//! and the sealing of DATA, and between sealing and the UDP socket.
//!
//! - [`vnet`]: the `virtio_net_hdr` before each TUN packet once the device has offloads;
//! - [`segment`]: a TCP superpacket read from the TUN device cut into wire-sized IP packets
//!   before each is sealed on its own (the wire format is unchanged);
//! - [`gso`]: sealed datagrams laid end to end and sent with UDP GSO, one `sendmsg` per run;
//! - [`gro`]: the receiving socket's side: UDP GRO, one `recvmsg` per run of datagrams, split
//!   apart before each is opened on its own;
//! - [`coalesce`]: opened TCP segments of one flow merged into one superpacket per TUN write;
//! - `checksum`: the Internet checksum both directions recompute.
//!
//! Nothing here opens, checks or routes: authentication, replay and cryptokey routing stay on
//! every packet where they were.

mod checksum;
pub mod coalesce;
pub mod gro;
pub mod gso;
pub mod segment;
pub mod vnet;
