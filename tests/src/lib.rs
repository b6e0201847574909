//! The one home of jvpn's test and benchmark harnesses: network namespaces ([`netns`]), the
//! two-host topology ([`topology`]), jvpn datagrams ([`jvpn`]), spoofed datagrams from a raw
//! socket ([`spoof`]), waiting for another process ([`probe::eventually`]), the guards that keep a
//! failed test from leaving state behind ([`guard`]), and what the netns benchmarks share
//! ([`bench`]: `cargo xtask bench tunnel` and `flood`, in `tests/benches`).
//!
//! Every test and benchmark here needs root: call [`require_root`] first, so a run without it
//! fails with a message saying so rather than with a confusing `EPERM` from deep inside.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod attacker;
pub mod bench;
pub mod byte_stream;
pub mod capture;
pub mod cluster_node;
/// The jvpn datagrams of jvpn-user's `BPF_PROG_TEST_RUN` tests (sealed headers, HELLOs with mac1
/// and mac2), shared by path as [`frames`] is.
#[path = "../../jvpn-user/tests/xdp_support/datagrams.rs"]
pub mod datagrams;
pub mod etcd_cluster;
pub mod event_follower;
/// The frame builders of jvpn-user's `BPF_PROG_TEST_RUN` tests, one file shared by path (jvpn-user's
/// tests cannot depend on this crate, which depends on jvpn-user): the Internet checksum, VLAN
/// tags, IPv4/IPv6 shapes, whole Ethernet frames of jvpn messages.
#[path = "../../jvpn-user/tests/xdp_support/frames.rs"]
pub mod frames;
pub mod gateway;
pub mod gro_batch;
pub mod gso_run;
pub mod guard;
pub mod jvpn;
pub mod nat;
pub mod netns;
pub mod packet;
pub mod probe;
pub mod spoof;
pub mod topology;
pub mod transfer;
pub mod tunnel;
pub mod veth;
pub mod vpn_client;
pub mod wire_client;
pub mod xsk;
pub mod xsk_rx;

/// The gateway's port, as [`frames`] names it.
const PORT: u16 = jvpn_common::abi::DEFAULT_PORT;

/// Panics with instructions unless the process runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "jvpn's end-to-end tests and netns benchmarks create network namespaces and attach XDP \
         programs, so they must run as root: `sudo -E cargo test -p jvpn-tests`, or `cargo xtask \
         test` / `cargo xtask bench NAME` in a root shell"
    );
}
