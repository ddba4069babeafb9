//! Relay settings. Every limit has a safe default and a doc comment saying
//! why that default; the CLI exposes each as a flag and a `HUSH_` variable.

use std::path::PathBuf;
use std::time::Duration;

use crate::log::Retention;

/// Everything a relay needs to start.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Folder of the durable log (`events.sqlite`); created 0700 if missing.
    pub data_dir: PathBuf,
    /// Resource limits.
    pub limits: Limits,
    /// How long the log keeps events.
    pub retention: Retention,
    /// Bounds on the sealed files members upload (`blobs/` in the data
    /// folder).
    pub files: crate::blobs::BlobLimits,
}

/// Bounds on what any one peer, or all of them, can make the relay hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest frame body accepted (checked from the length prefix before
    /// buffering). 64 KiB: a text message with signatures and a commit
    /// for a few dozen members fit; a peer cannot make us buffer more.
    pub max_frame_bytes: usize,
    /// Connections held at once, handshaking or established. Each holds
    /// at most `outbound_queue_bytes` of queued output plus one frame of
    /// input; 10,000 is for a machine with memory to match, lower it on a
    /// small one.
    pub max_connections: usize,
    /// Connections from one IP address. 64: a household or small office
    /// behind one NAT fits; one host cannot take all slots.
    pub max_connections_per_ip: usize,
    /// Time allowed from accept to a completed handshake. 10 s: a real
    /// client on a slow link needs well under that; a slow-loris needs
    /// more.
    pub handshake_timeout: Duration,
    /// A connection from which nothing arrives for this long is closed.
    /// The relay pings after a third of it, so a live but quiet client
    /// always answers in time. 90 s outlives most NAT mappings' patience.
    pub idle_timeout: Duration,
    /// Sustained requests (publish, join, leave, backfill) per second per
    /// connection. 50/s is far above human typing and enough for bots; a
    /// flood is slowed to this.
    pub publish_rate: u32,
    /// Publishes a connection may make in a burst above the rate (a paste
    /// of many lines). 200.
    pub publish_burst: u32,
    /// Commits one identity may have sequenced in one room per minute
    /// (members judge each one). 60: an admission wave or a rekey needs a
    /// handful.
    pub commits_per_minute: u32,
    /// New rooms one identity may create per hour (a room is created by
    /// the first event sequenced in it, and its row is kept for good:
    /// audit L3). 20: a person opens a few rooms a day; a script making
    /// rooms by the thousand is stopped.
    pub rooms_per_hour: u32,
    /// Rooms one connection may join. 64.
    pub max_rooms_per_connection: usize,
    /// A room's head (its last seq, epoch and chain head) idle this long
    /// leaves the sequencer's memory; it is read back from the log on next
    /// use (audit L3). 10 minutes: an active room stays in memory, and
    /// rooms made once and left do not accumulate.
    pub room_idle_after: Duration,
    /// Room heads the sequencer holds at most; above it the least recently
    /// used go first. 100,000 (about 20 MB).
    pub max_resident_rooms: usize,
    /// Messages one step of retention deletes at most, in one transaction
    /// between two batches of events (audit L3). 10,000: a few tens of
    /// milliseconds, so a large prune never stalls sequencing for long.
    pub prune_chunk_events: usize,
    /// Backfill reads run at once, relay-wide, apart from the RSA
    /// handshake workers (audit L3). 4: SQLite reads in WAL mode go in
    /// parallel; more would only queue on the disk.
    pub backfill_workers: usize,
    /// Messages queued for one connection before it counts as too slow and
    /// is disconnected (it backfills on reconnect). 4,096: absorbs bursts
    /// for a client on a slow link without letting one reader hold a room.
    pub outbound_queue: usize,
    /// Bytes queued for one connection before it counts as too slow. 8 MiB:
    /// a backfill page (at most 1 MiB) plus a burst of live events; it is
    /// what bounds the relay's memory per connection, since messages can be
    /// up to a frame each.
    pub outbound_queue_bytes: usize,
    /// Handshake RSA operations run at once. Defaults to the number of
    /// cores, so handshakes cannot starve established rooms.
    pub handshake_workers: usize,
    /// New handshakes per second from one IP address (token bucket with a
    /// burst of twice this). 20/s lets a NAT of users reconnect at once
    /// and stops one host from keeping every core busy with RSA.
    pub handshakes_per_ip_per_sec: u32,
    /// How long a session ticket stays valid; zero issues none. 7 days:
    /// a client that reconnects within a week resumes without RSA.
    pub ticket_lifetime: Duration,
    /// Used session-ticket ids the ledger keeps per identity (audit L2).
    /// Beyond it the identity's oldest ones are dropped and every ticket
    /// of that identity expiring no later counts as used: the newest
    /// ticket, the one a client holds, always resumes. 256: a client that
    /// reconnects every forty minutes for the ticket lifetime of 7 days;
    /// one identity cannot fill the relay-wide ledger.
    pub tickets_per_identity: u32,
    /// How long an invitation code's mailbox waits to be claimed (the
    /// code is void after it). 10 minutes.
    pub code_expiry: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: hush_proto::DEFAULT_MAX_FRAME,
            max_connections: 10_000,
            max_connections_per_ip: 64,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            publish_rate: 50,
            publish_burst: 200,
            commits_per_minute: 60,
            rooms_per_hour: 20,
            max_rooms_per_connection: 64,
            room_idle_after: Duration::from_secs(600),
            max_resident_rooms: 100_000,
            prune_chunk_events: 10_000,
            backfill_workers: 4,
            outbound_queue: 4096,
            outbound_queue_bytes: 8 * 1024 * 1024,
            handshake_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            handshakes_per_ip_per_sec: 20,
            ticket_lifetime: Duration::from_secs(7 * 24 * 3600),
            tickets_per_identity: 256,
            code_expiry: Duration::from_secs(600),
        }
    }
}

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate.max(1)),
            burst,
            tokens: burst,
            last: tokio::time::Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes a token if one is there.
    pub(crate) fn try_take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is there (zero if one is).
    pub(crate) fn wait_time(&mut self) -> Duration {
        self.refill();
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    /// Whether the bucket is full (an idle entry that can be forgotten).
    pub(crate) fn is_full(&mut self) -> bool {
        self.refill();
        self.tokens >= self.burst
    }
}
