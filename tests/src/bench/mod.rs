//! What the netns benchmarks (`cargo xtask bench tunnel`, `flood` and `peers`, in `tests/benches`)
//! share: the three-namespace [`topology`] with fixed `jvbt-*` names and the real gateway and client
//! on it ([`daemons`], for `tunnel` and `flood`), CPU time read from `/proc` ([`cpu`]), iperf3
//! ([`iperf`]) and the results table and JSON file ([`report`]).

pub mod cpu;
pub mod daemons;
pub mod iperf;
pub mod report;
pub mod topology;

/// A benchmark's options (what follows `--` on `cargo bench`), read one flag at a time.
#[derive(Debug)]
pub struct Args(std::iter::Skip<std::env::Args>);

impl Args {
    /// The process's arguments after the program name.
    pub fn from_env() -> Self {
        Self(std::env::args().skip(1))
    }

    /// The next flag, skipping `--bench`, which `cargo bench` passes to every benchmark.
    pub fn next_flag(&mut self) -> Option<String> {
        self.0.by_ref().find(|arg| arg != "--bench")
    }

    /// The number that follows `flag`; panics naming the flag if there is none.
    pub fn number(&mut self, flag: &str) -> u64 {
        self.0
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{flag} takes a number"))
    }
}
