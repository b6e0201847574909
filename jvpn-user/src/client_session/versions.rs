//! The client's version rules (spec sections 5 and 10, `docs/protocol.md` "Versions on the wire"):
//! which state_version an authenticated gateway message may carry, given what the client knows.
//!
//! The gateway's version never goes down, so a message below the acknowledged version is simply
//! older than the message that taught the client that version (reordering, or a reply to an
//! earlier attempt): it is dropped and the session goes on. A message above what the client can
//! explain is ambiguous: the two sides disagree about the session, and the client fails closed.
//! The only versions above the acknowledged one the client can explain are the two exceptions of
//! the protocol, both announced by the gateway: a PATH_CHALLENGE at `acked + 1` (the gateway moved
//! the session to RECOVERING meanwhile), answering a reattach of this client or, with nothing
//! pending, the gateway's own challenge after it lost its maps ([`GATEWAY_CHALLENGE_ATTEMPT`]),
//! and the REATTACH_ACK at exactly `challenged + 1`. TERMINATE may also carry its own increment.
//!
//! | message            | accepted at                                    | dropped                               |
//! |--------------------|------------------------------------------------|---------------------------------------|
//! | any                | (see below)                                    | below `acked`                         |
//! | DATA, KEEPALIVE    | `acked`                                        | `challenged + 1` before the ACK       |
//! | PATH_CHALLENGE     | `acked`, `acked + 1`, reattach pending, its attempt; `acked + 1`, nothing pending, attempt 0 | at `acked` with nothing pending; older attempt |
//! | REATTACH_ACK       | `challenged + 1`; `acked` if no challenge came (nothing moved) | at `acked` otherwise (late duplicate) |
//! | REJECT             | `acked`, `challenged`; TERMINATED, DUPLICATE_NONCE, NONCE_TOO_OLD at any |                |
//! | TERMINATE          | `acked` up to the highest known version + 1    |                                       |
//!
//! A REJECT TERMINATED is not ambiguous at any version at or above `acked`: whatever happened
//! since, the gateway says the session is over, and the client starts a new handshake. A REJECT
//! of a replay (DUPLICATE_NONCE, NONCE_TOO_OLD) is not ambiguous either: it answers a copy of a
//! message the client sent earlier, perhaps replayed by someone else, and the client takes it as
//! information and changes nothing on it, so it must not be able to close the session (spec
//! section 6.2, `gateway::replay_notice`). Every other version is an [`Ambiguity`]. Everything here is a pure function of its inputs.

use super::body::GatewayMessage;
use super::refusal::{Ambiguity, SessionRefusal};
use jvpn_common::control::GATEWAY_CHALLENGE_ATTEMPT;
use jvpn_common::wire::MessageType;

/// A reattach the client asked for, or the gateway started with its own challenge, and the
/// gateway has not yet acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingReattach {
    /// The attempt number of the latest REATTACH_REQUEST ([`GATEWAY_CHALLENGE_ATTEMPT`] when the
    /// gateway's own challenge started it).
    pub attempt: u64,
    /// The version of the PATH_CHALLENGE answered for this attempt, once one arrived.
    pub challenged_version: Option<u64>,
}

/// What the client knows when it judges a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VersionView {
    /// The latest acknowledged version.
    pub acked: u64,
    /// The reattach in progress, if any.
    pub pending: Option<PendingReattach>,
}

/// Whether `message` may carry `version`; `Ok` means accept.
pub(crate) fn judge(
    view: VersionView,
    version: u64,
    message: &GatewayMessage<'_>,
) -> Result<(), SessionRefusal> {
    let kind = message.message_type();
    let acked = view.acked;
    if version < acked {
        return Err(SessionRefusal::StaleVersion {
            message: kind,
            version,
            acked,
        });
    }
    let jump = SessionRefusal::Ambiguous(Ambiguity::VersionJump {
        message: kind,
        version,
        acked,
    });
    let challenged = view.pending.and_then(|p| p.challenged_version);
    match message {
        GatewayMessage::Data(_) | GatewayMessage::Keepalive => {
            if version == acked {
                Ok(())
            } else if challenged.and_then(|c| c.checked_add(1)) == Some(version) {
                Err(SessionRefusal::AheadOfAck {
                    message: kind,
                    version,
                })
            } else {
                Err(jump)
            }
        }
        GatewayMessage::PathChallenge(challenge) => {
            let Some(pending) = view.pending else {
                // The gateway lost its maps and challenges the session at its RECOVERING version:
                // sealed, fresh, and answered from where it arrived, so it moves nothing by itself.
                let recovering = acked.checked_add(1) == Some(version);
                if recovering && challenge.attempt.get() == GATEWAY_CHALLENGE_ATTEMPT {
                    return Ok(());
                }
                return Err(if version == acked {
                    SessionRefusal::Unexpected {
                        message: kind,
                        version,
                    }
                } else {
                    jump
                });
            };
            if version - acked > 1 {
                return Err(jump);
            }
            let attempt = challenge.attempt.get();
            if attempt > pending.attempt {
                return Err(SessionRefusal::Ambiguous(Ambiguity::FutureAttempt {
                    attempt,
                    latest: pending.attempt,
                }));
            }
            if attempt < pending.attempt {
                return Err(SessionRefusal::StaleAttempt {
                    attempt,
                    current: pending.attempt,
                });
            }
            match challenged {
                Some(earlier) if version < earlier => Err(SessionRefusal::StaleVersion {
                    message: kind,
                    version,
                    acked: earlier,
                }),
                _ => Ok(()),
            }
        }
        GatewayMessage::ReattachAck(ack) => {
            let body = ack.new_version.get();
            if body != version {
                return Err(SessionRefusal::Ambiguous(Ambiguity::BodyMismatch {
                    message: kind,
                    header: version,
                    body,
                }));
            }
            let late_duplicate = SessionRefusal::Unexpected {
                message: kind,
                version,
            };
            match (view.pending, challenged) {
                (None, _) if version == acked => Err(late_duplicate),
                (None, _) => Err(jump),
                (Some(_), None) if version == acked => Ok(()),
                (Some(_), None) => Err(SessionRefusal::Ambiguous(Ambiguity::AckMismatch {
                    expected: acked,
                    got: version,
                })),
                (Some(_), Some(c)) => {
                    let expected = c
                        .checked_add(1)
                        .ok_or(SessionRefusal::Ambiguous(Ambiguity::VersionOverflow(c)))?;
                    if version == expected {
                        Ok(())
                    } else if version == acked {
                        Err(late_duplicate)
                    } else {
                        Err(SessionRefusal::Ambiguous(Ambiguity::AckMismatch {
                            expected,
                            got: version,
                        }))
                    }
                }
            }
        }
        GatewayMessage::Reject(reject) => {
            let body = reject.gateway_version.get();
            if body != version {
                return Err(SessionRefusal::Ambiguous(Ambiguity::BodyMismatch {
                    message: MessageType::Reject,
                    header: version,
                    body,
                }));
            }
            let any_version = reject
                .reason()
                .is_some_and(|r| r == jvpn_common::RejectReason::Terminated || r.is_replay());
            if version == acked || challenged == Some(version) || any_version {
                return Ok(());
            }
            Err(match reject.reason() {
                Some(reason) => SessionRefusal::Ambiguous(Ambiguity::RejectedAhead {
                    reason,
                    gateway_version: version,
                    acked,
                }),
                None => jump,
            })
        }
        // Exactly `acked + 1` and a rekey of this client's: judged by `session::rekey`.
        GatewayMessage::RekeyAck(_) => Ok(()),
        GatewayMessage::Terminate(_) => {
            let highest_known = challenged.map_or(acked, |c| c.max(acked));
            if version - highest_known <= 1 {
                Ok(())
            } else {
                Err(jump)
            }
        }
    }
}

#[cfg(test)]
mod tests;
