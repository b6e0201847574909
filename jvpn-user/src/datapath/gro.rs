//! The receiving socket's side of [`super::gso`]: UDP generic receive offload (`UDP_GRO`, Linux
//! 5.0). With it on, the kernel hands a run of datagrams of one flow over in one `recvmsg`, laid
//! end to end, with their size in a control message (every one that size, the last possibly
//! shorter): a GSO run from the sender arrives whole, and datagrams the device's GRO merged arrive
//! together. [`Received::datagrams_mut`] splits the run apart again, so each datagram is still
//! opened, replay-checked and routed on its own; the buffers are reused from read to read.

use std::io;
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The largest run one read can carry (64 KiB, the kernel's limit for a GRO packet).
const RUN_BUFFER: usize = 1 << 16;

/// Asks the kernel to hand runs of datagrams over in one read. A kernel without `UDP_GRO`
/// refuses; the socket then reads one datagram at a time, which [`Received`] handles the same way.
pub fn enable(socket: &UdpSocket) -> io::Result<()> {
    setsockopt(socket, sockopt::UdpGroSegment, &true).map_err(io::Error::from)
}

/// One read: a run of datagrams from one sender, and the buffers it is read into.
#[derive(Debug)]
pub struct Received {
    buffer: Vec<u8>,
    control: Vec<u8>,
    len: usize,
    segment: usize,
    from: Option<SocketAddr>,
}

impl Default for Received {
    fn default() -> Self {
        Self {
            buffer: vec![0; RUN_BUFFER],
            control: nix::cmsg_space!(i32),
            len: 0,
            segment: 0,
            from: None,
        }
    }
}

impl Received {
    /// Reads the next run from `socket` (waiting for one), replacing the previous one. A run
    /// larger than the buffer (the kernel truncated it) is dropped and reads as empty.
    pub async fn recv(&mut self, socket: &UdpSocket) -> io::Result<()> {
        socket
            .async_io(Interest::READABLE, || self.read_from(socket))
            .await
    }

    /// [`Self::recv`] without waiting: `Ok(false)` (and the previous run forgotten) if no run is
    /// queued. Lets a reader drain what already arrived before it writes what it opened.
    pub fn try_recv(&mut self, socket: &UdpSocket) -> io::Result<bool> {
        match socket.try_io(Interest::READABLE, || self.read_from(socket)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.forget();
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets the run read last.
    fn forget(&mut self) {
        self.len = 0;
        self.segment = 0;
        self.from = None;
    }

    /// One non-blocking `recvmsg` into the buffers.
    fn read_from(&mut self, socket: &UdpSocket) -> io::Result<()> {
        let mut iov = [IoSliceMut::new(&mut self.buffer)];
        let message = recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(self.control.as_mut_slice()),
            MsgFlags::empty(),
        )
        .map_err(io::Error::from)?;
        let mut size = None;
        for cmsg in message.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::UdpGroSegments(gso) = cmsg {
                size = usize::try_from(gso).ok();
            }
        }
        let truncated = message.flags.contains(MsgFlags::MSG_TRUNC);
        let (bytes, address) = (message.bytes, message.address);
        self.from = address.as_ref().and_then(socket_addr);
        if truncated {
            tracing::debug!(from = ?self.from, "a receive run larger than the buffer was dropped");
            self.len = 0;
            self.segment = 0;
            return Ok(());
        }
        self.len = bytes;
        self.segment = size.filter(|&s| s > 0).unwrap_or(bytes);
        Ok(())
    }

    /// The sender of the run (its address as the socket saw it).
    pub fn from(&self) -> Option<SocketAddr> {
        self.from
    }

    /// How many datagrams the run holds.
    pub fn count(&self) -> usize {
        match self.segment {
            0 => 0,
            size => self.len.div_ceil(size),
        }
    }

    /// The datagrams of the run, in order, each to be opened in place.
    pub fn datagrams_mut(&mut self) -> impl Iterator<Item = &mut [u8]> + '_ {
        let size = self.segment.max(1);
        self.buffer[..self.len].chunks_mut(size)
    }
}

/// The socket address `storage` holds, if it is an IP one.
fn socket_addr(storage: &SockaddrStorage) -> Option<SocketAddr> {
    match storage.family()? {
        nix::sys::socket::AddressFamily::Inet => storage
            .as_sockaddr_in()
            .map(|a| SocketAddr::V4((*a).into())),
        nix::sys::socket::AddressFamily::Inet6 => storage
            .as_sockaddr_in6()
            .map(|a| SocketAddr::V6((*a).into())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::gso::Datagrams;

    /// Real sockets on loopback: a GSO run of three full datagrams and a short tail reaches a
    /// GRO socket in one read that splits back into the four datagrams; a lone datagram reads as
    /// a run of one.
    #[tokio::test]
    async fn a_gso_run_arrives_in_one_read_and_splits_back_into_its_datagrams() {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        enable(&receiver).expect("UDP_GRO (Linux 5.0)");
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let sent: Vec<Vec<u8>> = [1200, 1200, 1200, 500]
            .iter()
            .enumerate()
            .map(|(i, &len)| vec![i as u8 + 1; len])
            .collect();
        let datagrams = Datagrams::of(&sent);
        let to = receiver.local_addr().expect("addr");
        datagrams.send(&sender, Some(to)).await.expect("sent");
        let mut received = Received::default();
        received.recv(&receiver).await.expect("a run");
        assert_eq!(received.count(), 4, "the whole run in one read");
        assert_eq!(received.from(), Some(sender.local_addr().expect("addr")));
        let got: Vec<Vec<u8>> = received.datagrams_mut().map(|d| d.to_vec()).collect();
        assert_eq!(got, sent);

        sender.send_to(b"alone", to).await.expect("sent");
        received.recv(&receiver).await.expect("a datagram");
        let got: Vec<Vec<u8>> = received.datagrams_mut().map(|d| d.to_vec()).collect();
        assert_eq!(got, vec![b"alone".to_vec()]);
    }

    /// `try_recv` never waits: on an empty socket it says so and forgets the run before (a
    /// drain loop cannot handle a run twice); with runs queued it reads them one by one.
    #[tokio::test]
    async fn try_recv_reads_only_what_is_queued() {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        enable(&receiver).expect("UDP_GRO (Linux 5.0)");
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let to = receiver.local_addr().expect("addr");
        let mut received = Received::default();
        assert!(!received.try_recv(&receiver).expect("no error"));
        assert_eq!(received.count(), 0);

        let first = Datagrams::of(&[vec![1; 1000], vec![1; 1000]]);
        first.send(&sender, Some(to)).await.expect("sent");
        sender.send_to(b"second", to).await.expect("sent");
        received.recv(&receiver).await.expect("the first run");
        assert_eq!(received.count(), 2);
        // The second is queued by now (loopback delivers within the send call).
        assert!(received.try_recv(&receiver).expect("no error"));
        let got: Vec<Vec<u8>> = received.datagrams_mut().map(|d| d.to_vec()).collect();
        assert_eq!(got, vec![b"second".to_vec()]);
        assert!(!received.try_recv(&receiver).expect("no error"));
        assert_eq!(received.count(), 0, "nothing left of the run before");
        assert_eq!(received.from(), None);
    }
}
