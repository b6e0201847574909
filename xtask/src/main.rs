//! `cargo xtask`: the one entry point for working on jvpn. It only orchestrates (installs prerequisites,
//! runs cargo, lays out namespaces); what it builds and runs lives in the other crates. Each subcommand has
//! a module of its own; this file parses the command line and maps errors to exit statuses.

#![deny(unsafe_code)]

mod bench;
mod demo;
mod fuzz;
mod kernels;
mod netns;
mod package;
mod setup;
mod test;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Set up, build, test, benchmark and demonstrate jvpn.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install every prerequisite (apt packages, nightly + rust-src, bpf-linker, bpffs); quick when all is there.
    Setup,
    /// Build the `jvpn` binary (and with it the XDP object) in release mode.
    Build,
    /// Run every test tier as CI does (needs root): fmt, clippy, then `cargo test [ARGS]` over the default members.
    Test {
        /// Also run the `kernels` tier: the BPF tests on distribution kernels in VMs (`cargo xtask kernels`).
        #[arg(long)]
        kernels: bool,
        /// Passed to `cargo test`, e.g. a test name filter.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run a benchmark (needs root); it writes target/bench/NAME.json.
    Bench {
        /// Which benchmark.
        #[arg(value_enum)]
        name: bench::BenchName,
        /// Passed to the benchmark binary.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the demo in network namespaces (needs root); cleans up after itself, also on Ctrl-C.
    Demo {
        /// The cluster demo instead: three etcd members, two gateways, and a client's TCP stream
        /// moved from one gateway to the other and back by an anycast-style route flip.
        #[arg(long)]
        cluster: bool,
    },
    /// Build the .deb (cargo-deb): jvpn, its systemd unit, an example config, man pages, completions.
    Package {
        /// The cargo profile to build with (`dev` reuses the test build).
        #[arg(long, default_value = "release")]
        profile: String,
        /// Then install it with dpkg, try it and remove it again (needs root).
        #[arg(long)]
        check: bool,
    },
    /// Boot distribution kernels in VMs (virtme-ng, software emulation) and run the BPF tests in each (needs root).
    Kernels {
        /// Kernels to boot, by label (default: all of them).
        #[arg(long = "kernel", value_name = "LABEL")]
        kernels: Vec<String>,
        /// Test binaries to run in each VM, by target name (default: all that apply to the kernel).
        #[arg(long = "test", value_name = "TARGET")]
        tests: Vec<String>,
    },
    /// Build the cargo-fuzz targets (nightly) and run each for a bounded time on its corpus in fuzz/corpus.
    Fuzz {
        /// How long each target runs.
        #[arg(long, default_value_t = fuzz::DEFAULT_SECONDS)]
        seconds: u64,
        /// Targets to run (default: every target in fuzz/Cargo.toml).
        targets: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Setup => setup::run(),
        Task::Build => setup::ensure_buildable().and_then(|()| util::build_release().map(drop)),
        Task::Test { kernels, args } => test::run(&args, kernels),
        Task::Bench { name, args } => bench::run(name, &args),
        Task::Demo { cluster: false } => demo::run(),
        Task::Demo { cluster: true } => demo::run_cluster(),
        Task::Kernels { kernels, tests } => kernels::run(&kernels, &tests),
        Task::Fuzz { seconds, targets } => fuzz::run(seconds, &targets),
        Task::Package { profile, check } => package::run(&profile, check),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<util::Interrupted>() => {
            eprintln!("stopped: {error}");
            ExitCode::from(util::INTERRUPTED_EXIT_STATUS)
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
