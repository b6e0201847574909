//! The version rules of the spec, stated once for the XDP program, the controller and the
//! client: how a claimed `state_version` compares with the current one (sections 4, 6 and 10),
//! and the ceilings below `u64::MAX` that keep versions and nonces from wrapping (section 8).

use crate::abi::{NONCE_LIMIT, VERSION_SAFETY_MARGIN};
use crate::reason::RejectReason;

/// The highest version a session may reach by a transition other than termination: a transition
/// to a version above it terminates the session instead (spec section 8).
pub const VERSION_CEILING: u64 = u64::MAX - VERSION_SAFETY_MARGIN;
/// The highest nonce a session may use: a higher one ends the session (spec section 8). Below
/// [`NONCE_LIMIT`], where the dataplane stops accepting.
pub const NONCE_CEILING: u64 = u64::MAX - VERSION_SAFETY_MARGIN;

const _: () = assert!(NONCE_CEILING < NONCE_LIMIT);

/// Whether a message claiming version `claimed` matches a session at `current`: a lower claim is
/// `STALE_VERSION` (a rollback or a replay), a higher one `VERSION_JUMP` (a gap); only the
/// current version is accepted (spec sections 4, 6 and 10).
#[inline(always)]
pub const fn check_version(claimed: u64, current: u64) -> Result<(), RejectReason> {
    if claimed < current {
        Err(RejectReason::StaleVersion)
    } else if claimed > current {
        Err(RejectReason::VersionJump)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_is_stale_higher_is_a_jump() {
        let cases = [
            (5, 5, Ok(())),
            (4, 5, Err(RejectReason::StaleVersion)),
            (0, u64::MAX, Err(RejectReason::StaleVersion)),
            (6, 5, Err(RejectReason::VersionJump)),
            (u64::MAX, 0, Err(RejectReason::VersionJump)),
        ];
        for (claimed, current, expected) in cases {
            assert_eq!(
                check_version(claimed, current),
                expected,
                "claim {claimed} at {current}"
            );
        }
    }
}
