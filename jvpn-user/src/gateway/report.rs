//! How the controller reports what the state machine says: every STATE_CHANGE logged with its
//! version and published, every refusal logged and published as its SECURITY_EVENT or
//! POLICY_EVENT (spec section 11).

use super::core::Controller;
use super::effect::Effect;
use crate::events::EventRecord;
use crate::session::SessionEvent;
use jvpn_common::maps::TransportBinding;

impl Controller {
    /// Publishes a machine event (into `out`) and logs it (every increment with its version).
    pub(super) fn publish(&self, event: &SessionEvent, out: &mut Vec<Effect>) {
        let record = match event {
            SessionEvent::StateChange(c) => {
                tracing::info!(
                    session = %c.session,
                    state_version = c.to_version,
                    from = c.from_state.name(),
                    to = c.to_state.name(),
                    cause = c.cause.name(),
                    "STATE_CHANGE"
                );
                let record = EventRecord::state_change(
                    c.session.get(),
                    Some((c.from_state, c.from_version)),
                    (c.to_state, c.to_version),
                )
                .with_detail(c.cause.name());
                if c.binding == TransportBinding::default() {
                    record
                } else {
                    record.with_peer(c.binding.to_socket_addr())
                }
            }
            SessionEvent::Security(i) | SessionEvent::Policy(i) => {
                tracing::warn!(
                    kind = event.kind(),
                    session = %i.session,
                    state_version = i.version,
                    reason = i.reason.name(),
                    detail = %i.detail,
                    "refused"
                );
                EventRecord::refusal(Some(i.session.get()), i.reason)
                    .with_session_version(i.version)
                    .with_detail(i.detail.clone())
            }
        };
        out.push(Effect::Publish(record));
    }
}
