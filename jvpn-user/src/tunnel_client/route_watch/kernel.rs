//! What [`super::RouteWatch`] asks the kernel: a wakeup on every address, route or link change,
//! and, after one, which path the kernel would now take to the gateway.
//!
//! The wakeup is a raw `NETLINK_ROUTE` socket subscribed to the link, IPv4/IPv6 address and
//! IPv4/IPv6 route multicast groups. Its messages are read and thrown away: they only say that
//! *something* changed, and asking the kernel afterwards what it would do is both simpler and
//! right even when messages were lost (`ENOBUFS` counts as a wakeup too). The path is read the way
//! the session's own sockets get theirs: a UDP socket connected to the gateway (connecting sends
//! nothing) reports in `getsockname` the source address the routing table picked; `getifaddrs`
//! says which interface owns that address, and whether a pinned uplink exists, is up and has which
//! addresses.

use super::{GatewayPath, Observation, RouteWatchError, UplinkHealth};
use nix::errno::Errno;
use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use nix::sys::socket::{
    bind, recv, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
    SockaddrStorage,
};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The rtnetlink groups whose messages wake the watcher up.
const GROUPS: libc::c_int = libc::RTMGRP_LINK
    | libc::RTMGRP_IPV4_IFADDR
    | libc::RTMGRP_IPV4_ROUTE
    | libc::RTMGRP_IPV6_IFADDR
    | libc::RTMGRP_IPV6_ROUTE;

/// A read buffer for the messages thrown away; a longer message is truncated, which is fine.
const DISCARD_BUFFER: usize = 4096;

/// A netlink socket that wakes its owner on address, route and link changes.
#[derive(Debug)]
pub struct RouteWakeups {
    socket: AsyncFd<OwnedFd>,
}

impl RouteWakeups {
    /// Opens the socket and joins the groups. Needs a tokio runtime.
    pub fn subscribe() -> Result<Self, RouteWatchError> {
        let subscribe = |e: Errno| RouteWatchError::Subscribe(e.into());
        let socket = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(subscribe)?;
        let groups = u32::try_from(GROUPS).expect("rtnetlink group bits are positive");
        bind(socket.as_raw_fd(), &NetlinkAddr::new(0, groups)).map_err(subscribe)?;
        #[expect(
            unsafe_code,
            reason = "tokio offers AsyncFd registration only as an unsafe fn; the netlink socket is \
                      this module's one kernel object"
        )]
        // SAFETY: the `OwnedFd` moves into the `AsyncFd`, which owns it until dropped; this type
        // only lends it out by shared reference to `recv`, so the descriptor stays open and the
        // same for as long as it is registered.
        let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(|e| RouteWatchError::Subscribe(e.into()))?;
        Ok(Self { socket })
    }

    /// Completes when at least one change was announced since the last call; reads them all.
    pub async fn next(&mut self) -> Result<(), RouteWatchError> {
        loop {
            let mut ready = self
                .socket
                .readable()
                .await
                .map_err(RouteWatchError::Read)?;
            let announced = self.read_all()?;
            ready.clear_ready();
            if announced {
                return Ok(());
            }
        }
    }

    /// Reads and discards every queued message.
    pub fn drain(&mut self) -> Result<(), RouteWatchError> {
        self.read_all().map(drop)
    }

    /// Reads every queued message; whether there was any.
    fn read_all(&self) -> Result<bool, RouteWatchError> {
        let mut buffer = [0u8; DISCARD_BUFFER];
        let mut announced = false;
        loop {
            match recv(
                self.socket.get_ref().as_raw_fd(),
                &mut buffer,
                MsgFlags::MSG_DONTWAIT,
            ) {
                // ENOBUFS: the kernel dropped messages because we were slow; they were changes.
                Ok(_) | Err(Errno::ENOBUFS) => announced = true,
                Err(Errno::EAGAIN) => return Ok(announced),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(RouteWatchError::Read(e.into())),
            }
        }
    }
}

/// One interface from `getifaddrs`: its flags and addresses.
#[derive(Debug)]
struct Interface {
    flags: InterfaceFlags,
    addresses: Vec<IpAddr>,
}

/// Every interface and its addresses, now.
fn interfaces() -> Result<HashMap<String, Interface>, RouteWatchError> {
    let mut interfaces: HashMap<String, Interface> = HashMap::new();
    for entry in getifaddrs().map_err(|e| RouteWatchError::Interfaces(e.into()))? {
        let interface = interfaces
            .entry(entry.interface_name)
            .or_insert_with(|| Interface {
                flags: InterfaceFlags::empty(),
                addresses: Vec::new(),
            });
        interface.flags |= entry.flags;
        if let Some(ip) = entry.address.as_ref().and_then(ip_of) {
            interface.addresses.push(ip);
        }
    }
    Ok(interfaces)
}

fn ip_of(address: &SockaddrStorage) -> Option<IpAddr> {
    address
        .as_sockaddr_in()
        .map(|v4| IpAddr::V4(v4.ip()))
        .or_else(|| address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
}

fn owner(interfaces: &HashMap<String, Interface>, ip: IpAddr) -> Option<String> {
    interfaces
        .iter()
        .find(|(_, interface)| interface.addresses.contains(&ip))
        .map(|(name, _)| name.clone())
}

/// The source address the kernel picks for `gateway`, from `interface` if given; `None` when
/// there is no route.
fn route_source(gateway: SocketAddr, interface: Option<&str>) -> Option<IpAddr> {
    use socket2::{Domain, Protocol, Socket, Type};
    let probe = Socket::new(
        Domain::for_address(gateway),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .ok()?;
    if let Some(name) = interface {
        probe.bind_device(Some(name.as_bytes())).ok()?;
    }
    probe.connect(&gateway.into()).ok()?;
    let source = probe.local_addr().ok()?.as_socket()?.ip();
    (!source.is_unspecified()).then_some(source)
}

/// What the kernel would do now: the routing table's path to `gateway` (not through
/// `tunnel_device`), and `uplink`'s health if given. Also returns the interface that owns `local`
/// (the session's address), if any still does.
pub fn observe(
    gateway: SocketAddr,
    uplink: Option<&str>,
    tunnel_device: &str,
    local: IpAddr,
) -> Result<(Observation, Option<String>), RouteWatchError> {
    let interfaces = interfaces()?;
    let route = route_source(gateway, None)
        .map(|source| GatewayPath {
            source,
            interface: owner(&interfaces, source),
        })
        .filter(|path| path.interface.as_deref() != Some(tunnel_device));
    let uplink = uplink.map(|name| match interfaces.get(name) {
        None => UplinkHealth::Gone,
        Some(interface) if !interface.flags.contains(up_and_running()) => UplinkHealth::Down,
        Some(interface) => UplinkHealth::Up {
            addresses: interface.addresses.clone(),
            route_source: route_source(gateway, Some(name)),
        },
    });
    Ok((Observation { route, uplink }, owner(&interfaces, local)))
}

/// The interfaces, other than `tunnel_device` and loopback, that are up and have a route to
/// `gateway` of their own (the source address the kernel picks when bound to them), sorted by
/// name: where a client whose current path went silent may try next.
pub fn uplink_candidates(
    gateway: SocketAddr,
    tunnel_device: &str,
) -> Result<Vec<String>, RouteWatchError> {
    let interfaces = interfaces()?;
    let mut names: Vec<String> = interfaces
        .into_iter()
        .filter(|(name, interface)| {
            name != tunnel_device
                && !interface.flags.contains(InterfaceFlags::IFF_LOOPBACK)
                && interface.flags.contains(up_and_running())
                && route_source(gateway, Some(name))
                    .is_some_and(|source| interface.addresses.contains(&source))
        })
        .map(|(name, _)| name)
        .collect();
    names.sort();
    Ok(names)
}

/// Administratively up and with a carrier.
fn up_and_running() -> InterfaceFlags {
    InterfaceFlags::IFF_UP | InterfaceFlags::IFF_RUNNING
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOOPBACK_GATEWAY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9);

    #[test]
    fn the_loopback_path_is_seen_as_the_kernel_has_it() {
        let (observed, owner) = observe(
            LOOPBACK_GATEWAY,
            Some("lo"),
            "jvpn-none",
            Ipv4Addr::LOCALHOST.into(),
        )
        .expect("observe");
        let lo = GatewayPath {
            source: Ipv4Addr::LOCALHOST.into(),
            interface: Some("lo".into()),
        };
        assert_eq!(observed.route, Some(lo));
        assert_eq!(owner.as_deref(), Some("lo"));
        match observed.uplink {
            Some(UplinkHealth::Up {
                addresses,
                route_source,
            }) => {
                assert!(
                    addresses.contains(&Ipv4Addr::LOCALHOST.into()),
                    "{addresses:?}"
                );
                assert_eq!(route_source, Some(Ipv4Addr::LOCALHOST.into()));
            }
            other => panic!("lo should be up: {other:?}"),
        }
    }

    #[test]
    fn a_missing_uplink_is_gone_and_a_path_through_the_tunnel_is_none() {
        let (observed, _) = observe(
            LOOPBACK_GATEWAY,
            Some("jvpn-nosuch0"),
            "lo",
            Ipv4Addr::new(192, 0, 2, 1).into(),
        )
        .expect("observe");
        assert_eq!(observed.uplink, Some(UplinkHealth::Gone));
        assert_eq!(
            observed.route, None,
            "the only path leads through the tunnel device"
        );
    }

    #[test]
    fn loopback_and_the_tunnel_are_never_uplink_candidates() {
        let candidates = uplink_candidates(LOOPBACK_GATEWAY, "jvpn-none").expect("interfaces");
        assert!(!candidates.iter().any(|c| c == "lo"), "{candidates:?}");
    }

    #[tokio::test]
    async fn the_wakeup_socket_subscribes_and_drains_without_blocking() {
        let mut wakeups = RouteWakeups::subscribe().expect("subscribe to rtnetlink");
        wakeups.drain().expect("an empty queue drains");
    }
}
