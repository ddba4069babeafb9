//! Key confirmation (PROTOCOL.md §9.2.6 rule 10, audit M4): a commit
//! carries `confirm = HKDF(new epoch key, salt = confirm_salt(room,
//! epoch, committer, the commit with confirm zeroed))`
//! ([`e2e::commit_confirmation`]). The committer computes it from the key
//! it used; every member that holds the new key afterwards, whether it
//! unwrapped or derived it, recomputes it. A committer that gave some
//! members another key is caught by each of them, and named.

use hush_crypto::{Fingerprint, Secret32};
use hush_proto::RoomName;
use hush_proto::e2e::{self, Payload};

use crate::commit::CommitBody;

impl CommitBody {
    /// The payload to publish.
    pub(crate) fn into_payload(self) -> Payload {
        match self {
            Self::Full(c) => Payload::Commit(c),
            Self::Add(a) => Payload::Add(a),
        }
    }

    /// The confirmation `key` gives this commit opening `epoch` of `room`
    /// by `committer`.
    fn confirmation(
        &self,
        key: &Secret32,
        room: &RoomName,
        epoch: u64,
        committer: &Fingerprint,
    ) -> [u8; 32] {
        let payload = match self {
            Self::Full(c) => Payload::Commit(c.clone()),
            Self::Add(a) => Payload::Add(a.clone()),
        };
        e2e::commit_confirmation(key, room, epoch, committer, &payload)
    }

    /// Sets the confirmation for `key` (the committer's side).
    pub(crate) fn confirm_with(
        mut self,
        key: &Secret32,
        room: &RoomName,
        epoch: u64,
        committer: &Fingerprint,
    ) -> Self {
        let tag = self.confirmation(key, room, epoch, committer);
        match &mut self {
            Self::Full(c) => c.confirm = tag,
            Self::Add(a) => a.confirm = tag,
        }
        self
    }

    /// Whether `key` is the key the committer confirmed (compared in
    /// constant time).
    pub(crate) fn confirms(
        &self,
        key: &Secret32,
        room: &RoomName,
        epoch: u64,
        committer: &Fingerprint,
    ) -> bool {
        let claimed = match self {
            Self::Full(c) => c.confirm,
            Self::Add(a) => a.confirm,
        };
        Secret32::from_bytes(self.confirmation(key, room, epoch, committer))
            == Secret32::from_bytes(claimed)
    }
}
