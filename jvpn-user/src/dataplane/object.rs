//! The compiled eBPF objects, embedded in the binary by `build.rs` (which builds `jvpn-ebpf` with
//! `aya-build`), so the `jvpn` binary needs no object file beside it at run time.

/// The jvpn XDP enforcement object: the program [`jvpn_common::abi::PROGRAM_NAME`] and every map
/// named in [`jvpn_common::abi`] (`MAP_*`).
///
/// Aligned for aya's ELF parser; load it with `aya::EbpfLoader::load`.
pub static JVPN_XDP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/jvpn"));

/// The benchmarks' programs, never attached by the gateway: for `benches/dataplane` the baselines
/// `jvpn_bench_drop` and `jvpn_bench_lookup`, and `jvpn_bench_driver`, which copies prepared
/// frames into the packet and tail-calls the program measured; for `cargo xtask bench rx`
/// (`tests/benches/rx`) `jvpn_bench_rx_pass` and `jvpn_bench_rx_xsk`, the socket path's pass and
/// the AF_XDP redirect.
pub static JVPN_BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/jvpn-bench"));
