//! `cargo xtask bench dataplane` (`cargo bench -p jvpn-user --bench dataplane`, as root): the
//! per-packet cost of every verdict path of the jvpn XDP program through `BPF_PROG_TEST_RUN`, with
//! 1 and with 1,000,000 sessions in the table, traffic on one hot session or spread over all of
//! them, beside two baselines measured in the same run (`jvpn_bench_drop`, `jvpn_bench_lookup`).
//!
//! A test run repeats one frame, but an accepted DATA needs a fresh nonce and tag every time and
//! spread traffic a different session every time. So every figure comes from the benchmark
//! object's driver program: it copies the next of 1,000,000 prepared frames into the packet and
//! tail-calls the program measured (the real one or a baseline), 1,000,000 times per run. Spread
//! frames visit the sessions in a fresh random order each round, so neither the hash buckets nor
//! the allocation order of the entries line up with the visiting order. Each figure is the median
//! of the rounds (default 5, `--rounds N`); runs of different paths are interleaved, so drift of
//! the machine touches all alike. `--quick` runs only the 1-session scenario. Every run is checked: the counter slot of its path must have
//! moved by exactly the number of packets run.
//!
//! Prints a table and writes `dataplane.json` (a list of `{metric, value, unit, baseline, ratio}`)
//! into `$JVPN_BENCH_DIR`, else `<workspace>/target/bench/`.

#[path = "../tests/xdp_support/mod.rs"]
mod xdp_support;

use aya::maps::{Array, Map, MapData, PerCpuArray, PerCpuValues, ProgramArray};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};
use jvpn_common::abi::{
    BENCH_FRAME_BYTES, BENCH_MAP_CURSOR, BENCH_MAP_FRAMES, BENCH_MAP_ROTATION, BENCH_MAP_SESSIONS,
    BENCH_MAP_TARGET, BENCH_MAX_FRAMES, REPLAY_WINDOW,
};
use jvpn_common::maps::DataplaneMode;
use jvpn_common::reason::{COUNTER_ACCEPTED, COUNTER_TO_CONTROLLER};
use jvpn_common::{MessageType, RejectReason, SessionState};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use xdp_support::*;

/// Packets per run, and frames per rotation.
const PACKETS: u32 = 1_000_000;
/// Sessions the spread traffic visits (the hot session is one more).
const SPREAD_SESSIONS: u32 = 1_000_000;
const HOT_SESSION: u64 = 1;
/// Added to a session id to name one that does not exist.
const ABSENT: u64 = 1 << 40;
const VERSION: u64 = 7;
const KEY: [u8; 16] = [0x42; 16];
/// HELLO sources of spread HELLO traffic: half the LRU's capacity, so no bucket is evicted.
const HELLO_SOURCES: u32 = 1 << 15;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Scenario {
    OneSessionHot,
    MillionHot,
    MillionSpread,
}

impl Scenario {
    fn key(self) -> &'static str {
        match self {
            Self::OneSessionHot => "1_session.hot",
            Self::MillionHot => "1m_sessions.hot",
            Self::MillionSpread => "1m_sessions.spread",
        }
    }
    fn spread(self) -> bool {
        self == Self::MillionSpread
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Path {
    BaselineDrop,
    BaselineLookup,
    AcceptData,
    ControlToController,
    NotJvpn,
    Malformed,
    HandshakeRate,
    UnknownSession,
    BadTag,
    Terminated,
    DuplicateNonce,
    NonceTooOld,
    NotAttached,
    StaleVersion,
    VersionJump,
    TransportMismatch,
}

impl Path {
    const ALL: [Path; 16] = [
        Path::AcceptData,
        Path::ControlToController,
        Path::BaselineDrop,
        Path::BaselineLookup,
        Path::NotJvpn,
        Path::Malformed,
        Path::HandshakeRate,
        Path::UnknownSession,
        Path::BadTag,
        Path::Terminated,
        Path::DuplicateNonce,
        Path::NonceTooOld,
        Path::NotAttached,
        Path::StaleVersion,
        Path::VersionJump,
        Path::TransportMismatch,
    ];

    fn name(self) -> String {
        match self {
            Path::BaselineDrop => "baseline_drop".into(),
            Path::BaselineLookup => "baseline_lookup".into(),
            Path::AcceptData => "accept_data".into(),
            Path::ControlToController => "control_to_controller".into(),
            Path::NotJvpn => "not_jvpn".into(),
            drop => drop.reason().expect("a drop path").name().to_lowercase(),
        }
    }

    fn reason(self) -> Option<RejectReason> {
        Some(match self {
            Path::Malformed => RejectReason::Malformed,
            Path::HandshakeRate => RejectReason::HandshakeRate,
            Path::UnknownSession => RejectReason::UnknownSession,
            Path::BadTag => RejectReason::BadTag,
            Path::Terminated => RejectReason::Terminated,
            Path::DuplicateNonce => RejectReason::DuplicateNonce,
            Path::NonceTooOld => RejectReason::NonceTooOld,
            Path::NotAttached => RejectReason::NotAttached,
            Path::StaleVersion => RejectReason::StaleVersion,
            Path::VersionJump => RejectReason::VersionJump,
            Path::TransportMismatch => RejectReason::TransportMismatch,
            _ => return None,
        })
    }

    /// The counter slot every packet of the path must land in (`None`: checked by verdict).
    fn slot(self) -> Option<u32> {
        match self {
            Path::AcceptData => Some(COUNTER_ACCEPTED),
            Path::ControlToController => Some(COUNTER_TO_CONTROLLER),
            p => p.reason().map(RejectReason::counter_slot),
        }
    }

    /// The state the traffic's sessions must be in for the path.
    fn state(self) -> SessionState {
        match self {
            Path::Terminated => SessionState::Terminated,
            Path::NotAttached => SessionState::Recovering,
            _ => SessionState::Attached,
        }
    }

    /// The figure this path is compared with in the same run and scenario.
    fn baseline(self) -> Option<Path> {
        match self {
            Path::BaselineDrop => None,
            Path::BaselineLookup | Path::NotJvpn => Some(Path::BaselineDrop),
            Path::AcceptData | Path::ControlToController => Some(Path::BaselineLookup),
            _ => Some(Path::AcceptData),
        }
    }
}

/// The benchmark's state: both objects, the frame table and the nonces used so far.
struct Bench {
    jvpn: TestDataplane,
    objects: Ebpf,
    frames: FrameTable,
    client: SocketAddr,
    gateway: SocketAddr,
    /// Next fresh nonce of the hot session, and the highest it accepted.
    hot_nonce: u64,
    /// Next fresh nonce of every spread session (they move together), and the highest accepted.
    spread_nonce: u64,
    /// The order spread traffic visits the sessions in this round.
    order: Vec<u32>,
}

impl Bench {
    fn frame(&self, path: Path, scenario: Scenario, i: u32) -> Vec<u8> {
        let session = match scenario.spread() {
            true => 2 + self.order[i as usize] as u64,
            false => HOT_SESSION,
        };
        let (fresh, last_accepted) = match scenario.spread() {
            true => (self.spread_nonce, self.spread_nonce - 1),
            false => (
                self.hot_nonce + i as u64,
                self.hot_nonce - 1 - (i % 2048) as u64,
            ),
        };
        let data =
            |version: u64, nonce: u64| message(MessageType::Data, session, version, nonce, &KEY, 0);
        let mut source = self.client;
        let payload = match path {
            Path::AcceptData | Path::BaselineDrop | Path::BaselineLookup | Path::NotJvpn => {
                data(VERSION, fresh)
            }
            Path::ControlToController => {
                source.set_port(source.port() + 1);
                message(
                    MessageType::ReattachRequest,
                    session,
                    VERSION,
                    fresh,
                    &KEY,
                    0,
                )
            }
            Path::Malformed => {
                let mut m = data(VERSION, fresh);
                m[0] = 2;
                m
            }
            Path::HandshakeRate => {
                if scenario.spread() {
                    let [_, _, a, b] = (i % HELLO_SOURCES).to_be_bytes();
                    source.set_ip(Ipv4Addr::new(10, 1, a, b).into());
                }
                message(MessageType::Hello, 0, 0, 0, &KEY, 0)
            }
            Path::UnknownSession => {
                message(MessageType::Data, session + ABSENT, VERSION, 1, &KEY, 0)
            }
            Path::BadTag => message(MessageType::Data, session, VERSION, 1, &[0x24; 16], 0),
            Path::Terminated | Path::NotAttached => data(VERSION, 1),
            Path::DuplicateNonce => data(VERSION, last_accepted),
            Path::NonceTooOld => data(VERSION, 1),
            Path::StaleVersion => data(VERSION - 1, 1),
            Path::VersionJump => data(VERSION + 1, 1),
            Path::TransportMismatch => {
                source.set_port(source.port() + 1);
                data(VERSION, 1)
            }
        };
        let mut destination = self.gateway;
        if path == Path::NotJvpn {
            destination.set_port(PORT + 1);
        }
        let mut frame = Udp::new(source, destination, payload).frame();
        frame.resize(BENCH_FRAME_BYTES, 0);
        frame
    }

    /// Writes the sessions of a scenario's traffic in `state`.
    fn set_state(&mut self, scenario: Scenario, state: SessionState) {
        let entry = session(state, VERSION, KEY, self.client);
        if scenario.spread() {
            for i in 0..SPREAD_SESSIONS {
                self.jvpn.set_session(2 + i as u64, entry);
            }
        } else {
            self.jvpn.set_session(HOT_SESSION, entry);
        }
    }

    /// Runs one path once over a fresh rotation of frames; the median of these is the figure.
    /// With `check`, asserts that every packet took the path (not in the warm-up round, whose
    /// first HELLOs are still admitted).
    fn run(&mut self, path: Path, scenario: Scenario, check: bool) -> u64 {
        for i in 0..PACKETS {
            let frame = self.frame(path, scenario, i);
            self.frames.write(i, &frame);
        }
        if path.state() != SessionState::Attached {
            self.set_state(scenario, path.state());
        }
        let target = match path {
            Path::BaselineDrop => self.bench_program("jvpn_bench_drop"),
            Path::BaselineLookup => self.bench_program("jvpn_bench_lookup"),
            _ => self.jvpn.program(),
        }
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
            .bench_program("jvpn_bench_driver")
            .test_run(opts)
            .expect("test run of the driver");
        let moved = counter_delta(&before, &self.jvpn.counters());
        match path.slot() {
            _ if !check => {}
            Some(slot) => assert_eq!(
                moved,
                [(slot, PACKETS as u64, PACKETS as u64 * first.len() as u64)],
                "{} ({}): not every packet took its path",
                path.name(),
                scenario.key()
            ),
            None => assert!(
                moved.is_empty() && result.return_value != 0,
                "{} ({}): moved {moved:?}, verdict {}",
                path.name(),
                scenario.key(),
                result.return_value
            ),
        }
        self.jvpn.events();
        if path.state() != SessionState::Attached {
            self.set_state(scenario, SessionState::Attached);
        }
        if matches!(path, Path::AcceptData | Path::ControlToController) {
            match scenario.spread() {
                true => self.spread_nonce += 1,
                false => self.hot_nonce += PACKETS as u64,
            }
        }
        result.duration.as_nanos() as u64
    }

    fn bench_program(&self, name: &str) -> &Xdp {
        self.objects
            .program(name)
            .expect("benchmark program")
            .try_into()
            .expect("an XDP program")
    }

    /// Runs a baseline program directly on one frame, without the driver.
    fn bare(&self, name: &str) -> u64 {
        let frame = self.frame(Path::AcceptData, Scenario::OneSessionHot, 0);
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&frame);
        opts.repeat = PACKETS;
        self.bench_program(name)
            .test_run(opts)
            .expect("bare test run")
            .duration
            .as_nanos() as u64
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
        // SAFETY: maps the BPF_F_MMAPABLE array's values (laid out back to back, 8-byte multiples)
        // shared and writable; the mapping is checked and kept until `drop`.
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

/// A random permutation of the spread sessions (xorshift; the figures need no better).
fn shuffled(seed: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..SPREAD_SESSIONS).collect();
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order
}

fn main() {
    require_root("dataplane");
    let rounds: usize = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .map_or(5, |n| n.parse().expect("--rounds takes a number"));
    // `--quick`: only the 1-session scenario, for iterating on the program.
    let quick = std::env::args().any(|a| a == "--quick");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    pin_to_cpu(cpus - 1);

    let capacity = SPREAD_SESSIONS + 16;
    let mut jvpn = TestDataplane::load(capacity);
    let mut cfg = config(DataplaneMode::Enforce);
    cfg.hello_burst = 1;
    jvpn.set_config(cfg);
    let mut objects = EbpfLoader::new()
        .map_max_entries(BENCH_MAP_SESSIONS, capacity)
        .load(jvpn_user::dataplane::object::JVPN_BENCH_OBJECT)
        .expect("loading the benchmark object");
    for name in ["jvpn_bench_drop", "jvpn_bench_lookup", "jvpn_bench_driver"] {
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
    let mut bench = Bench {
        jvpn,
        objects,
        frames,
        client: SocketAddr::new(Ipv4Addr::new(192, 0, 2, 10).into(), 40_000),
        gateway: SocketAddr::new(Ipv4Addr::new(198, 51, 100, 1).into(), PORT),
        hot_nonce: 1,
        // Far enough from 1 that nonce 1 is older than the window once the first run is in.
        spread_nonce: 2 * REPLAY_WINDOW,
        order: shuffled(0),
    };
    let mut samples: BTreeMap<(Path, Scenario), Vec<u64>> = BTreeMap::new();
    let mut bare: BTreeMap<String, Vec<u64>> = BTreeMap::new();

    for (scenarios, sessions, label) in [
        (&[Scenario::OneSessionHot][..], 1, "1_session"),
        (
            &[Scenario::MillionHot, Scenario::MillionSpread][..],
            SPREAD_SESSIONS + 1,
            "1m_sessions",
        ),
    ]
    .into_iter()
    .take(if quick { 1 } else { 2 })
    {
        eprintln!("filling the session tables with {sessions} session(s)");
        let entry = session(SessionState::Attached, VERSION, KEY, bench.client);
        bench.jvpn.set_session(HOT_SESSION, entry);
        bench.set_lookup_session(HOT_SESSION, entry);
        if sessions > 1 {
            for i in 0..SPREAD_SESSIONS {
                bench.jvpn.set_session(2 + i as u64, entry);
                bench.set_lookup_session(2 + i as u64, entry);
            }
        }
        // Round 0 warms up: it creates the replay windows and spends the HELLO buckets.
        for round in 0..=rounds {
            bench.order = shuffled(round as u64 + 1);
            for &scenario in scenarios {
                for path in Path::ALL {
                    let ns = bench.run(path, scenario, round > 0);
                    if round > 0 {
                        samples.entry((path, scenario)).or_default().push(ns);
                    }
                }
            }
            if round > 0 {
                bare.entry(format!("bare_drop.{label}"))
                    .or_default()
                    .push(bench.bare("jvpn_bench_drop"));
                bare.entry(format!("bare_lookup.{label}"))
                    .or_default()
                    .push(bench.bare("jvpn_bench_lookup"));
            }
            eprintln!("{sessions} session(s): round {round} of {rounds} done");
        }
    }
    report(&samples, &bare);
}

impl Bench {
    fn set_lookup_session(&mut self, id: u64, entry: jvpn_common::SessionEntry) {
        let mut map: aya::maps::HashMap<&mut MapData, u64, jvpn_common::SessionEntry> =
            aya::maps::HashMap::try_from(
                self.objects
                    .map_mut(BENCH_MAP_SESSIONS)
                    .expect("lookup map"),
            )
            .expect("hash map");
        map.insert(id, entry, 0).expect("writing a lookup session");
    }
}

fn median(values: &[u64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    }
}

fn report(samples: &BTreeMap<(Path, Scenario), Vec<u64>>, bare: &BTreeMap<String, Vec<u64>>) {
    let figure = |path: Path, scenario: Scenario| samples.get(&(path, scenario)).map(|v| median(v));
    let metric = |path: Path, scenario: Scenario| format!("{}.{}", path.name(), scenario.key());
    let mut json = Vec::new();
    let mut entry = |metric: String, value: f64, baseline: Option<(String, f64)>| {
        let (name, ratio) = match baseline {
            Some((name, base)) => (
                serde_json::Value::from(name),
                serde_json::Value::from((value / base * 100.0).round() / 100.0),
            ),
            None => (serde_json::Value::Null, serde_json::Value::Null),
        };
        json.push(serde_json::json!({"metric": metric, "value": value, "unit": "ns/packet", "baseline": name, "ratio": ratio}));
    };
    let scenarios = [
        Scenario::OneSessionHot,
        Scenario::MillionHot,
        Scenario::MillionSpread,
    ];
    println!("\nper-packet cost through BPF_PROG_TEST_RUN, median ns/packet (ratio to the row's baseline)\n");
    println!(
        "{:<24} {:>18} {:>18} {:>18}   baseline",
        "path", "1 session, hot", "1M, hot", "1M, spread"
    );
    for path in Path::ALL {
        let mut line = format!("{:<24}", path.name());
        for scenario in scenarios {
            let Some(value) = figure(path, scenario) else {
                continue;
            };
            let base = path
                .baseline()
                .and_then(|b| figure(b, scenario).map(|v| (b, v)));
            line += &match base {
                Some((_, b)) => format!(" {:>9.0} ({:>4.2}x)", value, value / b),
                None => format!(" {value:>18.0}"),
            };
            entry(
                metric(path, scenario),
                value,
                base.map(|(b, v)| (metric(b, scenario), v)),
            );
        }
        println!(
            "{line}   {}",
            path.baseline().map_or("-".into(), Path::name)
        );
    }
    // Net of the driver: what the program itself adds over the bare XDP_DROP floor.
    println!("\nnet of the driver + XDP_DROP floor (accept vs lookup, the targets' comparison):");
    for scenario in scenarios {
        let (Some(floor), Some(lookup), Some(accept)) = (
            figure(Path::BaselineDrop, scenario),
            figure(Path::BaselineLookup, scenario),
            figure(Path::AcceptData, scenario),
        ) else {
            continue;
        };
        let (accept_net, lookup_net) = (accept - floor, lookup - floor);
        println!(
            "  {:<20} accept {accept_net:>6.0} ns, lookup {lookup_net:>6.0} ns: {:.2}x",
            scenario.key(),
            accept_net / lookup_net
        );
        let name = |p: Path| format!("{}.net", metric(p, scenario));
        entry(name(Path::BaselineLookup), lookup_net, None);
        entry(
            name(Path::AcceptData),
            accept_net,
            Some((name(Path::BaselineLookup), lookup_net)),
        );
    }
    println!("\nwithout the driver (one frame repeated, hot):");
    for label in ["1_session", "1m_sessions"] {
        let (drop, lookup) = (format!("bare_drop.{label}"), format!("bare_lookup.{label}"));
        let (Some(d), Some(l)) = (bare.get(&drop), bare.get(&lookup)) else {
            continue;
        };
        let (d, l) = (median(d), median(l));
        println!("  {label:<20} XDP_DROP {d:>6.0} ns, lookup {l:>6.0} ns");
        entry(drop.clone(), d, None);
        entry(lookup, l, Some((drop, d)));
    }
    let dir = std::env::var_os("JVPN_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench")
        });
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let path = dir.join("dataplane.json");
    let text = serde_json::to_string_pretty(&json).expect("serializing the results");
    std::fs::write(&path, text + "\n")
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!("\nresults written to {}", path.display());
}
