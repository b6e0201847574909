//! The gateway's one ordered event stream: what operators read with `jvpn events`.
//!
//! The controller's STATE_CHANGE, SECURITY_EVENT and POLICY_EVENT records and the XDP program's
//! ring-buffer security events all become an [`EventRecord`] and go through one [`EventBus`], which
//! gives each a sequence number and fans it out to subscribers. Losses are never silent: records
//! the XDP program could not emit ([`EventBus::report_dataplane_loss`]) and records a slow reader
//! skipped both become EVENTS_LOST notices and are counted ([`EventBus::losses`]).
//!
//! - [`record`]: the record and its JSON-lines schema (also in `docs/events.md`).
//! - [`bus`]: sequencing, history, fan-out and loss accounting.
//! - [`filter`]: selection by session and kind.
//! - [`format`]: the human line and the JSON line.
//! - [`names`]: how ids, states, reasons and message types are spelled everywhere.

pub mod bus;
pub mod filter;
pub mod format;
pub mod names;
pub mod record;

pub use bus::{unix_millis_now, EventBus, EventSubscription, StreamLosses};
pub use filter::EventFilter;
pub use format::{human_line, json_line};
pub use record::{EventKind, EventRecord, EventSource};
