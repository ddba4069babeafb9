//! The sequencer: one thread that orders, persists and then delivers
//! every room event.
//!
//! ```text
//!  connection tasks ──Publish──▶ [bounded channel] ──▶ sequencer thread
//!                                                      │ 1. take everything queued (a batch)
//!                                                      │ 2. per event: epoch rule, next seq
//!                                                      │ 3. one SQLite transaction (group commit)
//!                                                      │ 4. only then: hub.fan_out, in seq order
//!                                                      ▼
//!                                         members' outbound queues
//! ```
//!
//! Being the single writer makes it the single point of order: sequence
//! numbers are assigned in the order the batch is committed. It does not
//! choose between commits (protocol 2): every commit that can name a real
//! epoch is sequenced, within a per-identity rate, and members take the
//! first valid one per parent epoch (PROTOCOL.md §9.2.6). A burst of
//! events costs one fsync, not one per event. Nothing is delivered, to
//! anyone, before the transaction that holds it has committed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hush_crypto::{Fingerprint, Identity};
use hush_proto::msg::Checkpoint;
use hush_proto::msg::check_epoch;
use hush_proto::msg::encode;
use hush_proto::{EventKind, Rejection, RelayMsg, RoomEvent, RoomName, SequencedEvent};
use tokio::sync::mpsc;

use crate::hub::{Hub, Peer};
use crate::log::{EventLog, Retention, RoomHead};

/// Most events committed in one transaction. Large enough that a burst
/// is one fsync; small enough that one batch's delivery stays prompt.
const MAX_BATCH: usize = 1024;

/// How often retention runs, when configured.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// How many commits each identity may have sequenced in each room per
/// minute: members judge every commit, so an outsider's flood costs each
/// of them a signature check, and this bounds it.
struct CommitLimit {
    per_minute: u32,
    /// Commits seen per (room, sender) in the window that began then.
    windows: HashMap<(RoomName, Fingerprint), (Instant, u32)>,
}

/// Identities tracked before expired windows are dropped.
const COMMIT_LIMIT_TRACKED: usize = 65_536;

impl CommitLimit {
    fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            windows: HashMap::new(),
        }
    }

    /// Counts `event` (a commit) against its sender's window; false if
    /// the window is full.
    fn allow(&mut self, event: &RoomEvent) -> bool {
        let now = Instant::now();
        let window = Duration::from_secs(60);
        if self.windows.len() >= COMMIT_LIMIT_TRACKED {
            self.windows
                .retain(|_, (start, _)| now.duration_since(*start) < window);
            // Still full of live windows (that many identities committing
            // within a minute): start over rather than grow without bound.
            if self.windows.len() >= COMMIT_LIMIT_TRACKED {
                self.windows.clear();
            }
        }
        let slot = self
            .windows
            .entry((event.room.clone(), event.sender))
            .or_insert((now, 0));
        if now.duration_since(slot.0) >= window {
            *slot = (now, 0);
        }
        if slot.1 >= self.per_minute {
            return false;
        }
        slot.1 += 1;
        true
    }
}

/// One event submitted for sequencing, with where to send a rejection.
pub(crate) struct PublishRequest {
    pub(crate) peer: Peer,
    pub(crate) request: u64,
    pub(crate) event: RoomEvent,
}

#[derive(Clone, Copy)]
struct Head {
    last_seq: u64,
    epoch: u64,
    /// The room's hash-chain head after `last_seq`; unknown for rooms
    /// logged before the relay kept heads (no checkpoints for those).
    chain: Option<[u8; 32]>,
    /// When the room's last periodic checkpoint was handed to the signer.
    last_checkpoint: Option<Instant>,
}

impl Default for Head {
    fn default() -> Self {
        Self {
            last_seq: 0,
            epoch: 0,
            chain: Some([0; 32]),
            last_checkpoint: None,
        }
    }
}

/// The relay signs a checkpoint of a room after every event whose seq is
/// a multiple of this (and on request), at most once per
/// [`CHECKPOINT_MIN_INTERVAL`] per room: often enough that members compare
/// histories regularly, rarely enough that the RSA signature costs nothing
/// measurable per event.
pub const CHECKPOINT_EVERY: u64 = 64;

/// Shortest time between two periodic checkpoints of one room. Under load
/// a room passes a multiple of [`CHECKPOINT_EVERY`] many times a second;
/// signing each would cost the relay a core.
pub const CHECKPOINT_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Periodic checkpoints waiting for the signer thread. When it falls this
/// far behind, further ones are skipped (the next one covers them).
const CHECKPOINT_QUEUE: usize = 64;

/// A periodic checkpoint to sign: room, seq, chain head.
type CheckpointJob = (RoomName, u64, [u8; 32]);

/// Starts the thread that signs periodic checkpoints and broadcasts them,
/// so the RSA signature never delays sequencing. It stops when the
/// sequencer drops the returned sender.
fn spawn_checkpoint_signer(
    hub: Hub,
    identity: std::sync::Arc<Identity>,
) -> std::io::Result<std::sync::mpsc::SyncSender<CheckpointJob>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<CheckpointJob>(CHECKPOINT_QUEUE);
    std::thread::Builder::new()
        .name("hush-checkpoints".into())
        .spawn(move || {
            for (room, seq, head) in rx {
                if let Some(cp) = sign_checkpoint(&identity, &room, seq, head) {
                    hub.broadcast(&room, &cp.into());
                }
            }
        })?;
    Ok(tx)
}

/// A signed checkpoint message, or `None` if signing failed.
pub(crate) fn sign_checkpoint(
    identity: &Identity,
    room: &RoomName,
    seq: u64,
    head: [u8; 32],
) -> Option<Vec<u8>> {
    let relay_time_ms = now_ms();
    let digest = hush_proto::e2e::checkpoint_digest(room, seq, &head, relay_time_ms);
    let signature = identity
        .sign(hush_proto::e2e::CHECKPOINT_CONTEXT, &digest)
        .ok()?
        .into_bytes();
    Some(encode(&RelayMsg::Checkpoint(Checkpoint {
        room: room.clone(),
        seq,
        head,
        relay_time_ms,
        signature,
    })))
}

/// Milliseconds since the UNIX epoch, by the relay's clock.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn reject(peer: &Peer, request: u64, room: RoomName, reason: Rejection) {
    peer.deliver(
        encode(&RelayMsg::Rejected {
            request,
            room,
            reason,
        })
        .into(),
    );
}

/// Restores every logged room's head, into the hub (for joins and
/// checkpoints) and into the sequencer's own state. A room with no events
/// has the all-zero chain head; one logged before the relay kept heads has
/// none. A stored name that is no longer a valid room name is skipped.
fn seed(heads: Vec<RoomHead>, hub: &Hub) -> HashMap<RoomName, Head> {
    let mut state: HashMap<RoomName, Head> = HashMap::new();
    for h in heads {
        if let Ok(room) = RoomName::new(&h.room) {
            let chain = h
                .head
                .or(if h.last_seq == 0 { Some([0; 32]) } else { None });
            hub.seed(room.clone(), h.last_seq, h.epoch, chain);
            state.insert(
                room,
                Head {
                    last_seq: h.last_seq,
                    epoch: h.epoch,
                    chain,
                    last_checkpoint: None,
                },
            );
        }
    }
    state
}

/// Starts the sequencer thread. It runs until every sender of the returned
/// channel is dropped, then commits what it has and exits.
pub(crate) fn spawn(
    mut log: EventLog,
    heads: Vec<RoomHead>,
    hub: Hub,
    identity: std::sync::Arc<Identity>,
    retention: Retention,
    capacity: usize,
    commits_per_minute: u32,
) -> std::io::Result<(mpsc::Sender<PublishRequest>, std::thread::JoinHandle<()>)> {
    let (tx, mut rx) = mpsc::channel::<PublishRequest>(capacity);
    let mut state = seed(heads, &hub);
    let mut commits = CommitLimit::new(commits_per_minute);
    let signer = spawn_checkpoint_signer(hub.clone(), identity)?;
    let handle = std::thread::Builder::new()
        .name("hush-sequencer".into())
        .spawn(move || {
            let prune = retention.max_events.is_some() || retention.max_age_ms.is_some();
            let mut last_prune = Instant::now();
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.blocking_recv() {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(req) => batch.push(req),
                        Err(_) => break,
                    }
                }
                commit_batch(
                    &mut log,
                    &mut state,
                    &mut commits,
                    &hub,
                    &signer,
                    &mut batch,
                );
                if prune && last_prune.elapsed() >= PRUNE_INTERVAL {
                    last_prune = Instant::now();
                    match log.prune(retention, now_ms()) {
                        Ok(n) if n > 0 => tracing::info!(deleted = n, "retention pruned the log"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "retention failed"),
                    }
                }
            }
            tracing::debug!("sequencer drained and stopped");
        })?;
    Ok((tx, handle))
}

fn commit_batch(
    log: &mut EventLog,
    state: &mut HashMap<RoomName, Head>,
    commits: &mut CommitLimit,
    hub: &Hub,
    signer: &std::sync::mpsc::SyncSender<CheckpointJob>,
    batch: &mut Vec<PublishRequest>,
) {
    let received_at_ms = now_ms();
    let mut before: HashMap<RoomName, Head> = HashMap::new();
    // Who sent each accepted row, and the room's epoch and chain after it.
    let mut accepted: Vec<(Peer, u64, u64, Option<[u8; 32]>)> = Vec::with_capacity(batch.len());
    let mut rows: Vec<SequencedEvent> = Vec::with_capacity(batch.len());
    for req in batch.drain(..) {
        let head = state.entry(req.event.room.clone()).or_default();
        before.entry(req.event.room.clone()).or_insert(*head);
        if let Err(reason) = check_epoch(req.event.kind, req.event.epoch, head.epoch) {
            reject(&req.peer, req.request, req.event.room.clone(), reason);
            continue;
        }
        if req.event.kind == EventKind::Commit && !commits.allow(&req.event) {
            let reason = Rejection::TooManyCommits {
                per_minute: commits.per_minute,
            };
            reject(&req.peer, req.request, req.event.room.clone(), reason);
            continue;
        }
        head.last_seq += 1;
        if req.event.kind == EventKind::Commit {
            head.epoch = head.epoch.max(req.event.epoch);
        }
        head.chain = head
            .chain
            .map(|c| hush_proto::e2e::chain_next_parts(&c, head.last_seq, &req.event));
        accepted.push((req.peer, req.request, head.epoch, head.chain));
        rows.push(SequencedEvent {
            seq: head.last_seq,
            received_at_ms,
            event: req.event,
        });
    }
    if rows.is_empty() {
        return;
    }
    let new_heads: Vec<(&str, [u8; 32])> = before
        .keys()
        .filter_map(|room| {
            let chain = state.get(room)?.chain?;
            Some((room.as_str(), chain))
        })
        .collect();
    match log.append_batch_with_heads(&rows, &new_heads) {
        Ok(()) => {
            for (row, (_, _, epoch, chain)) in rows.into_iter().zip(accepted) {
                let (seq, room) = (row.seq, row.event.room.clone());
                let msg = encode(&RelayMsg::Event(row));
                hub.fan_out(&room, seq, epoch, chain, &msg.into());
                if let Some(head) = chain
                    && seq % CHECKPOINT_EVERY == 0
                    && let Some(h) = state.get_mut(&room)
                    && h.last_checkpoint
                        .is_none_or(|t| t.elapsed() >= CHECKPOINT_MIN_INTERVAL)
                    && signer.try_send((room, seq, head)).is_ok()
                {
                    h.last_checkpoint = Some(Instant::now());
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, events = rows.len(), "could not commit events; refusing them");
            for (room, head) in before {
                state.insert(room, head);
            }
            for (row, (peer, request, _, _)) in rows.into_iter().zip(accepted) {
                reject(&peer, request, row.event.room, Rejection::StorageFailed);
            }
        }
    }
}
