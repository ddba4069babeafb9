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
//! It also joins connections to rooms nobody is in (after a batch's
//! fan-out, so the head it hands out is exact), keeps only recently used
//! room heads in memory (reading the others back from the log), and runs
//! retention in bounded chunks between batches (docs/ARCHITECTURE.md).
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

use crate::hub::{Hub, JoinInfo, Outbound, Peer};
use crate::log::{EventLog, LogError, PruneCursor, Retention, RoomHead};

/// Most events committed in one transaction. Large enough that a burst
/// is one fsync; small enough that one batch's delivery stays prompt.
const MAX_BATCH: usize = 1024;

/// How often retention runs, when configured.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// At most `per_window` events per key in each window that begins with
/// the key's first counted event. The relay keeps two: commits per
/// (room, identity) per minute (members judge every commit, so an
/// outsider's flood costs each of them a signature check), and rooms
/// created per identity per hour (audit L3: each room is a row kept for
/// good).
struct WindowLimit<K> {
    per_window: u32,
    window: Duration,
    /// Events counted per key in the window that began then.
    windows: HashMap<K, (Instant, u32)>,
}

/// Keys tracked before expired windows are dropped.
const WINDOW_LIMIT_TRACKED: usize = 65_536;

impl<K: std::hash::Hash + Eq> WindowLimit<K> {
    fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window: per_window.max(1),
            window,
            windows: HashMap::new(),
        }
    }

    /// Counts one event against `key`'s window; false if it is full.
    fn allow(&mut self, key: K) -> bool {
        let now = Instant::now();
        let window = self.window;
        if self.windows.len() >= WINDOW_LIMIT_TRACKED {
            self.windows
                .retain(|_, (start, _)| now.duration_since(*start) < window);
            // Still full of live windows (that many keys active within a
            // window): start over rather than grow without bound.
            if self.windows.len() >= WINDOW_LIMIT_TRACKED {
                self.windows.clear();
            }
        }
        let slot = self.windows.entry(key).or_insert((now, 0));
        if now.duration_since(slot.0) >= window {
            *slot = (now, 0);
        }
        if slot.1 >= self.per_window {
            return false;
        }
        slot.1 += 1;
        true
    }
}

/// The per-identity limits the sequencer applies.
struct Quotas {
    commits: WindowLimit<(RoomName, Fingerprint)>,
    new_rooms: WindowLimit<Fingerprint>,
}

/// One event submitted for sequencing, with where to send a rejection.
pub(crate) struct PublishRequest {
    pub(crate) peer: Peer,
    pub(crate) request: u64,
    pub(crate) event: RoomEvent,
}

/// What connections ask of the sequencer thread.
pub(crate) enum Request {
    /// Sequence an event.
    Publish(PublishRequest),
    /// Join a room the hub does not hold (nobody is in it): the sequencer
    /// knows, or reads from the log, the room's head after everything it
    /// has committed and fanned out, so the joiner misses nothing and gets
    /// nothing twice.
    Join {
        room: RoomName,
        peer: Peer,
        reply: tokio::sync::oneshot::Sender<JoinInfo>,
    },
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
    /// When an event was last sequenced here (idle heads are evicted).
    last_used: Instant,
}

impl Head {
    /// A room nothing was ever sequenced in.
    fn new_room() -> Self {
        Self {
            last_seq: 0,
            epoch: 0,
            chain: Some([0; 32]),
            last_checkpoint: None,
            last_used: Instant::now(),
        }
    }

    /// A room's head as the log holds it. A room logged before the relay
    /// kept heads has no chain head (no checkpoints for it); one with no
    /// events has the all-zero head.
    fn from_log(h: &RoomHead) -> Self {
        Self {
            last_seq: h.last_seq,
            epoch: h.epoch,
            chain: h
                .head
                .or(if h.last_seq == 0 { Some([0; 32]) } else { None }),
            last_checkpoint: None,
            last_used: Instant::now(),
        }
    }
}

/// The rooms' heads the sequencer holds: the recently used ones. A head
/// idle for `idle_after`, or the least recently used above `max_resident`,
/// is dropped and read back from the log on next use (audit L3), where
/// `last_seq`, `epoch` and the chain head are committed with every batch.
struct Heads {
    resident: HashMap<RoomName, Head>,
    idle_after: Duration,
    max_resident: usize,
    last_sweep: Instant,
}

impl Heads {
    fn new(idle_after: Duration, max_resident: usize) -> Self {
        Self {
            resident: HashMap::new(),
            idle_after,
            max_resident: max_resident.max(1),
            last_sweep: Instant::now(),
        }
    }

    /// The room's head, read from the log if it is not resident (a room
    /// the log does not know is new); kept resident only if `keep`.
    fn get(&mut self, log: &dyn EventLog, room: &RoomName, keep: bool) -> Result<Head, LogError> {
        if let Some(h) = self.resident.get(room) {
            return Ok(*h);
        }
        let head = log
            .room_head(room.as_str())?
            .map_or_else(Head::new_room, |h| Head::from_log(&h));
        if keep {
            self.resident.insert(room.clone(), head);
        }
        Ok(head)
    }

    /// Drops idle heads, at most every `idle_after / 4` (and at once when
    /// above `max_resident`), then the least recently used ones above it.
    fn evict(&mut self) {
        let now = Instant::now();
        let over = self.resident.len() > self.max_resident;
        if !over && now.duration_since(self.last_sweep) < self.idle_after / 4 {
            return;
        }
        self.last_sweep = now;
        let idle_after = self.idle_after;
        self.resident
            .retain(|_, h| now.duration_since(h.last_used) < idle_after);
        if self.resident.len() > self.max_resident {
            let mut by_use: Vec<(Instant, RoomName)> = self
                .resident
                .iter()
                .map(|(r, h)| (h.last_used, r.clone()))
                .collect();
            by_use.sort_unstable_by_key(|(t, _)| *t);
            let excess = self.resident.len() - self.max_resident;
            for (_, room) in by_use.into_iter().take(excess) {
                self.resident.remove(&room);
            }
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
pub(crate) type CheckpointJob = (RoomName, u64, [u8; 32]);

/// Starts the thread that signs periodic checkpoints and broadcasts them,
/// so the RSA signature never delays sequencing. It stops when the
/// sequencer drops the returned sender.
pub(crate) fn spawn_checkpoint_signer(
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

/// What the sequencer thread needs besides its log and hub.
pub(crate) struct SequencerConfig {
    pub(crate) identity: std::sync::Arc<Identity>,
    pub(crate) retention: Retention,
    /// Requests queued before connections wait.
    pub(crate) capacity: usize,
    pub(crate) limits: crate::config::Limits,
    /// In a cluster (`--cluster`): where joins of rooms the hub does not
    /// hold go instead (the cluster consumer, the one place that fans
    /// out, knows the exact head). `None` on SQLite: the sequencer fans
    /// out itself, after each commit.
    pub(crate) cluster_joins: Option<mpsc::Sender<crate::cluster::JoinRequest>>,
}

/// Times one batch's events are numbered afresh after another relay
/// appended to their room first (cluster only), before they are refused.
const CONFLICT_RETRIES: u32 = 8;

/// Starts the sequencer thread. It runs until every sender of the returned
/// channel is dropped, then commits what it has and exits.
///
/// Between batches it runs retention in bounded chunks
/// ([`EventLog::prune_chunk`]): a prune that is due goes on, chunk by
/// chunk, while requests keep being served between the chunks, so no room
/// waits for more than one chunk (docs/ARCHITECTURE.md, "Retention").
pub(crate) fn spawn(
    mut log: Box<dyn EventLog>,
    hub: Hub,
    config: SequencerConfig,
) -> std::io::Result<(mpsc::Sender<Request>, std::thread::JoinHandle<()>)> {
    let SequencerConfig {
        identity,
        retention,
        capacity,
        limits,
        cluster_joins,
    } = config;
    let (tx, mut rx) = mpsc::channel::<Request>(capacity);
    let mut heads = Heads::new(limits.room_idle_after, limits.max_resident_rooms);
    let mut quotas = Quotas {
        commits: WindowLimit::new(limits.commits_per_minute, Duration::from_secs(60)),
        new_rooms: WindowLimit::new(limits.rooms_per_hour, Duration::from_secs(3600)),
    };
    let prune_chunk = limits.prune_chunk_events.max(1);
    let signer = spawn_checkpoint_signer(hub.clone(), identity)?;
    let handle = std::thread::Builder::new()
        .name("hush-sequencer".into())
        .spawn(move || {
            let prune = retention.max_events.is_some() || retention.max_age_ms.is_some();
            let mut last_prune = Instant::now();
            let mut pruning: Option<PruneCursor> = None;
            let mut batch = Vec::with_capacity(MAX_BATCH);
            let mut joins = Vec::new();
            loop {
                // While a prune is under way, take what is queued without
                // waiting, and prune a chunk when nothing is.
                let first = if pruning.is_some() {
                    match rx.try_recv() {
                        Ok(req) => Some(req),
                        Err(mpsc::error::TryRecvError::Empty) => None,
                        Err(mpsc::error::TryRecvError::Disconnected) => break,
                    }
                } else {
                    match rx.blocking_recv() {
                        Some(req) => Some(req),
                        None => break,
                    }
                };
                if let Some(first) = first {
                    let mut next = Some(first);
                    while let Some(req) = next {
                        match req {
                            Request::Publish(p) => batch.push(p),
                            Request::Join { room, peer, reply } => match &cluster_joins {
                                Some(to) => {
                                    let join = crate::cluster::JoinRequest { room, peer, reply };
                                    if let Err(e) = to.blocking_send(join) {
                                        let j = e.0;
                                        reject(&j.peer, 0, j.room, Rejection::StorageFailed);
                                    }
                                }
                                None => joins.push((room, peer, reply)),
                            },
                        }
                        next = if batch.len() < MAX_BATCH {
                            rx.try_recv().ok()
                        } else {
                            None
                        };
                    }
                    let out = Outcome {
                        hub: &hub,
                        signer: &signer,
                        fan_out: cluster_joins.is_none(),
                    };
                    commit_batch(&mut *log, &mut heads, &mut quotas, &out, &mut batch, 0);
                    // After the batch's fan-out: the heads are exact.
                    for (room, peer, reply) in joins.drain(..) {
                        let info = match heads.get(&*log, &room, false) {
                            Ok(h) => hub.join_at(&room, &peer, h.last_seq, h.epoch, h.chain),
                            Err(e) => {
                                tracing::error!(error = %e, "could not read a room's head");
                                reject(&peer, 0, room, Rejection::StorageFailed);
                                continue;
                            }
                        };
                        let _ = reply.send(info);
                    }
                    heads.evict();
                }
                if prune && pruning.is_none() && last_prune.elapsed() >= PRUNE_INTERVAL {
                    last_prune = Instant::now();
                    pruning = Some(PruneCursor::default());
                }
                if let Some(cursor) = pruning.as_mut() {
                    match log.prune_chunk(retention, now_ms(), cursor, prune_chunk) {
                        Ok(step) => {
                            if step.deleted > 0 {
                                tracing::debug!(deleted = step.deleted, "retention pruned a chunk");
                            }
                            if step.done {
                                if cursor.deleted() > 0 {
                                    tracing::info!(
                                        deleted = cursor.deleted(),
                                        "retention pruned the log"
                                    );
                                }
                                pruning = None;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "retention failed");
                            pruning = None;
                        }
                    }
                }
            }
            tracing::debug!("sequencer drained and stopped");
        })?;
    Ok((tx, handle))
}

/// Where a committed batch goes: the hub (on SQLite, right after the
/// commit; in a cluster the consumer of the shared stream delivers it,
/// in the stream's order, on every relay alike).
struct Outcome<'a> {
    hub: &'a Hub,
    signer: &'a std::sync::mpsc::SyncSender<CheckpointJob>,
    fan_out: bool,
}

fn commit_batch(
    log: &mut dyn EventLog,
    heads: &mut Heads,
    quotas: &mut Quotas,
    out: &Outcome<'_>,
    batch: &mut Vec<PublishRequest>,
    attempt: u32,
) {
    let (hub, signer) = (out.hub, out.signer);
    let received_at_ms = now_ms();
    let mut before: HashMap<RoomName, Head> = HashMap::new();
    // Who sent each accepted row, and the room's epoch and chain after it.
    let mut accepted: Vec<(Peer, u64, u64, Option<[u8; 32]>)> = Vec::with_capacity(batch.len());
    let mut rows: Vec<SequencedEvent> = Vec::with_capacity(batch.len());
    for req in batch.drain(..) {
        let room = &req.event.room;
        if let Err(e) = heads.get(log, room, true) {
            tracing::error!(error = %e, "could not read a room's head");
            reject(
                &req.peer,
                req.request,
                room.clone(),
                Rejection::StorageFailed,
            );
            continue;
        }
        // In a cluster other relays move rooms on too: a head this relay
        // holds may be behind, so an event that fails the epoch rule
        // against it, or would create a room another relay may have
        // created since, is judged against the stream's head (unless this
        // batch already holds events of the room).
        if !out.fan_out
            && !before.contains_key(room)
            && let Some(h) = heads.resident.get(room)
            && (h.last_seq == 0 || check_epoch(req.event.kind, req.event.epoch, h.epoch).is_err())
        {
            heads.resident.remove(room);
            if let Err(e) = heads.get(log, room, true) {
                tracing::error!(error = %e, "could not read a room's head");
                reject(
                    &req.peer,
                    req.request,
                    room.clone(),
                    Rejection::StorageFailed,
                );
                continue;
            }
        }
        // Present: `get` just kept it.
        let Some(head) = heads.resident.get_mut(room) else {
            continue;
        };
        before.entry(room.clone()).or_insert(*head);
        if let Err(reason) = check_epoch(req.event.kind, req.event.epoch, head.epoch) {
            reject(&req.peer, req.request, room.clone(), reason);
            continue;
        }
        if req.event.kind == EventKind::Commit
            && !quotas.commits.allow((room.clone(), req.event.sender))
        {
            let reason = Rejection::TooManyCommits {
                per_minute: quotas.commits.per_window,
            };
            reject(&req.peer, req.request, room.clone(), reason);
            continue;
        }
        // The first event ever sequenced in a room creates it for good.
        if head.last_seq == 0 && !quotas.new_rooms.allow(req.event.sender) {
            let reason = Rejection::TooManyNewRooms {
                per_hour: quotas.new_rooms.per_window,
            };
            reject(&req.peer, req.request, room.clone(), reason);
            continue;
        }
        head.last_used = Instant::now();
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
            let chain = heads.resident.get(room)?.chain?;
            Some((room.as_str(), chain))
        })
        .collect();
    let started = std::time::Instant::now();
    let appended = log.append_batch_with_heads(&rows, &new_heads);
    let m = crate::metrics::metrics();
    m.commit_seconds.observe(started.elapsed().as_secs_f64());
    let (durable, failure) = match appended {
        Ok(()) => (rows.len(), None),
        // A shared log stored the first `durable` of the batch only.
        Err(LogError::Partial { durable, cause }) => (durable.min(rows.len()), Some(*cause)),
        Err(e) => (0, Some(e)),
    };
    m.events_appended.inc_by(durable as u64);
    tracing::trace!(events = rows.len(), durable, "batch appended");
    let failed_rows = rows.split_off(durable);
    let failed = accepted.split_off(durable);
    if out.fan_out {
        // Consecutive events of one room go to its members as one run;
        // a checkpoint is asked for only once its seq was delivered.
        let mut run: Vec<(u64, Outbound)> = Vec::new();
        let mut due = None;
        let mut rows = rows.into_iter().zip(accepted).peekable();
        while let Some((row, (_, _, epoch, chain))) = rows.next() {
            let (seq, room) = (row.seq, row.event.room.clone());
            run.push((seq, encode(&RelayMsg::Event(row)).into()));
            if let Some(head) = chain
                && seq % CHECKPOINT_EVERY == 0
            {
                due = Some((seq, head));
            }
            if rows.peek().is_some_and(|(next, _)| next.event.room == room) {
                continue;
            }
            let _ = hub.fan_out(&room, epoch, chain, &run);
            run.clear();
            if let Some((seq, head)) = due.take()
                && let Some(h) = heads.resident.get_mut(&room)
                && h.last_checkpoint
                    .is_none_or(|t| t.elapsed() >= CHECKPOINT_MIN_INTERVAL)
                && signer.try_send((room, seq, head)).is_ok()
            {
                h.last_checkpoint = Some(Instant::now());
            }
        }
    }
    let Some(e) = failure else {
        return;
    };
    if out.fan_out {
        // SQLite rolled the whole batch back: the heads before it hold.
        tracing::error!(error = %e, events = failed_rows.len(), "could not commit events; refusing them");
        for (room, head) in before {
            heads.resident.insert(room, head);
        }
        for (row, (peer, request, _, _)) in failed_rows.into_iter().zip(failed) {
            reject(&peer, request, row.event.room, Rejection::StorageFailed);
        }
        return;
    }
    // A shared log: the rooms of what was not stored are read again (the
    // stream holds their truth, whatever happened), and if another relay
    // appended first, the events are numbered afresh and tried again.
    for row in &failed_rows {
        heads.resident.remove(&row.event.room);
    }
    let moved = matches!(e, LogError::Conflict { .. } | LogError::SeqGap { .. });
    if moved && attempt < CONFLICT_RETRIES {
        tracing::debug!(error = %e, events = failed_rows.len(), attempt, "room moved on under another relay; renumbering");
        let mut again: Vec<PublishRequest> = failed_rows
            .into_iter()
            .zip(failed)
            .map(|(row, (peer, request, _, _))| PublishRequest {
                peer,
                request,
                event: row.event,
            })
            .collect();
        commit_batch(log, heads, quotas, out, &mut again, attempt + 1);
        return;
    }
    tracing::error!(error = %e, events = failed_rows.len(), "could not commit events; refusing them");
    for (row, (peer, request, _, _)) in failed_rows.into_iter().zip(failed) {
        reject(&peer, request, row.event.room, Rejection::StorageFailed);
    }
}
