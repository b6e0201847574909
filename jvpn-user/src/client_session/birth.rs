//! The BIRTH handshake over a connected UDP socket: HELLO, sent again with a fresh timestamp
//! (and a fresh ephemeral key) until a WELCOME answers or the attempts run out.
//!
//! Every HELLO starts its own Noise handshake, and a WELCOME decrypts under exactly one of them, so
//! the driver keeps every handshake of this attempt and offers a WELCOME to each, newest first: a
//! slow WELCOME to an earlier HELLO still completes. A handshake a WELCOME reached and failed is
//! spent; a datagram that is no WELCOME at all spends none. The gateway opens a session for every
//! HELLO it accepts; the ones the client does not complete idle out there.
//!
//! A gateway under load answers a HELLO without a valid mac2 with a COOKIE_REPLY: the driver opens
//! it against the HELLO it answers (its mac1 is the associated data), keeps the cookie for
//! `abi::COOKIE_CLIENT_LIFETIME_SECS`, and sends that HELLO again at once with its mac2; every later
//! HELLO of this attempt carries the mac2 too.

use super::connection_error::ConnectionError;
use super::options::ConnectOptions;
use crate::crypto::cookie::is_cookie_reply;
use crate::crypto::handshake::tai64n;
use crate::crypto::{ClientHandshake, ClientIdentity, ClientSession, HandshakeError};
use jvpn_common::abi::{COOKIE_CLIENT_LIFETIME_SECS, COOKIE_LEN};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;
use std::time::SystemTime;
use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

/// Runs the handshake with `gateway` over `socket` (connected to it).
pub(crate) async fn handshake(
    identity: &ClientIdentity,
    socket: &UdpSocket,
    gateway: SocketAddr,
    options: &ConnectOptions,
) -> Result<ClientSession, ConnectionError> {
    let mut outstanding: Vec<ClientHandshake> = Vec::new();
    let mut cookie: Option<([u8; COOKIE_LEN], Instant)> = None;
    let mut buffer = vec![0u8; u16::MAX as usize];
    for round in 0..options.handshake_attempts {
        let live_cookie = cookie
            .as_ref()
            .filter(|(_, at)| at.elapsed() < COOKIE_LIFETIME)
            .map(|(c, _)| c);
        let (handshake, hello) =
            ClientHandshake::start_with_cookie(identity, tai64n(SystemTime::now()), live_cookie)?;
        outstanding.push(handshake);
        send(socket, &hello).await?;
        let deadline = Instant::now() + options.wait(options.handshake_wait, round);
        while !outstanding.is_empty() {
            let Ok(received) = timeout_at(deadline, socket.recv(&mut buffer)).await else {
                break;
            };
            let len = match received {
                Ok(len) => len,
                // An ICMP port unreachable for an earlier HELLO: the gateway is not up (yet).
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(ConnectionError::io("receive from the gateway")(e)),
            };
            let datagram = &buffer[..len];
            if is_cookie_reply(datagram) {
                if let Some((fresh, hello)) = take_cookie(&mut outstanding, datagram) {
                    cookie = Some((fresh, Instant::now()));
                    send(socket, &hello).await?;
                }
                continue;
            }
            if let Some(session) = offer(&mut outstanding, datagram) {
                return Ok(session);
            }
        }
    }
    Err(ConnectionError::HandshakeTimedOut {
        gateway,
        attempts: options.handshake_attempts,
    })
}

/// How long a cookie is used.
const COOKIE_LIFETIME: Duration = Duration::from_secs(COOKIE_CLIENT_LIFETIME_SECS);

/// Opens a COOKIE_REPLY against the outstanding HELLOs, newest first: the cookie and the HELLO it
/// answers, now with its mac2. `None` if it answers none of them (forged, or for another gateway).
fn take_cookie(
    outstanding: &mut [ClientHandshake],
    datagram: &[u8],
) -> Option<([u8; COOKIE_LEN], Vec<u8>)> {
    let taken = outstanding
        .iter_mut()
        .rev()
        .find_map(|handshake| handshake.accept_cookie(datagram).ok());
    if taken.is_none() {
        tracing::debug!("a COOKIE_REPLY answered none of this attempt's HELLOs; ignored");
    }
    taken
}

/// Offers `datagram` to every outstanding handshake, newest first; drops the spent ones.
fn offer(outstanding: &mut Vec<ClientHandshake>, datagram: &[u8]) -> Option<ClientSession> {
    for handshake in outstanding.iter_mut().rev() {
        match handshake.finish(datagram) {
            Ok(session) => return Some(session),
            // Not a WELCOME at all: no handshake would take it, and none was spent.
            Err(HandshakeError::Length { .. })
            | Err(HandshakeError::Header(_))
            | Err(HandshakeError::UnexpectedType { .. }) => break,
            Err(e) => tracing::debug!(error = %e, "WELCOME did not complete this handshake"),
        }
    }
    outstanding.retain(|h| !h.is_spent());
    None
}

/// Sends one datagram; a refusal reported for an earlier datagram is cleared and sending retried.
pub(crate) async fn send(socket: &UdpSocket, datagram: &[u8]) -> Result<(), ConnectionError> {
    match socket.send(datagram).await {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => socket.send(datagram).await,
        other => other,
    }
    .map(|_| ())
    .map_err(ConnectionError::io("send to the gateway"))
}
