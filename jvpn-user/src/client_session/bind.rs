//! Where a client transport lives: the local UDP socket, bound to an interface, a source address,
//! or neither, and connected to the gateway.
//!
//! A transport is one socket. Jumping means opening a *new* socket (a new source port at least,
//! often a new uplink) while the old one keeps carrying traffic, so the gateway sees a new
//! transport to validate. Binding to an interface (`SO_BINDTODEVICE`) picks the uplink even when
//! both uplinks have a route to the gateway, as the demo's client with `wifi` and `lte` does.
//!
//! Sockets are connected to the gateway: the kernel then delivers only the gateway's datagrams,
//! and `local_addr` reports the source address the route chose.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::UdpSocket;

/// Where to open a client transport. The default is any interface, any address, any port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LocalBinding {
    /// Bind to this interface (`SO_BINDTODEVICE`), e.g. `"wifi"`.
    pub interface: Option<String>,
    /// Bind to this source address (port 0: any port).
    pub address: Option<SocketAddr>,
}

impl LocalBinding {
    /// Any interface, any address: the route to the gateway decides.
    pub fn any() -> Self {
        Self::default()
    }

    /// Only through interface `name`.
    pub fn interface(name: impl Into<String>) -> Self {
        Self {
            interface: Some(name.into()),
            address: None,
        }
    }

    /// From source address `ip`, any port.
    pub fn ip(ip: IpAddr) -> Self {
        Self::address(SocketAddr::new(ip, 0))
    }

    /// From source address and port `address`.
    pub fn address(address: SocketAddr) -> Self {
        Self {
            interface: None,
            address: Some(address),
        }
    }
}

impl From<IpAddr> for LocalBinding {
    fn from(ip: IpAddr) -> Self {
        Self::ip(ip)
    }
}

impl From<SocketAddr> for LocalBinding {
    fn from(address: SocketAddr) -> Self {
        Self::address(address)
    }
}

impl std::fmt::Display for LocalBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.interface, &self.address) {
            (None, None) => f.write_str("any interface"),
            (Some(name), None) => write!(f, "interface {name}"),
            (None, Some(address)) => write!(f, "{address}"),
            (Some(name), Some(address)) => write!(f, "{address} on interface {name}"),
        }
    }
}

/// Why a client transport could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The kernel refused a UDP socket.
    #[error("cannot create a UDP socket: {0}")]
    Socket(#[source] io::Error),
    /// `SO_BINDTODEVICE` failed.
    #[error("cannot bind to interface {name:?}: {source}; list interfaces with `ip link`")]
    Interface {
        /// The interface.
        name: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The source address could not be bound.
    #[error("cannot bind to {address}: {source}; is the address configured here (`ip addr`) and the port free?")]
    Address {
        /// The address.
        address: SocketAddr,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The source address and the gateway are of different IP families.
    #[error("source address {local} cannot reach gateway {gateway}: different IP families")]
    Family {
        /// The source address.
        local: SocketAddr,
        /// The gateway.
        gateway: SocketAddr,
    },
    /// No route to the gateway from this binding.
    #[error("cannot reach gateway {gateway} from {binding}: {source}; check the route with `ip route get`")]
    Connect {
        /// The gateway.
        gateway: SocketAddr,
        /// The binding.
        binding: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
}

/// Opens a UDP socket at `binding`, connected to `gateway`. Needs a tokio runtime.
pub fn open_transport(binding: &LocalBinding, gateway: SocketAddr) -> Result<UdpSocket, BindError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let local = match binding.address {
        Some(address) if address.is_ipv4() != gateway.is_ipv4() => {
            return Err(BindError::Family {
                local: address,
                gateway,
            })
        }
        Some(address) => address,
        None if gateway.is_ipv4() => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        None => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let socket = Socket::new(
        Domain::for_address(gateway),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(BindError::Socket)?;
    crate::socket_buffers::enlarge(&socket);
    if let Some(name) = &binding.interface {
        socket
            .bind_device(Some(name.as_bytes()))
            .map_err(|source| BindError::Interface {
                name: name.clone(),
                source,
            })?;
    }
    socket
        .bind(&local.into())
        .map_err(|source| BindError::Address {
            address: local,
            source,
        })?;
    socket
        .connect(&gateway.into())
        .map_err(|source| BindError::Connect {
            gateway,
            binding: binding.to_string(),
            source,
        })?;
    socket.set_nonblocking(true).map_err(BindError::Socket)?;
    UdpSocket::from_std(socket.into()).map_err(BindError::Socket)
}
