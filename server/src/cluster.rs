//! The relay's side of a cluster (`hush server --cluster`): the consumer
//! that delivers the shared stream's events to this relay's members.
//!
//! ```text
//!  relay A sequencer ─publish, quorum ack─▶ ┌──────────────────────┐
//!  relay B sequencer ─publish, quorum ack─▶ │ JetStream HUSH_EVENTS │ (R3)
//!                                           └──────────┬───────────┘
//!              ordered consumer, one per relay, stream order │
//!                ┌──────────────────────────────────────┴──────┐
//!                ▼                                               ▼
//!   relay A: this task ─▶ Hub.fan_out           relay B: this task ─▶ Hub.fan_out
//!            (joins of rooms the hub does not hold are answered here too)
//! ```
//!
//! No relay delivers what it sequenced itself: every relay delivers what
//! the stream delivers to it, and the stream delivers a message only once
//! its quorum has stored it. So nothing reaches a member before a quorum
//! holds it, and every relay delivers each room's events in one order,
//! the stream's (which is the room's seq order, `log/jetstream.rs`).
//!
//! Joins of a room the hub does not hold come here (through the
//! sequencer) rather than being answered by the sequencer: this task is
//! the only one that fans out, so while it reads the room's tail from the
//! stream nothing is delivered, and afterwards it delivers exactly the
//! events after that tail. The hub drops any event at or below a room's
//! head, so an event the consumer had already buffered is not sent twice.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures_util::StreamExt as _;
use hush_proto::msg::encode;
use hush_proto::{RelayMsg, RoomName};
use tokio::sync::{mpsc, oneshot, watch};

use crate::hub::{Hub, JoinInfo, Peer};
use crate::log::jetstream::{JetStreamHandle, SUBJECT_PREFIX, parse, room_of};
use crate::sequencer::{CHECKPOINT_EVERY, CHECKPOINT_MIN_INTERVAL, CheckpointJob};

/// A join of a room the hub does not hold, answered by the consumer.
pub(crate) struct JoinRequest {
    pub(crate) room: RoomName,
    pub(crate) peer: Peer,
    pub(crate) reply: oneshot::Sender<JoinInfo>,
}

/// Joins waiting for the consumer.
pub(crate) const JOIN_QUEUE: usize = 1024;

/// Rooms whose last checkpoint time is remembered before the map starts
/// over (a bound, like every map the relay keeps).
const CHECKPOINT_ROOMS: usize = 65_536;

/// Pause before the consumer is made again after it failed.
const RETRY: Duration = Duration::from_millis(500);

/// Delivers the stream to this relay's members and answers joins, until
/// `stop`.
pub(crate) async fn consume(
    stream: JetStreamHandle,
    hub: Hub,
    signer: std::sync::mpsc::SyncSender<CheckpointJob>,
    mut joins: mpsc::Receiver<JoinRequest>,
    mut stop: watch::Receiver<bool>,
) {
    // The stream seq delivered last: a consumer made again goes on after it.
    let mut last: Option<u64> = None;
    let mut checkpoints: HashMap<RoomName, Instant> = HashMap::new();
    loop {
        let deliver_policy = match last {
            Some(seq) => DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
            None => DeliverPolicy::New,
        };
        let consumer = stream
            .stream()
            .create_consumer(OrderedConfig {
                filter_subject: format!("{SUBJECT_PREFIX}>"),
                deliver_policy,
                ..Default::default()
            })
            .await;
        let mut messages = match consumer {
            Ok(c) => match c.messages().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the cluster stream; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => continue,
                        _ = stop.changed() => return,
                    }
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot consume the cluster stream; retrying");
                // Joins still get an answer meanwhile.
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => continue,
                    Some(j) = joins.recv() => { join(&stream, &hub, j).await; continue }
                    _ = stop.changed() => return,
                }
            }
        };
        loop {
            tokio::select! {
                next = messages.next() => match next {
                    Some(Ok(msg)) => {
                        let Ok(info) = msg.info() else { continue };
                        let seq = info.stream_sequence;
                        last = Some(seq);
                        deliver(&hub, &signer, &mut checkpoints, &msg.message, seq);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "cluster stream consumer failed; making it again");
                        break;
                    }
                    None => break,
                },
                Some(j) = joins.recv() => join(&stream, &hub, j).await,
                _ = stop.changed() => return,
            }
        }
    }
}

/// Fans one stored message out to the room's members here.
fn deliver(
    hub: &Hub,
    signer: &std::sync::mpsc::SyncSender<CheckpointJob>,
    checkpoints: &mut HashMap<RoomName, Instant>,
    msg: &async_nats::Message,
    stream_seq: u64,
) {
    let Some(room) = room_of(msg.subject.as_str()) else {
        return;
    };
    let stored = match parse(&room, stream_seq, msg.headers.as_ref(), &msg.payload) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "unreadable event in the cluster stream; skipped");
            return;
        }
    };
    let (epoch, chain) = stored.room_state();
    let Some(event) = stored.event else {
        return; // a retention marker, not an event
    };
    let seq = event.seq;
    let frame = encode(&RelayMsg::Event(event));
    let delivered = hub.fan_out(&room, seq, epoch, chain, &frame.into());
    tracing::trace!(room = %room, seq, stream_seq, delivered, "cluster event");
    if !delivered {
        return;
    }
    if let Some(head) = chain
        && seq % CHECKPOINT_EVERY == 0
        && checkpoints
            .get(&room)
            .is_none_or(|t| t.elapsed() >= CHECKPOINT_MIN_INTERVAL)
        && signer.try_send((room.clone(), seq, head)).is_ok()
    {
        if checkpoints.len() >= CHECKPOINT_ROOMS {
            checkpoints.clear();
        }
        checkpoints.insert(room, Instant::now());
    }
}

/// Joins a room at its tail as the stream holds it now.
async fn join(stream: &JetStreamHandle, hub: &Hub, j: JoinRequest) {
    match stream.room_tail(&j.room).await {
        Ok((seq, epoch, head)) => {
            let info = hub.join_at(&j.room, &j.peer, seq, epoch, head);
            let _ = j.reply.send(info);
        }
        Err(e) => {
            tracing::error!(error = %e, "could not read a room's head from the cluster");
            j.peer.deliver(
                encode(&RelayMsg::Rejected {
                    request: 0,
                    room: j.room,
                    reason: hush_proto::Rejection::StorageFailed,
                })
                .into(),
            );
        }
    }
}
