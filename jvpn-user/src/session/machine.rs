//! The session state machine: a pure function of `(session, input, now)` (spec section 12).
//!
//! ```text
//!            HandshakeComplete           keepalive timeout / ForceRecover
//!   BIRTH ─────────────────────▶ ATTACHED ─────────────────────▶ RECOVERING
//!     │                          ▲  │  ▲                         │    │
//!     │                          │  │  └──── ReattachValidated ──┘    │
//!     │                          └──┘ ReattachValidated, Rekey        │
//!     │                             │                                 │
//!     └──── Terminate / idle ───────┴──────▶ TERMINATED ◀────────────┘
//! ```
//!
//! Every transition increments `state_version` by exactly one and yields exactly one STATE_CHANGE
//! (sections 2, 3 and 11); telemetry (traffic, nonces below the margin) and timers that are not
//! due change no version and yield no event. A transition whose new version would pass
//! [`VERSION_CEILING`] becomes a TERMINATED instead (section 8), so no version ever wraps. Every
//! refusal comes back as a [`Reject`] with its reason and its SECURITY_EVENT or POLICY_EVENT, and
//! leaves the session as it was (section 6). The machine reads no clock, no randomness and no
//! store: the controller feeds it and persists what it returns by compare-and-set.

use super::event::{Cause, Incident, SessionEvent, StateChange};
use super::input::Input;
use super::state::{Millis, Session, Timers};
use jvpn_common::maps::SessionState;
use jvpn_common::version::check_version;
pub use jvpn_common::version::{NONCE_CEILING, VERSION_CEILING};
use jvpn_common::RejectReason;

/// The result of an accepted input: the session after it and what to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The session after the input (the same version if nothing but telemetry changed).
    pub session: Session,
    /// At most one STATE_CHANGE, plus any POLICY_EVENT a forced termination produced.
    pub events: Vec<SessionEvent>,
}

impl Transition {
    /// The STATE_CHANGE records of this transition: the audit records to commit with it.
    pub fn state_changes(&self) -> Vec<StateChange> {
        self.events
            .iter()
            .filter_map(SessionEvent::as_state_change)
            .cloned()
            .collect()
    }
}

/// A refused input: the reason to send in the REJECT and the event to report. The session is
/// unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The reason code.
    pub reason: RejectReason,
    /// The SECURITY_EVENT or POLICY_EVENT of the refusal.
    pub event: SessionEvent,
}

/// The state machine, configured with its timers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionMachine {
    timers: Timers,
}

impl SessionMachine {
    /// A machine with these timers.
    pub const fn new(timers: Timers) -> Self {
        Self { timers }
    }

    /// The timers the machine applies on [`Input::Tick`].
    pub const fn timers(&self) -> Timers {
        self.timers
    }

    /// What `input` at `now` does to `session`. Pure: the same arguments give the same result.
    pub fn transition(
        &self,
        session: &Session,
        input: &Input,
        now: Millis,
    ) -> Result<Transition, Reject> {
        use SessionState::{Attached, Birth, Recovering, Terminated};
        match (session.state, input) {
            (Terminated, Input::Tick) => Ok(unchanged(session.clone())),
            (Terminated, Input::Terminate { .. } | Input::ForceRecover { .. }) => Err(policy(
                session,
                RejectReason::Terminated,
                now,
                "the session has already ended".into(),
            )),
            (Terminated, _) => Err(security(
                session,
                RejectReason::Terminated,
                now,
                "the session has ended".into(),
            )),
            (
                Birth,
                Input::HandshakeComplete {
                    binding,
                    header_key,
                    secrets,
                },
            ) => advance(session, Attached, Cause::HandshakeComplete, now, |s| {
                s.binding = *binding;
                s.header_key = **header_key;
                s.secrets.clone_from(secrets);
                s.last_rx = now;
            }),
            (_, Input::HandshakeComplete { .. }) => Err(security(
                session,
                RejectReason::HandshakeReplay,
                now,
                format!(
                    "handshake completion for a session already {}",
                    state_of(session)
                ),
            )),
            (_, Input::Traffic { at }) => {
                let mut s = session.clone();
                s.last_rx = s.last_rx.max(*at);
                Ok(unchanged(s))
            }
            (_, Input::NonceObserved { highest }) if *highest > NONCE_CEILING => {
                let mut t = advance(session, Terminated, Cause::NonceExhausted, now, |_| {})?;
                t.events.push(SessionEvent::Policy(incident(
                    session,
                    RejectReason::VersionExhausted,
                    now,
                    format!("nonce {highest} is above the ceiling {NONCE_CEILING}"),
                )));
                Ok(t)
            }
            (_, Input::NonceObserved { .. }) => Ok(unchanged(session.clone())),
            (_, Input::Tick) => self.tick(session, now),
            (Birth, Input::ReattachValidated { .. }) => Err(security(
                session,
                RejectReason::NotAttached,
                now,
                "reattach before the handshake completed".into(),
            )),
            (
                Attached | Recovering,
                Input::ReattachValidated {
                    claimed_version,
                    new_binding,
                },
            ) => {
                let current = session.state_version;
                if let Err(reason) = check_version(*claimed_version, current) {
                    let detail = format!("claimed version {claimed_version}, current {current}");
                    return Err(security(session, reason, now, detail));
                }
                advance(session, Attached, Cause::Reattach, now, |s| {
                    s.binding = *new_binding;
                    s.last_rx = now;
                })
            }
            (
                Attached,
                Input::Rekey {
                    claimed_version,
                    secrets,
                },
            ) => {
                let current = session.state_version;
                if let Err(reason) = check_version(*claimed_version, current) {
                    let detail =
                        format!("rekey claims version {claimed_version}, current {current}");
                    return Err(security(session, reason, now, detail));
                }
                advance(session, Attached, Cause::Rekey, now, |s| {
                    s.secrets.clone_from(secrets);
                    s.last_rx = now;
                })
            }
            (Birth | Recovering, Input::Rekey { .. }) => Err(security(
                session,
                RejectReason::NotAttached,
                now,
                format!("rekey of a session {}", state_of(session)),
            )),
            (_, Input::Terminate { cause }) => {
                advance(session, Terminated, (*cause).into(), now, |_| {})
            }
            (Birth, Input::ForceRecover { .. }) => {
                advance(session, Terminated, Cause::HandshakeAbandoned, now, |_| {})
            }
            (Attached | Recovering, Input::ForceRecover { cause }) => {
                advance(session, Recovering, (*cause).into(), now, |_| {})
            }
        }
    }

    /// Applies the timeouts, both counted from the last traffic seen. A clock that went backwards
    /// counts as no time elapsed.
    fn tick(&self, session: &Session, now: Millis) -> Result<Transition, Reject> {
        let silent_for = now.saturating_sub(session.last_rx);
        let idle = silent_for >= self.timers.idle_timeout();
        let keepalive_missed = silent_for >= self.timers.keepalive_timeout();
        match session.state {
            _ if idle => advance(
                session,
                SessionState::Terminated,
                Cause::IdleTimeout,
                now,
                |_| {},
            ),
            SessionState::Attached if keepalive_missed => advance(
                session,
                SessionState::Recovering,
                Cause::KeepaliveTimeout,
                now,
                |_| {},
            ),
            _ => Ok(unchanged(session.clone())),
        }
    }
}

/// Moves `session` to `to` at the next version, applying `mutate` to the other fields, or to
/// TERMINATED if the next version would pass [`VERSION_CEILING`] (without `mutate`: nothing the
/// refused transition asked for takes effect).
fn advance(
    session: &Session,
    to: SessionState,
    cause: Cause,
    now: Millis,
    mutate: impl FnOnce(&mut Session),
) -> Result<Transition, Reject> {
    let Some(next) = session.state_version.checked_add(1) else {
        // Unreachable through the machine (a session passing the ceiling is terminated), but a
        // corrupt or hand-made record must not wrap.
        return Err(policy(
            session,
            RejectReason::VersionExhausted,
            now,
            "the version is at u64::MAX".into(),
        ));
    };
    let mut s = session.clone();
    let mut events = Vec::with_capacity(2);
    let (to, cause) = if next > VERSION_CEILING && to != SessionState::Terminated {
        events.push(SessionEvent::Policy(incident(
            session,
            RejectReason::VersionExhausted,
            now,
            format!(
                "version {next} would pass the ceiling {VERSION_CEILING}; {} refused",
                cause.name()
            ),
        )));
        (SessionState::Terminated, Cause::VersionExhausted)
    } else {
        mutate(&mut s);
        (to, cause)
    };
    s.state = to;
    s.state_version = next;
    s.changed_at = now;
    events.insert(
        0,
        SessionEvent::StateChange(StateChange {
            session: session.id,
            from_state: session.state,
            to_state: to,
            from_version: session.state_version,
            to_version: next,
            cause,
            at: now,
            binding: s.binding,
        }),
    );
    Ok(Transition { session: s, events })
}

fn unchanged(session: Session) -> Transition {
    Transition {
        session,
        events: Vec::new(),
    }
}

fn incident(session: &Session, reason: RejectReason, at: Millis, detail: String) -> Incident {
    Incident {
        session: session.id,
        reason,
        version: session.state_version,
        at,
        detail,
    }
}

fn security(session: &Session, reason: RejectReason, at: Millis, detail: String) -> Reject {
    Reject {
        reason,
        event: SessionEvent::Security(incident(session, reason, at, detail)),
    }
}

fn policy(session: &Session, reason: RejectReason, at: Millis, detail: String) -> Reject {
    Reject {
        reason,
        event: SessionEvent::Policy(incident(session, reason, at, detail)),
    }
}

fn state_of(session: &Session) -> String {
    format!(
        "{} at version {}",
        session.state.name(),
        session.state_version
    )
}
