//! Shared helpers of the end-to-end tests: network namespaces ([`netns`]), the two-host topology
//! ([`topology`]), jvpn datagrams ([`jvpn`]) and the guards that keep a failed test from leaving
//! state behind ([`guard`]).
//!
//! Every test here needs root: call [`require_root`] first, so a run without it fails with a
//! message saying so rather than with a confusing `EPERM` from deep inside.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod attacker;
pub mod capture;
pub mod event_follower;
pub mod gateway;
pub mod guard;
pub mod jvpn;
pub mod nat;
pub mod netns;
pub mod packet;
pub mod probe;
pub mod topology;
pub mod transfer;
pub mod tunnel;
pub mod veth;
pub mod wire_client;

/// Panics with instructions unless the process runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the end-to-end tests create network namespaces and attach XDP programs, so they must \
         run as root: `sudo -E cargo test -p jvpn-tests` (or `cargo xtask test` as root)"
    );
}
