//! One client connection: handshake, then a reader loop and a writer task.
//!
//! ```text
//!            ┌──────────── connection task ─────────────┐
//!  socket ──▶│ FrameBuffer ─▶ RecordOpener ─▶ handle()  │──▶ hub (join/leave), sequencer (publish),
//!            │   rate limit, shutdown                   │    log readers (backfill)
//!            └──────────────────────────────────────────┘
//!            ┌──────────── writer task ─────────────────┐
//!  socket ◀──│ RecordSealer ◀─ batch ◀─ bounded queue   │◀── hub fan-out, replies
//!            └──────────────────────────────────────────┘
//! ```
//!
//! The writer drains everything queued into one record per write, so a
//! busy connection pays for sealing and system calls per batch. Either
//! side stopping stops both, through the connection's [`Stop`] signal.
//! Idle links are found by one relay-wide sweep ([`Keepalive`], in
//! `keepalive.rs`), not by a timer per connection: the reader only notes
//! when it last heard from its client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hush_crypto::{Fingerprint, Identity};
use hush_proto::RecordError;
use hush_proto::frame::{self, FrameBuffer};
use hush_proto::handshake::{self, RelayFirstStep};
use hush_proto::msg::encode;
use hush_proto::{
    ClientMsg, CloseReason, FileRefusal, Link, RecordOpener, RecordSealer, Rejection, RelayMsg,
    RoomEvent, RoomName,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use crate::config::{Limits, TokenBucket};
use crate::hub::{Hub, Outbound, Outbox, Peer, Stop};
use crate::keepalive::Keepalive;
use crate::log::LogReader;
use crate::sequencer::{PublishRequest, Request, now_ms};

/// Events sent per backfill answer; the client asks again for more.
pub const BACKFILL_PAGE: usize = 1000;

/// Bytes of event bodies read for one backfill answer (at least one event
/// is always sent): bounds the memory one request can make the relay hold.
pub const BACKFILL_PAGE_BYTES: usize = 1024 * 1024;

/// Shortest time between two checkpoints signed on one connection's
/// request.
const CHECKPOINT_REQUEST_INTERVAL: Duration = Duration::from_secs(5);

/// How long the writer tries to deliver a final `Closing` message.
const CLOSING_GRACE: Duration = Duration::from_secs(1);

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) identity: Arc<Identity>,
    /// How this relay issues session tickets (none if disabled).
    pub(crate) tickets: Option<handshake::TicketPolicy>,
    /// Which tickets have been used.
    pub(crate) ledger: Option<crate::tickets::Ledger>,
    pub(crate) limits: Limits,
    pub(crate) hub: Hub,
    pub(crate) sequencer: mpsc::Sender<Request>,
    pub(crate) handshake_pool: Arc<Semaphore>,
    /// Backfill reads at once, apart from the handshakes' RSA pool.
    pub(crate) backfill_pool: Arc<Semaphore>,
    pub(crate) readers: Arc<dyn LogReader>,
    pub(crate) next_id: std::sync::atomic::AtomicU64,
    pub(crate) keepalive: Arc<Keepalive>,
    /// Sealed file chunks, on disk apart from the log.
    pub(crate) blobs: Arc<crate::blobs::BlobStore>,
    /// Invitation-code mailboxes, in memory.
    pub(crate) codes: Arc<crate::codes::Mailboxes>,
}

/// Why a handshake did not complete (logged at debug level only: the
/// client is told nothing).
#[derive(Debug, thiserror::Error)]
enum HandshakeFailure {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(#[from] handshake::HandshakeError),
    #[error("{0}")]
    Frame(#[from] frame::FrameError),
    #[error("connection closed during handshake")]
    Eof,
    #[error("handshake worker failed")]
    Worker,
}

async fn read_frame(
    stream: &mut TcpStream,
    fb: &mut FrameBuffer,
) -> Result<Vec<u8>, HandshakeFailure> {
    loop {
        if let Some(f) = fb.next_frame()? {
            return Ok(f);
        }
        let n = stream.read(fb.read_space()).await?;
        if n == 0 {
            return Err(HandshakeFailure::Eof);
        }
        fb.advance(n);
    }
}

async fn write_frame(
    stream: &mut TcpStream,
    body: &[u8],
    limit: usize,
) -> Result<(), HandshakeFailure> {
    let mut out = Vec::with_capacity(body.len() + frame::LENGTH_PREFIX);
    frame::encode_frame(body, limit, &mut out)?;
    stream.write_all(&out).await?;
    Ok(())
}

async fn handshake(
    stream: &mut TcpStream,
    fb: &mut FrameBuffer,
    shared: &Shared,
) -> Result<(Link, Fingerprint), HandshakeFailure> {
    let max_frame = shared.limits.max_frame_bytes;
    let hello = read_frame(stream, fb).await?;
    let resume = resumable_ticket(&hello, shared).await;
    let resumed = resume.is_some();
    let identity = shared.identity.clone();
    let tickets = shared.tickets.clone();
    let first = if resume.is_some() {
        // No RSA: the key exchange and a key derivation, done here.
        handshake::relay_start(identity, &hello, max_frame, tickets, resume)?
    } else {
        // A full handshake costs the relay one RSA signature. It runs on
        // the blocking pool, at most `handshake_workers` at a time, so a
        // handshake flood cannot starve established rooms.
        let permit = shared
            .handshake_pool
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HandshakeFailure::Worker)?;
        // The permit lives as long as the RSA work, even if the deadline
        // drops this future first.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            handshake::relay_start(identity, &hello, max_frame, tickets, None)
        })
        .await
        .map_err(|_| HandshakeFailure::Worker)??
    };
    let state = match first {
        RelayFirstStep::Continue(state, wire) => {
            stream.write_all(&wire).await?;
            state
        }
        RelayFirstStep::Refuse(greeting, why) => {
            write_frame(stream, &greeting, max_frame).await?;
            return Err(why.into());
        }
    };
    let auth = read_frame(stream, fb).await?;
    let idle_ms = u64::try_from(shared.limits.idle_timeout.as_millis()).unwrap_or(u64::MAX);
    // A signature check (public-key RSA) at most: no pool needed.
    let accepted = state.on_client_auth(&auth, now_ms(), idle_ms)?;
    stream.write_all(&accepted.welcome_wire).await?;
    // Full or resumed, for the metrics (an "ok" of either kind).
    crate::metrics::metrics().handshake(if resumed { "resumed" } else { "full" });
    Ok((accepted.link, accepted.client))
}

/// The ticket the hello offers, if it is ours, current, and used for the
/// first time (claimed durably in the ledger before we say "resumed").
/// Anything else means a full handshake.
async fn resumable_ticket(
    hello: &[u8],
    shared: &Shared,
) -> Option<hush_proto::ticket::OpenedTicket> {
    let (policy, ledger) = (shared.tickets.as_ref()?, shared.ledger.as_ref()?);
    let offered = handshake::offered_ticket(hello);
    if offered.is_empty() {
        return None;
    }
    let opened = policy.key.open(&offered, now_ms())?;
    if ledger
        .claim(opened.id, opened.client, opened.expires_ms)
        .await
    {
        Some(opened)
    } else {
        tracing::debug!(client = %opened.client, "a used ticket was offered again");
        None
    }
}

/// Serves one accepted TCP connection until it ends or the relay shuts
/// down.
pub(crate) async fn serve(stream: TcpStream, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    // Boxed: the handshake's state is large and needed once, so it must
    // not stay in the connection's task for its whole life (a quiet
    // connection's memory is mostly its two tasks).
    let m = crate::metrics::metrics();
    m.handshaking.inc();
    let established = Box::pin(establish(stream, shared, shutdown)).await;
    m.handshaking.dec();
    let Some(mut conn) = established else {
        return;
    };
    let stop = conn.read_loop().await;
    Box::pin(conn.finish(stop)).await;
}

/// The handshake, under its deadline; then the writer task and the
/// reader's state.
async fn establish(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> Option<Connection> {
    // Logged as an address, or "unknown" (usability F10: not `Some(..)`).
    let peer_addr = stream
        .peer_addr()
        .map_or_else(|_| "unknown".to_owned(), |a| a.to_string());
    let _ = stream.set_nodelay(true);
    // A stranger's frames are handshake-sized until it has authenticated
    // (whatever `--max-frame-bytes` allows afterwards).
    let mut fb = FrameBuffer::new(handshake::MAX_HANDSHAKE_FRAME);
    let outcome = tokio::time::timeout(
        shared.limits.handshake_timeout,
        handshake(&mut stream, &mut fb, &shared),
    )
    .await;
    let m = crate::metrics::metrics();
    let (link, fingerprint) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            m.handshake("failed");
            tracing::debug!(peer = %peer_addr, error = %e, "handshake failed");
            return None;
        }
        Err(_) => {
            m.handshake("timeout");
            tracing::debug!(peer = %peer_addr, "handshake deadline passed");
            return None;
        }
    };
    m.connections.inc();
    let id = shared
        .next_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // The address and the identity are never logged together at info: an
    // operator's log would otherwise be a durable record of who connects
    // from where (audit L7). The connection id links them at debug.
    tracing::info!(peer = %peer_addr, conn = id, "client connected");
    tracing::debug!(conn = id, client = %fingerprint, "client authenticated");
    let Link { sealer, opener } = link;
    fb.set_limit(opener.max_record_wire());

    let (rd, write_half) = stream.into_split();
    let outbox = Arc::new(Outbox::new(
        shared.limits.outbound_queue,
        shared
            .limits
            .outbound_queue_bytes
            .max(shared.limits.max_frame_bytes * 2),
    ));
    let peer = Peer {
        id,
        fingerprint,
        outbox: outbox.clone(),
    };
    shared.keepalive.register(id, outbox.clone());
    let writer = tokio::spawn(write_loop(write_half, sealer, outbox));
    Some(Connection {
        bucket: TokenBucket::new(shared.limits.publish_rate, shared.limits.publish_burst),
        shared,
        peer,
        rooms: JoinedRooms::default(),
        last_checkpoint: None,
        acks: None,
        rd,
        fb,
        opener,
        shutdown,
        writer,
    })
}

/// One established connection, as its reader task holds it.
struct Connection {
    shared: Arc<Shared>,
    peer: Peer,
    rooms: JoinedRooms,
    bucket: TokenBucket,
    /// When this connection last had a checkpoint signed on request: each
    /// costs an RSA signature from the pool handshakes use.
    last_checkpoint: Option<Instant>,
    /// Chunks this connection wrote to the blob store and has not yet
    /// acknowledged, per (room, file): a commit makes them durable and
    /// sends their `FileStored`, off the reader, so chat on the link never
    /// waits behind an fsync.
    /// Chunks written and not yet acknowledged; made at the first upload,
    /// so a connection that sends no file holds none of it.
    acks: Option<Arc<std::sync::Mutex<OwedAcks>>>,
    rd: OwnedReadHalf,
    fb: FrameBuffer,
    opener: RecordOpener,
    shutdown: watch::Receiver<bool>,
    writer: tokio::task::JoinHandle<()>,
}

/// The rooms one connection has joined, each with the head it was joined
/// at: backfill serves up to it, live delivery covers what follows. A
/// short vector, searched in order: a connection joins a few rooms (at
/// most `max_rooms_per_connection`), and a hash map with one entry would
/// allocate four slots and their control bytes.
#[derive(Default)]
struct JoinedRooms(Vec<(RoomName, u64)>);

impl JoinedRooms {
    fn get(&self, room: &RoomName) -> Option<u64> {
        self.0
            .iter()
            .find(|(r, _)| r == room)
            .map(|(_, head)| *head)
    }

    fn contains(&self, room: &RoomName) -> bool {
        self.get(room).is_some()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// Joins `room` at `head` (a repeated join moves the head).
    fn insert(&mut self, room: RoomName, head: u64) {
        if let Some(entry) = self.0.iter_mut().find(|(r, _)| *r == room) {
            entry.1 = head;
        } else {
            self.0.reserve_exact(1);
            self.0.push((room, head));
        }
    }

    /// Leaves `room`; whether it had been joined.
    fn remove(&mut self, room: &RoomName) -> bool {
        let Some(at) = self.0.iter().position(|(r, _)| r == room) else {
            return false;
        };
        self.0.swap_remove(at);
        true
    }

    fn names(&self) -> Vec<RoomName> {
        self.0.iter().map(|(r, _)| r.clone()).collect()
    }
}

impl Connection {
    /// Leaves every room, stops the writer (telling the client why, where
    /// there is a reason to tell) and waits for it.
    async fn finish(self, stop: Stop) {
        let id = self.peer.id;
        self.shared.keepalive.unregister(id);
        self.shared.hub.leave_all(&self.rooms.names(), id);
        self.shared.codes.disconnected(id);
        // The first reason wins (a TooSlow from fan-out stays TooSlow).
        self.peer.outbox.stop(stop);
        let fingerprint = self.peer.fingerprint;
        let writer = self.writer;
        let _ = writer.await;
        crate::metrics::metrics().connections.dec();
        tracing::info!(conn = id, reason = ?stop, "client disconnected");
        tracing::debug!(conn = id, client = %fingerprint, "client disconnected");
    }

    async fn read_loop(&mut self) -> Stop {
        // A handler awaits with `self` borrowed: it watches its own copy.
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                // Wait for data before taking a buffer: a quiet
                // connection holds no read buffer at all.
                readable = self.rd.readable() => {
                    if readable.is_err() {
                        return Stop::Quiet;
                    }
                    let n = match self.rd.try_read(self.fb.read_space()) {
                        Ok(0) => return Stop::Quiet,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            self.fb.release_if_empty();
                            continue;
                        }
                        Err(_) => return Stop::Quiet,
                    };
                    // File chunks are written to the store in batches, one
                    // trip to the blocking pool for every chunk at hand
                    // (consecutive `FilePut`s, across records and, while
                    // the socket has more without waiting, across reads),
                    // not one per chunk. Order is kept: the batch goes
                    // before any other message.
                    let mut puts: Vec<ChunkPut> = Vec::new();
                    let mut n = n;
                    let mut eof = false;
                    loop {
                        self.fb.advance(n);
                        crate::metrics::metrics().bytes_in.inc_by(n as u64);
                        self.peer.outbox.heard(self.shared.keepalive.now_ms());
                        loop {
                            let record = match self.fb.next_frame_mut() {
                                Ok(Some(r)) => r,
                                Ok(None) => break,
                                Err(e) => {
                                    tracing::debug!(conn = self.peer.id, error = %e, "bad frame");
                                    return Stop::Tell(CloseReason::ProtocolViolation);
                                }
                            };
                            let messages: Vec<ClientMsg> = match self.opener.open_in_place(record) {
                                Ok(m) => m,
                                Err(e) => {
                                    tracing::debug!(conn = self.peer.id, error = %e, "bad record");
                                    return Stop::Tell(CloseReason::ProtocolViolation);
                                }
                            };
                            for m in messages {
                                let m = match m {
                                    ClientMsg::FilePut { room, file, index, data } => {
                                        puts.push(ChunkPut { room, file, index, data });
                                        continue;
                                    }
                                    other => other,
                                };
                                // A handler can wait (rate limit, a full
                                // sequencer queue): never past a shutdown.
                                if !puts.is_empty() {
                                    tokio::select! {
                                        () = Box::pin(self.put_chunks(std::mem::take(&mut puts))) => {}
                                        _ = shutdown.changed() => return Stop::Tell(CloseReason::Shutdown),
                                    }
                                }
                                tokio::select! {
                                    () = Box::pin(self.handle(m)) => {}
                                    _ = shutdown.changed() => return Stop::Tell(CloseReason::Shutdown),
                                }
                            }
                        }
                        if puts.is_empty() || puts.len() >= PUT_BATCH {
                            break;
                        }
                        n = match self.rd.try_read(self.fb.read_space()) {
                            Ok(0) => {
                                eof = true;
                                break;
                            }
                            Ok(more) => more,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(_) => {
                                eof = true;
                                break;
                            }
                        };
                    }
                    if !puts.is_empty() {
                        tokio::select! {
                            () = Box::pin(self.put_chunks(puts)) => {}
                            _ = shutdown.changed() => return Stop::Tell(CloseReason::Shutdown),
                        }
                    }
                    if eof {
                        self.commit_written();
                        return Stop::Quiet;
                    }
                    // Everything read so far is handled: what it wrote is
                    // made durable as one group.
                    self.commit_written();
                    if self.fb.buffered() == 0 {
                        self.fb.release_if_empty();
                        self.opener.release_memory();
                    }
                }
                stop = self.peer.outbox.stopped() => return stop,
                _ = shutdown.changed() => return Stop::Tell(CloseReason::Shutdown),
            }
        }
    }

    fn send(&self, msg: &RelayMsg) {
        self.peer.deliver(encode(msg).into());
    }

    fn reject(&self, request: u64, room: RoomName, reason: Rejection) {
        self.send(&RelayMsg::Rejected {
            request,
            room,
            reason,
        });
    }

    async fn handle(&mut self, msg: ClientMsg) {
        match msg {
            ClientMsg::Join { room } => {
                self.take_token().await;
                let limit = self.shared.limits.max_rooms_per_connection;
                if !self.rooms.contains(&room) && self.rooms.len() >= limit {
                    let limit = u32::try_from(limit).unwrap_or(u32::MAX);
                    self.reject(0, room, Rejection::TooManyRooms { limit });
                    return;
                }
                let info = match self.shared.hub.join(&room, &self.peer) {
                    Some(info) => info,
                    None => {
                        // Nobody is in the room: the sequencer knows its head.
                        let (reply, answer) = tokio::sync::oneshot::channel();
                        let join = Request::Join {
                            room: room.clone(),
                            peer: self.peer.clone(),
                            reply,
                        };
                        if self.shared.sequencer.send(join).await.is_err() {
                            return;
                        }
                        let Ok(info) = answer.await else {
                            return;
                        };
                        info
                    }
                };
                self.rooms.insert(room, info.head_seq);
            }
            ClientMsg::Leave { room } => {
                self.take_token().await;
                if self.rooms.remove(&room) {
                    self.shared.hub.leave(&room, self.peer.id);
                }
                self.send(&RelayMsg::Left { room });
            }
            ClientMsg::Publish { request, event } => self.publish(request, event).await,
            ClientMsg::Backfill { room, after_seq } => self.backfill(room, after_seq).await,
            ClientMsg::Ping { nonce } => self.send(&RelayMsg::Pong { nonce }),
            ClientMsg::Checkpoint { room } => self.checkpoint(room).await,
            ClientMsg::Pong { .. } => {}
            ClientMsg::FileDeclare {
                room,
                file,
                chunks,
                bytes,
            } => {
                let owner = self.peer.fingerprint;
                let spec = crate::blobs::BlobSpec { chunks, bytes };
                let now = crate::sequencer::now_ms();
                self.file_op(room, file, move |store, room| {
                    store
                        .declare(room, file, &owner, spec, now)
                        .map(|s| vec![status_msg(room, file, s)])
                })
                .await;
            }
            ClientMsg::FilePut {
                room,
                file,
                index,
                data,
            } => {
                self.put_chunks(vec![ChunkPut {
                    room,
                    file,
                    index,
                    data,
                }])
                .await;
            }
            ClientMsg::FileGet { room, file, index } => {
                self.file_op(room, file, move |store, room| {
                    store.get(room, file, index).map(|data| {
                        vec![RelayMsg::FileChunk {
                            room: room.clone(),
                            file,
                            index,
                            data,
                        }]
                    })
                })
                .await;
            }
            ClientMsg::FileGetRange {
                room,
                file,
                first,
                count,
            } => {
                self.file_op(room, file, move |store, room| {
                    if count > hush_proto::msg::MAX_FILE_RANGE {
                        return Err(crate::blobs::BlobError::BadChunk { index: first });
                    }
                    let chunks = store.get_range(room, file, first, count)?;
                    Ok((first..)
                        .zip(chunks)
                        .map(|(index, data)| RelayMsg::FileChunk {
                            room: room.clone(),
                            file,
                            index,
                            data,
                        })
                        .collect())
                })
                .await;
            }
            ClientMsg::CodeOpen => {
                self.take_token().await;
                self.shared.codes.open(&self.peer);
            }
            ClientMsg::CodeClaim { number, data } => {
                self.take_token().await;
                self.shared.codes.claim(&self.peer, number, data);
            }
            ClientMsg::CodePost { number, data } => {
                self.take_token().await;
                self.shared.codes.post(&self.peer, number, data);
            }
            ClientMsg::CodeClose { number } => self.shared.codes.close(&self.peer, number),
            ClientMsg::FileQuery { room, file } => {
                self.file_op(room, file, move |store, room| {
                    store
                        .status(room, file)
                        .map(|s| vec![status_msg(room, file, s)])
                })
                .await;
            }
        }
    }

    /// A file request on a joined room, run on the blocking pool (the
    /// store reads and writes; a put does not wait for an fsync, see
    /// [`Connection::commit_written`]); its answers, or a `FileRefused`,
    /// go back. The connection reads nothing else meanwhile, so chat waits
    /// behind at most the page-cache writes of the chunks queued ahead of
    /// it (written in batches by [`Connection::put_chunks`]), or the read
    /// of one range.
    async fn file_op(
        &mut self,
        room: RoomName,
        file: [u8; 16],
        op: impl FnOnce(
            &crate::blobs::BlobStore,
            &RoomName,
        ) -> Result<Vec<RelayMsg>, crate::blobs::BlobError>
        + Send
        + 'static,
    ) {
        if !self.rooms.contains(&room) {
            self.send(&RelayMsg::FileRefused {
                room,
                file,
                reason: FileRefusal::NotJoined,
            });
            return;
        }
        let store = self.shared.blobs.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let result = op(&store, &room);
            (room, result)
        })
        .await;
        let Ok((room, result)) = answer else {
            return;
        };
        self.answer_file_op(room, file, result);
    }

    /// Writes file chunks to the store, all of them in one trip to the
    /// blocking pool (a page-cache write each: no fsync, see
    /// [`Connection::commit_written`]). A chunk the store already holds is
    /// acknowledged at once; one just written is owed a `FileStored` once
    /// a commit made it durable; a refused one gets its `FileRefused`.
    async fn put_chunks(&mut self, puts: Vec<ChunkPut>) {
        if puts.is_empty() {
            return;
        }
        let (joined, strangers): (Vec<ChunkPut>, Vec<ChunkPut>) =
            puts.into_iter().partition(|p| self.rooms.contains(&p.room));
        for p in strangers {
            self.send(&RelayMsg::FileRefused {
                room: p.room,
                file: p.file,
                reason: FileRefusal::NotJoined,
            });
        }
        if joined.is_empty() {
            return;
        }
        let owner = self.peer.fingerprint;
        let acks = Arc::clone(self.acks.get_or_insert_with(Arc::default));
        let store = self.shared.blobs.clone();
        let answers = tokio::task::spawn_blocking(move || {
            joined
                .into_iter()
                .map(|p| {
                    let result = match store.put(&p.room, p.file, &owner, p.index, &p.data) {
                        Ok(crate::blobs::Put::Held) => Ok(vec![RelayMsg::FileStored {
                            room: p.room.clone(),
                            file: p.file,
                            index: p.index,
                        }]),
                        Ok(crate::blobs::Put::Written) => {
                            lock_acks(&acks)
                                .owed
                                .entry((p.room.clone(), p.file))
                                .or_default()
                                .push(p.index);
                            Ok(Vec::new())
                        }
                        Err(e) => Err(e),
                    };
                    (p.room, p.file, result)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(answers) = answers else {
            return;
        };
        for (room, file, result) in answers {
            self.answer_file_op(room, file, result);
        }
    }

    /// Sends a file operation's answers, or its `FileRefused`.
    fn answer_file_op(
        &self,
        room: RoomName,
        file: [u8; 16],
        result: Result<Vec<RelayMsg>, crate::blobs::BlobError>,
    ) {
        match result {
            Ok(msgs) => {
                let m = crate::metrics::metrics();
                for msg in &msgs {
                    match msg {
                        RelayMsg::FileStored { .. } => m.file_chunks_stored.inc(),
                        RelayMsg::FileChunk { .. } => m.file_chunks_served.inc(),
                        _ => 0,
                    };
                    self.send(msg);
                }
            }
            Err(e) => {
                if let crate::blobs::BlobError::Io(why) = &e {
                    tracing::warn!(error = %why, "file store");
                }
                self.send(&RelayMsg::FileRefused {
                    room,
                    file,
                    reason: refusal(&e),
                });
            }
        }
    }

    /// Starts committing what this connection wrote and has not
    /// acknowledged, unless its commit task is under way (it takes the new
    /// chunks up when it is done): group commit, so one fdatasync pair per
    /// file covers every chunk that arrived while the previous one ran.
    /// One task per connection, on the blocking pool, going through the
    /// files it owes in turn and sending their `FileStored`s itself; the
    /// reader goes on.
    fn commit_written(&mut self) {
        let Some(acks) = self.acks.clone() else {
            return;
        };
        {
            let mut a = lock_acks(&acks);
            if a.running || a.owed.is_empty() {
                return;
            }
            a.running = true;
        }
        let (store, peer) = (self.shared.blobs.clone(), self.peer.clone());
        tokio::task::spawn_blocking(move || {
            loop {
                let owed = {
                    let mut a = lock_acks(&acks);
                    if a.owed.is_empty() {
                        a.running = false;
                        return;
                    }
                    std::mem::take(&mut a.owed)
                };
                for ((room, file), mut indices) in owed {
                    // A chunk sent twice before its commit is acknowledged once.
                    indices.sort_unstable();
                    indices.dedup();
                    let answers = match store.commit(&room, file, &indices) {
                        Ok(held) => {
                            let m = crate::metrics::metrics();
                            held.into_iter()
                                .map(|index| {
                                    m.file_chunks_stored.inc();
                                    RelayMsg::FileStored {
                                        room: room.clone(),
                                        file,
                                        index,
                                    }
                                })
                                .collect()
                        }
                        Err(e) => {
                            if let crate::blobs::BlobError::Io(why) = &e {
                                tracing::warn!(error = %why, "file store");
                            }
                            vec![RelayMsg::FileRefused {
                                room: room.clone(),
                                file,
                                reason: refusal(&e),
                            }]
                        }
                    };
                    for msg in &answers {
                        peer.deliver(encode(msg).into());
                    }
                }
            }
        });
    }

    /// Over the rate: wait for a token instead of reading on, so TCP pushes
    /// back on the flooder and everyone else is unaffected.
    async fn take_token(&mut self) {
        let wait = self.bucket.wait_time();
        if !wait.is_zero() {
            crate::metrics::metrics().rate_limited.inc();
            tokio::time::sleep(wait).await;
        }
        self.bucket.try_take();
    }

    /// Signs the room's current head on request. Costs an RSA signature,
    /// so it takes a rate token and a slot of the bounded RSA pool.
    async fn checkpoint(&mut self, room: RoomName) {
        if !self.rooms.contains(&room) {
            self.reject(0, room, Rejection::NotJoined);
            return;
        }
        // At most one signature on request per connection per interval;
        // more are ignored (the periodic checkpoints keep coming).
        if self
            .last_checkpoint
            .is_some_and(|t| t.elapsed() < CHECKPOINT_REQUEST_INTERVAL)
        {
            return;
        }
        self.last_checkpoint = Some(Instant::now());
        self.take_token().await;
        // A room never written to has the all-zero head at seq 0.
        let (seq, head) = self.shared.hub.head(&room).unwrap_or((0, [0; 32]));
        let Ok(permit) = self.shared.handshake_pool.clone().acquire_owned().await else {
            return;
        };
        let identity = self.shared.identity.clone();
        let signed = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            crate::sequencer::sign_checkpoint(&identity, &room, seq, head)
        })
        .await;
        if let Ok(Some(msg)) = signed {
            self.peer.deliver(msg.into());
        }
    }

    async fn publish(&mut self, request: u64, event: RoomEvent) {
        if !self.rooms.contains(&event.room) {
            self.reject(request, event.room, Rejection::NotJoined);
            return;
        }
        let max_body = hush_proto::msg::max_event_body(self.shared.limits.max_frame_bytes);
        if event.body.len() > max_body {
            let max_body = u32::try_from(max_body).unwrap_or(u32::MAX);
            self.reject(request, event.room, Rejection::TooLarge { max_body });
            return;
        }
        if event.sender != self.peer.fingerprint {
            tracing::debug!(
                conn = self.peer.id,
                "refused an event with a spoofed sender"
            );
            self.reject(request, event.room, Rejection::SpoofedSender);
            return;
        }
        self.take_token().await;
        let req = PublishRequest {
            peer: self.peer.clone(),
            request,
            event,
        };
        if self
            .shared
            .sequencer
            .send(Request::Publish(req))
            .await
            .is_err()
        {
            tracing::warn!("sequencer gone; dropping publish");
        }
    }

    async fn backfill(&mut self, room: RoomName, after_seq: u64) {
        crate::metrics::metrics().backfills.inc();
        let Some(cap) = self.rooms.get(&room) else {
            self.reject(0, room, Rejection::NotJoined);
            return;
        };
        // Each read costs the relay up to a page of disk and memory: it
        // takes a rate token like any request (audit L3).
        self.take_token().await;
        let shared = self.shared.clone();
        let name = room.clone();
        // A page never takes more than a quarter of the outbound queue, so
        // live fan-out always has room beside it.
        let page = BACKFILL_PAGE
            .min(self.shared.limits.outbound_queue / 4)
            .max(1);
        // Backfill reads have a pool of their own, so a flood of them
        // waits there and never for (or instead of) a handshake's RSA.
        let Ok(permit) = self.shared.backfill_pool.clone().acquire_owned().await else {
            return;
        };
        // SQLite reads block: run them on the blocking pool.
        let rows = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            shared
                .readers
                .events_after_capped(&name, after_seq, page, BACKFILL_PAGE_BYTES)
        })
        .await;
        let rows = match rows {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "backfill read failed");
                self.reject(0, room, Rejection::StorageFailed);
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "backfill read failed");
                self.reject(0, room, Rejection::StorageFailed);
                return;
            }
        };
        let read_bytes: usize = rows.iter().map(|r| r.event.body.len()).sum();
        let page_full = rows.len() == page || read_bytes >= BACKFILL_PAGE_BYTES;
        let mut last = after_seq;
        for row in rows.into_iter().take_while(|r| r.seq <= cap) {
            last = row.seq;
            // Within the connection's byte budget: a client that asks for
            // page after page without reading is cut off like any slow one.
            let msg: Outbound = encode(&RelayMsg::Event(row)).into();
            if !self.peer.deliver(msg) {
                return;
            }
        }
        let complete = !page_full || last >= cap;
        self.send(&RelayMsg::BackfillDone {
            room,
            up_to: if complete { cap.max(after_seq) } else { last },
            complete,
        });
    }
}

async fn write_loop(mut wr: OwnedWriteHalf, mut sealer: RecordSealer, outbox: Arc<Outbox>) {
    /// Stop adding to a batch past this many bytes, so one write stays
    /// a bounded size.
    const BATCH_BYTES: usize = 256 * 1024;
    let mut wire = Vec::new();
    loop {
        tokio::select! {
            biased;
            stop = outbox.stopped() => {
                if let Stop::Tell(reason) = stop {
                    wire.clear();
                    if sealer.push(&RelayMsg::Closing { reason }).is_ok()
                        && sealer.seal_pending(&mut wire).is_ok()
                    {
                        let _ = tokio::time::timeout(CLOSING_GRACE, wr.write_all(&wire)).await;
                    }
                }
                break;
            }
            () = outbox.ready() => {
                let mut too_large = 0usize;
                let mut exhausted = false;
                outbox.drain(|m| {
                    if sealer.pending_bytes() >= BATCH_BYTES {
                        return false;
                    }
                    match sealer.push_encoded(m) {
                        Ok(()) => true,
                        // A message too large for this link's frames (an
                        // event above the limit this client announced):
                        // skip it rather than cut the client off.
                        Err(RecordError::MessageTooLarge) => {
                            too_large += 1;
                            true
                        }
                        Err(_) => {
                            exhausted = true;
                            false
                        }
                    }
                });
                if too_large > 0 {
                    tracing::error!(messages = too_large, "dropped outbound messages too large for a frame");
                }
                if exhausted {
                    break;
                }
                if !sealer.has_pending() {
                    continue;
                }
                wire.clear();
                if sealer.seal_pending(&mut wire).is_err() {
                    break;
                }
                tokio::select! {
                    r = wr.write_all(&wire) => if r.is_err() { break },
                    _ = outbox.stopped() => break,
                }
                crate::metrics::metrics().bytes_out.inc_by(wire.len() as u64);
                wire.clear();
                if outbox.is_empty() {
                    // Quiet again: hold no batch memory while idle.
                    wire = Vec::new();
                    sealer.release_memory();
                }
            }
        }
    }
    outbox.close();
    let _ = tokio::time::timeout(CLOSING_GRACE, wr.shutdown()).await;
}

/// Consecutive `FilePut`s the reader writes in one trip to the blocking
/// pool, at most: 64 chunks of 32 KiB, 2 MiB.
const PUT_BATCH: usize = 64;

/// One `FilePut`, as the reader batches it.
struct ChunkPut {
    room: RoomName,
    file: [u8; 16],
    index: u32,
    data: Vec<u8>,
}

/// Chunks a connection wrote and has not acknowledged, per (room, file),
/// and whether its commit task is taking them. Bounded by what the client
/// sent: four bytes per chunk message written (32 KiB), until the next
/// commit takes them.
#[derive(Default)]
struct OwedAcks {
    owed: BTreeMap<(RoomName, [u8; 16]), Vec<u32>>,
    running: bool,
}

fn lock_acks(m: &std::sync::Mutex<OwedAcks>) -> std::sync::MutexGuard<'_, OwedAcks> {
    // Only a push or a take happens under it: nothing can leave it
    // half-updated, so a poisoned lock is still sound.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A store status as the wire's `FileStatus`.
fn status_msg(room: &RoomName, file: [u8; 16], s: crate::blobs::BlobStatus) -> RelayMsg {
    RelayMsg::FileStatus {
        room: room.clone(),
        file,
        chunks: s.chunks,
        have: s.have,
    }
}

/// What a client is told of a store error (disk trouble in general terms:
/// the path is for the operator's log).
fn refusal(e: &crate::blobs::BlobError) -> FileRefusal {
    use crate::blobs::BlobError;
    match *e {
        BlobError::TooLarge { max } | BlobError::StoreFull { max } => FileRefusal::TooLarge { max },
        BlobError::OverQuota { quota, used } => FileRefusal::OverQuota { quota, used },
        BlobError::TooManyFiles { .. } => FileRefusal::OverQuota { quota: 0, used: 0 },
        BlobError::BadSpec { .. } | BlobError::Mismatch => FileRefusal::Mismatch,
        BlobError::Unknown => FileRefusal::Unknown,
        BlobError::NotOwner => FileRefusal::NotOwner,
        BlobError::BadChunk { index } => FileRefusal::BadChunk { index },
        BlobError::Missing { index } => FileRefusal::Missing { index },
        BlobError::Io(_) => FileRefusal::StorageFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_rooms_keep_one_head_per_room() {
        let lobby = RoomName::new("lobby").expect("a valid name");
        let dev = RoomName::new("dev").expect("a valid name");
        let mut rooms = JoinedRooms::default();
        rooms.insert(lobby.clone(), 3);
        rooms.insert(dev.clone(), 5);
        rooms.insert(lobby.clone(), 9);
        assert_eq!(
            (rooms.len(), rooms.get(&lobby), rooms.get(&dev)),
            (2, Some(9), Some(5))
        );
        assert!(rooms.remove(&lobby));
        assert!(!rooms.remove(&lobby));
        assert!(!rooms.contains(&lobby) && rooms.contains(&dev));
        assert_eq!(rooms.names(), vec![dev]);
    }
}
