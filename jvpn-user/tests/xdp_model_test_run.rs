//! The real jvpn XDP object against the reference model (`xdp_model`), frame by frame: a
//! million hostile frames (`xdp_model::generate`) through `BPF_PROG_TEST_RUN`, each run once
//! (repeat 1), and for every one the verdict, the counter slot that moved (by one packet of the
//! frame's bytes) and the security event (reason, source, header fields) must be the model's.
//! Every 64 frames the sessions move as the controller would move them, in the map and in the
//! model alike; the replay windows and HELLO buckets are the program's own, mirrored by the
//! model as it judges. Every 8192 frames, and at the end, all counter slots are compared.
//!
//! The run is bounded by time, not by a count: it stops at `JVPN_MODEL_FRAMES` frames (default
//! 1,000,000), or once `JVPN_MODEL_SECONDS` (default 180) have passed and it has judged at least
//! `JVPN_MODEL_MIN_FRAMES` (default 200,000, never fewer than [`FLOOR_FRAMES`]) and reached every
//! verdict of [`must_reach`]. A slow machine (the kernels tier's emulated CPUs set a short budget
//! and a low minimum) so judges fewer frames, but never fewer than the floor and never without
//! every verdict path; if floor and verdicts are still missing at [`OVERRUN`] times the budget,
//! it fails and says which. The seed is printed; `JVPN_MODEL_SEED` replays a run. Runs as root
//! (loading BPF programs needs it).

mod xdp_model;
mod xdp_support;

use aya::maps::{MapData, RingBuf};
use jvpn_common::maps::DataplaneMode;
use jvpn_common::{DropCounter, RejectReason, SecurityEvent};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use xdp_model::decide::{Judgement, Model, Verdict};
use xdp_model::generate::{Endpoints, Generated, Generator};
use xdp_model::random::RandomBodies;
use xdp_support::*;

const DEFAULT_FRAMES: u64 = 1_000_000;
const DEFAULT_SECONDS: u64 = 180;
const DEFAULT_MIN_FRAMES: u64 = 200_000;
/// The fewest frames any run judges (unless `JVPN_MODEL_FRAMES` asks for fewer): two full
/// counter checks, and well past the point where the generator has reached every verdict.
const FLOOR_FRAMES: u64 = 2 * FULL_CHECK_EVERY;
/// How far past its time budget a run that has not yet judged its minimum and reached every
/// verdict may go before it fails.
const OVERRUN: u32 = 3;
/// HELLOs per source address (the bucket never refills: rate 0).
const HELLO_BURST: u32 = 6;
const WORLD_EVERY: u64 = 64;
const FULL_CHECK_EVERY: u64 = 8_192;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v} is not a number: {e}"))
    })
}

fn endpoints() -> Endpoints {
    let parse = |s: &str| s.parse::<SocketAddr>().expect("an address");
    Endpoints {
        gateway_v4: parse(&format!("198.51.100.1:{PORT}")),
        gateway_v6: parse(&format!("[2001:db8::1]:{PORT}")),
        sources: [
            "192.0.2.10:40000",
            "192.0.2.10:40001",
            "192.0.2.11:40000",
            "203.0.113.7:5000",
            "[2001:db8::10]:40000",
            "[2001:db8::10]:40001",
            "[2001:db8::11]:40000",
        ]
        .map(parse)
        .to_vec(),
    }
}

/// What the program did with one frame.
#[derive(Debug)]
struct Observed {
    action: u32,
    moved: Option<(u64, u64)>,
    events: Vec<SecurityEvent>,
}

struct Run {
    dp: TestDataplane,
    ring: RingBuf<MapData>,
    model: Model,
    expected: Vec<DropCounter>,
    seed: u64,
}

impl Run {
    /// Runs `frame` and reads what moved. The slot's value before is the model's count, which
    /// every full check confirms, so one map read per frame does.
    fn observe(&mut self, frame: &[u8], slot: Option<u32>) -> Observed {
        let action = self.dp.run(frame);
        let moved = slot.map(|s| {
            let (a, b) = (self.dp.counter(s), self.expected[s as usize]);
            (
                a.packets.wrapping_sub(b.packets),
                a.bytes.wrapping_sub(b.bytes),
            )
        });
        let mut events = Vec::new();
        while let Some(item) = self.ring.next() {
            events.push(bytemuck::pod_read_unaligned(&item));
        }
        Observed {
            action,
            moved,
            events,
        }
    }

    fn check(&mut self, i: u64, g: &Generated, want: Judgement) {
        let slot = want.verdict.counter_slot();
        let got = self.observe(&g.frame, slot);
        let len = g.frame.len() as u64;
        let want_action = match want.verdict {
            Verdict::Dropped(_) => XDP_DROP,
            _ => XDP_PASS,
        };
        let event_ok = match (want.verdict, got.events.as_slice()) {
            (Verdict::Dropped(reason), [e]) => {
                let s = want.seen;
                e.reason == reason.code()
                    && e.addr == s.source.addr
                    && e.port == s.source.port
                    && e.msg_type == s.msg_type
                    && e.session_id == s.session_id
                    && e.state_version == s.state_version
                    && e.nonce == s.nonce
                    && u64::from(e.len) == len
            }
            (Verdict::Dropped(_), _) => false,
            (_, events) => events.is_empty(),
        };
        let moved_ok = slot.is_none() || got.moved == Some((1, len));
        if got.action != want_action || !moved_ok || !event_ok {
            panic!(
                "frame {i} ({}) of seed {} (rerun: JVPN_MODEL_SEED={}): the model says {want:?}, \
                 the program did {got:?}\nframe: {}",
                g.kind,
                self.seed,
                self.seed,
                hex(&g.frame)
            );
        }
        if let Some(slot) = slot {
            let c = &mut self.expected[slot as usize];
            c.packets += 1;
            c.bytes += len;
        }
    }

    fn check_all_counters(&self, i: u64) {
        let got = self.dp.counters();
        if got != self.expected {
            let moved = counter_delta(&self.expected, &got);
            panic!(
                "after frame {i} of seed {}: counter slots differ from the model's (slot, \
                 packets, bytes over the model): {moved:?}",
                self.seed
            );
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_program_agrees_with_the_model_on_a_million_hostile_frames() {
    require_root("xdp_model_test_run");
    let seed = env_u64("JVPN_MODEL_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_nanos() as u64
    });
    let frames = env_u64("JVPN_MODEL_FRAMES").unwrap_or(DEFAULT_FRAMES);
    let budget = Duration::from_secs(env_u64("JVPN_MODEL_SECONDS").unwrap_or(DEFAULT_SECONDS));
    let min_frames = env_u64("JVPN_MODEL_MIN_FRAMES")
        .unwrap_or(DEFAULT_MIN_FRAMES)
        .max(FLOOR_FRAMES)
        .min(frames);
    eprintln!(
        "seed {seed} (rerun with JVPN_MODEL_SEED={seed}), up to {frames} frames, at least \
         {min_frames} and every verdict, in about {budget:?}"
    );

    let mut dp = TestDataplane::load(1 << 16);
    let mut cfg = config(DataplaneMode::Enforce);
    cfg.hello_rate = 0;
    cfg.hello_burst = HELLO_BURST;
    cfg.events_per_second = u32::MAX;
    // A global HELLO budget the run never spends (the model leaves it out).
    cfg.handshake.global_rate = 0;
    cfg.handshake.global_burst = u32::MAX;
    dp.set_config(cfg);
    let ring = dp.take_event_ring();
    let expected = dp.counters();
    let mut run = Run {
        dp,
        ring,
        model: Model::new(PORT, HELLO_BURST),
        expected,
        seed,
    };
    run.model.mac1_key = cfg.handshake.mac1_key;
    let mut generator = Generator::new(seed, PORT, endpoints());
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    let start = Instant::now();
    let mut judged = 0;
    while judged < frames {
        // The clock and the tally are read once per world step, not per frame.
        if judged % WORLD_EVERY == 0 {
            let elapsed = start.elapsed();
            let enough = judged >= min_frames && unreached(&tally).is_empty();
            if (elapsed >= budget && enough) || elapsed >= budget * OVERRUN {
                break;
            }
            if let Some((id, session)) = generator.world_event(&run.model) {
                match session {
                    Some(s) => run.dp.set_session(
                        id,
                        session_entry(id, s.state, s.version, s.header_key, s.binding),
                    ),
                    None => run.dp.remove_session(id),
                }
                run.model.set_session(id, session);
            }
        }
        let g = generator.next(&run.model, &mut RandomBodies);
        let want = run.model.judge(&g.frame);
        run.check(judged, &g, want);
        *tally.entry(verdict_name(want.verdict)).or_default() += 1;
        judged += 1;
        if judged % FULL_CHECK_EVERY == 0 {
            run.check_all_counters(judged);
        }
    }
    run.check_all_counters(judged);
    let elapsed = start.elapsed();
    eprintln!("{judged} frames in {elapsed:.1?}, all as the model says: {tally:?}");
    assert!(
        judged >= min_frames,
        "only {judged} frames within {:?}: the machine is too slow for this test's bound \
         (raise JVPN_MODEL_SECONDS, or lower JVPN_MODEL_MIN_FRAMES down to {FLOOR_FRAMES})",
        budget * OVERRUN
    );
    if judged >= FLOOR_FRAMES {
        let missing = unreached(&tally);
        assert!(
            missing.is_empty(),
            "seed {seed}: the generator never reached {missing:?} in {judged} frames"
        );
    }
    // The kernels tier shows this line in its report.
    println!(
        "report: {judged} frames in {:.0} s agreed with the model, {} verdicts reached",
        elapsed.as_secs_f64(),
        tally.len()
    );
}

/// Every verdict a run must reach, by name: each pass and every reason the generator can provoke.
fn must_reach() -> impl Iterator<Item = String> {
    [Verdict::NotJvpn, Verdict::ToController, Verdict::Accepted]
        .into_iter()
        .chain(
            [
                RejectReason::Malformed,
                RejectReason::HandshakeRate,
                RejectReason::UnknownSession,
                RejectReason::BadTag,
                RejectReason::Terminated,
                RejectReason::DuplicateNonce,
                RejectReason::NonceTooOld,
                RejectReason::NotAttached,
                RejectReason::StaleVersion,
                RejectReason::VersionJump,
                RejectReason::TransportMismatch,
                RejectReason::NonceExhausted,
                RejectReason::MergedRun,
            ]
            .map(Verdict::Dropped),
        )
        .map(verdict_name)
}

/// The verdicts of [`must_reach`] not in `tally` yet.
fn unreached(tally: &BTreeMap<String, u64>) -> Vec<String> {
    must_reach()
        .filter(|name| !tally.contains_key(name))
        .collect()
}

fn verdict_name(v: Verdict) -> String {
    match v {
        Verdict::Dropped(reason) => reason.name().to_owned(),
        other => format!("{other:?}"),
    }
}

/// The map entry of a model session.
fn session_entry(
    id: u64,
    state: u8,
    version: u64,
    key: [u8; 16],
    binding: jvpn_common::TransportBinding,
) -> jvpn_common::SessionEntry {
    jvpn_common::SessionEntry {
        state_version: version,
        header_key: key,
        transport: binding,
        state,
        _pad: [0; 3],
        replay_slot: 0,
        session_id: id,
    }
}
