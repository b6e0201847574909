//! Kernel-side code shared by the two eBPF objects of this crate: the enforcement program
//! (`src/main.rs`, object `jvpn`) and the benchmark baselines (`src/bench/main.rs`, object
//! `jvpn-bench`). Sharing the packet parser keeps the lookup baseline's parse identical to the
//! real program's, so the benchmark compares like with like.
//!
//! Built for the host too, as `jvpn-user`'s build-dependency (so cargo rebuilds the objects when
//! this crate changes); nothing here runs there.
#![no_std]

pub mod packet;
