//! jvpn userspace: the `jvpn` binary's library. A session-centric VPN whose sessions survive
//! transport changes, with an XDP dataplane that judges every datagram before the stack sees it.
//!
//! The layout, from the wire up (the spec is `shared/seeds/versioning-model.md`; which module
//! enforces which of its rules is in `docs/conformance.md`):
//!
//! - [`dataplane`]: loads, attaches and pins the XDP program (`jvpn-ebpf`) and reads and writes
//!   its maps; its `sys` module holds the raw `bpf(2)` calls aya does not wrap.
//! - [`session`]: sessions as the gateway sees them: ids, records, inputs, events, and the pure
//!   state machine that turns one record into the next.
//! - [`store`]: the durable session store (redb), whose one mutation is compare-and-set on the
//!   version.
//! - [`crypto`]: sans-IO cryptography: keys, the Noise handshake, cookies, message sealing.
//! - [`gateway`]: the gateway daemon, the single authority over session state on a node: a sans-IO
//!   `Controller` returning effects, and the shell that performs them.
//! - [`events`]: the gateway's one ordered event stream (STATE_CHANGE, SECURITY_EVENT, ...).
//! - [`control`] and [`accept`]: the control socket the operator commands talk to, and the
//!   bounded accept loop it and [`metrics`] (Prometheus) share.
//! - [`client_session`]: the client's session without a TUN device: the sans-IO core
//!   (`ClientSessionState`) and its UDP driver (`ClientConnection`).
//! - [`tunnel_client`]: `jvpn client`, the client session plus a TUN device, keepalives,
//!   reattaches and a route watch; [`tun`] is the TUN device, [`socket_buffers`] the UDP buffer
//!   sizes both sides ask for.
//! - [`config`]: the gateway's and the client's config files and key files.
//! - [`cli`]: the command line, parsed in two stages, and the commands that run it.
//!
//! Unsafe code is denied outside the `sys` modules (`dataplane::sys`, `tun::sys`) and
//! the route watch's netlink socket, each of which says why it needs it.
#![deny(missing_docs)]
#![deny(unsafe_code)]
pub mod accept;
pub mod cli;
pub mod client_session;
pub mod config;
pub mod control;
pub mod crypto;
pub mod datapath;
pub mod dataplane;
pub mod dist;
pub mod events;
pub mod gateway;
pub mod iface;
pub mod metrics;
pub mod service;
pub mod session;
pub mod socket_buffers;
pub mod store;
pub mod tun;
pub mod tunnel_client;
