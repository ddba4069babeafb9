//! What a fanout run is asked to do and what it hands back, shared by
//! both of its modes (`fanout.rs`: opaque events, and
//! `fanout_full.rs`: real Rooms): the flags, the result, and how a
//! publisher paces itself.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::paths::parse_duration;

/// Flags of `hush bench fanout`.
#[derive(Debug, clap::Args)]
pub(crate) struct FanoutArgs {
    /// Measure this relay instead of starting one on a loopback port.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) server: Option<String>,
    /// Connections joined to the room.
    #[arg(long, default_value_t = 100)]
    pub(crate) members: usize,
    /// How many of the members publish.
    #[arg(long, default_value_t = 10)]
    pub(crate) publishers: usize,
    /// Bytes of each event body.
    #[arg(long, default_value_t = 256)]
    pub(crate) size: usize,
    /// How long the publishers publish (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Each publisher keeps at most this many of its events unconfirmed
    /// (not yet back to itself) [default: 32 unless --rate is given].
    #[arg(long, conflicts_with = "rate")]
    pub(crate) window: Option<u64>,
    /// Total events per second across all publishers.
    #[arg(long)]
    pub(crate) rate: Option<u64>,
    /// Folder under which the bench's relay keeps its data [default: the
    /// system temporary folder]. A tmpfs such as /dev/shm keeps the log in
    /// memory: the same run without the cost of durability.
    #[arg(long, value_name = "DIR", conflicts_with = "server")]
    pub(crate) log_dir: Option<PathBuf>,
    /// `relay`: opaque events of realistic size, clients skip end-to-end
    /// crypto (the relay's cost). `full`: every message signed, sealed,
    /// verified and opened by real Rooms, as clients do.
    #[arg(long, value_enum, default_value_t = Crypto::Relay)]
    pub(crate) crypto: Crypto,
    /// Pin the bench's relay to these CPUs (taskset list, e.g. 1 or 2-3),
    /// for per-core figures.
    #[arg(long, value_name = "LIST", conflicts_with = "server")]
    pub(crate) relay_cpus: Option<String>,
    /// Pin the load generator (this process) to these CPUs (e.g. 0).
    #[arg(long, value_name = "LIST")]
    pub(crate) client_cpus: Option<String>,
    /// Start the bench's relays as one cluster sharing the rooms through
    /// these NATS servers (`hush server --cluster URLS`), members spread
    /// evenly over them; CPU and memory are the relays' summed.
    #[arg(long, value_name = "URLS", conflicts_with_all = ["server", "redis", "crypto", "log_dir"])]
    pub(crate) cluster: Option<String>,
    /// How many relays --cluster starts.
    #[arg(long, default_value_t = 2, requires = "cluster")]
    pub(crate) relays: usize,
    /// Run the same load against Redis pub/sub instead (`redis-server`
    /// started on a loopback port, pinned with --relay-cpus), for a
    /// same-run comparison.
    #[arg(long, conflicts_with_all = ["server", "crypto", "log_dir"])]
    pub(crate) redis: bool,
    /// The Redis server program for --redis.
    #[arg(long, value_name = "PATH", default_value = "redis-server")]
    pub(crate) redis_server: String,
    /// Print the results as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// How much of the end-to-end work the fanout clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Crypto {
    /// Opaque events; no client crypto.
    Relay,
    /// Real Rooms: sign and seal, verify and open.
    Full,
}

/// What one fanout run measured, whichever its mode.
pub(crate) struct FanoutResult {
    pub(crate) published: u64,
    pub(crate) deliveries: u64,
    pub(crate) seconds: f64,
    pub(crate) latencies_us: Vec<u64>,
    pub(crate) wire_bytes: u64,
    pub(crate) relay: Option<(f64, u64)>,
}

/// Waits until a publisher that has sent `sent` since `start` may send
/// more (see [`allowed`]), and says how many; `None` once `deadline`
/// passed. `echo` counts the publisher's own events back and wakes it.
pub(crate) async fn next_allowed(
    rate: Option<f64>,
    start: Instant,
    sent: u64,
    echo: &(std::sync::atomic::AtomicU64, tokio::sync::Notify),
    window: u64,
    deadline: Instant,
) -> Option<u64> {
    while Instant::now() < deadline {
        let n = allowed(
            rate,
            start,
            sent,
            echo.0.load(std::sync::atomic::Ordering::Relaxed),
            window,
        );
        if n > 0 {
            return Some(n);
        }
        if rate.is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        } else {
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(50), echo.1.notified()).await;
        }
    }
    None
}

/// How many events a publisher may send now, having sent `sent`: at
/// `rate` per second since `start` (at most 256 at once), or else as many
/// as keep `window` of them unconfirmed beyond the `echoed` ones.
pub(crate) fn allowed(
    rate: Option<f64>,
    start: Instant,
    sent: u64,
    echoed: u64,
    window: u64,
) -> u64 {
    match rate {
        Some(r) => ((start.elapsed().as_secs_f64() * r) as u64)
            .saturating_sub(sent)
            .min(256),
        None => (echoed + window).saturating_sub(sent),
    }
}
