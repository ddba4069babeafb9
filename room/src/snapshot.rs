//! What survives a restart: [`RoomSnapshot`], and restoring a room from it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use hush_crypto::{Fingerprint, Identity, PublicIdentity, Secret32};
use hush_proto::RoomName;
use hush_proto::e2e::RoomSettings;

use crate::entropy::Entropy;
use crate::epochs::{Epoch, RosterEntry};
use crate::limits::{MAX_KICKED, MAX_MEMBERSHIP_SESSIONS};
use crate::membership::Pending;
use crate::room::Room;
use serde::{Deserialize, Serialize};

/// How many recent chain heads a snapshot keeps (the heads senders sign
/// are almost always recent).
pub(crate) const SNAPSHOT_HEADS: usize = 2_000;

/// Everything a member must remember between runs, for [`Room::restore`].
/// Holds epoch keys: it is only ever stored sealed (see `state.rs`), and
/// its encoding is zeroized after use.
#[derive(Serialize, Deserialize)]
pub struct RoomSnapshot {
    room: String,
    owner: [u8; 32],
    nick: String,
    last_seq: u64,
    chain_head: [u8; 32],
    chain_anchored: bool,
    heads: Vec<(u64, [u8; 32])>,
    current: u64,
    epochs: Vec<EpochSnapshot>,
    epoch_commit_ids: Vec<(u64, [u8; 32])>,
    nicks: Vec<([u8; 32], String)>,
    next_counter: Vec<([u8; 32], [u8; 16], u64, u64)>,
    seen: Vec<([u8; 32], [u8; 16], u64, u64)>,
    settings: Option<RoomSettings>,
    invited: Vec<[u8; 32]>,
    kicked_at: Vec<([u8; 32], u64)>,
    membership: Vec<([u8; 32], [u8; 16], u64)>,
    epoch_commit_seq: Vec<(u64, u64)>,
    pending_removals: Vec<[u8; 32]>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct EpochSnapshot {
    epoch: u64,
    members: Vec<(Vec<u8>, String)>,
    key: Option<[u8; 32]>,
}

impl Drop for RoomSnapshot {
    fn drop(&mut self) {
        for e in &mut self.epochs {
            if let Some(k) = e.key.as_mut() {
                zeroize::Zeroize::zeroize(k);
            }
        }
    }
}

/// Why a snapshot cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// It belongs to another room or identity.
    #[error("the saved state is for another room or identity")]
    Mismatch,
    /// A saved key does not parse.
    #[error("the saved state holds an invalid key")]
    BadKey,
}

impl Room {
    /// Whether state changed since the last call (then clears the flag).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// What must survive a restart.
    #[must_use]
    pub fn snapshot(&self) -> RoomSnapshot {
        let keep_seen_from = self.epochs.current.saturating_sub(1);
        RoomSnapshot {
            room: self.name.as_str().to_owned(),
            owner: *self.me.fingerprint().as_bytes(),
            nick: self.nick.clone(),
            last_seq: self.chain.last_seq,
            chain_head: self.chain.head,
            chain_anchored: self.chain.anchored,
            heads: self
                .chain
                .heads
                .iter()
                .rev()
                .take(SNAPSHOT_HEADS)
                .map(|(k, v)| (*k, *v))
                .collect(),
            current: self.epochs.current,
            // Epochs known from the log, and those only an earlier run's
            // state knew (kept for --replay-history).
            epochs: self
                .epochs
                .known
                .iter()
                .chain(
                    self.epochs
                        .archive
                        .iter()
                        .filter(|(e, _)| !self.epochs.known.contains_key(e)),
                )
                .map(|(epoch, e)| EpochSnapshot {
                    epoch: *epoch,
                    members: e
                        .roster
                        .values()
                        .map(|r| (r.key.spki_der().to_vec(), r.nick.clone()))
                        .collect(),
                    key: e.key.as_ref().map(|k| *k.expose_secret()),
                })
                .collect(),
            epoch_commit_ids: self.epochs.ids.iter().map(|(k, v)| (*k, *v)).collect(),
            nicks: self
                .people
                .nicks
                .iter()
                .map(|(fp, n)| (*fp.as_bytes(), n.clone()))
                .collect(),
            next_counter: self
                .replay
                .next_counter
                .iter()
                .map(|((fp, session, epoch), n)| (*fp.as_bytes(), *session, *epoch, *n))
                .collect(),
            // Replays are checked within recent epochs; older epochs are
            // rekeyed away and their counters are in `next_counter`.
            seen: self
                .replay
                .seen
                .iter()
                .filter(|(_, _, epoch, _)| *epoch >= keep_seen_from)
                .map(|(fp, session, epoch, counter)| (*fp.as_bytes(), *session, *epoch, *counter))
                .collect(),
            settings: self.settings.clone(),
            invited: self
                .admissions
                .invited
                .iter()
                .map(|fp| *fp.as_bytes())
                .collect(),
            kicked_at: self
                .admissions
                .kicked_at
                .iter()
                .map(|(fp, seq)| (*fp.as_bytes(), *seq))
                .collect(),
            membership: self
                .replay
                .membership
                .iter()
                .map(|((fp, session), next)| (*fp.as_bytes(), *session, *next))
                .collect(),
            epoch_commit_seq: self
                .epochs
                .commit_seq
                .iter()
                .map(|(e, s)| (*e, *s))
                .collect(),
            pending_removals: self
                .admissions
                .pending_removals
                .keys()
                .map(|fp| *fp.as_bytes())
                .collect(),
        }
    }

    /// A fresh member state that reads the room's retained history again
    /// from its start, with the epochs a snapshot saved kept aside for
    /// messages whose commits the relay no longer keeps. Nothing else of
    /// the snapshot is reused: the history is verified again as it comes.
    /// Its secrets come from `entropy`, as in [`Room::new`].
    ///
    /// # Errors
    /// As [`Room::restore`].
    pub fn restore_for_replay(
        name: RoomName,
        me: Arc<Identity>,
        snap: &RoomSnapshot,
        entropy: Entropy,
    ) -> Result<Self, RestoreError> {
        snap.check_owner(&name, &me)?;
        let archive = snap.restore_epochs()?;
        let mut room = Self::new(name, me, snap.nick.clone(), entropy);
        room.epochs.archive = archive;
        room.people.nicks = snap.restore_nicks();
        // The rules never change, and add-only commits do not repeat them.
        room.settings.clone_from(&snap.settings);
        Ok(room)
    }

    /// A member state restored from a snapshot: it resumes after the last
    /// event it processed, holding the epoch keys it had. Its secrets come
    /// from `entropy`, as in [`Room::new`]; its timers (the current
    /// epoch's age, removals still to commit) start at `now`.
    ///
    /// # Errors
    /// [`RestoreError`] if the snapshot is for another room or identity,
    /// or holds an invalid key.
    pub fn restore(
        name: RoomName,
        me: Arc<Identity>,
        snap: &RoomSnapshot,
        entropy: Entropy,
        now: Instant,
    ) -> Result<Self, RestoreError> {
        snap.check_owner(&name, &me)?;
        let epochs = snap.restore_epochs()?;
        let mut room = Self::new(name, me, snap.nick.clone(), entropy);
        room.chain.last_seq = snap.last_seq;
        room.chain.resumed_from = snap.last_seq;
        room.chain.head = snap.chain_head;
        room.chain.anchored = snap.chain_anchored;
        room.chain.heads = snap.heads.iter().copied().collect();
        room.epochs.current = snap.current;
        room.epochs.known = epochs;
        room.epochs.ids = snap.epoch_commit_ids.iter().copied().collect();
        room.people.nicks = snap.restore_nicks();
        room.replay.next_counter = snap
            .next_counter
            .iter()
            .map(|(fp, session, epoch, n)| ((Fingerprint::from_bytes(*fp), *session, *epoch), *n))
            .collect();
        room.replay.seen = snap
            .seen
            .iter()
            .map(|(fp, session, epoch, counter)| {
                (Fingerprint::from_bytes(*fp), *session, *epoch, *counter)
            })
            .collect();
        room.commits.epoch_started = Some(now);
        room.settings.clone_from(&snap.settings);
        room.epochs.commit_seq = snap.epoch_commit_seq.iter().copied().collect();
        room.admissions.pending_removals = snap
            .pending_removals
            .iter()
            .map(|b| (Fingerprint::from_bytes(*b), Pending { since: now }))
            .collect();
        room.admissions.invited = snap
            .invited
            .iter()
            .map(|b| Fingerprint::from_bytes(*b))
            .collect();
        room.admissions.kicked_at = snap
            .kicked_at
            .iter()
            .take(MAX_KICKED)
            .map(|(b, seq)| (Fingerprint::from_bytes(*b), *seq))
            .collect();
        room.replay.membership = snap
            .membership
            .iter()
            .take(MAX_MEMBERSHIP_SESSIONS)
            .map(|(b, session, next)| ((Fingerprint::from_bytes(*b), *session), *next))
            .collect();
        Ok(room)
    }
}

impl RoomSnapshot {
    fn check_owner(&self, name: &RoomName, me: &Identity) -> Result<(), RestoreError> {
        if self.room != name.as_str() || self.owner != *me.fingerprint().as_bytes() {
            return Err(RestoreError::Mismatch);
        }
        Ok(())
    }

    fn restore_epochs(&self) -> Result<BTreeMap<u64, Epoch>, RestoreError> {
        let mut epochs = BTreeMap::new();
        for e in &self.epochs {
            let mut roster = BTreeMap::new();
            for (spki, nick) in &e.members {
                let key = PublicIdentity::from_spki_der(spki).map_err(|_| RestoreError::BadKey)?;
                roster.insert(
                    key.fingerprint(),
                    RosterEntry {
                        key: Arc::new(key),
                        nick: nick.clone(),
                    },
                );
            }
            let key = e.key.map(Secret32::from_bytes);
            epochs.insert(
                e.epoch,
                Epoch {
                    roster: Arc::new(roster),
                    key,
                },
            );
        }
        Ok(epochs)
    }

    fn restore_nicks(&self) -> HashMap<Fingerprint, String> {
        self.nicks
            .iter()
            .map(|(fp, n)| (Fingerprint::from_bytes(*fp), n.clone()))
            .collect()
    }
}
