//! What the netns benchmarks (`cargo xtask bench tunnel` and `flood`, in `tests/benches`) share:
//! their three-namespace [`topology`] with fixed `jvbt-*` names, the real gateway and client
//! ([`daemons`]), iperf3 ([`iperf`]) and the results table and JSON file ([`report`]).

pub mod daemons;
pub mod iperf;
pub mod report;
pub mod topology;
