//! Programs for the dataplane benchmark (`jvpn-user/benches/dataplane.rs`); never attached by the
//! gateway. The baselines are measured in the same run as `jvpn_xdp`, so its cost is read as a
//! ratio rather than as nanoseconds that drift with the machine:
//!
//! - `jvpn_bench_drop` returns `XDP_DROP`: the floor.
//! - `jvpn_bench_lookup` parses to UDP with the real program's parser and looks the header's
//!   session id up in a hash map shaped like the session table of layouts 2 to 4 (kept as it
//!   was, so ratios compare across layouts): the least any session-keyed check can cost.
//!
//! `BPF_PROG_TEST_RUN` repeats one frame, but an accepted DATA needs a fresh nonce (and a fresh
//! tag) every time, and traffic spread over a million sessions needs a different session id
//! every time. So `jvpn_bench_driver` copies the next frame of a table filled by the benchmark
//! into the packet and tail-calls the program under measurement; driving the baselines the same
//! way puts the driver's cost into every figure alike.
//!
//! The receive benchmark's programs (`jvpn_bench_rx_*`) live in [`xsk`].
#![no_std]
#![no_main]

mod xsk;

use aya_ebpf::bindings::xdp_action::{XDP_ABORTED, XDP_DROP, XDP_PASS};
use aya_ebpf::bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC};
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::{Array, HashMap, PerCpuArray, ProgramArray};
use aya_ebpf::programs::XdpContext;
use jvpn_common::abi::{BENCH_FRAME_BYTES, BENCH_MAX_FRAMES, DEFAULT_MAX_SESSIONS};
use jvpn_common::{SessionEntry, WireHeader};
use jvpn_ebpf::packet::{udp_datagram, Packet, Transport};

const FRAME_WORDS: usize = BENCH_FRAME_BYTES / 8;

/// Same key, value and flags as `JVPN_SESSIONS` of layouts 2 to 4 (a hash map by session id of
/// 64-byte `SessionEntry` values); the benchmark sets its capacity at load.
#[map]
static JVPN_BENCH_SESSIONS: HashMap<u64, SessionEntry> =
    HashMap::with_max_entries(DEFAULT_MAX_SESSIONS, BPF_F_NO_PREALLOC);

/// The frames the driver copies into the packet, written by the benchmark through `mmap`.
#[map]
static JVPN_BENCH_FRAMES: Array<[u64; FRAME_WORDS]> =
    Array::with_max_entries(BENCH_MAX_FRAMES, BPF_F_MMAPABLE);

/// How many frames of the table rotate.
#[map]
static JVPN_BENCH_ROTATION: Array<u32> = Array::with_max_entries(1, 0);

/// The index of this CPU's next frame.
#[map]
static JVPN_BENCH_CURSOR: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// The program under measurement, slot 0.
#[map]
static JVPN_BENCH_TARGET: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Drops every frame.
#[xdp]
pub fn jvpn_bench_drop(_ctx: XdpContext) -> u32 {
    XDP_DROP
}

/// Parses to the UDP payload and looks up the session id of the jvpn header: drops the frame if
/// the session exists, passes it otherwise (so the lookup's result is used).
#[xdp]
pub fn jvpn_bench_lookup(ctx: XdpContext) -> u32 {
    let packet = Packet::new(&ctx);
    let Transport::Udp(datagram) = udp_datagram(&packet) else {
        return XDP_PASS;
    };
    let Some(header) = packet.read::<WireHeader>(datagram.payload) else {
        return XDP_PASS;
    };
    match JVPN_BENCH_SESSIONS.get_ptr(header.session_id.get()) {
        Some(_) => XDP_DROP,
        None => XDP_PASS,
    }
}

/// Writes the next frame of the rotation over the packet and tail-calls the program under
/// measurement; `XDP_ABORTED` if anything is missing (the benchmark checks the verdicts).
#[xdp]
pub fn jvpn_bench_driver(ctx: XdpContext) -> u32 {
    let packet = Packet::new(&ctx);
    let Some(&rotation) = JVPN_BENCH_ROTATION.get(0) else {
        return XDP_ABORTED;
    };
    let Some(cursor) = JVPN_BENCH_CURSOR.get_ptr_mut(0) else {
        return XDP_ABORTED;
    };
    // SAFETY: this CPU's value of a per-CPU array, valid for the run; test runs on one CPU do not
    // overlap.
    let index = unsafe { *cursor };
    // SAFETY: as above.
    unsafe { *cursor = if index + 1 >= rotation { 0 } else { index + 1 } };
    let Some(frame) = JVPN_BENCH_FRAMES.get_ptr(index) else {
        return XDP_ABORTED;
    };
    let Some(destination) = packet.bytes_mut(0, BENCH_FRAME_BYTES) else {
        return XDP_ABORTED;
    };
    let destination = destination.cast::<u64>();
    for word in 0..FRAME_WORDS {
        // SAFETY: `frame` is a live array value of FRAME_WORDS words; `destination` has
        // BENCH_FRAME_BYTES writable packet bytes (checked by `bytes_mut`), and test runs place
        // the packet 8-byte aligned (after a 256-byte headroom).
        unsafe { destination.add(word).write((*frame)[word]) };
    }
    // SAFETY: the context is this program's; on success control never returns here.
    unsafe { JVPN_BENCH_TARGET.tail_call(&ctx, 0) };
    XDP_ABORTED
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
