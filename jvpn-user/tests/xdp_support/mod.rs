//! Shared by the `BPF_PROG_TEST_RUN` tests (`tests/xdp_*.rs`) and the dataplane benchmark: loads
//! the real XDP object without pins, writes its maps, and reads its counters and events. The
//! frames it runs are built in [`frames`].
#![allow(
    dead_code,
    reason = "each test crate uses a different part of the support module"
)]

use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};
use jvpn_common::abi::{
    HEADER_KEY_LEN, MAP_CONFIG, MAP_COUNTERS, MAP_EVENTS, MAP_EVENT_LOSS, MAP_REPLAY, MAP_SESSIONS,
    MAP_SESSION_INDEX, PROGRAM_NAME,
};
use jvpn_common::maps::{DataplaneMode, EventLoss, HandshakeGuard};
use jvpn_common::reason::COUNTER_SLOTS;
use jvpn_common::wire::Be16;
use jvpn_common::{
    DropCounter, GatewayConfig, SecurityEvent, SessionEntry, SessionState, TransportBinding,
};
use jvpn_user::dataplane::ReplaySlots;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

mod datagrams;
mod frames;
mod sessions;
pub use datagrams::*;
pub use frames::*;

/// XDP verdicts as the kernel returns them from a test run.
pub const XDP_DROP: u32 = 1;
/// See [`XDP_DROP`].
pub const XDP_PASS: u32 = 2;

/// The gateway port the tests configure.
pub const PORT: u16 = 51900;

/// Panics with what to do if the tests do not run as root (loading BPF programs needs it).
pub fn require_root(what: &str) {
    let euid = nix::unistd::geteuid();
    assert!(
        euid.is_root(),
        "{what} loads the jvpn XDP program and needs root (euid is {euid}): run it as root, \
         e.g. `sudo -E cargo test -p jvpn-user --test {what}`, or run `cargo xtask test` as root"
    );
}

/// Pins the calling thread to `cpu`, so per-CPU state and concurrency are what the test says.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it (cpu < 1024).
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        result,
        0,
        "pinning to CPU {cpu} failed: {}",
        std::io::Error::last_os_error()
    );
}

/// A session entry as the controller writes it.
pub fn session(
    state: SessionState,
    version: u64,
    key: [u8; HEADER_KEY_LEN],
    transport: SocketAddr,
) -> SessionEntry {
    SessionEntry {
        state_version: version,
        header_key: key,
        transport: TransportBinding::from_socket_addr(transport),
        state: state as u8,
        _pad: [0; 3],
        replay_slot: 0,
        session_id: 0,
    }
}

/// The config the tests run under, unless a test says otherwise.
pub fn config(mode: DataplaneMode) -> GatewayConfig {
    GatewayConfig {
        port: Be16::new(PORT),
        mode: mode as u8,
        flags: 0,
        hello_rate: 0,
        hello_burst: 2,
        events_per_second: 1_000,
        handshake: HandshakeGuard {
            mac1_key: MAC1_KEY,
            cookie_secret: COOKIE_SECRET,
            previous_cookie_secret: PREVIOUS_COOKIE_SECRET,
            global_rate: 0,
            global_burst: 1_000,
            cookie_rate: 0,
            cookie_burst: 1_000,
            under_load: 0,
            _pad: [0; 7],
        },
    }
}

/// The current cookie secret of [`config`].
pub const COOKIE_SECRET: [u8; 16] = [0xc1; 16];
/// The previous cookie secret of [`config`].
pub const PREVIOUS_COOKIE_SECRET: [u8; 16] = [0xc0; 16];

/// The real XDP object, loaded (not attached, not pinned) for test runs. Sessions get their
/// slots from the dataplane's own bookkeeping ([`ReplaySlots`]), with the same map writes, in
/// the same order, as `Dataplane::upsert_session` and `remove_session` (lines are written with
/// `bpf_map_update_elem` here: nothing runs the program while a test writes).
pub struct TestDataplane {
    ebpf: Ebpf,
    slots: ReplaySlots,
    /// The slot of every session with one (the bookkeeping has no reverse index).
    slot_of: std::collections::HashMap<u64, u32>,
}

impl TestDataplane {
    /// Loads the object with room for `max_sessions` sessions and loads its program.
    pub fn load(max_sessions: u32) -> Self {
        Self::load_with(max_sessions, max_sessions)
    }

    /// Loads the object with the given capacities of the session array (and its index) and the
    /// replay array. Slots are handed out over the session array.
    pub fn load_with(max_sessions: u32, max_replay_windows: u32) -> Self {
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(MAP_SESSIONS, max_sessions)
            // Room beyond the slots for the stale index entries tests plant.
            .map_max_entries(MAP_SESSION_INDEX, max_sessions + 16)
            .map_max_entries(MAP_REPLAY, max_replay_windows)
            .load(jvpn_user::dataplane::object::JVPN_XDP_OBJECT)
            .expect("loading the jvpn XDP object");
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .expect("the object has the jvpn_xdp program")
            .try_into()
            .expect("jvpn_xdp is an XDP program");
        program
            .load()
            .unwrap_or_else(|e| panic!("the verifier refused jvpn_xdp: {e:#?}"));
        Self {
            ebpf,
            slots: ReplaySlots::new(max_sessions),
            slot_of: Default::default(),
        }
    }

    /// The loaded object.
    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    /// The program.
    pub fn program(&self) -> &Xdp {
        self.ebpf
            .program(PROGRAM_NAME)
            .expect("jvpn_xdp")
            .try_into()
            .expect("jvpn_xdp is an XDP program")
    }

    /// Writes the config entry.
    pub fn set_config(&mut self, config: GatewayConfig) {
        let mut map: Array<&mut MapData, GatewayConfig> =
            Array::try_from(self.ebpf.map_mut(MAP_CONFIG).expect("config map"))
                .expect("config map type");
        map.set(0, config, 0).expect("writing the config");
    }

    /// Takes the event ring buffer out of the object, for a caller that drains it often (each
    /// [`TestDataplane::events`] call maps the ring anew).
    pub fn take_event_ring(&mut self) -> RingBuf<MapData> {
        RingBuf::try_from(self.ebpf.take_map(MAP_EVENTS).expect("event ring"))
            .expect("event ring type")
    }

    /// Runs `frame` once and returns the XDP action.
    pub fn run(&self, frame: &[u8]) -> u32 {
        self.run_repeat(frame, 1)
    }

    /// Runs `frame` `repeat` times and returns the last XDP action.
    pub fn run_repeat(&self, frame: &[u8], repeat: u32) -> u32 {
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.repeat = repeat;
        self.program()
            .test_run(opts)
            .expect("BPF_PROG_TEST_RUN of jvpn_xdp")
            .return_value
    }

    /// Every counter slot, summed over CPUs.
    pub fn counters(&self) -> Vec<DropCounter> {
        let map: PerCpuArray<&MapData, DropCounter> =
            PerCpuArray::try_from(self.ebpf.map(MAP_COUNTERS).expect("counter map"))
                .expect("counter map type");
        (0..COUNTER_SLOTS)
            .map(|slot| {
                map.get(&slot, 0).expect("reading a counter").iter().fold(
                    DropCounter::default(),
                    |sum, c| DropCounter {
                        packets: sum.packets + c.packets,
                        bytes: sum.bytes + c.bytes,
                    },
                )
            })
            .collect()
    }

    /// One counter slot, summed over CPUs.
    pub fn counter(&self, slot: u32) -> DropCounter {
        let map: PerCpuArray<&MapData, DropCounter> =
            PerCpuArray::try_from(self.ebpf.map(MAP_COUNTERS).expect("counter map"))
                .expect("counter map type");
        map.get(&slot, 0).expect("reading a counter").iter().fold(
            DropCounter::default(),
            |sum, c| DropCounter {
                packets: sum.packets + c.packets,
                bytes: sum.bytes + c.bytes,
            },
        )
    }

    /// The events lost for the reason in `slot`, summed over CPUs.
    pub fn event_loss(&self, slot: u32) -> EventLoss {
        let map: PerCpuArray<&MapData, EventLoss> =
            PerCpuArray::try_from(self.ebpf.map(MAP_EVENT_LOSS).expect("event loss map"))
                .expect("event loss map type");
        map.get(&slot, 0).expect("reading event loss").iter().fold(
            EventLoss::default(),
            |sum, l| EventLoss {
                rate_limited: sum.rate_limited + l.rate_limited,
                ring_full: sum.ring_full + l.ring_full,
            },
        )
    }

    /// Drains the event ring buffer.
    pub fn events(&mut self) -> Vec<SecurityEvent> {
        let mut ring = RingBuf::try_from(self.ebpf.map_mut(MAP_EVENTS).expect("event ring"))
            .expect("event ring type");
        let mut events = Vec::new();
        while let Some(item) = ring.next() {
            assert_eq!(
                item.len(),
                std::mem::size_of::<SecurityEvent>(),
                "event record size"
            );
            events.push(bytemuck::pod_read_unaligned(&item));
        }
        events
    }
}

/// The program's aya-log records, captured as text.
pub struct CapturedLogs {
    logger: aya_log::EbpfLogger<Capture>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl CapturedLogs {
    /// Every record logged since the last call, as `LEVEL message`.
    pub fn drain(&mut self) -> Vec<String> {
        self.logger.flush();
        std::mem::take(&mut *self.lines.lock().expect("log lines"))
    }
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        self.0.lock().expect("log lines").push(line);
    }
    fn flush(&self) {}
}

impl TestDataplane {
    /// Starts capturing the program's aya-log records.
    pub fn capture_logs(&mut self) -> CapturedLogs {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let logger = aya_log::EbpfLogger::init_with_logger(&mut self.ebpf, Capture(lines.clone()))
            .expect("the object has an aya-log ring");
        CapturedLogs { logger, lines }
    }
}

/// Counter deltas between two snapshots of [`TestDataplane::counters`], as (slot, packets, bytes)
/// for every slot that moved.
pub fn counter_delta(before: &[DropCounter], after: &[DropCounter]) -> Vec<(u32, u64, u64)> {
    before
        .iter()
        .zip(after)
        .enumerate()
        .filter(|(_, (b, a))| b != a)
        .map(|(slot, (b, a))| (slot as u32, a.packets - b.packets, a.bytes - b.bytes))
        .collect()
}
