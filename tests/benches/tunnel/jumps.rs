//! Jumps on a running [`Stream`] and what they cost it: for each jump the time from issuing it to
//! the first datagram received that was sent after it began (`first byte`), the longest silence
//! at the receiver from the issue until shortly after the jump is done (`gap`), and the datagrams
//! sent after the issue that were lost.
//!
//! Two ways to jump. *Old uplink up*: both uplinks work and the client moves because it is told
//! to (the tunnel's make-before-break path keeps sending on the old uplink until the gateway
//! acknowledges). *Old uplink cut*: the router starts dropping the current uplink's traffic just
//! before the jump, as when a network goes away; every datagram sent after the cut must take the
//! new uplink. Each jump owns a window from its start to the next jump's start; a datagram counts
//! for the window it was sent in.

use crate::stream::{now_ns, Recording};
use jvpn_tests::bench::topology::{other, Topology, Uplink};
use std::time::Duration;

/// Whether the old uplink keeps working through a jump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Both uplinks work; the jump is the client's choice.
    OldUp,
    /// The old uplink is cut just before the jump.
    OldCut,
}

impl Mode {
    /// Both modes, in the order they run.
    pub const ALL: [Mode; 2] = [Mode::OldUp, Mode::OldCut];

    /// The mode's part of a metric name.
    pub fn key(self) -> &'static str {
        match self {
            Mode::OldUp => "old_up",
            Mode::OldCut => "old_cut",
        }
    }
}

/// The times of one jump, on the [`now_ns`] clock.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    /// Start of the jump's window (before the cut, if any).
    pub window_start: u64,
    /// When the jump was issued.
    pub issued: u64,
    /// When the jump was done (the tunnel client answered; bare: at once).
    pub done: u64,
}

/// Runs `jumps` jumps, `settle` apart, starting from `current`; `jump(to)` makes one and returns
/// when it is done. Restores every cut uplink before returning.
pub fn run(
    topology: &Topology,
    mode: Mode,
    jumps: usize,
    settle: Duration,
    mut current: Uplink,
    mut jump: impl FnMut(Uplink),
) -> Vec<Mark> {
    // The stream flows on the current uplink before the first window opens.
    std::thread::sleep(settle);
    let mut marks = Vec::with_capacity(jumps);
    for _ in 0..jumps {
        let to = other(current);
        let window_start = now_ns();
        if mode == Mode::OldCut {
            topology.cut(current);
        }
        let issued = now_ns();
        jump(to);
        let done = now_ns();
        marks.push(Mark {
            window_start,
            issued,
            done,
        });
        std::thread::sleep(settle);
        if mode == Mode::OldCut {
            topology.restore();
            // The restored uplink is the next jump's target: let it settle too.
            std::thread::sleep(settle / 4);
        }
        current = to;
    }
    marks
}

/// How long after a jump is done its silences still count: the tunnel's switch to the new uplink
/// happens before the client answers, so this only has to cover datagrams in flight.
const GAP_TAIL_NS: u64 = 20_000_000;

/// Per-jump figures of one phase.
#[derive(Debug, Default)]
pub struct JumpFigures {
    /// Issue to the first datagram received that was sent after the issue, ms.
    pub first_byte_ms: Vec<f64>,
    /// Longest silence at the receiver from the issue to [`GAP_TAIL_NS`] after done, ms.
    pub gap_ms: Vec<f64>,
    /// Datagrams sent from the issue to the next jump's window that never arrived (those sent
    /// between a cut and the issue are lost whichever way the stream goes, and not counted).
    pub lost: Vec<f64>,
    /// Issue to done, ms.
    pub command_ms: Vec<f64>,
    /// Jumps after which nothing sent arrived before the next jump.
    pub no_arrival: usize,
}

/// Reads the jumps' figures out of a stream's recording.
pub fn analyse(recording: &Recording, marks: &[Mark]) -> JumpFigures {
    let mut received = vec![false; recording.sent_ns.len()];
    for arrival in &recording.arrivals {
        if let Some(flag) = received.get_mut(arrival.seq as usize) {
            *flag = true;
        }
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut figures = JumpFigures::default();
    for (i, mark) in marks.iter().enumerate() {
        let end = marks.get(i + 1).map_or(u64::MAX, |next| next.window_start);
        let first = recording
            .arrivals
            .iter()
            .filter(|a| a.sent_ns >= mark.issued && a.sent_ns < end)
            .map(|a| a.received_ns)
            .min();
        match first {
            Some(at) => figures.first_byte_ms.push(ms(at - mark.issued)),
            None => figures.no_arrival += 1,
        }
        let lost = recording
            .sent_ns
            .iter()
            .zip(&received)
            .filter(|(&sent, &arrived)| sent >= mark.issued && sent < end && !arrived)
            .count();
        figures.lost.push(lost as f64);
        let gap_end = mark.done + GAP_TAIL_NS;
        let mut previous = mark.issued;
        let mut gap = 0;
        for at in recording
            .arrivals
            .iter()
            .map(|a| a.received_ns)
            .filter(|&at| at >= mark.issued && at < gap_end)
        {
            gap = gap.max(at.saturating_sub(previous));
            previous = previous.max(at);
        }
        gap = gap.max(gap_end.saturating_sub(previous));
        figures.gap_ms.push(ms(gap));
        figures.command_ms.push(ms(mark.done - mark.issued));
    }
    figures
}
