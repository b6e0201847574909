//! The gateway's UDP socket: every jvpn message arrives on it and leaves from it.
//!
//! It binds the config's `listen` address (issue 8, defect 3: it used to bind `[::]` whatever
//! the config said) and the interface the XDP program enforces on, so the controller hears only
//! what the dataplane saw first.

use super::GatewayError;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use tokio::net::UdpSocket;

/// Binds the gateway's UDP socket to `listen`:`port` (port 0: any free port) and to the
/// dataplane's interface (`SO_BINDTODEVICE`): a datagram to the jvpn port that arrives on an interface without the XDP
/// program is not delivered to it (issue 8, defect 3). Replies leave by that interface too. The
/// unspecified IPv6 address takes IPv4 as well (mapped addresses), whatever `bindv6only` says.
pub fn bind(listen: IpAddr, port: u16, iface: &str) -> Result<UdpSocket, GatewayError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr = SocketAddr::new(listen, port);
    let what = format!("bind the UDP socket to {addr} on {iface}; check `listen` in the config");
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(super::io(what.clone()))?;
    if listen == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
        socket.set_only_v6(false).map_err(super::io(what.clone()))?;
    }
    socket
        .bind_device(Some(iface.as_bytes()))
        .map_err(super::io(format!(
            "bind the UDP socket to the interface {iface} (SO_BINDTODEVICE); check --iface \
             (list interfaces with `ip link`)"
        )))?;
    socket
        .set_nonblocking(true)
        .map_err(super::io(what.clone()))?;
    socket.bind(&addr.into()).map_err(super::io(what.clone()))?;
    UdpSocket::from_std(socket.into()).map_err(super::io(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    async fn receives_from(socket: &UdpSocket, from: &std::net::UdpSocket) -> bool {
        let port = socket.local_addr().expect("local addr").port();
        from.send_to(b"jvpn?", (Ipv4Addr::LOCALHOST, port))
            .expect("send");
        let mut buf = [0u8; 16];
        tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// `listen` is honoured: a specific address is bound as given, the unspecified IPv6 address
    /// takes IPv4 too.
    #[tokio::test]
    async fn the_socket_binds_listen_on_the_interface() {
        let v4 = bind(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, "lo").expect("bind 127.0.0.1 on lo");
        assert_eq!(
            v4.local_addr().expect("addr").ip(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        let any = bind(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0, "lo").expect("bind [::] on lo");
        let sender = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("sender");
        assert!(receives_from(&v4, &sender).await, "IPv4 on 127.0.0.1");
        assert!(receives_from(&any, &sender).await, "IPv4 on [::]");
    }

    /// A missing interface is an error that names it, not a socket that hears everything.
    #[tokio::test]
    async fn an_unknown_interface_is_refused() {
        let err = bind(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0, "jvpn-no-such0")
            .expect_err("no such interface");
        assert!(err.to_string().contains("jvpn-no-such0"), "{err}");
    }
}
