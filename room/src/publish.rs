//! The events we publish: request ids, events not yet confirmed by the
//! relay (resent after a reconnect), storage retries and rejections.

use std::time::Instant;

use hush_proto::e2e::{self, EVENT_SIGNATURE_CONTEXT, Payload, SignedBody};
use hush_proto::msg::encode;
use hush_proto::{EventKind, Rejection, RoomEvent};

use crate::action::{Action, Shown};
use crate::room::{COMMIT_HOLD, Room};
use crate::warning::Warning;

impl Room {
    /// A request was refused by the relay.
    pub(crate) fn on_rejected(
        &mut self,
        request: u64,
        reason: Rejection,
        now: Instant,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if reason == Rejection::StorageFailed
            && let Some(i) = self
                .outbox
                .unconfirmed
                .iter()
                .position(|(r, _)| *r == request)
        {
            let (_, event) = self.outbox.unconfirmed.remove(i);
            if event.kind != EventKind::Commit {
                self.outbox.storage_retry.push(event);
                return actions;
            }
        }
        let was_commit = self
            .outbox
            .unconfirmed
            .iter()
            .any(|(r, e)| *r == request && e.kind == EventKind::Commit);
        self.outbox.unconfirmed.retain(|(r, _)| *r != request);
        match reason {
            Rejection::TooManyCommits { .. } | Rejection::TooManyNewRooms { .. } => {
                // Not sequenced: build it again once the relay's window
                // has passed (a creating commit over the room quota too),
                // and say so once.
                self.commits.in_flight = None;
                self.commits.hold_until = Some(now + COMMIT_HOLD);
                actions.push(Action::Show(Shown::Refused {
                    room: self.name.clone(),
                    reason,
                }));
            }
            Rejection::FutureEpoch { current } => {
                // Dropped, not retried; a commit of ours is rebuilt.
                if was_commit {
                    self.commits.in_flight = None;
                }
                actions.push(self.warn(None, None, Warning::RelayEpoch { current }));
            }
            other => {
                if self.commits.in_flight.is_some() && matches!(other, Rejection::TooLarge { .. }) {
                    // Never retry the same too-large admission.
                    self.admissions.pending_joins.clear();
                }
                self.commits.in_flight = None;
                actions.push(Action::Show(Shown::Refused {
                    room: self.name.clone(),
                    reason: other,
                }));
            }
        }
        actions
    }

    // ─── Applying one event, in order ───────────────────────────────────

    pub(crate) fn publish(
        &mut self,
        kind: EventKind,
        epoch: u64,
        payload: &Payload,
    ) -> Option<Action> {
        let payload = encode(payload);
        let digest = e2e::signing_digest(&self.name, &self.me.fingerprint(), kind, epoch, &payload);
        let signature = self
            .me
            .sign(EVENT_SIGNATURE_CONTEXT, &digest)
            .ok()?
            .into_bytes();
        let event = RoomEvent {
            room: self.name.clone(),
            sender: self.me.fingerprint(),
            kind,
            epoch,
            body: encode(&SignedBody { payload, signature }),
        };
        Some(self.track(event))
    }

    pub(crate) fn track(&mut self, event: RoomEvent) -> Action {
        let request = self.outbox.next_request;
        self.outbox.next_request += 1;
        self.outbox.unconfirmed.push((request, event.clone()));
        Action::Publish { request, event }
    }

    /// After a reconnect and catch-up: sends again what the relay never
    /// committed. Commits are not resent (their parent may be stale: the
    /// pending changes are recomputed instead).
    pub(crate) fn resend_unconfirmed(&mut self, actions: &mut Vec<Action>) {
        let pending = std::mem::take(&mut self.outbox.unconfirmed);
        for (_, event) in pending {
            if event.kind != EventKind::Commit {
                actions.push(self.track(event));
            }
        }
    }
}
