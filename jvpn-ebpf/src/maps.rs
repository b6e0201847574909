//! Every map of the enforcement object, with the names, types and flags the loader and the
//! controller rely on (names in `jvpn_common::abi::MAP_*`, values in `jvpn_common::maps`).
//!
//! The maps are declared unpinned: the loader pins every one by name under the interface's pin
//! directory (`EbpfLoader::map_pin_path`), so they and enforcement outlive controller restarts,
//! while a load without pin paths (the test-run tests, the benchmark) leaves nothing behind. A map
//! declared pinned by name would instead be pinned under `/sys/fs/bpf` by default and silently
//! reused by the next load. Sizes are the defaults of `jvpn_common::abi`; the loader sets the
//! capacity of the session array, its index and the replay array at load time.

use aya_ebpf::bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC};
use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf};
use jvpn_common::abi::{DEFAULT_MAX_SESSIONS, EVENT_RING_BYTES, HELLO_BUCKETS};
use jvpn_common::maps::{
    DropCounter, EventBudget, EventLoss, GatewayConfig, ReplayState, SessionLine, SourceKey,
    TokenBucket,
};
use jvpn_common::reason::COUNTER_SLOTS;

/// Sessions by slot, one 64-byte line each (layout v5): everything the accept path reads in
/// one cache line. Memory-mappable, so the values start page-aligned (each line is exactly a
/// cache line) and the controller writes them in place under their sequence lock (see
/// `jvpn_common::maps::SessionLine` and `crate::rules::line`). Allocated whole at load.
#[map(name = "JVPN_SESSIONS")]
pub static JVPN_SESSIONS: Array<SessionLine> =
    Array::with_max_entries(DEFAULT_MAX_SESSIONS, BPF_F_MMAPABLE);

/// The slot of every session by id, complete and authoritative, for packets whose slot hint
/// misses (0, out of range, or naming another session). A small value keeps its element small.
/// Not preallocated: memory follows the live sessions, and a deleted element is not recycled
/// into another key while a reader may still hold it.
#[map(name = "JVPN_SESSION_INDEX")]
pub static JVPN_SESSION_INDEX: HashMap<u64, u32> =
    HashMap::with_max_entries(DEFAULT_MAX_SESSIONS, BPF_F_NO_PREALLOC);

/// Replay bitmaps by slot (the same slot as the session's line, whose `max` is the window's
/// head): 1,024 bytes a session, one bounds-checked index away. Userspace zeroes a window when
/// it hands the slot out or takes it back; this program writes it otherwise (see
/// `crate::replay`).
#[map(name = "JVPN_REPLAY")]
pub static JVPN_REPLAY: Array<ReplayState> = Array::with_max_entries(DEFAULT_MAX_SESSIONS, 0);

/// Per-CPU packets and bytes per counter slot (`RejectReason::counter_slot`, `COUNTER_ACCEPTED`,
/// `COUNTER_TO_CONTROLLER`).
#[map(name = "JVPN_COUNTERS")]
pub static JVPN_COUNTERS: PerCpuArray<DropCounter> =
    PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Per-CPU security events not emitted, by reason code.
#[map(name = "JVPN_EVENT_LOSS")]
pub static JVPN_EVENT_LOSS: PerCpuArray<EventLoss> =
    PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Per-CPU event budget windows, by reason code.
#[map(name = "JVPN_EVENT_BUDGET")]
pub static JVPN_EVENT_BUDGET: PerCpuArray<EventBudget> =
    PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Security events (`SecurityEvent` records) for the controller.
#[map(name = "JVPN_EVENTS")]
pub static JVPN_EVENTS: RingBuf = RingBuf::with_byte_size(EVENT_RING_BYTES, 0);

/// The gateway configuration, one entry, written by the controller. All zero (port 0) until then,
/// which passes every packet.
#[map(name = "JVPN_CONFIG")]
pub static JVPN_CONFIG: Array<GatewayConfig> = Array::with_max_entries(1, 0);

/// HELLO token buckets per source address; the least recently used are evicted under pressure.
#[map(name = "JVPN_HELLO_RL")]
pub static JVPN_HELLO_RL: LruHashMap<SourceKey, TokenBucket> =
    LruHashMap::with_max_entries(HELLO_BUCKETS, 0);

/// The global HELLO budget and the cookie-reply budget of this CPU (slots
/// `abi::HELLO_BUDGET_GLOBAL` and `abi::HELLO_BUDGET_COOKIE`), written only by this program.
#[map(name = "JVPN_HELLO_BUDGET")]
pub static JVPN_HELLO_BUDGET: PerCpuArray<TokenBucket> = PerCpuArray::with_max_entries(2, 0);

/// One scratch word per CPU (see `crate::hello::opaque`), written and read back in one run.
#[map(name = "JVPN_SCRATCH")]
pub static JVPN_SCRATCH: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
