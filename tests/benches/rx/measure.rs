//! One measurement: a receive path set up in the receiver's namespace, a GSO flood from the
//! sender's for a fixed time, and what the receiver counted and spent.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jvpn_tests::bench::cpu::process_seconds;
use jvpn_tests::gro_batch::SocketReceiver;
use jvpn_tests::netns::enter;
use jvpn_tests::topology::{TwoHosts, GATEWAY_V4};
use jvpn_tests::xsk::{BindMode, XskDrops, XskError, XskReceiver, FRAME_SIZE};
use jvpn_tests::xsk_rx::{
    AttachedRx, GsoSender, RxProgram, MAX_RUN_BYTES, MAX_RUN_DATAGRAMS, RX_PORT,
};
use jvpn_user::socket_buffers::TUNNEL_SOCKET_BUFFER_BYTES;
use nix::time::{clock_gettime, ClockId};

/// AF_XDP frames (and fill ring slots): 16 MiB of UMEM, as much memory as the socket's buffer.
const XSK_FRAMES: u32 = (TUNNEL_SOCKET_BUFFER_BYTES / FRAME_SIZE as usize) as u32;
/// Frames read per ring access.
const XSK_BATCH: u32 = 64;
/// How long a blocked read waits before looking at the stop flag.
const PATIENCE: Duration = Duration::from_millis(50);

/// A receive path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `XDP_PASS` and a UDP socket read with `UDP_GRO` and `recvmmsg`.
    Socket,
    /// Redirect into AF_XDP; the reader sleeps in `poll` when the ring is empty.
    XskPoll,
    /// Redirect into AF_XDP; the reader spins on the ring, making no system call.
    XskSpin,
}

impl Variant {
    /// Every variant, in the order each round runs them.
    pub const ALL: [Variant; 3] = [Variant::Socket, Variant::XskPoll, Variant::XskSpin];

    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Socket => "socket",
            Variant::XskPoll => "af_xdp_poll",
            Variant::XskSpin => "af_xdp_spin",
        }
    }
}

/// What one measurement counted.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Datagrams the sender handed to its socket.
    pub sent: u64,
    /// Datagrams the XDP program saw.
    pub seen: u64,
    /// Datagrams the receiver read.
    pub received: u64,
    /// UDP payload bytes the receiver read.
    pub bytes: u64,
    /// How long the sender sent.
    pub seconds: f64,
    /// CPU time of the receiving thread.
    pub receiver_cpu: f64,
    /// What the AF_XDP socket's counters say it dropped (zeros for the socket path).
    pub xsk_drops: XskDrops,
    /// CPU time of the veth's NAPI thread over the run (0 unless NAPI is threaded).
    pub napi_cpu: f64,
    /// The machine's irq + softirq time over the run (the receive side's kernel work lands
    /// there: the veth's NAPI poll, XDP, the copy into the UMEM or the UDP stack).
    pub softirq: f64,
}

/// The calling thread's CPU time so far, in seconds.
fn thread_cpu() -> f64 {
    let time = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("the thread's CPU clock");
    time.tv_sec() as f64 + time.tv_nsec() as f64 * 1e-9
}

/// The machine's irq + softirq seconds so far, from `/proc/stat`'s `cpu` line.
fn softirq_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("reading /proc/stat");
    let ticks: f64 = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(6)
        .take(2)
        .map(|field| field.parse::<f64>().expect("a tick count"))
        .sum();
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .expect("the kernel's clock tick rate");
    ticks / per_second as f64
}

/// An AF_XDP socket on queue 0 of `ifindex`; waits out the previous measurement's socket, whose
/// queue the kernel frees in deferred work after it closes (`EBUSY` meanwhile).
fn bind_xsk(ifindex: u32) -> XskReceiver {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match XskReceiver::bind(ifindex, 0, XSK_FRAMES) {
            Ok(xsk) => return xsk,
            Err(XskError::Setup { source, .. })
                if source.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("an AF_XDP socket: {error}"),
        }
    }
}

/// What the receiver thread reports.
struct Counted {
    xsk_drops: XskDrops,
    received: u64,
    bytes: u64,
    cpu: f64,
    seen: u64,
}

/// The receiver: sets `variant` up on the receiving veth, says so on `ready`, reads until `stop`
/// is set and a read comes back empty.
fn receive(
    hosts: &TwoHosts,
    variant: Variant,
    ready: mpsc::Sender<()>,
    stop: &AtomicBool,
) -> Counted {
    enter(&hosts.gateway.path());
    let program = match variant {
        Variant::Socket => RxProgram::Pass,
        Variant::XskPoll | Variant::XskSpin => RxProgram::Xsk,
    };
    let mut attached = AttachedRx::attach(&hosts.gateway_if, program);
    let mut received = 0u64;
    let mut bytes = 0u64;
    // Every path reads the first word of each datagram, as a gateway reads the header.
    let mut checksum = 0u64;
    let mut count = |payload: &[u8]| {
        received += 1;
        bytes += payload.len() as u64;
        checksum = checksum.wrapping_add(u64::from(payload.first().copied().unwrap_or(0)));
    };
    let cpu;
    let mut xsk_drops = XskDrops::default();
    match variant {
        Variant::Socket => {
            let mut socket = SocketReceiver::bind(PATIENCE);
            ready.send(()).expect("the bench is waiting");
            let start = thread_cpu();
            while socket.receive(&mut count) > 0 || !stop.load(Ordering::Relaxed) {}
            cpu = thread_cpu() - start;
        }
        Variant::XskPoll | Variant::XskSpin => {
            let ifindex = nix::net::if_::if_nametoindex(hosts.gateway_if.as_str())
                .expect("the receiving veth's index");
            let mut xsk = bind_xsk(ifindex);
            assert_eq!(
                xsk.mode(),
                BindMode::Copy,
                "a veth binds AF_XDP in copy mode"
            );
            xsk.register(&mut attached.xsk_map()).expect("the XSKMAP");
            ready.send(()).expect("the bench is waiting");
            let start = thread_cpu();
            let mut read = |xsk: &mut XskReceiver| {
                xsk.receive(XSK_BATCH, |frame| {
                    if let Some((RX_PORT, payload)) = jvpn_tests::xsk_rx::udp_payload(frame) {
                        count(payload);
                    }
                })
            };
            loop {
                let ready = match variant {
                    // `poll` only when the ring is empty: one system call per wake-up, not
                    // per batch.
                    Variant::XskPoll => {
                        xsk.has_frames() || xsk.wait(PATIENCE).expect("poll on the AF_XDP socket")
                    }
                    _ => xsk.has_frames(),
                };
                if !ready || read(&mut xsk) == 0 {
                    if stop.load(Ordering::Relaxed) && read(&mut xsk) == 0 {
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            cpu = thread_cpu() - start;
            xsk_drops = xsk.drops();
        }
    }
    std::hint::black_box(checksum);
    Counted {
        xsk_drops,
        received,
        bytes,
        cpu,
        seen: attached.seen(),
    }
}

/// Floods `RX_PORT` with datagrams of `size` bytes in GSO runs for `duration`; how many it sent.
fn flood(hosts: &TwoHosts, size: usize, duration: Duration) -> u64 {
    hosts.client.run(|| {
        let sender = GsoSender::connect(SocketAddrV4::new(GATEWAY_V4, RX_PORT));
        let per_run = MAX_RUN_DATAGRAMS.min(MAX_RUN_BYTES / size);
        let run = vec![0x5au8; per_run * size];
        let segment = u16::try_from(size).expect("a datagram size below 64 KiB");
        let end = Instant::now() + duration;
        let mut sent = 0;
        while Instant::now() < end {
            // A full send buffer or a full veth ring refuses the run; that is loss the receiver
            // is not charged with, so only runs the socket took count as sent.
            if sender.send_run(&run, segment).is_ok() {
                sent += per_run as u64;
            }
        }
        sent
    })
}

/// Runs `variant` with datagrams of `size` bytes for `duration`; `napi_thread` is the receiving
/// veth's NAPI thread when NAPI is threaded.
pub fn measure(
    hosts: &TwoHosts,
    variant: Variant,
    size: usize,
    duration: Duration,
    napi_thread: Option<u32>,
) -> Sample {
    let napi_seconds = || napi_thread.map_or(0.0, process_seconds);
    let stop = AtomicBool::new(false);
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let stop = &stop;
        let receiver = scope.spawn(move || receive(hosts, variant, ready_tx, stop));
        ready_rx.recv().expect("the receiver is set up");
        let softirq_start = softirq_seconds();
        let napi_start = napi_seconds();
        let started = Instant::now();
        let sent = flood(hosts, size, duration);
        let seconds = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let counted = receiver.join().expect("the receiver thread");
        Sample {
            sent,
            seen: counted.seen,
            received: counted.received,
            bytes: counted.bytes,
            seconds,
            receiver_cpu: counted.cpu,
            xsk_drops: counted.xsk_drops,
            softirq: softirq_seconds() - softirq_start,
            napi_cpu: napi_seconds() - napi_start,
        }
    })
}
