//! Who is in which room, and delivery to them.
//!
//! The hub is the one piece of state shared by every connection task and
//! the sequencer thread. It sits behind a `std::sync::Mutex` (not an async
//! one) because every critical section is short, never awaits, and must
//! be atomic with respect to fan-out: a connection that joins at head `H`
//! is added in the same critical section that reads `H`, so it receives
//! every event after `H` live and nothing twice.
//!
//! The hub holds a room only while someone is joined to it (audit L3):
//! a join of a room it does not hold goes through the sequencer, which
//! knows the room's head, and fan-out to a room it does not hold delivers
//! nothing.
//!
//! Delivery never blocks: each connection has a bounded queue, and a
//! connection whose queue is full is cut off (it catches up from the log on
//! reconnect), so one slow reader never slows a room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use hush_crypto::Fingerprint;
use hush_proto::msg::encode;
use hush_proto::{CloseReason, RelayMsg, RoomName};

/// An encoded `RelayMsg` frame body, shared between all its recipients.
pub(crate) type Outbound = Arc<[u8]>;

/// Identifies one connection for the life of the relay process.
pub(crate) type ConnId = u64;

/// A connection's outbound queue, messages waiting for its writer task,
/// the connection's stop signal, and when it was last heard from (for the
/// relay's keepalive sweep, `connection::Keepalive`).
///
/// Bounded by message count and by bytes; a delivery past either bound
/// cuts the connection off. It allocates only while it holds messages and
/// gives the memory back once drained, so an idle connection's queue costs
/// a few dozen bytes (a channel would keep its blocks, a watch channel its
/// eight wakers).
pub(crate) struct Outbox {
    state: Mutex<OutboxState>,
    ready: tokio::sync::Notify,
    stopped: tokio::sync::Notify,
    /// When the client last sent anything, in ms on the keepalive clock.
    heard_ms: std::sync::atomic::AtomicU64,
    max_messages: usize,
    max_bytes: usize,
}

struct OutboxState {
    queue: std::collections::VecDeque<Outbound>,
    bytes: usize,
    closed: bool,
    stop: Stop,
}

/// Why a delivery was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is over its bounds: the reader is too slow.
    Full,
    /// The writer has stopped.
    Closed,
}

impl Outbox {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(OutboxState {
                queue: std::collections::VecDeque::new(),
                bytes: 0,
                closed: false,
                stop: Stop::Running,
            }),
            ready: tokio::sync::Notify::new(),
            stopped: tokio::sync::Notify::new(),
            heard_ms: std::sync::atomic::AtomicU64::new(0),
            max_messages: max_messages.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, OutboxState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that the client sent something at `ms` (keepalive clock).
    pub(crate) fn heard(&self, ms: u64) {
        self.heard_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// When the client last sent something (keepalive clock).
    pub(crate) fn last_heard(&self) -> u64 {
        self.heard_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Queues `msg`; a full queue cuts the connection off. Returns false
    /// if it was not queued.
    pub(crate) fn deliver(&self, msg: Outbound) -> bool {
        match self.push(msg) {
            Ok(()) => true,
            Err(Refused::Full) => {
                crate::metrics::metrics().slow_consumers.inc();
                self.stop(Stop::Tell(CloseReason::TooSlow));
                false
            }
            Err(Refused::Closed) => false,
        }
    }

    /// Queues every message of `msgs`, in order, under one lock and with
    /// one wake-up of the writer (a committed batch's events for one
    /// room); a full queue cuts the connection off, as [`Self::deliver`].
    pub(crate) fn deliver_all<'a>(
        &self,
        msgs: impl ExactSizeIterator<Item = &'a Outbound> + Clone,
    ) {
        let refused = {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            let bytes: usize = msgs.clone().map(|m| m.len()).sum();
            if st.queue.len().saturating_add(msgs.len()) > self.max_messages
                || st.bytes.saturating_add(bytes) > self.max_bytes
            {
                true
            } else {
                st.bytes += bytes;
                st.queue.extend(msgs.cloned());
                false
            }
        };
        if refused {
            crate::metrics::metrics().slow_consumers.inc();
            self.stop(Stop::Tell(CloseReason::TooSlow));
        } else {
            self.ready.notify_one();
        }
    }

    /// Queues `msg` and wakes the writer.
    pub(crate) fn push(&self, msg: Outbound) -> Result<(), Refused> {
        {
            let mut st = self.lock();
            if st.closed {
                return Err(Refused::Closed);
            }
            if st.queue.len() >= self.max_messages
                || st.bytes.saturating_add(msg.len()) > self.max_bytes
            {
                return Err(Refused::Full);
            }
            st.bytes += msg.len();
            st.queue.push_back(msg);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// Waits until something is queued (returns at once if it is).
    pub(crate) async fn ready(&self) {
        loop {
            let notified = self.ready.notified();
            if !self.lock().queue.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Takes queued messages, oldest first, while `take` accepts them
    /// (it returns false to stop, leaving that message queued). Frees the
    /// queue's memory when it ends up empty.
    pub(crate) fn drain(&self, mut take: impl FnMut(&Outbound) -> bool) {
        let mut st = self.lock();
        while let Some(front) = st.queue.front() {
            if !take(front) {
                break;
            }
            let len = front.len();
            st.queue.pop_front();
            st.bytes -= len;
        }
        if st.queue.is_empty() && st.queue.capacity() > 0 {
            st.queue = std::collections::VecDeque::new();
        }
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    /// Asks the connection's reader and writer to stop. The first reason
    /// wins (a TooSlow from fan-out stays TooSlow).
    pub(crate) fn stop(&self, reason: Stop) {
        if reason == Stop::Running {
            return;
        }
        let first = {
            let mut st = self.lock();
            let first = st.stop == Stop::Running;
            if first {
                st.stop = reason;
            }
            first
        };
        if first {
            self.stopped.notify_waiters();
        }
    }

    /// Resolves with the reason once the connection is asked to stop.
    pub(crate) async fn stopped(&self) -> Stop {
        loop {
            let notified = self.stopped.notified();
            tokio::pin!(notified);
            // Registered before the check, so a stop between the two
            // still wakes us.
            notified.as_mut().enable();
            let stop = self.lock().stop;
            if stop != Stop::Running {
                return stop;
            }
            notified.await;
        }
    }

    /// Refuses further deliveries and drops what is queued.
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.queue = std::collections::VecDeque::new();
        st.bytes = 0;
    }
}

/// What the hub holds for each connection: where to send, and how to cut
/// it off.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) id: ConnId,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) outbox: Arc<Outbox>,
}

/// How a connection is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Keep going.
    Running,
    /// Close without a word (the peer went away, or broke the protocol
    /// before there was a sealed link to explain on).
    Quiet,
    /// Tell the client why, then close.
    Tell(CloseReason),
}

impl Peer {
    /// Queues `msg`; a full queue cuts the connection off. Returns false
    /// if it was not queued.
    pub(crate) fn deliver(&self, msg: Outbound) -> bool {
        self.outbox.deliver(msg)
    }
}

struct Room {
    /// Last sequence number committed to the log (and so deliverable).
    committed_seq: u64,
    /// Current epoch as of `committed_seq`.
    epoch: u64,
    /// Hash-chain head after `committed_seq`, if known.
    head: Option<[u8; 32]>,
    members: HashMap<ConnId, Peer>,
}

/// Result of a join: what the joiner needs to know.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JoinInfo {
    pub(crate) head_seq: u64,
}

#[derive(Default)]
struct HubState {
    rooms: HashMap<RoomName, Room>,
}

/// Shared room membership. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Hub {
    state: Arc<Mutex<HubState>>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding this lock would be a bug in this module;
        // the state stays consistent (every section is a few map updates),
        // so recover the guard rather than take the relay down.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The rooms someone here is joined to, sorted (what a cluster relay
    /// consumes from the shared stream).
    pub(crate) fn held_rooms(&self) -> Vec<RoomName> {
        let mut rooms: Vec<RoomName> = self.lock().rooms.keys().cloned().collect();
        rooms.sort();
        rooms
    }

    /// A room's committed seq and chain head, for a checkpoint.
    pub(crate) fn head(&self, room: &RoomName) -> Option<(u64, [u8; 32])> {
        let st = self.lock();
        let r = st.rooms.get(room)?;
        Some((r.committed_seq, r.head?))
    }

    /// Delivers a message to every member of a room.
    pub(crate) fn broadcast(&self, room: &RoomName, msg: &Outbound) {
        let st = self.lock();
        if let Some(r) = st.rooms.get(room) {
            for peer in r.members.values() {
                peer.deliver(msg.clone());
            }
        }
    }

    /// Adds `peer` to `room` if the hub holds the room (someone is in
    /// it), queues `Joined` for it and `Presence` for the others,
    /// atomically with respect to fan-out. `None` if nobody is in the
    /// room: then only the sequencer knows its head, and joins it there
    /// ([`Self::join_at`]).
    pub(crate) fn join(&self, room: &RoomName, peer: &Peer) -> Option<JoinInfo> {
        let mut st = self.lock();
        let r = st.rooms.get_mut(room)?;
        Some(Self::join_locked(r, room, peer))
    }

    /// [`Self::join`] for a room the hub may not hold, whose head the
    /// caller (the sequencer, between batches) knows is `committed_seq`,
    /// `epoch` and `head`. If the hub holds the room meanwhile, its own
    /// head is as current and is kept.
    pub(crate) fn join_at(
        &self,
        room: &RoomName,
        peer: &Peer,
        committed_seq: u64,
        epoch: u64,
        head: Option<[u8; 32]>,
    ) -> JoinInfo {
        let mut st = self.lock();
        let r = st.rooms.entry(room.clone()).or_insert_with(|| {
            crate::metrics::metrics().rooms.inc();
            Room {
                committed_seq,
                epoch,
                head,
                members: HashMap::new(),
            }
        });
        Self::join_locked(r, room, peer)
    }

    fn join_locked(r: &mut Room, room: &RoomName, peer: &Peer) -> JoinInfo {
        r.members.insert(peer.id, peer.clone());
        let mut online: Vec<Fingerprint> = r.members.values().map(|p| p.fingerprint).collect();
        online.sort();
        online.dedup();
        peer.deliver(
            encode(&RelayMsg::Joined {
                room: room.clone(),
                head_seq: r.committed_seq,
                epoch: r.epoch,
                online,
            })
            .into(),
        );
        // Another connection of the same identity already shows it online.
        let already_online = r
            .members
            .values()
            .any(|p| p.id != peer.id && p.fingerprint == peer.fingerprint);
        if !already_online {
            let presence: Outbound = encode(&RelayMsg::Presence {
                room: room.clone(),
                member: peer.fingerprint,
                online: true,
            })
            .into();
            for other in r.members.values().filter(|p| p.id != peer.id) {
                other.deliver(presence.clone());
            }
        }
        JoinInfo {
            head_seq: r.committed_seq,
        }
    }

    /// Removes a connection from a room and tells the others.
    pub(crate) fn leave(&self, room: &RoomName, id: ConnId) {
        let mut st = self.lock();
        Self::leave_locked(&mut st, room, id);
    }

    fn leave_locked(st: &mut HubState, room: &RoomName, id: ConnId) {
        let Some(r) = st.rooms.get_mut(room) else {
            return;
        };
        let Some(peer) = r.members.remove(&id) else {
            return;
        };
        if r.members.is_empty() {
            // Nobody is here: forget the room, so rooms nobody is in cost
            // the hub nothing (audit L3). The log and the sequencer keep
            // its head; the next join reads it from there.
            if st.rooms.remove(room).is_some() {
                crate::metrics::metrics().rooms.dec();
            }
            return;
        }
        // Another connection of the same identity keeps it online.
        if r.members
            .values()
            .any(|p| p.fingerprint == peer.fingerprint)
        {
            return;
        }
        let presence: Outbound = encode(&RelayMsg::Presence {
            room: room.clone(),
            member: peer.fingerprint,
            online: false,
        })
        .into();
        for other in r.members.values() {
            other.deliver(presence.clone());
        }
    }

    /// Removes a connection from every room it is in.
    pub(crate) fn leave_all(&self, rooms: &[RoomName], id: ConnId) {
        let mut st = self.lock();
        for room in rooms {
            Self::leave_locked(&mut st, room, id);
        }
    }

    /// Delivers committed events of one room, in order, and advances its
    /// committed head to the last one's seq, with `epoch` and chain `head`
    /// as of it. Events at or below the head are dropped: in a cluster a
    /// joiner's head may be read from the stream after the consumer has
    /// taken the events up to it (`cluster.rs`). Each member's queue takes
    /// the rest as one run: one lock and one wake-up of its writer per
    /// run, not per event. Returns whether anyone here was sent anything.
    pub(crate) fn fan_out(
        &self,
        room: &RoomName,
        epoch: u64,
        head: Option<[u8; 32]>,
        events: &[(u64, Outbound)],
    ) -> bool {
        let mut st = self.lock();
        // Nobody in the room: nothing to deliver, nothing to hold.
        let Some(r) = st.rooms.get_mut(room) else {
            return false;
        };
        let Some(first) = events.iter().position(|(seq, _)| *seq > r.committed_seq) else {
            return false;
        };
        let events = &events[first..];
        if let Some((last, _)) = events.last() {
            r.committed_seq = *last;
        }
        r.epoch = epoch;
        r.head = head;
        for peer in r.members.values() {
            peer.outbox.deliver_all(events.iter().map(|(_, m)| m));
        }
        crate::metrics::metrics()
            .events_delivered
            .inc_by((r.members.len() * events.len()) as u64);
        true
    }
}
