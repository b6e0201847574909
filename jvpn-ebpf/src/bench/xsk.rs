//! Programs for the receive benchmark (`cargo xtask bench rx`, `tests/benches/rx`) and its test
//! (`tests/tests/xsk_rx_netns.rs`); never attached by the gateway. Both parse to UDP with the real
//! program's parser and match the destination port in `JVPN_BENCH_RX_PORT`, so the two receive
//! paths differ only in where a matching frame goes:
//!
//! - `jvpn_bench_rx_pass` returns `XDP_PASS`: the frame goes on to the UDP stack and the socket,
//!   as an accepted DATA does from the gateway's program.
//! - `jvpn_bench_rx_xsk` redirects it into the AF_XDP socket bound to the frame's receive queue
//!   (`JVPN_BENCH_XSK`, indexed by `rx_queue_index`), bypassing the UDP stack. With no socket in
//!   that slot the frame is passed, so a missing socket shows as frames on the socket path rather
//!   than as silent loss.
//!
//! Frames to any other port, and anything not UDP, are passed in both. Both count the matching
//! frames they see (`JVPN_BENCH_RX_SEEN`), so the benchmark can tell loss before XDP (the veth's
//! ring) from loss after it (the socket's buffer, or the AF_XDP ring).

use aya_ebpf::bindings::xdp_action::XDP_PASS;
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::{Array, PerCpuArray, XskMap};
use aya_ebpf::programs::XdpContext;
use jvpn_ebpf::packet::{udp_datagram, Packet, Transport};

/// The receive queues an AF_XDP socket may be bound to; a veth has as many as its `numrxqueues`.
const MAX_RX_QUEUES: u32 = 64;

/// The UDP destination port whose frames the programs treat as accepted DATA (host byte order;
/// entry 0, set by the benchmark before attaching).
#[map]
static JVPN_BENCH_RX_PORT: Array<u32> = Array::with_max_entries(1, 0);

/// One AF_XDP socket per receive queue, set by the benchmark after binding the socket.
#[map]
static JVPN_BENCH_XSK: XskMap = XskMap::with_max_entries(MAX_RX_QUEUES, 0);

/// Frames to the benchmark's port seen by either program, per CPU (entry 0).
#[map]
static JVPN_BENCH_RX_SEEN: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Whether the frame is a UDP datagram to the benchmark's port; counts it if so.
#[inline(always)]
fn to_bench_port(ctx: &XdpContext) -> bool {
    let packet = Packet::new(ctx);
    let Transport::Udp(datagram) = udp_datagram(&packet) else {
        return false;
    };
    let matches = match JVPN_BENCH_RX_PORT.get(0) {
        Some(&port) => u32::from(datagram.destination_port.get()) == port,
        None => false,
    };
    if matches {
        if let Some(seen) = JVPN_BENCH_RX_SEEN.get_ptr_mut(0) {
            // SAFETY: this CPU's value of a per-CPU array, valid for the program's run; XDP runs
            // are not preempted on their CPU, so nothing else writes it meanwhile.
            unsafe { *seen += 1 };
        }
    }
    matches
}

/// Passes every frame, after the same parse, match and count as `jvpn_bench_rx_xsk`.
#[xdp]
pub fn jvpn_bench_rx_pass(ctx: XdpContext) -> u32 {
    to_bench_port(&ctx);
    XDP_PASS
}

/// Redirects datagrams to the benchmark's port into the AF_XDP socket of their receive queue.
#[xdp]
pub fn jvpn_bench_rx_xsk(ctx: XdpContext) -> u32 {
    if !to_bench_port(&ctx) {
        return XDP_PASS;
    }
    // The low bits of the flags are the action when the slot is empty.
    JVPN_BENCH_XSK
        .redirect(ctx.rx_queue_index(), u64::from(XDP_PASS))
        .unwrap_or(XDP_PASS)
}
