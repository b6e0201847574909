//! A reference model of the XDP program's verdicts in plain Rust, and a seeded generator of
//! hostile frames to hold the real program against it (issue 8, adversarial testing).
//!
//! The model is written from the versioning model, docs/protocol.md ("What the XDP program
//! judges") and jvpn-common's definitions (`abi`, `wire`, `maps`, `reason`), not from the eBPF
//! code: [`locate`] finds the datagram behind every encapsulation, [`decide`] applies the decision
//! list to it over a plain description of the maps and mirrors the map writes the program makes
//! (replay windows, HELLO buckets). [`generate`] builds the frames (with [`random`] and, around
//! them, [`wrap`]'s encapsulations), with the builders of `xdp_support::frames`.
//!
//! Shared by `tests/xdp_model_test_run.rs` (BPF_PROG_TEST_RUN) and the tests crate's netns sample,
//! which includes it by path together with the frame builders.
#![allow(
    dead_code,
    reason = "each test crate uses a different part of the model"
)]

pub mod decide;
pub mod generate;
pub mod locate;
pub mod random;
pub mod wrap;
