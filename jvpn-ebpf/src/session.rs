//! Finding a session's line (layout v5): by the header's slot hint first, by the session index
//! when the hint misses, and reading the line whole under its sequence lock.
//!
//! The hint is a shortcut, never an authority: a line is used only if its `session_id` is the
//! header's, and the tag is then verified with the key of that line, so a forged or stale hint
//! (another session's slot, a slot reused since) either falls back to the index or fails the tag.
//! The index (`JVPN_SESSION_INDEX`) is complete, so an old client (hint 0), a gateway that
//! restarted and reassigned slots, or a cluster node that took the session over (a slot is
//! node-local) are served correctly, one hash lookup slower.
//!
//! Torn reads. An array value is rewritten in place, not replaced as a hash element is, so the
//! controller writes a line as a sequence lock (`jvpn-user/src/dataplane/lines.rs`): `seq` odd,
//! the fields, `seq` even with release ordering. Here: read `seq`, copy the line with volatile
//! loads, read `seq` again; if it was odd or moved, the copy may mix two writes and the packet is
//! refused (`SESSION_BUSY`). This is sound on x86-64, the only architecture the loader accepts
//! (`jvpn-user/src/dataplane/arch.rs`): LLVM keeps volatile loads in program order and the JIT
//! emits them as plain `mov`s in that order; TSO never reorders a load with an earlier load, and
//! the writer's stores reach memory in program order. So a reader that sees the same even `seq`
//! before and after its copy read fields that were all written before that `seq` was published
//! and none of the next write's (whose odd `seq` is stored before its first field). A JIT for a
//! weakly ordered CPU would need load-acquire on both reads of `seq`.

use crate::maps::{JVPN_SESSIONS, JVPN_SESSION_INDEX};
use jvpn_common::{RejectReason, SessionLine, WireHeader};

/// What reading a line found.
enum Read {
    /// The slot is outside the array.
    OutOfRange,
    /// The controller was rewriting the line.
    Busy,
    /// A consistent copy is in the caller's line.
    Whole,
}

/// The slot of `header`'s session, with a consistent copy of its line in `line`: by the slot
/// hint if that names the session, else by the index. `Ok(None)` if the session is not in the
/// table; `Err(SessionBusy)` if its line was being rewritten while read. The copy goes into the
/// caller's `line`, so the program's stack holds one line, not one per step.
#[inline(always)]
pub fn find(
    header: &WireHeader,
    session_id: u64,
    line: &mut SessionLine,
) -> Result<Option<u32>, RejectReason> {
    if let Some(slot) = header.hinted_slot() {
        // A hint naming a line mid-write may name any session: the index decides then.
        if matches!(read(slot, line), Read::Whole) && line.session_id == session_id {
            return Ok(Some(slot));
        }
    }
    let Some(slot) = JVPN_SESSION_INDEX.get_ptr(session_id) else {
        return Ok(None);
    };
    // SAFETY: a hash value pointer from the lookup stays valid memory for the rest of this run
    // (RCU), even if userspace deletes the element meanwhile; the u32 is copied at once.
    let slot = unsafe { slot.read() };
    match read(slot, line) {
        Read::OutOfRange => Ok(None),
        Read::Busy => Err(RejectReason::SessionBusy),
        // A stale index element of a session removed meanwhile, its slot since reused.
        Read::Whole if line.session_id != session_id => Ok(None),
        Read::Whole => Ok(Some(slot)),
    }
}

/// Copies the line at `slot` into `out` under its sequence lock (see the module doc).
#[inline(always)]
fn read(slot: u32, out: &mut SessionLine) -> Read {
    let Some(line) = JVPN_SESSIONS.get_ptr(slot) else {
        return Read::OutOfRange;
    };
    // The controller may be rewriting the line meanwhile; the sequence check below detects
    // that. `max` is not copied: the replay check reads it atomically from the map.
    // SAFETY: `line` is a live array value (arrays are never freed while the program runs), and
    // every read is an aligned volatile load of one of its fields.
    let (before, after) = unsafe {
        let before = (&raw const (*line).seq).read_volatile();
        out.state = (&raw const (*line).state).read_volatile();
        out.port = (&raw const (*line).port).read_volatile();
        out.session_id = (&raw const (*line).session_id).read_volatile();
        out.state_version = (&raw const (*line).state_version).read_volatile();
        // The 16-byte arrays as aligned words (offsets 32 and 48): a volatile array read would
        // go through a stack temporary, and the program's stack is nearly full.
        let key = (&raw const (*line).header_key).cast::<u64>();
        let addr = (&raw const (*line).addr).cast::<u64>();
        let words = [
            key.read_volatile(),
            key.add(1).read_volatile(),
            addr.read_volatile(),
            addr.add(1).read_volatile(),
        ];
        let after = (&raw const (*line).seq).read_volatile();
        out.header_key = bytemuck::cast([words[0], words[1]]);
        out.addr = bytemuck::cast([words[2], words[3]]);
        (before, after)
    };
    if before & 1 != 0 || before != after {
        return Read::Busy;
    }
    Read::Whole
}
