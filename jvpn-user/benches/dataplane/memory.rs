//! Kernel memory per session: the real XDP object loaded with room for [`SESSIONS`] sessions, all
//! of them written and each sent one accepted DATA (so every replay window exists, however the
//! layout creates them), measured two ways:
//!
//! - `memlock`: what the kernel charges the per-session maps (lines, index, replay bitmaps) (`/proc/self/fdinfo`, the
//!   figure `bpftool map show` prints), per session. It counts elements at their own size, not
//!   at the allocator's size class.
//! - `allocated`: the growth of unreclaimable slab plus vmalloc memory (`/proc/meminfo`) over
//!   the load and the fill, per session: what the machine really gave, size classes included.
//!   Other processes move it too, by a few MB against the GB measured.

use super::paths::{Addresses, KEY, VERSION};
use super::xdp_support::{config, message, session, TestDataplane, Udp, XDP_PASS};
use aya::maps::Map;
use jvpn_common::abi::{MAP_REPLAY, MAP_SESSIONS, MAP_SESSION_INDEX};
use jvpn_common::maps::DataplaneMode;
use jvpn_common::{MessageType, SessionState};
use std::os::fd::{AsFd, AsRawFd};

/// Sessions in the measured table (the default capacity of a gateway).
pub const SESSIONS: u32 = 1 << 20;

/// Bytes per session by each measure.
pub struct PerSession {
    /// Charged to the per-session maps.
    pub memlock: f64,
    /// Slab and vmalloc growth.
    pub allocated: f64,
}

/// Loads, fills and measures; everything is freed again on return.
pub fn measure() -> PerSession {
    let before = kernel_bytes();
    let mut dp = TestDataplane::load(SESSIONS);
    dp.set_config(config(DataplaneMode::Enforce));
    let to = Addresses::default();
    let entry = session(SessionState::Attached, VERSION, KEY, to.client);
    for i in 0..SESSIONS {
        let id = 1 + i as u64;
        dp.set_session(id, entry);
        let data = message(MessageType::Data, id, VERSION, 1, &KEY, 0);
        let frame = Udp::new(to.client, to.gateway, data).frame();
        assert_eq!(dp.run(&frame), XDP_PASS, "session {id}: DATA not accepted");
    }
    let allocated = kernel_bytes().saturating_sub(before);
    let memlock = [MAP_SESSIONS, MAP_SESSION_INDEX, MAP_REPLAY]
        .iter()
        .map(|name| memlock(&dp, name))
        .sum::<u64>();
    PerSession {
        memlock: memlock as f64 / SESSIONS as f64,
        allocated: allocated as f64 / SESSIONS as f64,
    }
}

/// The `memlock` line of the map's fdinfo.
fn memlock(dp: &TestDataplane, name: &str) -> u64 {
    let data = match dp.ebpf().map(name).expect("map") {
        Map::HashMap(data) | Map::Array(data) => data,
        _ => panic!("{name} is neither a hash map nor an array"),
    };
    let fd = data.fd().as_fd().as_raw_fd();
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).expect("map fdinfo");
    info.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a memlock line in the map's fdinfo")
}

/// Unreclaimable slab plus vmalloc memory, in bytes.
fn kernel_bytes() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    ["SUnreclaim:", "VmallocUsed:"]
        .iter()
        .map(|key| {
            info.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .expect("a meminfo field")
                * 1024
        })
        .sum()
}
