//! The event log in NATS JetStream, shared by every relay of a cluster
//! (`hush server --cluster`).
//!
//! ```text
//!  stream HUSH_EVENTS (R3 with >= 3 servers, else R1; file storage)
//!    subject hush.room.<hex of the room name>      one subject per room
//!    message = one event: payload = the opaque body, byte for byte
//!      Hush-Seq          per-room hush seq (1, 2, 3, ...)
//!      Hush-Kind, Hush-Sender, Hush-Epoch, Hush-Received-Ms   the event's fields
//!      Hush-Room-Epoch, Hush-Head   the room's epoch and chain head after it
//!      Nats-Msg-Id       <room hex>:<seq>:<chain head>   (a retry never duplicates)
//!      Nats-Expected-Last-Subject-Sequence   the stream seq of the room's last message
//! ```
//!
//! Room names are `[A-Za-z0-9._-]`; a `.` would split a NATS subject, so
//! the subject carries the name's bytes in hex (which also sorts as the
//! names do).
//!
//! # Contiguity
//!
//! Each relay's sequencer numbers a room's events from the room's tail as
//! it last read it. The publish of seq `n` expects, by
//! `Nats-Expected-Last-Subject-Sequence`, that the room's last message is
//! still the one that carried `n - 1`; if another relay appended first the
//! stream refuses it (error 10071), nothing is stored, and the append
//! fails with [`LogError::Conflict`] (or [`LogError::Partial`] after the
//! part of the batch that was stored). The sequencer then reads the
//! room's tail again, numbers the events afresh and retries. So a room's
//! seqs stay contiguous however many relays write to it, and the stream
//! order of a subject is the seq order.
//!
//! # Durability and retries
//!
//! An append returns only after every message of it is acknowledged by
//! the stream, which for R3 means a quorum has stored it. A publish whose
//! ack times out is sent again with the same `Nats-Msg-Id`: if the first
//! one was stored, the stream answers "duplicate" with its sequence, and
//! nothing is stored twice (within the stream's two-minute window).
//!
//! # Retention
//!
//! JetStream's own limits (MaxAge, MaxMsgsPerSubject) would delete any
//! message, commits included, and with a room's last message its
//! `last_seq`, so seqs would start again at 1. The stream keeps no such
//! limit; [`EventLog::prune_chunk`] deletes expired *messages* one by one
//! instead, as the SQLite log does. The room's tail carries its
//! `last_seq`: before the last message itself goes, a marker
//! (`Hush-Marker: head`, empty payload) carrying the same head takes its
//! place. Markers are never events: backfill, count and fan-out skip them.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use futures_util::StreamExt as _;
use hush_crypto::Fingerprint;
use hush_proto::{EventKind, RoomEvent, RoomName, SequencedEvent};

use super::{EventLog, LogError, LogReader, PruneCursor, PruneStep, Retention, RoomHead};

/// The stream's name.
pub const STREAM: &str = "HUSH_EVENTS";

/// Every room subject starts with this.
pub const SUBJECT_PREFIX: &str = "hush.room.";

/// How long the log waits for the cluster to come up (a JetStream meta
/// leader to be elected) before giving up on start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a publish is retried before it is an error: longer than a
/// stream takes to elect a new leader when its leader's node is lost
/// (nats-server's Raft election timeout is 4 to 9 s), and than a client
/// takes to move to another server. The sequencer waits meanwhile; no
/// room could be written without a leader anyway.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(15);

/// The pause before publish attempt `attempt + 1`: 100 ms, doubling, at
/// most 1 s.
fn publish_backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.saturating_sub(1).min(4)).min(1000))
}

/// Runs `op` until it succeeds or [`START_TIMEOUT`] has passed (a cluster
/// just started, or restarted, needs a few seconds to elect its JetStream
/// leaders).
///
/// # Errors
/// The last error, once the time is up.
pub async fn retry_starting<
    T,
    E: std::fmt::Display,
    F: std::future::Future<Output = Result<T, E>>,
>(
    what: &str,
    mut op: impl FnMut() -> F,
) -> Result<T, E> {
    let started = std::time::Instant::now();
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if started.elapsed() < START_TIMEOUT => {
                tracing::debug!(error = %e, what, "JetStream not ready yet");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How long JetStream dedupes a `Nats-Msg-Id`: longer than every retry.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Room tails one relay's log keeps in memory before it starts over (the
/// sequencer keeps its own heads bounded the same way).
const MAX_CACHED_TAILS: usize = 65_536;

/// Rooms one prune chunk visits, at most.
const ROOMS_PER_CHUNK: usize = 256;

const H_SEQ: &str = "Hush-Seq";
const H_KIND: &str = "Hush-Kind";
const H_SENDER: &str = "Hush-Sender";
const H_EPOCH: &str = "Hush-Epoch";
const H_RECEIVED: &str = "Hush-Received-Ms";
const H_ROOM_EPOCH: &str = "Hush-Room-Epoch";
const H_HEAD: &str = "Hush-Head";
const H_MARKER: &str = "Hush-Marker";

/// Where to find the cluster and how to talk to it.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS URLs (`nats://HOST:PORT`, user and password may be in them).
    pub urls: Vec<String>,
    /// A CA file to verify the servers' TLS certificates by (TLS is then
    /// required).
    pub tls_ca: Option<std::path::PathBuf>,
    /// The stream's name ([`STREAM`]; tests use their own).
    pub stream: String,
}

impl ClusterConfig {
    /// The default stream at `urls`.
    #[must_use]
    pub fn new(urls: Vec<String>) -> Self {
        Self {
            urls,
            tls_ca: None,
            stream: STREAM.to_owned(),
        }
    }
}

fn cluster(what: &str, e: impl std::fmt::Display) -> LogError {
    LogError::Cluster(format!("{what}: {e}"))
}

/// Connects to the cluster.
///
/// # Errors
/// [`LogError::Cluster`] if no server answers.
pub async fn connect(config: &ClusterConfig) -> Result<async_nats::Client, LogError> {
    let addrs: Vec<async_nats::ServerAddr> = config
        .urls
        .iter()
        .map(|u| u.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| cluster("bad --cluster URL", e))?;
    let mut opts = async_nats::ConnectOptions::new()
        .name("hush-relay")
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(5)))
        .retry_on_initial_connect();
    if let Some(ca) = &config.tls_ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    let client = tokio::time::timeout(START_TIMEOUT, opts.connect(addrs))
        .await
        .map_err(|_| {
            LogError::Cluster(format!(
                "no NATS server answered at {}",
                config.urls.join(",")
            ))
        })?
        .map_err(|e| cluster("cannot connect to NATS", e))?;
    Ok(client)
}

/// The subject of `room`'s events.
#[must_use]
pub fn subject(room: &str) -> String {
    let mut s = String::with_capacity(SUBJECT_PREFIX.len() + room.len() * 2);
    s.push_str(SUBJECT_PREFIX);
    for b in room.bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The room a subject names, if it is a room subject.
#[must_use]
pub fn room_of(subject: &str) -> Option<RoomName> {
    let hex = subject.strip_prefix(SUBJECT_PREFIX)?;
    let bytes = unhex(hex)?;
    RoomName::new(std::str::from_utf8(&bytes).ok()?).ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A room's last message as the log last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tail {
    last_seq: u64,
    /// Stream sequence of the room's last message (what the next publish
    /// expects); 0 for a room with none.
    stream_seq: u64,
    epoch: u64,
    head: Option<[u8; 32]>,
}

impl Tail {
    const EMPTY: Tail = Tail {
        last_seq: 0,
        stream_seq: 0,
        epoch: 0,
        head: Some([0; 32]),
    };
}

/// One stored message, parsed.
pub(crate) struct Stored {
    /// Its stream sequence.
    pub(crate) stream_seq: u64,
    /// The room's tail after it.
    tail: Tail,
    /// The event, unless it is a head marker.
    pub(crate) event: Option<SequencedEvent>,
}

impl Stored {
    /// The room's epoch and chain head after this message.
    pub(crate) fn room_state(&self) -> (u64, Option<[u8; 32]>) {
        (self.tail.epoch, self.tail.head)
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.as_str())
}

fn num(h: &HeaderMap, name: &str, what: &str) -> Result<u64, LogError> {
    header(h, name)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| LogError::Corrupt(format!("{what}: missing or bad {name} header")))
}

/// Parses a stored message of `room` (headers and payload).
pub(crate) fn parse(
    room: &RoomName,
    stream_seq: u64,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<Stored, LogError> {
    let what = format!("room {room:?} stream seq {stream_seq}");
    let empty = HeaderMap::new();
    let h = headers.unwrap_or(&empty);
    let head = match header(h, H_HEAD) {
        Some(v) => Some(
            unhex(v)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| LogError::Corrupt(format!("{what}: bad {H_HEAD} header")))?,
        ),
        None => None,
    };
    let tail = Tail {
        last_seq: num(h, H_SEQ, &what)?,
        stream_seq,
        epoch: num(h, H_ROOM_EPOCH, &what)?,
        head,
    };
    if header(h, H_MARKER).is_some() {
        return Ok(Stored {
            stream_seq,
            tail,
            event: None,
        });
    }
    let kind_raw = num(h, H_KIND, &what)?;
    let kind = u8::try_from(kind_raw)
        .ok()
        .and_then(EventKind::from_code)
        .ok_or_else(|| LogError::Corrupt(format!("{what}: unknown event kind {kind_raw}")))?;
    let sender = header(h, H_SENDER)
        .and_then(unhex)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| LogError::Corrupt(format!("{what}: bad {H_SENDER} header")))?;
    Ok(Stored {
        stream_seq,
        tail,
        event: Some(SequencedEvent {
            seq: tail.last_seq,
            received_at_ms: num(h, H_RECEIVED, &what)?,
            event: RoomEvent {
                room: room.clone(),
                sender: Fingerprint::from_bytes(sender),
                kind,
                epoch: num(h, H_EPOCH, &what)?,
                body: payload.to_vec(),
            },
        }),
    })
}

/// The headers of event `e` leaving the room at `tail`.
fn event_headers(e: &SequencedEvent, tail: &Tail) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(H_SEQ, e.seq.to_string());
    h.insert(H_KIND, e.event.kind.code().to_string());
    h.insert(H_SENDER, hex(e.event.sender.as_bytes()));
    h.insert(H_EPOCH, e.event.epoch.to_string());
    h.insert(H_RECEIVED, e.received_at_ms.to_string());
    tail_headers(&mut h, tail);
    h
}

fn tail_headers(h: &mut HeaderMap, tail: &Tail) {
    h.insert(H_ROOM_EPOCH, tail.epoch.to_string());
    if let Some(head) = tail.head {
        h.insert(H_HEAD, hex(&head));
    }
}

/// The shared part of the log: the stream handle, cheap to clone, usable
/// from any thread outside the runtime.
#[derive(Clone)]
pub struct JetStreamHandle {
    rt: tokio::runtime::Handle,
    js: jetstream::Context,
    stream: stream::Stream,
    /// The stream's replicas (3 on a cluster of three or more servers).
    replicas: usize,
}

/// The JetStream event log of one relay: the shared stream plus this
/// relay's view of each room's tail (refreshed whenever the stream says
/// another relay moved it).
pub struct JetStreamLog {
    handle: JetStreamHandle,
    tails: HashMap<String, Tail>,
}

impl JetStreamHandle {
    /// Creates (or opens) the stream on the cluster `client` is connected
    /// to: R3 when the cluster has three or more servers, else R1. Waits
    /// for the cluster to elect its JetStream leader.
    ///
    /// # Errors
    /// [`LogError::Cluster`] if the stream cannot be created in time.
    pub async fn open(
        client: async_nats::Client,
        config: &ClusterConfig,
    ) -> Result<Self, LogError> {
        let servers = client
            .server_info()
            .connect_urls
            .len()
            .max(config.urls.len());
        let replicas = if servers >= 3 { 3 } else { 1 };
        let js = jetstream::new(client);
        let want = stream::Config {
            name: config.stream.clone(),
            subjects: vec![format!("{SUBJECT_PREFIX}>")],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            max_messages_per_subject: -1,
            duplicate_window: DUPLICATE_WINDOW,
            allow_direct: true,
            deny_purge: true,
            ..Default::default()
        };
        let stream = retry_starting("event stream", || js.get_or_create_stream(want.clone()))
            .await
            .map_err(|e| cluster("cannot create the HUSH_EVENTS stream", e))?;
        tracing::info!(stream = %config.stream, replicas, "cluster event log opened");
        Ok(Self {
            rt: tokio::runtime::Handle::current(),
            js,
            stream,
            replicas,
        })
    }

    /// The JetStream context (for consumers and the ticket ledger).
    #[must_use]
    pub fn context(&self) -> &jetstream::Context {
        &self.js
    }

    /// How many servers hold each message (what other buckets use too).
    #[must_use]
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// The stream.
    #[must_use]
    pub fn stream(&self) -> &stream::Stream {
        &self.stream
    }

    /// Runs `f` to completion from a thread outside the runtime (the
    /// sequencer thread, the blocking pool).
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The first message of `room` at or after stream seq `from`.
    async fn first_from(&self, room: &RoomName, from: u64) -> Result<Option<Stored>, LogError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind as K;
        match self
            .stream
            .get_first_raw_message_by_subject(subject(room.as_str()), from.max(1))
            .await
        {
            Ok(m) => Ok(Some(parse(room, m.sequence, Some(&m.headers), &m.payload)?)),
            Err(e) if matches!(e.kind(), K::NoMessageFound) => Ok(None),
            Err(e) => Err(cluster("cannot read the stream", e)),
        }
    }

    /// The room's last message, read from the stream leader.
    async fn last(&self, room: &RoomName) -> Result<Option<Stored>, LogError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind as K;
        match self
            .stream
            .get_last_raw_message_by_subject(&subject(room.as_str()))
            .await
        {
            Ok(m) => Ok(Some(parse(room, m.sequence, Some(&m.headers), &m.payload)?)),
            Err(e) if matches!(e.kind(), K::NoMessageFound) => Ok(None),
            Err(e) => Err(cluster("cannot read the stream", e)),
        }
    }

    /// The room's last seq, epoch and chain head, and the stream seq of
    /// its last message, read from the stream leader now (all zero for a
    /// room with no events).
    pub(crate) async fn room_tail(
        &self,
        room: &RoomName,
    ) -> Result<(u64, u64, Option<[u8; 32]>, u64), LogError> {
        let t = self.tail(room).await?;
        Ok((t.last_seq, t.epoch, t.head, t.stream_seq))
    }

    async fn tail(&self, room: &RoomName) -> Result<Tail, LogError> {
        Ok(self.last(room).await?.map_or(Tail::EMPTY, |s| s.tail))
    }

    /// Every message of `room` (markers too), oldest first.
    async fn all(&self, room: &RoomName) -> Result<Vec<Stored>, LogError> {
        let mut out = Vec::new();
        let mut from = 1;
        while let Some(m) = self.first_from(room, from).await? {
            from = m.stream_seq + 1;
            out.push(m);
        }
        Ok(out)
    }

    /// The rooms the stream holds, sorted by name.
    async fn rooms(&self) -> Result<Vec<RoomName>, LogError> {
        let mut info = self
            .stream
            .info_with_subjects(format!("{SUBJECT_PREFIX}>"))
            .await
            .map_err(|e| cluster("cannot list rooms", e))?;
        let mut rooms = Vec::new();
        while let Some(item) = info.next().await {
            let (subject, _) = item.map_err(|e| cluster("cannot list rooms", e))?;
            if let Some(r) = room_of(&subject) {
                rooms.push(r);
            }
        }
        rooms.sort();
        Ok(rooms)
    }

    async fn events_after(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<SequencedEvent>, LogError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Some(last) = self.last(room).await? else {
            return Ok(Vec::new());
        };
        if last.tail.last_seq <= after_seq {
            return Ok(Vec::new());
        }
        // The smallest stream seq from which the room's next message has
        // a hush seq above `after_seq` (hush seqs grow with stream seqs):
        // a binary search, a handful of reads however long the room.
        let (mut lo, mut hi) = (1u64, last.stream_seq);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.first_from(room, mid).await? {
                Some(m) if m.tail.last_seq > after_seq => hi = mid,
                Some(m) => lo = m.stream_seq + 1,
                None => break,
            }
        }
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut from = lo;
        while out.len() < limit && bytes < max_bytes {
            let Some(m) = self.first_from(room, from).await? else {
                break;
            };
            from = m.stream_seq + 1;
            if let Some(e) = m.event
                && e.seq > after_seq
            {
                bytes = bytes.saturating_add(e.event.body.len());
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Publishes one message, retrying an ack timeout with the same
    /// message id; returns the stream seq it was stored at.
    async fn publish(
        &self,
        room: &str,
        headers: HeaderMap,
        payload: Vec<u8>,
        msg_id: String,
        expect: u64,
    ) -> Result<u64, LogError> {
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let msg = jetstream::message::PublishMessage::build()
                .payload(payload.clone().into())
                .headers(headers.clone())
                .message_id(&msg_id)
                .expected_last_subject_sequence(expect);
            let sent = self.js.send_publish(subject(room), msg).await;
            let acked = match sent {
                Ok(fut) => fut.await,
                Err(e) => Err(e),
            };
            match acked {
                Ok(ack) => return Ok(ack.sequence),
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    return Err(LogError::Conflict {
                        room: room.to_owned(),
                    });
                }
                Err(e) if started.elapsed() < PUBLISH_PATIENCE => {
                    tracing::debug!(error = %e, attempt, "publish not acknowledged; retrying");
                    tokio::time::sleep(publish_backoff(attempt)).await;
                }
                Err(e) => return Err(cluster("publish not acknowledged by the cluster", e)),
            }
        }
    }
}

impl JetStreamLog {
    /// The log on the stream `handle` holds.
    #[must_use]
    pub fn new(handle: JetStreamHandle) -> Self {
        Self {
            handle,
            tails: HashMap::new(),
        }
    }

    /// Connects to `config`'s cluster and opens the log (from inside the
    /// runtime).
    ///
    /// # Errors
    /// [`LogError::Cluster`].
    pub async fn open(config: &ClusterConfig) -> Result<Self, LogError> {
        let client = connect(config).await?;
        Ok(Self::new(JetStreamHandle::open(client, config).await?))
    }

    /// A handle on the same stream, for backfill readers and consumers.
    #[must_use]
    pub fn handle(&self) -> JetStreamHandle {
        self.handle.clone()
    }

    async fn tail_of(&mut self, room: &RoomName) -> Result<Tail, LogError> {
        if let Some(t) = self.tails.get(room.as_str()) {
            return Ok(*t);
        }
        let t = self.handle.tail(room).await?;
        if self.tails.len() >= MAX_CACHED_TAILS {
            // Only a cache: what goes is read again on next use.
            self.tails.clear();
        }
        self.tails.insert(room.as_str().to_owned(), t);
        Ok(t)
    }

    async fn append(&mut self, events: &[SequencedEvent]) -> Result<(), LogError> {
        // Check the whole batch first, so a gap stores nothing.
        let mut planned: HashMap<&str, Tail> = HashMap::new();
        let mut tails_after = Vec::with_capacity(events.len());
        for e in events {
            let name = e.event.room.as_str();
            let mut tail = match planned.get(name) {
                Some(t) => *t,
                None => self.tail_of(&e.event.room).await?,
            };
            if e.seq != tail.last_seq + 1 && !planned.contains_key(name) {
                // This relay's view may be behind the caller's (which read
                // the stream since): read the tail again before refusing.
                self.tails.remove(name);
                tail = self.tail_of(&e.event.room).await?;
            }
            let expected = tail.last_seq + 1;
            if e.seq != expected {
                return Err(LogError::SeqGap {
                    room: name.to_owned(),
                    expected,
                    got: e.seq,
                });
            }
            let after = Tail {
                last_seq: e.seq,
                stream_seq: tail.stream_seq,
                epoch: if e.event.kind == EventKind::Commit {
                    tail.epoch.max(e.event.epoch)
                } else {
                    tail.epoch
                },
                head: tail
                    .head
                    .map(|h| hush_proto::e2e::chain_next_parts(&h, e.seq, &e.event)),
            };
            planned.insert(name, after);
            tails_after.push(after);
        }
        for (i, (e, after)) in events.iter().zip(tails_after).enumerate() {
            let name = e.event.room.as_str();
            let expect = self.tails.get(name).map_or(0, |t| t.stream_seq);
            let id_hash = after.head.map_or_else(|| "-".to_owned(), |h| hex(&h[..16]));
            let msg_id = format!("{}:{}:{id_hash}", hex(name.as_bytes()), e.seq);
            let stored = self
                .handle
                .publish(
                    name,
                    event_headers(e, &after),
                    e.event.body.clone(),
                    msg_id,
                    expect,
                )
                .await;
            match stored {
                Ok(stream_seq) => {
                    self.tails.insert(
                        name.to_owned(),
                        Tail {
                            stream_seq,
                            ..after
                        },
                    );
                }
                Err(cause) => {
                    // Read the tail again next time, whatever happened.
                    self.tails.remove(name);
                    if i == 0 {
                        return Err(cause);
                    }
                    return Err(LogError::Partial {
                        durable: i,
                        cause: Box::new(cause),
                    });
                }
            }
        }
        Ok(())
    }

    async fn prune_async(
        &mut self,
        retention: Retention,
        now_ms: u64,
        cursor: &mut PruneCursor,
        max_events: usize,
    ) -> Result<PruneStep, LogError> {
        let done = PruneStep {
            deleted: 0,
            done: true,
        };
        if retention == Retention::default() {
            return Ok(done);
        }
        let too_old = |at: u64| match retention.max_age_ms {
            Some(age) => match now_ms.saturating_sub(age) {
                0 => false,
                cutoff => at < cutoff,
            },
            None => false,
        };
        let budget = max_events.max(1) as u64;
        let rooms: Vec<RoomName> = self
            .handle
            .rooms()
            .await?
            .into_iter()
            .filter(|r| {
                if cursor.inclusive {
                    r.as_str() >= cursor.from.as_str()
                } else {
                    r.as_str() > cursor.from.as_str()
                }
            })
            .take(ROOMS_PER_CHUNK)
            .collect();
        let mut deleted = 0u64;
        let mut resume: Option<(String, bool)> = None;
        for room in &rooms {
            let all = self.handle.all(room).await?;
            let Some(last) = all.last() else { continue };
            let last_stream_seq = last.stream_seq;
            let last_tail = last.tail;
            let messages: Vec<&Stored> = all
                .iter()
                .filter(|m| {
                    m.event
                        .as_ref()
                        .is_some_and(|e| e.event.kind == EventKind::Message)
                })
                .collect();
            let keep_from = match retention.max_events {
                Some(n) => messages
                    .len()
                    .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX)),
                None => 0,
            };
            let mut doomed: Vec<u64> = messages
                .iter()
                .enumerate()
                .filter(|(i, m)| {
                    *i < keep_from || m.event.as_ref().is_some_and(|e| too_old(e.received_at_ms))
                })
                .map(|(_, m)| m.stream_seq)
                .collect();
            // Markers no longer at the tail are no use.
            doomed.extend(
                all.iter()
                    .filter(|m| m.event.is_none() && m.stream_seq != last_stream_seq)
                    .map(|m| m.stream_seq),
            );
            doomed.sort_unstable();
            let mut hit_budget = false;
            for seq in doomed {
                if deleted >= budget {
                    hit_budget = true;
                    break;
                }
                if seq == last_stream_seq {
                    // The tail carries last_seq: leave a marker first. If
                    // the room moved on meanwhile, this one is no longer
                    // the tail, and the next prune takes it.
                    let mut h = HeaderMap::new();
                    h.insert(H_MARKER, "head");
                    h.insert(H_SEQ, last_tail.last_seq.to_string());
                    tail_headers(&mut h, &last_tail);
                    let id = format!(
                        "{}:{}:head",
                        hex(room.as_str().as_bytes()),
                        last_tail.last_seq
                    );
                    match self
                        .handle
                        .publish(room.as_str(), h, Vec::new(), id, last_stream_seq)
                        .await
                    {
                        Ok(_) => {
                            self.tails.remove(room.as_str());
                        }
                        Err(LogError::Conflict { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                self.handle
                    .stream
                    .delete_message(seq)
                    .await
                    .map_err(|e| cluster("cannot delete a pruned message", e))?;
                deleted += 1;
            }
            if hit_budget {
                resume = Some((room.as_str().to_owned(), true));
                break;
            }
        }
        if resume.is_none() && rooms.len() == ROOMS_PER_CHUNK {
            resume = rooms.last().map(|r| (r.as_str().to_owned(), false));
        }
        cursor.deleted = cursor.deleted.saturating_add(deleted);
        let done = match resume {
            Some((from, inclusive)) => {
                cursor.from = from;
                cursor.inclusive = inclusive;
                false
            }
            None => true,
        };
        Ok(PruneStep { deleted, done })
    }
}

impl EventLog for JetStreamLog {
    fn append_batch_with_heads(
        &mut self,
        events: &[SequencedEvent],
        _heads: &[(&str, [u8; 32])],
    ) -> Result<(), LogError> {
        // The chain heads are computed here per event (each message
        // carries its own), from the same tails the caller numbered from.
        if events.is_empty() {
            return Ok(());
        }
        let rt = self.handle.rt.clone();
        rt.block_on(self.append(events))
    }

    fn room_head(&self, room: &str) -> Result<Option<RoomHead>, LogError> {
        let Ok(name) = RoomName::new(room) else {
            return Ok(None);
        };
        let t = self.handle.block_on(self.handle.tail(&name))?;
        Ok((t.last_seq > 0).then(|| RoomHead {
            room: room.to_owned(),
            last_seq: t.last_seq,
            epoch: t.epoch,
            head: t.head,
        }))
    }

    fn room_heads(&self) -> Result<Vec<RoomHead>, LogError> {
        self.handle.block_on(async {
            let mut heads = Vec::new();
            for room in self.handle.rooms().await? {
                let t = self.handle.tail(&room).await?;
                heads.push(RoomHead {
                    room: room.as_str().to_owned(),
                    last_seq: t.last_seq,
                    epoch: t.epoch,
                    head: t.head,
                });
            }
            Ok(heads)
        })
    }

    fn events_after_capped(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<SequencedEvent>, LogError> {
        self.handle
            .block_on(self.handle.events_after(room, after_seq, limit, max_bytes))
    }

    fn prune_chunk(
        &mut self,
        retention: Retention,
        now_ms: u64,
        cursor: &mut PruneCursor,
        max_events: usize,
    ) -> Result<PruneStep, LogError> {
        let rt = self.handle.rt.clone();
        rt.block_on(self.prune_async(retention, now_ms, cursor, max_events))
    }

    fn count(&self, room: &str) -> Result<u64, LogError> {
        let Ok(name) = RoomName::new(room) else {
            return Ok(0);
        };
        let all = self.handle.block_on(self.handle.all(&name))?;
        Ok(all.iter().filter(|m| m.event.is_some()).count() as u64)
    }
}

impl LogReader for JetStreamHandle {
    fn events_after_capped(
        &self,
        room: &RoomName,
        after_seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<SequencedEvent>, LogError> {
        self.block_on(self.events_after(room, after_seq, limit, max_bytes))
    }
}

impl JetStreamLog {
    /// Forgets this relay's view of `room`'s tail (it is read again on
    /// next use).
    pub fn forget(&mut self, room: &str) {
        self.tails.remove(room);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn subjects_carry_room_names_in_hex_and_back() {
        let s = subject("a.b-C_9");
        assert_eq!(s, "hush.room.612e622d435f39");
        assert!(!s[SUBJECT_PREFIX.len()..].contains('.'));
        assert_eq!(room_of(&s).unwrap().as_str(), "a.b-C_9");
        assert!(room_of("hush.room.zz").is_none());
        assert!(room_of("hush.room.2e61").is_none(), ".a is no room name");
        assert!(room_of("other.612e").is_none());
        assert!(subject("a") < subject("b") && subject("ab") > subject("a"));
    }

    /// A runtime for the client, and the log opened on `urls` with a
    /// stream of its own.
    fn open(rt: &tokio::runtime::Runtime, urls: &str, stream: &str) -> JetStreamLog {
        let mut config = ClusterConfig::new(urls.split(',').map(str::to_owned).collect());
        config.stream = stream.to_owned();
        rt.block_on(JetStreamLog::open(&config)).unwrap()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn the_jetstream_log_passes_the_conformance_suite_on_one_node() {
        let nats = hush_testkit::nats::NatsCluster::start(1);
        let rt = runtime();
        let urls = nats.urls();
        super::super::conformance::run_all(&mut || Box::new(open(&rt, &urls, "HUSH_TEST_1")));
    }

    #[test]
    fn the_jetstream_log_passes_the_conformance_suite_on_a_three_node_cluster() {
        let nats = hush_testkit::nats::NatsCluster::start(3);
        let rt = runtime();
        let urls = nats.urls();
        let log = open(&rt, &urls, "HUSH_TEST_3");
        let info = rt.block_on(log.handle().stream().get_info()).unwrap();
        assert_eq!(info.config.num_replicas, 3, "R3 on three servers");
        drop(log);
        super::super::conformance::run_all(&mut || Box::new(open(&rt, &urls, "HUSH_TEST_3")));
    }

    #[test]
    fn two_writers_on_one_room_conflict_and_never_leave_a_gap() {
        let nats = hush_testkit::nats::NatsCluster::start(3);
        let rt = runtime();
        let urls = nats.urls();
        let mut a = open(&rt, &urls, "HUSH_TEST_CAS");
        let mut b = open(&rt, &urls, "HUSH_TEST_CAS");
        let ev = |seq: u64, who: u8| SequencedEvent {
            seq,
            received_at_ms: seq,
            event: RoomEvent {
                room: RoomName::new("shared").unwrap(),
                sender: Fingerprint::from_bytes([who; 32]),
                kind: EventKind::Message,
                epoch: 0,
                body: vec![who; 8],
            },
        };
        a.append_batch(&[ev(1, 1)]).unwrap();
        // b has never read the room: it learns the tail, and goes on.
        assert!(matches!(
            b.append_batch(&[ev(1, 2)]).unwrap_err(),
            LogError::SeqGap { expected: 2, .. }
        ));
        b.append_batch(&[ev(2, 2)]).unwrap();
        // a's view is stale now: seq 2 again is refused by the stream.
        let err = a.append_batch(&[ev(2, 1), ev(3, 1)]).unwrap_err();
        assert!(matches!(err, LogError::Conflict { .. }), "{err:?}");
        // Read again, renumbered, it goes in.
        let head = a.room_head("shared").unwrap().unwrap();
        assert_eq!(head.last_seq, 2);
        a.append_batch(&[ev(3, 1), ev(4, 1)]).unwrap();
        let all = a
            .events_after(&RoomName::new("shared").unwrap(), 0, 100)
            .unwrap();
        let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        let senders: Vec<u8> = all.iter().map(|e| e.event.body[0]).collect();
        assert_eq!(senders, vec![1, 2, 1, 1]);
    }
}
