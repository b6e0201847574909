//! The jvpn XDP program (`jvpn_xdp`): enforces the versioning model on every packet at the
//! gateway's interface, before the kernel's network stack sees it.
//!
//! Layout: [`maps`] declares every map; [`rules`] applies the decision list and returns a verdict
//! or a refusal with its reason; [`session`] finds a session's line (by slot hint, else by
//! index) and reads it under its sequence lock; [`replay`] runs the lock-free replay window on map memory;
//! [`hello`] admits HELLOs (MACs, budgets, cookies) and [`ratelimit`] holds their token buckets; [`report`] counts every packet it judged and
//! emits security events. Packet bytes are read only through `jvpn_ebpf::packet`.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![expect(
    internal_features,
    reason = "core::intrinsics atomics: the only fetching CAS on BPF"
)]

mod clock;
mod hello;
mod maps;
mod ratelimit;
mod replay;
mod report;
mod rules;
mod session;
mod verdict;

use aya_ebpf::macros::xdp;
use aya_ebpf::programs::XdpContext;
use jvpn_common::GatewayConfig;
use jvpn_ebpf::packet::Packet;

/// Judges one frame: passes what is not jvpn's or passes every rule, drops the rest (or, in
/// monitor mode, passes it too), counting and reporting every jvpn packet.
#[xdp]
pub fn jvpn_xdp(ctx: XdpContext) -> u32 {
    let packet = Packet::new(&ctx);
    let config = config();
    match rules::try_jvpn_xdp(&ctx, &packet, &config) {
        Ok(verdict) => report::passed(verdict, packet.len()),
        Err(refusal) => report::refused(&refusal, packet.len(), &config),
    }
}

/// A copy of the config entry; all zero (unconfigured: pass everything) if it cannot be read.
#[inline(always)]
fn config() -> GatewayConfig {
    maps::JVPN_CONFIG.get(0).copied().unwrap_or_default()
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this; it exists only to satisfy no_std.
    loop {}
}
