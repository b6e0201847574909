//! Every map of the enforcement object, with the names, types and flags the loader and the
//! controller rely on (names in `jvpn_common::abi::MAP_*`, values in `jvpn_common::maps`).
//!
//! The maps are declared unpinned: the loader pins every one by name under the interface's pin
//! directory (`EbpfLoader::map_pin_path`), so they and enforcement outlive controller restarts,
//! while a load without pin paths (the test-run tests, the benchmark) leaves nothing behind. A map
//! declared pinned by name would instead be pinned under `/sys/fs/bpf` by default and silently
//! reused by the next load. Sizes are the defaults of `jvpn_common::abi`; the loader sets the
//! capacity of the session and replay tables at load time.

use aya_ebpf::bindings::BPF_F_NO_PREALLOC;
use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf};
use jvpn_common::abi::{DEFAULT_MAX_SESSIONS, EVENT_RING_BYTES, HELLO_BUCKETS};
use jvpn_common::maps::{
    DropCounter, EventBudget, EventLoss, GatewayConfig, ReplayState, SessionEntry, SourceKey,
    TokenBucket,
};
use jvpn_common::reason::COUNTER_SLOTS;

/// Sessions by id, written whole by the controller. Not preallocated: memory follows the live
/// sessions rather than the capacity, and a replaced entry is not recycled into another key's
/// slot while a reader may still hold it (prealloc hash maps reuse freed elements at once).
#[map(name = "JVPN_SESSIONS")]
pub static JVPN_SESSIONS: HashMap<u64, SessionEntry> =
    HashMap::with_max_entries(DEFAULT_MAX_SESSIONS, BPF_F_NO_PREALLOC);

/// Replay windows by slot (`SessionEntry::replay_slot`): an array, so a session's window is one
/// bounds-checked index away from its entry instead of a second hash lookup, and costs its 1,040
/// bytes and nothing more (a hash element of that size took a 2 KiB allocation). Each names its
/// owner; userspace resets a window only while no entry points at it, this program writes it
/// otherwise (see `crate::replay`).
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
