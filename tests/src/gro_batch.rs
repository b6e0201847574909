//! A UDP socket read as the gateway's best receive path reads: `UDP_GRO` on, a 16 MiB receive
//! buffer, and up to [`READS_PER_CALL`] runs per `recvmmsg`, each split back into its datagrams
//! by the segment size of its `UDP_GRO` control message. The socket side of `cargo xtask bench
//! rx` ([`crate::xsk_rx`]).
//!
//! Raw `recvmmsg` rather than nix's: nix reuses its headers without restoring
//! `msg_controllen`, which the kernel shrinks to what a message used (0 for a datagram GRO did
//! not merge), so later reads lose their control message and a run would count as one
//! datagram.
#![allow(
    unsafe_code,
    reason = "recvmmsg and the control-message walk, which neither std nor nix offer safely with reusable headers"
)]

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use jvpn_user::socket_buffers::TUNNEL_SOCKET_BUFFER_BYTES;
use nix::sys::socket::{setsockopt, sockopt};

use crate::xsk_rx::RX_PORT;

/// Runs one `recvmmsg` reads.
pub const READS_PER_CALL: usize = 32;
/// Bytes per run buffer: the most a GRO packet carries (64 KiB), as the gateway's reads use.
const RUN_BUFFER: usize = 1 << 16;
/// Control-message room per run: one `UDP_GRO` segment size (`CMSG_SPACE(4)` is 24) with slack.
const CONTROL_BYTES: usize = 64;
/// `UDP_GRO` (linux/udp.h), the control message's type at level `SOL_UDP`.
const UDP_GRO: libc::c_int = 104;

/// The UDP socket on [`RX_PORT`] and the buffers it reads into, reused from call to call.
pub struct SocketReceiver {
    socket: UdpSocket,
    buffers: Vec<[u8; RUN_BUFFER]>,
    controls: Vec<[u64; CONTROL_BYTES / 8]>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl std::fmt::Debug for SocketReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketReceiver")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl SocketReceiver {
    /// Binds the socket (in the calling thread's namespace); reads wait at most `patience`.
    pub fn bind(patience: Duration) -> Self {
        let socket =
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, RX_PORT)).expect("binding the receiver");
        setsockopt(&socket, sockopt::RcvBufForce, &TUNNEL_SOCKET_BUFFER_BYTES)
            .expect("SO_RCVBUFFORCE (root)");
        setsockopt(&socket, sockopt::UdpGroSegment, &true).expect("UDP_GRO (Linux 5.0)");
        socket
            .set_read_timeout(Some(patience))
            .expect("a read timeout");
        Self {
            socket,
            buffers: vec![[0; RUN_BUFFER]; READS_PER_CALL],
            controls: vec![[0; CONTROL_BYTES / 8]; READS_PER_CALL],
            iovecs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                };
                READS_PER_CALL
            ],
            // SAFETY: a plain C struct of pointers and integers, for which all-zero is valid;
            // every pointer is set before each call.
            headers: vec![unsafe { std::mem::zeroed() }; READS_PER_CALL],
        }
    }

    /// Reads what is there (waiting up to the patience for the first run) and calls `each` with
    /// every datagram; returns how many it read. Panics on a truncated run or control message
    /// rather than miscount.
    pub fn receive(&mut self, mut each: impl FnMut(&[u8])) -> usize {
        for i in 0..READS_PER_CALL {
            self.iovecs[i] = libc::iovec {
                iov_base: self.buffers[i].as_mut_ptr().cast(),
                iov_len: RUN_BUFFER,
            };
            let header = &mut self.headers[i].msg_hdr;
            header.msg_name = std::ptr::null_mut();
            header.msg_namelen = 0;
            header.msg_iov = &mut self.iovecs[i];
            header.msg_iovlen = 1;
            header.msg_control = self.controls[i].as_mut_ptr().cast();
            header.msg_controllen = CONTROL_BYTES;
            header.msg_flags = 0;
        }
        // SAFETY: every header points at its own iovec, buffer and control area, all alive and
        // unaliased for the call; the count is the headers' length.
        let received = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                READS_PER_CALL as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            let error = std::io::Error::last_os_error();
            match error.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => return 0,
                _ => panic!("recvmmsg on the receiver: {error}"),
            }
        }
        let mut count = 0;
        for i in 0..received as usize {
            let header = &self.headers[i];
            let bytes = header.msg_len as usize;
            assert!(
                header.msg_hdr.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) == 0,
                "a run or its control message was truncated"
            );
            let segment = gro_segment(&header.msg_hdr).unwrap_or(bytes).max(1);
            for datagram in self.buffers[i][..bytes].chunks(segment) {
                each(datagram);
                count += 1;
            }
        }
        count
    }
}

/// The `UDP_GRO` segment size of a received message, if it carries one.
fn gro_segment(header: &libc::msghdr) -> Option<usize> {
    // SAFETY: `header` is a message the kernel filled, whose control area is the receiver's
    // buffer of `msg_controllen` bytes; CMSG_FIRSTHDR and CMSG_NXTHDR stay inside it.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(header) };
    while !cmsg.is_null() {
        // SAFETY: a non-null header from CMSG_FIRSTHDR/NXTHDR lies wholly in the control area.
        let current = unsafe { &*cmsg };
        if current.cmsg_level == libc::SOL_UDP && current.cmsg_type == UDP_GRO {
            // SAFETY: a UDP_GRO control message carries one int (the segment size).
            let size = unsafe { libc::CMSG_DATA(cmsg).cast::<libc::c_int>().read_unaligned() };
            return usize::try_from(size).ok();
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        cmsg = unsafe { libc::CMSG_NXTHDR(header, cmsg) };
    }
    None
}
