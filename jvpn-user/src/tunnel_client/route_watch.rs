//! Noticing that the path to the gateway changed under the session, and deciding whether to
//! reattach and from where.
//!
//! The kernel announces every address, route and link change on rtnetlink multicast groups;
//! [`RouteWatch::changed`] uses them only as a wakeup (the messages are not parsed), waits
//! [`DEBOUNCE`] for a burst of changes to settle, and [`RouteWatch::check`] then asks the kernel
//! what it would do *now* ([`kernel::observe`]): which source address (and so which interface) the
//! routing table picks for the gateway, and, for a session pinned to an uplink, whether that uplink
//! still exists, is up and still has the session's address. [`decide`] turns the session's path
//! and that observation into a [`Decision`]; it is a pure function, so the policy is tested apart
//! from the kernel:
//!
//! - pinned to an uplink (`--uplink IF` or `jvpn client jump --uplink IF`): stay on it while it
//!   works, whatever the routing table prefers; if it is gone, down, or lost the session's address,
//!   follow the routing table; if it only changed its address, reattach from its new address.
//! - not pinned: follow the routing table: reattach as soon as it picks another source address or
//!   interface for the gateway.
//!
//! Nothing leads to the gateway at all: wait for the next change (the silence path of the
//! supervisor stays as the backstop).

mod kernel;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use kernel::{observe, uplink_candidates, RouteWakeups};

/// How long after a change to wait for the rest of its burst (an address removal brings a route
/// flush, a link going down brings both) before looking at the result.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Why route changes cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum RouteWatchError {
    /// The rtnetlink socket could not be opened or subscribed.
    #[error("cannot subscribe to address and route changes ({0}); only silence from the gateway and `jvpn client jump` will trigger a reattach")]
    Subscribe(#[source] std::io::Error),
    /// Reading the rtnetlink socket failed.
    #[error("cannot read address and route changes ({0}); only silence from the gateway and `jvpn client jump` will trigger a reattach")]
    Read(#[source] std::io::Error),
    /// The interfaces and their addresses could not be listed.
    #[error(
        "cannot list interfaces and their addresses ({0}); is /proc or netlink restricted here?"
    )]
    Interfaces(#[source] std::io::Error),
}

/// One way to the gateway: the source address, and the interface that owns it (if known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayPath {
    /// The source address the kernel picks (or the session's socket has).
    pub source: IpAddr,
    /// The interface that owns `source`; `None` once it is owned by none.
    pub interface: Option<String>,
}

impl GatewayPath {
    /// Whether `self` and `other` are different paths: another source address, or another
    /// interface when both are known.
    fn differs_from(&self, other: &GatewayPath) -> bool {
        self.source != other.source
            || matches!((&self.interface, &other.interface), (Some(a), Some(b)) if a != b)
    }
}

impl fmt::Display for GatewayPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.interface {
            Some(interface) => write!(f, "{} via {interface}", self.source),
            None => write!(f, "{} via an interface that no longer has it", self.source),
        }
    }
}

/// Where the session's transport is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionPath {
    /// The transport's local address and its interface.
    pub path: GatewayPath,
    /// The interface the transport is pinned to (`SO_BINDTODEVICE`), if any.
    pub uplink: Option<String>,
}

/// The state of the uplink a session is pinned to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UplinkHealth {
    /// No interface of that name exists.
    Gone,
    /// It exists but is administratively down or has no carrier.
    Down,
    /// It is up.
    Up {
        /// The addresses configured on it.
        addresses: Vec<IpAddr>,
        /// The source address a socket bound to it gets towards the gateway; `None`: no route.
        route_source: Option<IpAddr>,
    },
}

/// What the kernel would do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The routing table's path to the gateway; `None`: no route (or only through the tunnel).
    pub route: Option<GatewayPath>,
    /// The pinned uplink's state, when the session has one.
    pub uplink: Option<UplinkHealth>,
}

/// How a pinned uplink stopped working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UplinkLoss {
    /// The interface disappeared.
    Gone,
    /// The interface went down or lost its carrier.
    Down,
    /// The session's address was removed from it, and it has no other.
    AddressRemoved(IpAddr),
    /// It has no route to the gateway.
    NoRoute,
}

/// Why the client reattaches; its `Display` is the log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReattachReason {
    /// Not pinned: the routing table now picks another path.
    RouteChanged {
        /// The session's path.
        from: GatewayPath,
        /// The routing table's path now.
        to: GatewayPath,
    },
    /// Pinned: the uplink stopped working; the routing table's path is taken instead.
    UplinkLost {
        /// The uplink.
        uplink: String,
        /// How it stopped working.
        loss: UplinkLoss,
        /// The routing table's path now.
        to: GatewayPath,
    },
    /// Pinned: the uplink works but with another address than the session's.
    UplinkRenumbered {
        /// The uplink.
        uplink: String,
        /// The session's address, gone from the uplink.
        from: IpAddr,
        /// The uplink's source address now.
        to: IpAddr,
    },
}

impl fmt::Display for UplinkLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gone => f.write_str("is gone"),
            Self::Down => f.write_str("is down"),
            Self::AddressRemoved(address) => write!(f, "lost address {address}"),
            Self::NoRoute => f.write_str("has no route to the gateway"),
        }
    }
}

impl fmt::Display for ReattachReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RouteChanged { from, to } => {
                write!(f, "route to the gateway changed: {from} -> {to}")
            }
            Self::UplinkLost { uplink, loss, to } => {
                write!(
                    f,
                    "uplink {uplink} {loss}; following the routing table: {to}"
                )
            }
            Self::UplinkRenumbered { uplink, from, to } => {
                write!(f, "uplink {uplink} changed its address: {from} -> {to}")
            }
        }
    }
}

/// What to do about the session's transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The session's path is still the right one.
    Stay,
    /// The session's path stopped working and nothing else leads to the gateway: wait for the next
    /// change.
    Stranded(Stranded),
    /// Reattach now, pinned to `uplink` (`None`: the routing table chooses).
    Reattach {
        /// Where the new transport is opened.
        uplink: Option<String>,
        /// Why.
        reason: ReattachReason,
    },
}

/// Why a session is [`Decision::Stranded`]; its `Display` is the log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stranded {
    /// Its pinned uplink stopped working, and the routing table has no other way.
    Uplink {
        /// The uplink.
        uplink: String,
        /// How it stopped working.
        loss: UplinkLoss,
    },
    /// Not pinned, and the routing table has no way to the gateway.
    NoRoute,
}

impl fmt::Display for Stranded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uplink { uplink, loss } => {
                write!(
                    f,
                    "uplink {uplink} {loss} and no other route leads to the gateway"
                )
            }
            Self::NoRoute => f.write_str("no route leads to the gateway"),
        }
    }
}

/// Decides, from where the session is and what the kernel would do now, whether to reattach and
/// to what binding; see the module documentation for the policy.
pub fn decide(session: &SessionPath, observed: &Observation) -> Decision {
    match &session.uplink {
        Some(uplink) => decide_pinned(session.path.source, uplink, observed),
        None => match &observed.route {
            None => Decision::Stranded(Stranded::NoRoute),
            Some(route) if route.differs_from(&session.path) => Decision::Reattach {
                uplink: None,
                reason: ReattachReason::RouteChanged {
                    from: session.path.clone(),
                    to: route.clone(),
                },
            },
            Some(_) => Decision::Stay,
        },
    }
}

fn decide_pinned(local: IpAddr, uplink: &str, observed: &Observation) -> Decision {
    let loss = match &observed.uplink {
        None | Some(UplinkHealth::Gone) => UplinkLoss::Gone,
        Some(UplinkHealth::Down) => UplinkLoss::Down,
        Some(UplinkHealth::Up {
            addresses,
            route_source,
        }) => match route_source {
            Some(_) if addresses.contains(&local) => return Decision::Stay,
            Some(source) if addresses.contains(source) => {
                return Decision::Reattach {
                    uplink: Some(uplink.to_owned()),
                    reason: ReattachReason::UplinkRenumbered {
                        uplink: uplink.to_owned(),
                        from: local,
                        to: *source,
                    },
                }
            }
            _ if !addresses.contains(&local) => UplinkLoss::AddressRemoved(local),
            _ => UplinkLoss::NoRoute,
        },
    };
    match &observed.route {
        Some(to) => Decision::Reattach {
            uplink: None,
            reason: ReattachReason::UplinkLost {
                uplink: uplink.to_owned(),
                loss,
                to: to.clone(),
            },
        },
        None => Decision::Stranded(Stranded::Uplink {
            uplink: uplink.to_owned(),
            loss,
        }),
    }
}

/// The route watcher of one client: the wakeups, the gateway, and the interface each local
/// address was last seen on (so a log can still name the interface of an address just removed).
#[derive(Debug)]
pub struct RouteWatch {
    wakeups: RouteWakeups,
    gateway: SocketAddr,
    tunnel_device: String,
    last_seen: Option<GatewayPath>,
}

impl RouteWatch {
    /// Subscribes to changes; paths to `gateway` through `tunnel_device` (the client's own TUN)
    /// are not paths.
    pub fn new(gateway: SocketAddr, tunnel_device: &str) -> Result<Self, RouteWatchError> {
        Ok(Self {
            wakeups: RouteWakeups::subscribe()?,
            gateway,
            tunnel_device: tunnel_device.to_owned(),
            last_seen: None,
        })
    }

    /// Completes after the next burst of address, route or link changes.
    pub async fn changed(&mut self) -> Result<(), RouteWatchError> {
        self.wakeups.next().await?;
        tokio::time::sleep(DEBOUNCE).await;
        self.wakeups.drain()
    }

    /// Looks at the kernel now and decides for the session at `local`, pinned to `uplink`.
    pub fn check(
        &mut self,
        local: IpAddr,
        uplink: Option<&str>,
    ) -> Result<Decision, RouteWatchError> {
        let (observed, owner) = observe(self.gateway, uplink, &self.tunnel_device, local)?;
        let interface = owner.or_else(|| {
            self.last_seen
                .as_ref()
                .filter(|seen| seen.source == local)
                .and_then(|seen| seen.interface.clone())
        });
        let path = GatewayPath {
            source: local,
            interface,
        };
        let session = SessionPath {
            path: path.clone(),
            uplink: uplink.map(str::to_owned),
        };
        self.last_seen = Some(path);
        Ok(decide(&session, &observed))
    }
}

#[cfg(test)]
mod tests;
