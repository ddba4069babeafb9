//! Routes each event, in seq order, through the hash chain to the
//! handler of its kind, with the signer-key lookups they share.

use std::sync::Arc;
use std::time::Instant;

use hush_crypto::{Fingerprint, PublicIdentity};
use hush_proto::e2e::{self, Payload};
use hush_proto::{EventKind, SequencedEvent};

use crate::action::Action;
use crate::authenticate::Unverified;
use crate::commit::CommitBody;
use crate::limits::*;
use crate::room::Room;
use crate::warning::{Signed, Warning};

impl Room {
    pub(crate) fn apply(&mut self, ev: SequencedEvent, now: Instant, actions: &mut Vec<Action>) {
        self.dirty = true;
        self.chain.last_seq = ev.seq;
        self.chain.head = e2e::chain_next(&self.chain.head, &ev);
        if self.chain.anchored {
            self.chain.heads.insert(ev.seq, self.chain.head);
            if self.chain.heads.len() > MAX_HEADS {
                self.chain.heads.pop_first();
            }
            if self
                .chain
                .pending_checkpoints
                .iter()
                .any(|c| c.seq == ev.seq)
            {
                let due: Vec<_> = self
                    .chain
                    .pending_checkpoints
                    .iter()
                    .filter(|c| c.seq == ev.seq)
                    .cloned()
                    .collect();
                self.chain.pending_checkpoints.retain(|c| c.seq != ev.seq);
                for cp in due {
                    self.compare_checkpoint(&cp, actions);
                }
            }
        }
        let sender = ev.event.sender;
        if sender == self.me.fingerprint() {
            let body = &ev.event.body;
            self.outbox.unconfirmed.retain(|(_, e)| e.body != *body);
        }
        let (event, payload) = match Unverified::decode(&ev, &self.name) {
            Ok(decoded) => decoded,
            Err(malformed) => {
                let warning = self.warn(Some(ev.seq), Some(sender), malformed);
                if ev.event.kind == EventKind::Commit {
                    self.skip_commit(&ev, Some(warning), actions);
                } else {
                    actions.push(warning);
                }
                return;
            }
        };
        match payload {
            Payload::JoinRequest(req) => self.apply_join_request(&event, req, now, actions),
            Payload::Commit(c) => self.apply_commit(&event, CommitBody::Full(c), now, actions),
            Payload::Add(a) => self.apply_commit(&event, CommitBody::Add(a), now, actions),
            Payload::Message(m) => self.apply_message(&event, m, actions),
            Payload::Leave(at) => self.apply_leave(&event, at, now, actions),
            Payload::Invite(r) => self.apply_control(&event, r, true, now, actions),
            Payload::Kick(r) => self.apply_control(&event, r, false, now, actions),
        }
        self.maybe_commit(now, actions);
    }

    /// The key that must have signed an event from `sender` in `epoch`,
    /// from that epoch's roster.
    pub(crate) fn roster_key(
        &self,
        epoch: u64,
        sender: &Fingerprint,
    ) -> Option<Arc<PublicIdentity>> {
        self.epochs
            .known
            .get(&epoch)
            .and_then(|e| e.roster.get(sender))
            .map(|r| r.key.clone())
    }

    pub(crate) fn bad_signature(&self, ev: &SequencedEvent, what: Signed) -> Action {
        self.warn(
            Some(ev.seq),
            Some(ev.event.sender),
            Warning::BadSignature { what },
        )
    }
}
