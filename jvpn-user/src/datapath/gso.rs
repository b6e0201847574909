//! Sealed datagrams laid end to end in one reused buffer, and sent with UDP generic segmentation
//! offload (`UDP_SEGMENT`, Linux 4.18): one `sendmsg` carries a run of equal-sized datagrams (the
//! last may be shorter) that the kernel cuts apart below the socket, instead of one system call
//! and one trip down the stack per datagram. The datagrams themselves are unchanged on the wire.

use std::io;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrStorage};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Most datagrams one `sendmsg` may carry (the kernel's `UDP_MAX_SEGMENTS` on older kernels).
pub const MAX_SEGMENTS: usize = 64;
/// Most bytes one `sendmsg` may carry: an IPv4 datagram's largest UDP payload.
pub const MAX_RUN_BYTES: usize = 65_507;

/// One `sendmsg`: datagrams `first..first + count`, each `segment` bytes but the last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Index of the first datagram.
    pub first: usize,
    /// How many datagrams.
    pub count: usize,
    /// The size of each datagram but the last, which is no larger.
    pub segment: usize,
}

/// Groups datagrams of `lengths` (in order) into runs UDP GSO accepts: equal sizes, the last of a
/// run no larger, at most `MAX_SEGMENTS` datagrams and `MAX_RUN_BYTES` bytes per run.
pub fn runs(lengths: &[usize]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut bytes = 0;
    for (index, &length) in lengths.iter().enumerate() {
        let joins = runs.last().is_some_and(|run| {
            let closed = lengths[run.first + run.count - 1] < run.segment;
            !closed
                && length <= run.segment
                && run.count < MAX_SEGMENTS
                && bytes + length <= MAX_RUN_BYTES
        });
        match runs.last_mut() {
            Some(run) if joins => {
                run.count += 1;
                bytes += length;
            }
            _ => {
                runs.push(Run {
                    first: index,
                    count: 1,
                    segment: length,
                });
                bytes = length;
            }
        }
    }
    runs
}

/// Datagrams waiting to be sent together.
#[derive(Debug, Default)]
pub struct Datagrams {
    bytes: Vec<u8>,
    lengths: Vec<usize>,
}

impl Datagrams {
    /// Forgets the datagrams, keeping the allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.lengths.clear();
    }

    /// How many datagrams there are.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Appends one datagram that `write` appends to the buffer it is handed; if `write` fails,
    /// whatever it appended is taken back.
    pub fn push_with<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.bytes.len();
        match write(&mut self.bytes) {
            Ok(()) => {
                self.lengths.push(self.bytes.len() - start);
                Ok(())
            }
            Err(e) => {
                self.bytes.truncate(start);
                Err(e)
            }
        }
    }

    /// Sends every datagram on `socket` (to `to`, or to its connected peer), one `sendmsg` per
    /// GSO run. A run the kernel refuses to segment is sent one datagram at a time.
    pub async fn send(&self, socket: &UdpSocket, to: Option<SocketAddr>) -> io::Result<()> {
        let address = to.map(SockaddrStorage::from);
        let mut offset = 0;
        for run in runs(&self.lengths) {
            let length: usize = self.lengths[run.first..run.first + run.count].iter().sum();
            let bytes = &self.bytes[offset..offset + length];
            offset += length;
            if run.count > 1 {
                let segment = run.segment as u16;
                let sent = socket
                    .async_io(Interest::WRITABLE, || {
                        let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
                        sendmsg(
                            socket.as_raw_fd(),
                            &[IoSlice::new(bytes)],
                            &cmsg,
                            MsgFlags::empty(),
                            address.as_ref(),
                        )
                        .map_err(io::Error::from)
                    })
                    .await;
                match sent {
                    Ok(_) => continue,
                    // EIO: the device under the route cannot checksum a GSO run; EINVAL: the
                    // kernel predates UDP_SEGMENT. Send the datagrams one by one.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) => {}
                    Err(e) => return Err(e),
                }
            }
            for datagram in bytes.chunks(run.segment) {
                match to {
                    Some(to) => socket.send_to(datagram, to).await?,
                    None => socket.send(datagram).await?,
                };
            }
        }
        Ok(())
    }
}

#[cfg(test)]
impl Datagrams {
    /// A run made of `payloads`, each written whole: the sending side of the GSO and GRO tests.
    pub(crate) fn of(payloads: &[Vec<u8>]) -> Self {
        let mut datagrams = Self::default();
        for payload in payloads {
            datagrams
                .push_with(|bytes| {
                    bytes.extend_from_slice(payload);
                    Ok::<_, ()>(())
                })
                .expect("written");
        }
        datagrams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_group_into_runs_gso_accepts() {
        let run = |first, count, segment| Run {
            first,
            count,
            segment,
        };
        let cases: Vec<(Vec<usize>, Vec<Run>)> = vec![
            (vec![], vec![]),
            (vec![100], vec![run(0, 1, 100)]),
            // A shorter tail closes the run; a longer datagram opens a new one.
            (vec![100, 100, 60], vec![run(0, 3, 100)]),
            (vec![100, 60, 100], vec![run(0, 2, 100), run(2, 1, 100)]),
            (vec![60, 100, 100], vec![run(0, 1, 60), run(1, 2, 100)]),
            // A TSO superpacket's worth of full-sized sealed segments splits at the byte cap.
            (vec![1452; 48], vec![run(0, 45, 1452), run(45, 3, 1452)]),
            // Tiny datagrams split at the segment cap.
            (vec![80; 70], vec![run(0, 64, 80), run(64, 6, 80)]),
        ];
        for (lengths, expected) in cases {
            assert_eq!(runs(&lengths), expected, "{lengths:?}");
            let covered: usize = expected.iter().map(|r| r.count).sum();
            assert_eq!(covered, lengths.len());
        }
    }

    #[test]
    fn a_failed_write_leaves_no_datagram_behind() {
        let mut datagrams = Datagrams::default();
        datagrams
            .push_with(|bytes| {
                bytes.extend_from_slice(b"kept");
                Ok::<_, ()>(())
            })
            .expect("written");
        let refused = datagrams.push_with(|bytes| {
            bytes.extend_from_slice(b"half");
            Err(())
        });
        assert!(refused.is_err());
        assert_eq!(datagrams.len(), 1);
        assert_eq!(datagrams.bytes, b"kept");
    }

    /// Real sockets on loopback: a run of three sealed-sized datagrams and a short tail leaves
    /// as four datagrams with the same bytes.
    #[tokio::test]
    async fn a_run_arrives_as_separate_datagrams() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let sent: Vec<Vec<u8>> = [1200, 1200, 1200, 500]
            .iter()
            .enumerate()
            .map(|(i, &len)| vec![i as u8; len])
            .collect();
        let datagrams = Datagrams::of(&sent);
        let to = receiver.local_addr().expect("addr");
        datagrams.send(&sender, Some(to)).await.expect("sent");
        let mut buf = [0u8; 2048];
        for expected in &sent {
            let len = receiver.recv(&mut buf).expect("a datagram");
            assert_eq!(&buf[..len], expected.as_slice());
        }
    }
}
