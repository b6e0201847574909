//! The single source of every size, offset, limit and name shared by the dataplane and userspace.
//!
//! # Wire header, version 1
//!
//! Every jvpn message is one UDP datagram to the gateway's port that starts with this header. All
//! integers are big-endian.
//!
//! ```text
//!  0               1               2               3
//!  0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//! +---------------+---------------+-------------------------------+
//! |   version=1   |     type      |          flags = 0            |  0
//! +---------------+---------------+-------------------------------+
//! |        slot_hint (the session's node-local slot; 0: none)     |  4
//! +---------------------------------------------------------------+
//! |                     session_id (64 bits)                      |  8
//! |                  (0 in HELLO, and only there)                 |
//! +---------------------------------------------------------------+
//! |                    state_version (64 bits)                    | 16
//! |                                                               |
//! +---------------------------------------------------------------+
//! |             nonce (64 bits, per session and direction,        | 24
//! |                starts at 1, +1 per message)                   |
//! +---------------------------------------------------------------+
//! | tag: SipHash-2-4(header key of the sender's direction,        | 32
//! |      bytes 0..32), 0 in HELLO                                 |
//! +---------------------------------------------------------------+
//! |   body: Noise handshake, AEAD-sealed payload or control body  | 40
//! ```
//!
//! The slot hint (`WireHeader::slot_hint`) is 0 in HELLO and COOKIE_REPLY. The gateway writes
//! the session's slot in its node's session array ([`MAP_SESSIONS`]) into the headers it sends;
//! a client echoes the last one it accepted. The XDP program tries that slot first and, if it
//! names another session or none, finds the slot in its hash index ([`MAP_SESSION_INDEX`]), so a
//! wrong or forged hint costs time, never correctness.
//!
//! The tag covers bytes `0..TAG_OFFSET`; the body is covered by the AEAD of the message type.
//! Each direction has its own header key (client-to-gateway, gateway-to-client), so a message
//! sent back the way it came never carries a valid tag; the XDP session map holds only the
//! client-to-gateway key.
//!
//! # HELLO, exactly [`HELLO_LEN`] bytes
//!
//! ```text
//!   0 header (40): type HELLO, session_id, state_version, nonce and tag all 0
//!  40 Noise IK message 1 (108): ephemeral key, encrypted static key, encrypted timestamp
//! 148 reserved = 0 (4)
//! 152 mac1 (8): SipHash-2-4(mac1 key, bytes 0..152), the key derived from the gateway's public key
//! 160 mac2 (8): SipHash-2-4(cookie, bytes 0..160), or 0 without a cookie
//! ```
//!
//! The MACs are SipHash-2-4 outputs as little-endian bytes over whole 64-bit little-endian words
//! (19 for mac1, 20 for mac2), so the XDP program computes them without a partial word. The cookie
//! of a source is `SipHash-2-4(secret, addr || port || pad || d)` for `d` = 0 and 1 (the two halves
//! of the 16-byte mac2 key), with the binding's 24 bytes as `crate::TransportBinding` lays them out.
//!
//! # COOKIE_REPLY, exactly [`COOKIE_REPLY_LEN`] bytes (gateway to client)
//!
//! ```text
//!   0 header (40): type COOKIE_REPLY, session_id, state_version, nonce and tag all 0
//!  40 nonce (24): random, XChaCha20-Poly1305
//!  64 encrypted cookie (16) + Poly1305 tag (16); associated data: the HELLO's mac1
//! ```

/// The protocol version carried in byte 0.
pub const PROTOCOL_VERSION: u8 = 1;
/// Length of the fixed header in bytes.
pub const HEADER_LEN: usize = 40;
/// Offset of the tag, and the number of header bytes the tag covers.
pub const TAG_OFFSET: usize = 32;
/// The UDP port a gateway listens on unless configured otherwise.
pub const DEFAULT_PORT: u16 = 51900;
/// Every flag bit the protocol defines (none yet): any other set bit makes a header malformed.
pub const KNOWN_FLAGS: u16 = 0;

/// Offset of the Noise message in a HELLO.
pub const HELLO_NOISE_OFFSET: usize = HEADER_LEN;
/// Length of the Noise IK message 1 a HELLO carries (`control::HELLO_BODY_LEN` derives it).
pub const HELLO_NOISE_LEN: usize = 108;
/// Offset of the four reserved zero bytes that align the MACs to 64-bit words.
pub const HELLO_RESERVED_OFFSET: usize = HELLO_NOISE_OFFSET + HELLO_NOISE_LEN;
/// Offset of mac1, and the number of bytes it covers.
pub const HELLO_MAC1_OFFSET: usize = HELLO_RESERVED_OFFSET + 4;
/// Offset of mac2, and the number of bytes it covers.
pub const HELLO_MAC2_OFFSET: usize = HELLO_MAC1_OFFSET + HELLO_MAC_LEN;
/// Length of each HELLO MAC.
pub const HELLO_MAC_LEN: usize = 8;
/// Length of a HELLO datagram: nothing shorter or longer is a HELLO.
pub const HELLO_LEN: usize = HELLO_MAC2_OFFSET + HELLO_MAC_LEN;
/// Length of a cookie (the 128-bit SipHash key of mac2).
pub const COOKIE_LEN: usize = 16;
/// Length of the XChaCha20-Poly1305 nonce of a COOKIE_REPLY.
pub const COOKIE_REPLY_NONCE_LEN: usize = 24;
/// Length of a COOKIE_REPLY datagram: header, nonce, encrypted cookie and its 16-byte tag.
pub const COOKIE_REPLY_LEN: usize = HEADER_LEN + COOKIE_REPLY_NONCE_LEN + COOKIE_LEN + 16;
/// Seconds between rotations of the cookie secret; the dataplane accepts the current and the
/// previous secret, so a cookie is good for at least this long and at most twice it. A client
/// uses a cookie for [`COOKIE_CLIENT_LIFETIME_SECS`] only.
pub const COOKIE_ROTATION_SECS: u64 = 120;
/// Seconds a client keeps using a cookie (below the rotation period, so it never offers a dead one).
pub const COOKIE_CLIENT_LIFETIME_SECS: u64 = 110;
/// Bytes of an IPv6 source address that name its HELLO bucket: a /64 shares one bucket, since one
/// host commonly owns a whole /64 and could otherwise rotate through 2^64 buckets.
pub const IPV6_BUCKET_PREFIX_BYTES: usize = 8;
/// Default global HELLO budget, per CPU: HELLOs per second before every HELLO needs a cookie.
///
/// Well below what one handshake worker computes (about 3,000 X25519 a second per core), so a
/// flood of HELLOs with a valid mac1 from spoofed sources costs the workers a small share of a core
/// (at 2,000 a second per CPU it took one worker whole and the tunnel lost 21% of its throughput);
/// a HELLO with a valid cookie MAC passes whatever this budget has left, so genuine clients past
/// it pay one round trip more.
pub const DEFAULT_HELLO_GLOBAL_RATE: u32 = 250;
/// Default global HELLO burst, per CPU.
pub const DEFAULT_HELLO_GLOBAL_BURST: u32 = 500;
/// Default budget, per CPU, of cookie-less HELLOs passed under load so the controller can answer
/// each with a COOKIE_REPLY; beyond it they are dropped as `COOKIE_REQUIRED`.
pub const DEFAULT_COOKIE_RATE: u32 = 2_000;
/// Default burst of that budget, per CPU.
pub const DEFAULT_COOKIE_BURST: u32 = 2_000;
/// Slot of the global HELLO budget in [`MAP_HELLO_BUDGET`].
pub const HELLO_BUDGET_GLOBAL: u32 = 0;
/// Slot of the cookie-reply budget in [`MAP_HELLO_BUDGET`].
pub const HELLO_BUDGET_COOKIE: u32 = 1;

/// Length of a session's header key of one direction (SipHash-2-4 key) in bytes.
pub const HEADER_KEY_LEN: usize = 16;

/// Default capacity of the session table and of the replay windows, overridable at load time
/// (`jvpn gateway --max-sessions`). The session lines ([`MAP_SESSIONS`], an ARRAY of
/// [`crate::maps::SessionLine`]) and the replay bitmaps ([`MAP_REPLAY`], an ARRAY of
/// [`crate::maps::ReplayState`]) are allocated whole when the program loads, so this default, a
/// mid-size gateway's, costs about 72 MB of kernel memory with no session at all (1,048,576
/// would cost 1.1 GB); only the index entries ([`MAP_SESSION_INDEX`]) come as sessions come.
pub const DEFAULT_MAX_SESSIONS: u32 = 65_536;
/// Number of 64-bit slots of a replay window (a power of two).
pub const REPLAY_SLOTS: usize = 128;
/// Nonces tracked by one slot: the low 32 bits of a slot are a bitmap, the high 32 its generation.
pub const REPLAY_BITS_PER_SLOT: u64 = 32;
/// Width of the replay window: a nonce `n` is too old once `n + REPLAY_WINDOW < newest accepted`.
///
/// One slot is kept spare so the slot of the oldest acceptable nonce is never the slot of the newest
/// (the same shape as WireGuard's 8128 = 128 * 64 - 64).
pub const REPLAY_WINDOW: u64 = (REPLAY_SLOTS as u64 - 1) * REPLAY_BITS_PER_SLOT;
/// Nonces at or above this are never accepted (WireGuard's `REJECT_AFTER_MESSAGES`, for our window).
///
/// The controller terminates a session long before: see `NONCE_SAFETY_MARGIN`.
pub const NONCE_LIMIT: u64 = u64::MAX - REPLAY_WINDOW - 1;
/// How far above the newest accepted nonce a nonce may be and still be accepted.
///
/// A client's nonces rise by one per message, so a leap of 2^32 means four billion consecutive
/// messages lost: no real path does that, but a reflected gateway message (whose nonces start at
/// `epoch << 40`) or a forged one would, and accepting it would move the window so far ahead that
/// every genuine message after it is too old. Such a nonce is refused as `NONCE_TOO_FAR`.
pub const NONCE_MAX_LEAP: u64 = 1 << 32;
/// A session whose version or nonce comes within this distance of `u64::MAX` is terminated
/// deterministically (spec section 8: wrap-around is forbidden).
pub const VERSION_SAFETY_MARGIN: u64 = 1 << 32;
/// Retries of a compare-and-swap on replay memory before a packet is dropped as contended.
pub const REPLAY_CAS_RETRIES: usize = 4;

/// VLAN tags (802.1Q, 802.1ad, 0x9100) the XDP program walks to reach the IP header; a frame
/// with more is refused as MALFORMED (the stack strips any number of priority tags, VLAN id 0,
/// and would deliver what lies behind them). Two: a service tag over a customer tag (802.1ad).
pub const VLAN_MAX_TAGS: usize = 2;
/// IPv6 extension headers (hop-by-hop, routing, destination options, fragment, AH) the XDP
/// program walks; a longer chain is refused as MALFORMED. Six: RFC 8200 section 4.1's order
/// without ESP, whose payload is opaque.
pub const IPV6_MAX_EXTENSIONS: usize = 6;

/// Capacity of the LRU map of per-source HELLO token buckets.
pub const HELLO_BUCKETS: u32 = 65_536;
/// Size of the security event ring buffer in bytes (a power-of-two multiple of the page size).
pub const EVENT_RING_BYTES: u32 = 1 << 20;
/// Default HELLO rate per source address: tokens added per second.
pub const DEFAULT_HELLO_RATE: u32 = 20;
/// Default HELLO burst per source address.
pub const DEFAULT_HELLO_BURST: u32 = 40;
/// Default security events emitted per drop reason per CPU per second; the rest are only counted.
pub const DEFAULT_EVENTS_PER_SECOND: u32 = 1_000;

/// Layout version of the pinned maps. It is part of the pin path, so an incompatible program never
/// adopts maps of another layout (aya reuses a pinned map without checking its layout).
/// 2: `SessionEntry` carries its session id; the config entry carries the HELLO guard
/// ([`crate::maps::HandshakeGuard`]); the HELLO budget and scratch maps exist.
/// 3: the replay windows are an array indexed by `SessionEntry::replay_slot`, each naming its
/// owner session, instead of a hash map by session id; the zeroed-window scratch map is gone.
/// 4: the config entry's flags record the attach mode (`maps::CONFIG_FLAG_GENERIC_XDP`), and
/// counter slot 29 is `MERGED_RUN`. A gateway of this version must not adopt a program of the
/// last one, which lacks the one-datagram rule and whose config entry does not say whether it
/// runs in generic mode: the new layout retires it and loads this one.
/// 5: the session table is an array of one 64-byte line per slot ([`crate::maps::SessionLine`],
/// written under a sequence lock through a memory map), found by the header's slot hint or by a
/// hash index from session id to slot; the replay window's `max` lives in the line, the array of
/// windows keeps only the bitmaps; counter slot 30 is `SESSION_BUSY`. Older pins are retired as
/// v3 pins were by v4.
pub const MAP_LAYOUT_VERSION: u32 = 5;
/// Root of the pins: maps and the XDP link live in `PIN_ROOT/<iface>/v<MAP_LAYOUT_VERSION>/`.
pub const PIN_ROOT: &str = "/sys/fs/bpf/jvpn";

/// Name of the session table (array with `BPF_F_MMAPABLE`, index the session's slot, value
/// [`crate::maps::SessionLine`]; one cache line per session).
pub const MAP_SESSIONS: &str = "JVPN_SESSIONS";
/// Name of the session index (hash, key `u64` session id, value `u32` slot in
/// [`MAP_SESSIONS`]): complete and authoritative, used when the header's slot hint misses.
pub const MAP_SESSION_INDEX: &str = "JVPN_SESSION_INDEX";
/// Name of the replay bitmaps (array, index the session's slot, value [`crate::ReplayState`];
/// as many slots as the session table).
pub const MAP_REPLAY: &str = "JVPN_REPLAY";
/// Size of one session line in bytes: a cache line. The session array is memory-mappable, so its
/// values start page-aligned and each line is exactly one cache line.
pub const SESSION_LINE_LEN: usize = 64;
/// Name of the per-CPU drop/pass counters (array indexed by [`crate::RejectReason`], value
/// [`crate::DropCounter`]).
pub const MAP_COUNTERS: &str = "JVPN_COUNTERS";
/// Name of the per-CPU counters of events not emitted (array indexed by reason, value
/// [`crate::maps::EventLoss`]).
pub const MAP_EVENT_LOSS: &str = "JVPN_EVENT_LOSS";
/// Name of the per-CPU event rate limiter state (array indexed by reason, value
/// [`crate::maps::EventBudget`]).
pub const MAP_EVENT_BUDGET: &str = "JVPN_EVENT_BUDGET";
/// Name of the security event ring buffer (records are [`crate::SecurityEvent`]).
pub const MAP_EVENTS: &str = "JVPN_EVENTS";
/// Name of the config map (array of one [`crate::GatewayConfig`]).
pub const MAP_CONFIG: &str = "JVPN_CONFIG";
/// Name of the HELLO rate limiter (LRU hash, key [`crate::maps::SourceKey`], value
/// [`crate::TokenBucket`]).
pub const MAP_HELLO_BUCKETS: &str = "JVPN_HELLO_RL";
/// Name of the per-CPU global HELLO budgets (array of two [`crate::TokenBucket`]s: slot
/// [`HELLO_BUDGET_GLOBAL`] and slot [`HELLO_BUDGET_COOKIE`]).
pub const MAP_HELLO_BUDGET: &str = "JVPN_HELLO_BUDGET";
/// Name of the per-CPU scratch word through which the XDP program passes the HELLO's offset, so
/// the verifier checks the HELLO code once for every parse path instead of once per path.
pub const MAP_SCRATCH: &str = "JVPN_SCRATCH";
/// Name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "jvpn_xdp";
/// File name of the pinned XDP link inside the pin directory.
pub const PIN_LINK: &str = "link";

/// High bits of a session id that name the node owning the session (spec section 7, sticky
/// ownership); the other `64 - SESSION_ID_NODE_BITS` low bits are random and never all zero, so no
/// session id is 0, the id reserved for HELLO.
pub const SESSION_ID_NODE_BITS: u32 = 16;

/// Benchmark object (`jvpn-bench`, never loaded by the gateway): name of its hash map shaped like
/// the session table, which the lookup baseline reads.
pub const BENCH_MAP_SESSIONS: &str = "JVPN_BENCH_SESSIONS";
/// Benchmark object: name of its frame table, a memory-mappable array of frames of
/// [`BENCH_FRAME_BYTES`] the driver program copies into the packet one per run, in rotation.
pub const BENCH_MAP_FRAMES: &str = "JVPN_BENCH_FRAMES";
/// Benchmark object: name of the array of one `u32`, how many frames of the table rotate.
pub const BENCH_MAP_ROTATION: &str = "JVPN_BENCH_ROTATION";
/// Benchmark object: name of the per-CPU array of one `u32`, the index of the next frame.
pub const BENCH_MAP_CURSOR: &str = "JVPN_BENCH_CURSOR";
/// Benchmark object: name of the program array of one slot, the program the driver tail-calls.
pub const BENCH_MAP_TARGET: &str = "JVPN_BENCH_TARGET";
/// Benchmark object: length of a frame of the frame table (room for an Ethernet/IPv4/UDP frame
/// carrying a whole HELLO, 210 bytes, padded to whole 64-bit words; shorter frames are padded).
pub const BENCH_FRAME_BYTES: usize = 216;
/// Benchmark object: capacity of the frame table.
pub const BENCH_MAX_FRAMES: u32 = 1 << 20;
