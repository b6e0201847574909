//! The XDP dataplane from userspace: the compiled program object and its loader.
//!
//! [`Dataplane`] is the one handle the controller needs:
//!
//! - [`Dataplane::load`] loads [`object::JVPN_XDP_OBJECT`], pins its maps under
//!   `PIN_ROOT/<iface>/v<MAP_LAYOUT_VERSION>/` ([`PinDir`]), writes the config and attaches the
//!   program through a pinned bpf_link; [`Dataplane::adopt`] re-opens all of it after a restart;
//!   [`Dataplane::open_or_load`] picks; [`Dataplane::detach`] undoes it. A driver-mode load on a
//!   veth also turns the veth's GRO on (`offload`). Dropping a `Dataplane`
//!   never detaches: enforcement outlives the controller.
//! - The session table (`upsert_session`, `remove_session`, `session`, `session_count`), written in
//!   version order, each session in its slot ([`ReplaySlots`]): a line of the session array
//!   (written in place under a sequence lock, `lines`), an index entry and a replay window.
//! - [`Dataplane::counters`]: per-reason packet and byte totals and event losses.
//! - [`Dataplane::take_event_reader`]: the security event stream ([`EventReader`]).
//! - [`Dataplane::take_log_forwarder`]: the program's aya-log records into `tracing`.
//!
//! Module map: `arch` (the CPUs the program is proven on), `kernel_features` (what the program
//! needs from the kernel, probed before a load), `loader` (load, adopt, detach), `options`, `pins`,
//! `maps` (typed pinned-map handles), `sessions`, `slots`, `lines` (the session array mapped
//! into memory), `counters`, `events`, `logs`, `privileges`, `error`, `offload` (GRO on a veth,
//! by the ethtool ioctl) and `sys` (the raw `bpf(2)` commands aya does not wrap); `lines`,
//! `offload` and `sys` are the only modules with `unsafe` code.

pub mod arch;
mod counters;
mod error;
mod events;
pub mod kernel_features;
mod lines;
mod loader;
mod logs;
mod maps;
pub mod object;
mod offload;
mod options;
mod pins;
mod privileges;
mod sessions;
mod slots;
mod sys;

pub use counters::{CounterSnapshot, EventLossTotals, PacketTotals};
pub use error::DataplaneError;
pub use events::{DataplaneEvent, EventReader};
pub use jvpn_common::maps::DataplaneMode;
pub use kernel_features::KernelFeature;
pub use lines::SessionLines;
pub use loader::{Dataplane, Origin};
pub use logs::{ProgramLogForwarder, TracingLog};
pub use offload::refuse_generic_on_veth;
pub use options::{DataplaneOptions, XdpAttachMode};
pub use pins::PinDir;
pub use slots::{ReplaySlots, SlotConflict};
