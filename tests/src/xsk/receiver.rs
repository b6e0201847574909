//! One AF_XDP socket bound to one receive queue: its UMEM, fill ring and RX ring, the frames read
//! in batches and handed back to the fill ring a batch at a time.

use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use xdpilone::{DeviceQueue, IfInfo, RingRx, Socket, SocketConfig, Umem, UmemConfig, User};

use super::sys::{self, UmemArea};
use super::XskError;

/// Bytes per UMEM frame: the smallest the kernel accepts (half a page). The kernel writes a frame
/// `XDP_PACKET_HEADROOM` (256) bytes into its chunk, which leaves 1,792 bytes: more than a jvpn
/// datagram (at most 1,556 bytes) with its Ethernet, IPv6 and UDP headers (62 bytes).
pub const FRAME_SIZE: u32 = 2048;

/// How the kernel bound the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// Each frame is copied into the UMEM (every driver; the only mode a veth has).
    Copy,
    /// The driver receives straight into the UMEM.
    ZeroCopy,
}

/// Frames the kernel could not deliver to the socket (`XDP_STATISTICS`), since it was bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskDrops {
    /// Dropped for any reason (the sum the kernel keeps).
    pub rx_dropped: u64,
    /// Dropped because the RX ring was full (the reader fell behind).
    pub rx_ring_full: u64,
    /// Times the fill ring had no frame to receive into.
    pub fill_ring_empty: u64,
}

/// An AF_XDP socket reading the frames an XDP program redirects to its queue.
///
/// Fields drop in order: the rings and sockets before the UMEM area they point into.
pub struct XskReceiver {
    rx: RingRx,
    fill: DeviceQueue,
    user: User,
    _umem: Umem,
    area: UmemArea,
    /// Frames read but not yet back on the fill ring (the ring had no room; never at steady
    /// state, since it holds every frame).
    recycle: Vec<u64>,
    ifindex: u32,
    queue: u32,
    mode: BindMode,
}

impl std::fmt::Debug for XskReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskReceiver")
            .field("ifindex", &self.ifindex)
            .field("queue", &self.queue)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The socket's descriptor, for `XskMap::set`.
struct SocketFd(RawFd);

impl AsRawFd for SocketFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl XskReceiver {
    /// Binds a socket to receive queue `queue` of interface `ifindex` (in the calling thread's
    /// network namespace) with a UMEM of `frames` frames, all put on the fill ring. The kernel
    /// picks the mode (zero-copy where the driver has it, else copy); [`Self::mode`] says which.
    /// Frames reach it only once it is in the XDP program's XSKMAP ([`Self::register`]).
    pub fn bind(ifindex: u32, queue: u32, frames: u32) -> Result<Self, XskError> {
        if frames == 0 || !frames.is_power_of_two() {
            return Err(XskError::FrameCount(frames));
        }
        let setup = |step: &'static str| {
            move |errno: xdpilone::Errno| XskError::Setup {
                ifindex,
                queue,
                step,
                source: std::io::Error::from_raw_os_error(errno.get_raw().abs()),
            }
        };
        let bytes = frames as usize * FRAME_SIZE as usize;
        let area = UmemArea::new(bytes).map_err(|source| XskError::Umem { bytes, source })?;
        let config = UmemConfig {
            fill_size: frames,
            complete_size: frames,
            frame_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
        };
        let umem = sys::umem(&area, config).map_err(setup("registering the UMEM"))?;
        let mut info = IfInfo::invalid();
        info.from_ifindex(ifindex)
            .map_err(setup("finding the interface"))?;
        info.set_queue(queue);
        let socket = Socket::with_shared(&info, &umem).map_err(setup("creating the socket"))?;
        let mut fill = umem
            .fq_cq(&socket)
            .map_err(setup("creating the fill and completion rings"))?;
        let config = SocketConfig {
            rx_size: NonZeroU32::new(frames),
            tx_size: None,
            bind_flags: 0,
        };
        let user = umem
            .rx_tx(&socket, &config)
            .map_err(setup("creating the RX ring"))?;
        let rx = user.map_rx().map_err(setup("mapping the RX ring"))?;
        {
            let mut initial = fill.fill(frames);
            let placed = initial.insert((0..u64::from(frames)).map(|i| i * u64::from(FRAME_SIZE)));
            initial.commit();
            debug_assert_eq!(
                placed, frames,
                "an empty ring of `frames` slots takes them all"
            );
        }
        umem.bind(&user).map_err(setup("binding"))?;
        let mode = match sys::is_zero_copy(user.as_raw_fd()) {
            Ok(true) => BindMode::ZeroCopy,
            Ok(false) => BindMode::Copy,
            Err(source) => {
                return Err(XskError::Setup {
                    ifindex,
                    queue,
                    step: "reading the bind mode (XDP_OPTIONS)",
                    source,
                })
            }
        };
        Ok(Self {
            rx,
            fill,
            user,
            _umem: umem,
            area,
            recycle: Vec::with_capacity(frames as usize),
            ifindex,
            queue,
            mode,
        })
    }

    /// Puts this socket into `map` at its queue's slot, where the program's
    /// `bpf_redirect_map(map, rx_queue_index)` finds it.
    pub fn register<T>(&self, map: &mut aya::maps::XskMap<T>) -> Result<(), XskError>
    where
        T: std::borrow::BorrowMut<aya::maps::MapData>,
    {
        map.set(self.queue, SocketFd(self.user.as_raw_fd()), 0)
            .map_err(|source| XskError::Register {
                queue: self.queue,
                source,
            })
    }

    /// How the kernel bound the socket.
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// Reads up to `batch` frames already on the RX ring, calls `each` with every frame (from its
    /// Ethernet header on), then hands all of them back to the fill ring at once. Returns how
    /// many were read; 0 if the ring was empty. Never blocks.
    pub fn receive(&mut self, batch: u32, mut each: impl FnMut(&[u8])) -> u32 {
        let mut read = self.rx.receive(batch);
        let mut count = 0;
        while let Some(descriptor) = read.read() {
            if let Some(frame) = self.area.frame(descriptor.addr, descriptor.len) {
                each(frame);
            }
            // In aligned mode the address is the frame's start plus the data's offset in it.
            self.recycle
                .push(descriptor.addr & !(u64::from(FRAME_SIZE) - 1));
            count += 1;
        }
        read.release();
        if !self.recycle.is_empty() {
            let pending = u32::try_from(self.recycle.len()).unwrap_or(u32::MAX);
            let mut fill = self.fill.fill(pending);
            let placed = fill.insert(self.recycle.iter().copied());
            fill.commit();
            self.recycle.drain(..placed as usize);
        }
        count
    }

    /// Waits in `poll` until frames are on the RX ring or `timeout` passes; whether they are.
    pub fn wait(&self, timeout: Duration) -> Result<bool, XskError> {
        sys::poll_readable(self.user.as_raw_fd(), timeout).map_err(|source| XskError::Wait {
            queue: self.queue,
            source,
        })
    }

    /// Whether frames are on the RX ring now (a relaxed look, for spinning without a system call).
    pub fn has_frames(&self) -> bool {
        self.rx.available() > 0
    }

    /// What the kernel dropped on the way to this socket so far (zeros if it cannot say).
    pub fn drops(&self) -> XskDrops {
        match self.user.statistics_v2() {
            Ok(stats) => XskDrops {
                rx_dropped: stats.rx_dropped,
                rx_ring_full: stats.rx_ring_full,
                fill_ring_empty: stats.rx_fill_ring_empty_descs,
            },
            Err(_) => XskDrops::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame count the rings cannot take is refused before any socket or memory is made.
    #[test]
    fn a_frame_count_that_is_not_a_power_of_two_is_refused_first() {
        for frames in [0, 3, 4095] {
            match XskReceiver::bind(1, 0, frames) {
                Err(XskError::FrameCount(got)) => assert_eq!(got, frames),
                other => panic!("{frames} frames: expected FrameCount, got {other:?}"),
            }
        }
    }

    /// A descriptor pointing outside the UMEM (a kernel bug, or a corrupted ring) yields no
    /// frame rather than memory beyond the mapping.
    #[test]
    fn a_descriptor_outside_the_umem_yields_no_frame() {
        let area = UmemArea::new(2 * FRAME_SIZE as usize).expect("mmap");
        let last = u64::from(FRAME_SIZE);
        assert_eq!(area.frame(last, FRAME_SIZE).map(<[u8]>::len), Some(2048));
        assert!(area.frame(last, FRAME_SIZE + 1).is_none());
        assert!(area.frame(2 * last, 1).is_none());
        assert!(area.frame(u64::MAX, 1).is_none());
        assert_eq!(area.frame(0, 0).map(<[u8]>::len), Some(0));
    }
}
