//! The relay's side of a cluster (`hush server --cluster`): the consumer
//! that delivers the shared stream's events to this relay's members.
//!
//! ```text
//!  relay A sequencer ─publish, quorum ack─▶ ┌──────────────────────┐
//!  relay B sequencer ─publish, quorum ack─▶ │ JetStream HUSH_EVENTS │ (R3)
//!                                           └──────────┬───────────┘
//!   ordered consumer per relay, on the subjects of its rooms │
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
use crate::log::jetstream::{JetStreamHandle, SUBJECT_PREFIX, parse, room_of, subject};
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

/// How often a quiet consumer is checked. async-nats' ordered consumer
/// notices a consumer lost with its server, or a pull lost in a leader
/// change, only after two missed 15 s heartbeats or its pull's 30 s
/// expiry; asking for the consumer's info when nothing came for this long
/// (gone, or messages pending that did not arrive) finds it in seconds.
const WATCHDOG: Duration = Duration::from_secs(2);

/// Room subjects one consumer filters on at most; with more rooms held
/// it takes every room's subject and the hub drops what nobody here is in.
const MAX_FILTER_SUBJECTS: usize = 256;

/// The subjects a consumer for `rooms` filters on.
fn filters(rooms: &[RoomName]) -> Vec<String> {
    if rooms.len() > MAX_FILTER_SUBJECTS {
        vec![format!("{SUBJECT_PREFIX}>")]
    } else {
        rooms.iter().map(|r| subject(r.as_str())).collect()
    }
}

/// Delivers the stream to this relay's members and answers joins, until
/// `stop`.
///
/// The consumer takes only the subjects of the rooms someone here is in
/// (the hub's rooms; at most [`MAX_FILTER_SUBJECTS`], else all). A join of
/// a room the hub does not hold is answered here: the room's tail is read
/// from the stream, the joiner is added at it, and the consumer is made
/// again with the room's subject added, going on after the last stream
/// seq delivered (`last`): events of the rooms it had are neither lost nor
/// repeated, and every event of the new room after its tail has a stream
/// seq above `last`, since it was stored after the tail was read. A
/// room nobody is in any more leaves the filter the next time the
/// consumer is made.
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
    let mut messages: Option<async_nats::jetstream::consumer::pull::Ordered> = None;
    // Whether the consumer must be made again (rooms changed, or it failed).
    let mut remake = false;
    // The consumer's name (each one made gets its own), and when it last
    // delivered or was checked.
    let prefix = format!(
        "hush-relay-{}",
        stream
            .context()
            .client()
            .new_inbox()
            .rsplit('.')
            .next()
            .unwrap_or("x")
    );
    let mut made_count = 0u64;
    let mut name = String::new();
    let mut heard = Instant::now();
    let mut watchdog = tokio::time::interval(WATCHDOG);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if remake {
            remake = false;
            messages = None;
            made_count += 1;
            name = format!("{prefix}-{made_count}");
            heard = Instant::now();
            let rooms = hub.held_rooms();
            if !rooms.is_empty() {
                let start = last.map_or(1, |s| s + 1);
                let made = stream
                    .stream()
                    .create_consumer(OrderedConfig {
                        name: Some(name.clone()),
                        filter_subjects: filters(&rooms),
                        deliver_policy: DeliverPolicy::ByStartSequence {
                            start_sequence: start,
                        },
                        ..Default::default()
                    })
                    .await;
                match made {
                    Ok(c) => match c.messages().await {
                        Ok(m) => messages = Some(m),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the cluster stream; retrying");
                            remake = true;
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot consume the cluster stream; retrying");
                        remake = true;
                    }
                }
                if remake {
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        _ = stop.changed() => return,
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            next = next_message(&mut messages) => match next {
                Some(Ok(msg)) => {
                    let Ok(info) = msg.info() else { continue };
                    let seq = info.stream_sequence;
                    last = Some(seq);
                    heard = Instant::now();
                    deliver(&hub, &signer, &mut checkpoints, &msg.message, seq);
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "cluster stream consumer failed; making it again");
                    remake = true;
                }
                None => remake = true,
            },
            Some(first) = joins.recv() => {
                // Every join waiting, then one new consumer for them all.
                let mut batch = vec![first];
                while let Ok(j) = joins.try_recv() {
                    batch.push(j);
                }
                for j in batch {
                    if let Some(tail_stream_seq) = join(&stream, &hub, j).await
                        && last.is_none()
                    {
                        // Nothing delivered yet: start after the first tail read.
                        last = Some(tail_stream_seq);
                    }
                }
                remake = true;
            }
            // (The guard is read when the select starts: the check of how
            // long it has been quiet is inside, so a tick always wakes us.)
            _ = watchdog.tick(), if messages.is_some() => {
                if heard.elapsed() >= WATCHDOG {
                    heard = Instant::now();
                    let info =
                        tokio::time::timeout(WATCHDOG, stream.stream().consumer_info(&name)).await;
                    // Stalled: gone, or something for us is waiting (or was
                    // sent and never arrived) while nothing came.
                    let stalled = match info {
                        Ok(Ok(info)) => {
                            info.num_pending > 0
                                || info.delivered.stream_sequence > last.unwrap_or(0)
                        }
                        _ => true,
                    };
                    if stalled {
                        tracing::info!(
                            "the cluster stream's consumer stalled (a server was lost?); making it again"
                        );
                        remake = true;
                    }
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// The consumer's next message, or never if there is no consumer.
async fn next_message(
    messages: &mut Option<async_nats::jetstream::consumer::pull::Ordered>,
) -> Option<
    Result<async_nats::jetstream::Message, async_nats::jetstream::consumer::pull::OrderedError>,
> {
    match messages {
        Some(m) => m.next().await,
        None => std::future::pending().await,
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
    let delivered = hub.fan_out(&room, epoch, chain, &[(seq, frame.into())]);
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

/// Joins a room at its tail as the stream holds it now; returns the
/// stream seq of that tail.
async fn join(stream: &JetStreamHandle, hub: &Hub, j: JoinRequest) -> Option<u64> {
    match stream.room_tail(&j.room).await {
        Ok((seq, epoch, head, stream_seq)) => {
            let info = hub.join_at(&j.room, &j.peer, seq, epoch, head);
            let _ = j.reply.send(info);
            Some(stream_seq)
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
            None
        }
    }
}
