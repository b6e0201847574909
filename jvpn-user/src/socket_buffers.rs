//! Kernel buffer sizes for the UDP sockets that carry tunnel traffic: the gateway's socket and
//! each client transport.
//!
//! One jvpn process seals packets as fast as it reads them from its TUN device; the other opens
//! them one at a time. With the kernel's default receive buffer the receiver's socket overflowed
//! in every burst and each overflow cost the tunnelled TCP connection a retransmission and half
//! its window (BENCHMARKS.md, "tunnel"). Larger buffers absorb the bursts. Enlarging is best
//! effort: a socket keeps whatever size the kernel grants, and nothing fails because of it.

use nix::sys::socket::{getsockopt, setsockopt, sockopt, GetSockOpt, SetSockOpt};
use std::os::fd::{AsFd, BorrowedFd};

/// Receive and send buffer size asked for on every socket that carries tunnel traffic.
///
/// The default (`net.core.rmem_default`, 212,992 bytes on Debian) holds roughly a hundred
/// full-size datagrams at their in-kernel size, about a millisecond of a gigabit stream: one
/// late wakeup of the receiving process overflowed it. 4 MiB was enough at 300 Mbit/s; at the
/// 2-3.5 Gbit/s the batched data path carries, the gateway's socket still overflowed under four
/// parallel uploads (a datagram that crossed a veth with XDP sits in a page of its own, so the
/// buffer holds about 2,000 datagrams, a few milliseconds): 140-320 overflows and 4,400-5,400
/// TCP retransmissions in 4 s, and 39-320 with 8 MiB, none with 16 MiB (BENCHMARKS.md, `peers`).
/// The memory is taken only while datagrams wait. As root (`CAP_NET_ADMIN`) it is set past
/// `net.core.rmem_max`/`wmem_max` with `SO_RCVBUFFORCE` and `SO_SNDBUFFORCE`; otherwise the
/// kernel caps it at those limits. The kernel doubles the value for its bookkeeping, so the
/// sizes read back are about twice this.
pub const TUNNEL_SOCKET_BUFFER_BYTES: usize = 16 * 1024 * 1024;

/// The buffer sizes a socket ended up with, as the kernel reports them (`SO_RCVBUF`,
/// `SO_SNDBUF`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferSizes {
    /// The receive buffer, in bytes.
    pub receive: usize,
    /// The send buffer, in bytes.
    pub send: usize,
}

/// Asks for [`TUNNEL_SOCKET_BUFFER_BYTES`] of receive and send buffer on `socket`, forced past
/// the system limits when privileged, capped by them otherwise; never shrinks a buffer and never
/// fails. Returns the sizes obtained, which it also logs at debug level.
pub fn enlarge(socket: &impl AsFd) -> BufferSizes {
    let fd = socket.as_fd();
    let sizes = BufferSizes {
        receive: enlarge_one(fd, sockopt::RcvBufForce, sockopt::RcvBuf),
        send: enlarge_one(fd, sockopt::SndBufForce, sockopt::SndBuf),
    };
    tracing::debug!(
        receive = sizes.receive,
        send = sizes.send,
        requested = TUNNEL_SOCKET_BUFFER_BYTES,
        "UDP socket buffers"
    );
    sizes
}

/// One direction: `force` if permitted, else `plain` (capped by the system limit), undone if
/// the capped size is smaller than what the socket had. Returns the size read back.
fn enlarge_one<Force, Plain>(fd: BorrowedFd<'_>, force: Force, plain: Plain) -> usize
where
    Force: SetSockOpt<Val = usize>,
    Plain: SetSockOpt<Val = usize> + GetSockOpt<Val = usize> + Copy,
{
    let before = getsockopt(&fd, plain).unwrap_or(0);
    if setsockopt(&fd, force, &TUNNEL_SOCKET_BUFFER_BYTES).is_ok() {
        return getsockopt(&fd, plain).unwrap_or(before);
    }
    // Not privileged: the kernel caps the request at the system limit, which could be below
    // the default the socket started with.
    let _ = setsockopt(&fd, plain, &TUNNEL_SOCKET_BUFFER_BYTES);
    let after = getsockopt(&fd, plain).unwrap_or(0);
    if after < before {
        // The kernel doubles what it is given; half of `before` restores it.
        let _ = setsockopt(&fd, plain, &(before / 2));
        return before;
    }
    after
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn sizes_of(socket: &UdpSocket) -> BufferSizes {
        BufferSizes {
            receive: getsockopt(socket, sockopt::RcvBuf).unwrap(),
            send: getsockopt(socket, sockopt::SndBuf).unwrap(),
        }
    }

    #[test]
    fn enlarging_never_shrinks_and_reports_what_the_kernel_holds() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = sizes_of(&socket);
        let obtained = enlarge(&socket);
        assert_eq!(obtained, sizes_of(&socket));
        assert!(
            obtained.receive >= before.receive,
            "{obtained:?} < {before:?}"
        );
        assert!(obtained.send >= before.send, "{obtained:?} < {before:?}");
    }

    #[test]
    fn a_privileged_process_gets_the_full_size_past_the_system_limit() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: SO_RCVBUFFORCE needs root (CAP_NET_ADMIN)");
            return;
        }
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let obtained = enlarge(&socket);
        assert!(
            obtained.receive >= TUNNEL_SOCKET_BUFFER_BYTES,
            "{obtained:?}"
        );
        assert!(obtained.send >= TUNNEL_SOCKET_BUFFER_BYTES, "{obtained:?}");
    }
}
