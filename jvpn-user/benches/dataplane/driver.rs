//! Running the programs: both objects loaded, the driver's frame table mapped into this process,
//! and one measured run of a path (frames written, sessions put in the path's state, the driver
//! test-run, every packet checked to have taken the path).

use super::paths::{
    frame, spread_session, Addresses, Nonces, Path, Scenario, HOT_SESSION, KEY, PACKETS,
    SPREAD_SESSIONS, VERSION,
};
use super::xdp_support::{config, counter_delta, session, TestDataplane};
use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray, PerCpuValues, ProgramArray};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};
use jvpn_common::abi::{
    BENCH_FRAME_BYTES, BENCH_MAP_CURSOR, BENCH_MAP_FRAMES, BENCH_MAP_ROTATION, BENCH_MAP_SESSIONS,
    BENCH_MAP_TARGET, BENCH_MAX_FRAMES, REPLAY_WINDOW,
};
use jvpn_common::maps::DataplaneMode;
use jvpn_common::{SessionEntry, SessionState};
use std::os::fd::{AsFd, AsRawFd};

const DRIVER: &str = "jvpn_bench_driver";
/// The XDP_DROP baseline program.
pub const BASELINE_DROP: &str = "jvpn_bench_drop";
/// The parse-and-lookup baseline program.
pub const BASELINE_LOOKUP: &str = "jvpn_bench_lookup";

/// The benchmark's state: both objects, the frame table and the nonces spent so far.
pub struct Bench {
    jvpn: TestDataplane,
    objects: Ebpf,
    frames: FrameTable,
    to: Addresses,
    nonces: Nonces,
    /// The order spread traffic visits the sessions in this round.
    order: Vec<u32>,
}

impl Bench {
    /// Loads both objects with room for every session.
    pub fn load() -> Self {
        let capacity = SPREAD_SESSIONS + 16;
        let mut jvpn = TestDataplane::load(capacity);
        let mut cfg = config(DataplaneMode::Enforce);
        // The first HELLO of a source passes (in the warm-up round), every later one is refused.
        cfg.hello_burst = 1;
        // A global HELLO budget the bench never spends: every refusal is the per-source bucket's.
        cfg.handshake.global_rate = 0;
        cfg.handshake.global_burst = u32::MAX;
        jvpn.set_config(cfg);
        let mut objects = EbpfLoader::new()
            .map_max_entries(BENCH_MAP_SESSIONS, capacity)
            .load(jvpn_user::dataplane::object::JVPN_BENCH_OBJECT)
            .expect("loading the benchmark object");
        for name in [BASELINE_DROP, BASELINE_LOOKUP, DRIVER] {
            let program: &mut Xdp = objects
                .program_mut(name)
                .expect("benchmark program")
                .try_into()
                .expect("XDP");
            program
                .load()
                .unwrap_or_else(|e| panic!("the verifier refused {name}: {e:#?}"));
        }
        let frames = FrameTable::map(objects.map(BENCH_MAP_FRAMES).expect("frame table"));
        Self {
            jvpn,
            objects,
            frames,
            to: Addresses::default(),
            // Spread nonces start far enough from 1 that nonce 1 is older than the window.
            nonces: Nonces {
                hot: 1,
                spread: 2 * REPLAY_WINDOW,
            },
            order: (0..SPREAD_SESSIONS).collect(),
        }
    }

    /// Puts the hot session, and with `spread` the spread sessions, in both session tables.
    pub fn fill_sessions(&mut self, spread: bool) {
        let entry = session(SessionState::Attached, VERSION, KEY, self.to.client);
        let mut ids = vec![HOT_SESSION];
        if spread {
            ids.extend((0..SPREAD_SESSIONS).map(spread_session));
        }
        let mut lookup: HashMap<&mut MapData, u64, SessionEntry> = HashMap::try_from(
            self.objects
                .map_mut(BENCH_MAP_SESSIONS)
                .expect("lookup map"),
        )
        .expect("hash map");
        for &id in &ids {
            lookup
                .insert(id, entry, 0)
                .expect("writing a lookup session");
            self.jvpn.set_session(id, entry);
        }
    }

    /// Visits the spread sessions in a new random order (xorshift; the figures need no better),
    /// so neither hash buckets nor allocation order line up with the visiting order.
    pub fn shuffle(&mut self, seed: u64) {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for i in (1..self.order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            self.order.swap(i, (state % (i as u64 + 1)) as usize);
        }
    }

    /// Writes the sessions of a scenario's traffic in `state`.
    fn set_state(&mut self, scenario: Scenario, state: SessionState) {
        let entry = session(state, VERSION, KEY, self.to.client);
        if scenario.spread() {
            for i in 0..SPREAD_SESSIONS {
                self.jvpn.set_session(spread_session(i), entry);
            }
        } else {
            self.jvpn.set_session(HOT_SESSION, entry);
        }
    }

    fn frame(&self, path: Path, scenario: Scenario, i: u32) -> Vec<u8> {
        let session = match scenario.spread() {
            true => spread_session(self.order[i as usize]),
            false => HOT_SESSION,
        };
        let slot = self.jvpn.slot_of(session);
        frame(path, scenario, i, (session, slot), &self.nonces, &self.to)
    }

    /// Runs `PACKETS` packets of a path through the driver and returns ns per packet. With
    /// `check`, asserts that every packet took the path (not in the warm-up round, whose first
    /// HELLOs still pass and whose first packets create the replay windows).
    pub fn run(&mut self, path: Path, scenario: Scenario, check: bool) -> u64 {
        for i in 0..PACKETS {
            let frame = self.frame(path, scenario, i);
            self.frames.write(i, &frame);
        }
        if path.state() != SessionState::Attached {
            self.set_state(scenario, path.state());
        }
        let target = match path {
            Path::BaselineDrop => self.program(BASELINE_DROP),
            Path::BaselineLookup => self.program(BASELINE_LOOKUP),
            _ => self.jvpn.program(),
        };
        let target = target
            .fd()
            .expect("loaded program")
            .try_clone()
            .expect("duplicating a program fd");
        let mut slot: ProgramArray<&mut MapData> =
            ProgramArray::try_from(self.objects.map_mut(BENCH_MAP_TARGET).expect("target map"))
                .expect("program array");
        slot.set(0, &target, 0)
            .expect("setting the measured program");
        let mut rotation: Array<&mut MapData, u32> = Array::try_from(
            self.objects
                .map_mut(BENCH_MAP_ROTATION)
                .expect("rotation map"),
        )
        .expect("array");
        rotation.set(0, PACKETS, 0).expect("setting the rotation");
        let cpus = aya::util::nr_cpus().expect("number of CPUs");
        let mut cursor: PerCpuArray<&mut MapData, u32> =
            PerCpuArray::try_from(self.objects.map_mut(BENCH_MAP_CURSOR).expect("cursor map"))
                .expect("per-CPU array");
        let zeros = PerCpuValues::try_from(vec![0u32; cpus]).expect("per-CPU zeros");
        cursor.set(0, zeros, 0).expect("resetting the cursor");

        let before = self.jvpn.counters();
        let first = self.frame(path, scenario, 0);
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&first);
        opts.repeat = PACKETS;
        let result = self
            .program(DRIVER)
            .test_run(opts)
            .expect("test run of the driver");
        let moved = counter_delta(&before, &self.jvpn.counters());
        let what = || format!("{} ({})", path.name(), scenario.key());
        match path.slot() {
            _ if !check => {}
            Some(slot) => assert_eq!(
                moved,
                [(slot, PACKETS as u64, PACKETS as u64 * first.len() as u64)],
                "{}: not every packet took its path",
                what()
            ),
            None => assert!(
                moved.is_empty() && result.return_value != 0,
                "{}: counters moved {moved:?}, verdict {}",
                what(),
                result.return_value
            ),
        }
        // A controller drains the events; so does the benchmark, between runs.
        self.jvpn.events();
        if path.state() != SessionState::Attached {
            self.set_state(scenario, SessionState::Attached);
        }
        if path.spends_nonces() {
            match scenario.spread() {
                true => self.nonces.spread += 1,
                false => self.nonces.hot += PACKETS as u64,
            }
        }
        result.duration.as_nanos() as u64
    }

    /// Runs a baseline program directly on one frame, `PACKETS` times, without the driver.
    pub fn bare(&self, name: &str) -> u64 {
        let frame = self.frame(Path::BaselineLookup, Scenario::OneSessionHot, 0);
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&frame);
        opts.repeat = PACKETS;
        self.program(name)
            .test_run(opts)
            .expect("bare test run")
            .duration
            .as_nanos() as u64
    }

    fn program(&self, name: &str) -> &Xdp {
        self.objects
            .program(name)
            .expect("benchmark program")
            .try_into()
            .expect("an XDP program")
    }
}

/// The driver's frame table, mapped into this process.
struct FrameTable {
    base: *mut u8,
    len: usize,
}

impl FrameTable {
    fn map(map: &Map) -> Self {
        let Map::Array(data) = map else {
            panic!("the frame table is not an array")
        };
        let len = BENCH_MAX_FRAMES as usize * BENCH_FRAME_BYTES;
        // SAFETY: maps the BPF_F_MMAPABLE array's values (back to back, each a multiple of 8
        // bytes) shared and writable; the result is checked and unmapped in `drop`.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                data.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        assert_ne!(
            base,
            libc::MAP_FAILED,
            "mmap of the frame table: {}",
            std::io::Error::last_os_error()
        );
        Self {
            base: base.cast(),
            len,
        }
    }

    fn write(&mut self, index: u32, frame: &[u8]) {
        let offset = index as usize * BENCH_FRAME_BYTES;
        assert!(frame.len() == BENCH_FRAME_BYTES && offset + BENCH_FRAME_BYTES <= self.len);
        // SAFETY: the destination lies inside the mapping (asserted) and does not overlap `frame`.
        unsafe {
            std::ptr::copy_nonoverlapping(frame.as_ptr(), self.base.add(offset), BENCH_FRAME_BYTES)
        };
    }
}

impl Drop for FrameTable {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, which nothing references any more.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}
