//! `hush server`: flags (each also a `HUSH_` environment variable) →
//! `hush_server::RelayConfig`, the relay key, signals → shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hush_server::{Limits, Relay, RelayConfig, Retention};

use crate::keyfile;
use crate::paths::{default_data_dir, parse_duration, parse_size};

/// File name of the relay key generated in the data folder when `--key`
/// is not given.
const RELAY_KEY_FILE: &str = "relay-key.pem";

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on: IP:PORT, or an IP alone for port 40623.
    #[arg(long, env = "HUSH_BIND", default_value = "0.0.0.0:40623", value_parser = parse_bind)]
    bind: SocketAddr,
    /// Folder for the event log and the generated relay key
    /// [default: $XDG_DATA_HOME/hush/relay or ~/.local/share/hush/relay].
    #[arg(long, env = "HUSH_RELAY_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// The relay's identity key [default: DIR/relay-key.pem, generated on
    /// first start].
    #[arg(long, env = "HUSH_RELAY_KEY", value_name = "PATH")]
    key: Option<PathBuf>,
    /// Largest frame a peer may send, in bytes (4096 to 16777216).
    #[arg(long, env = "HUSH_MAX_FRAME_BYTES", default_value_t = hush_proto::DEFAULT_MAX_FRAME,
          value_parser = parse_frame_limit)]
    max_frame_bytes: usize,
    /// Connections held at once.
    #[arg(long, env = "HUSH_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Connections from one IP address.
    #[arg(long, env = "HUSH_MAX_CONNECTIONS_PER_IP", default_value_t = Limits::default().max_connections_per_ip)]
    max_connections_per_ip: usize,
    /// Time allowed to complete the handshake (e.g. 10s).
    #[arg(long, env = "HUSH_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// Close a connection silent for this long; pings keep live ones open (e.g. 90s).
    #[arg(long, env = "HUSH_IDLE_TIMEOUT", default_value = "90s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Sustained requests (publish, join, leave, backfill) per second per
    /// connection.
    #[arg(long, env = "HUSH_PUBLISH_RATE", default_value_t = Limits::default().publish_rate)]
    publish_rate: u32,
    /// Events per connection allowed in a burst above the rate.
    #[arg(long, env = "HUSH_PUBLISH_BURST", default_value_t = Limits::default().publish_burst)]
    publish_burst: u32,
    /// Commits (membership changes, rekeys) one identity may have
    /// sequenced in one room per minute.
    #[arg(long, env = "HUSH_COMMITS_PER_MINUTE", default_value_t = Limits::default().commits_per_minute)]
    commits_per_minute: u32,
    /// New rooms one identity may create per hour (the first event in a
    /// room creates it).
    #[arg(long, env = "HUSH_ROOMS_PER_HOUR", default_value_t = Limits::default().rooms_per_hour)]
    rooms_per_hour: u32,
    /// Rooms one connection may join.
    #[arg(long, env = "HUSH_MAX_ROOMS_PER_CONNECTION", default_value_t = Limits::default().max_rooms_per_connection)]
    max_rooms_per_connection: usize,
    /// Drop a room's head from memory after it is idle this long (e.g.
    /// 10m); it is read back from the log on next use.
    #[arg(long, env = "HUSH_ROOM_IDLE_AFTER", default_value = "10m", value_parser = parse_duration)]
    room_idle_after: Duration,
    /// Room heads held in memory at most (the least recently used go first).
    #[arg(long, env = "HUSH_MAX_RESIDENT_ROOMS", default_value_t = Limits::default().max_resident_rooms)]
    max_resident_rooms: usize,
    /// Messages one step of retention deletes at most between two batches
    /// of events.
    #[arg(long, env = "HUSH_PRUNE_CHUNK_EVENTS", default_value_t = Limits::default().prune_chunk_events)]
    prune_chunk_events: usize,
    /// Backfill reads run at once, apart from the handshake workers.
    #[arg(long, env = "HUSH_BACKFILL_WORKERS", default_value_t = Limits::default().backfill_workers)]
    backfill_workers: usize,
    /// Messages queued for a connection before it is dropped as too slow.
    #[arg(long, env = "HUSH_OUTBOUND_QUEUE", default_value_t = Limits::default().outbound_queue)]
    outbound_queue: usize,
    /// Bytes queued for a connection before it is dropped as too slow.
    #[arg(long, env = "HUSH_OUTBOUND_QUEUE_BYTES", default_value_t = Limits::default().outbound_queue_bytes)]
    outbound_queue_bytes: usize,
    /// Handshakes (RSA operations) processed at once [default: number of cores].
    #[arg(long, env = "HUSH_HANDSHAKE_WORKERS")]
    handshake_workers: Option<usize>,
    /// New handshakes per second from one IP address.
    #[arg(long, env = "HUSH_HANDSHAKES_PER_IP", default_value_t = Limits::default().handshakes_per_ip_per_sec)]
    handshakes_per_ip: u32,
    /// How long a session ticket lets a client reconnect without RSA
    /// (e.g. 7d); 0s issues none.
    #[arg(long, env = "HUSH_TICKET_LIFETIME", default_value = "7d", value_parser = parse_duration)]
    ticket_lifetime: Duration,
    /// Used session tickets remembered per identity; beyond it that
    /// identity's oldest tickets stop resuming (its newest always does).
    #[arg(long, env = "HUSH_TICKETS_PER_IDENTITY", default_value_t = Limits::default().tickets_per_identity)]
    tickets_per_identity: u32,
    /// Keep at most this many messages per room; membership events
    /// (commits, joins, leaves, invites, kicks) are always kept
    /// [default: unlimited].
    #[arg(long, env = "HUSH_RETENTION_EVENTS")]
    retention_events: Option<u64>,
    /// Delete messages older than this (e.g. 30d); membership events are
    /// always kept [default: keep forever].
    #[arg(long, env = "HUSH_RETENTION_AGE", value_parser = parse_duration)]
    retention_age: Option<Duration>,
    /// Read settings from this TOML file (keys are these flags' long names);
    /// a flag or a HUSH_ variable overrides the file.
    #[arg(long, env = "HUSH_RELAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print every setting, its value and where it came from (flag, env,
    /// file or default), and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (and /healthz) [default: none].
    /// Keep it on a private address: the figures are about your users' activity.
    #[arg(long, env = "HUSH_METRICS", value_name = "ADDR", value_parser = parse_bind)]
    metrics: Option<SocketAddr>,
    /// How to write the log on stderr: text, or json for log shippers.
    #[arg(long, env = "HUSH_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Largest file a member may send through this relay (its real size;
    /// the relay stores it sealed and padded, about 5% more).
    #[arg(long, env = "HUSH_MAX_FILE_SIZE", value_name = "SIZE", default_value = "100MiB", value_parser = parse_size)]
    max_file_size: u64,
    /// Sealed file bytes one identity may have stored at once.
    #[arg(long, env = "HUSH_FILE_QUOTA", value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    file_quota: u64,
    /// Delete a file this long after it was sent (e.g. 7d).
    #[arg(long, env = "HUSH_FILE_EXPIRY", value_name = "DURATION", default_value = "7d", value_parser = parse_duration)]
    file_expiry: Duration,
    /// Sealed file bytes all identities together may store (the disk's
    /// share for files).
    #[arg(long, env = "HUSH_FILES_TOTAL", value_name = "SIZE", default_value = "100GiB", value_parser = parse_size)]
    files_total: u64,
    /// How long an invitation code (/code) waits to be used before it is
    /// void (e.g. 10m).
    #[arg(long, env = "HUSH_CODE_EXPIRY", value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    code_expiry: Duration,
    /// Run as one relay of a cluster: keep the event log in the NATS
    /// JetStream stream HUSH_EVENTS on these servers (nats://HOST:PORT,
    /// comma-separated; nats://USER:PASS@HOST:PORT for a password)
    /// instead of the data folder's SQLite file. Every relay of the
    /// cluster needs the same --key. See docs/CLUSTER.md.
    #[arg(long, env = "HUSH_CLUSTER", value_name = "URLS", value_delimiter = ',')]
    cluster: Vec<String>,
    /// Verify the NATS servers' TLS certificates with this CA file (PEM),
    /// and require TLS.
    #[arg(
        long,
        env = "HUSH_CLUSTER_TLS_CA",
        value_name = "FILE",
        requires = "cluster"
    )]
    cluster_tls_ca: Option<PathBuf>,
}

fn parse_frame_limit(text: &str) -> Result<usize, String> {
    const MAX: usize = hush_proto::frame::MAX_FRAME_CEILING;
    let min = hush_proto::frame::MIN_MAX_FRAME;
    match text.trim().parse::<usize>() {
        Ok(n) if (min..=MAX).contains(&n) => Ok(n),
        _ => Err(format!("use a number of bytes from {min} to {MAX}")),
    }
}

/// `--bind`: `IP:PORT`, `[V6]:PORT`, or an IP alone for the default port
/// (usability F19: the client accepts a host without a port too).
fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = t
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(t);
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, hush_proto::DEFAULT_PORT));
    }
    Err(format!(
        "give an IP address and port such as 0.0.0.0:{port} or 127.0.0.1 (port {port}); a host name is not accepted, its address is",
        port = hush_proto::DEFAULT_PORT
    ))
}

pub fn run(args: ServerArgs) -> Result<()> {
    init_logging(args.log_format);
    // Bind first: a port in use must fail before a key or a log is made
    // (usability B15).
    let listener = std::net::TcpListener::bind(args.bind)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .with_context(|| {
            format!(
                "cannot listen on {}: is another relay (or program) using it? Stop it, or give another --bind",
                args.bind
            )
        })?;
    let metrics = match args.metrics {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .with_context(|| {
                    format!("cannot serve metrics on {addr}: give another --metrics")
                })?,
        ),
        None => None,
    };
    let data = match args.data.clone() {
        Some(d) => d,
        None => default_data_dir("relay")?,
    };
    hush_server::create_private_dir(&data)?;
    let identity = Arc::new(relay_identity(args.key.as_deref(), &data)?);
    let defaults = Limits::default();
    let limits = Limits {
        max_frame_bytes: args.max_frame_bytes,
        max_connections: args.max_connections.max(1),
        max_connections_per_ip: args.max_connections_per_ip.max(1),
        handshake_timeout: args.handshake_timeout,
        idle_timeout: args.idle_timeout.max(Duration::from_millis(300)),
        publish_rate: args.publish_rate.max(1),
        publish_burst: args.publish_burst.max(1),
        commits_per_minute: args.commits_per_minute.max(1),
        rooms_per_hour: args.rooms_per_hour.max(1),
        max_rooms_per_connection: args.max_rooms_per_connection.max(1),
        room_idle_after: args.room_idle_after,
        max_resident_rooms: args.max_resident_rooms.max(1),
        prune_chunk_events: args.prune_chunk_events.max(1),
        backfill_workers: args.backfill_workers.max(1),
        outbound_queue: args.outbound_queue.max(16),
        outbound_queue_bytes: args.outbound_queue_bytes,
        handshake_workers: args
            .handshake_workers
            .unwrap_or(defaults.handshake_workers)
            .max(1),
        handshakes_per_ip_per_sec: args.handshakes_per_ip.max(1),
        ticket_lifetime: args.ticket_lifetime,
        tickets_per_identity: args.tickets_per_identity.max(1),
        code_expiry: args.code_expiry.max(Duration::from_secs(1)),
    };
    let retention = Retention {
        max_events: args.retention_events,
        max_age_ms: args
            .retention_age
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    };
    let files = hush_server::blobs::BlobLimits {
        // What the relay stores for a file of that size.
        max_file_bytes: hush_crypto::file::sealed_len(args.max_file_size),
        quota_per_identity: args.file_quota,
        expiry: args.file_expiry,
        max_total_bytes: args.files_total,
        ..hush_server::blobs::BlobLimits::default()
    };
    let config = RelayConfig {
        data_dir: data.clone(),
        limits,
        retention,
        files,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        let relay = if args.cluster.is_empty() {
            Relay::on_listener(listener, identity.clone(), config).await?
        } else {
            let mut cluster = hush_server::log::jetstream::ClusterConfig::new(args.cluster.clone());
            cluster.tls_ca = args.cluster_tls_ca.clone();
            println!(
                "cluster log: JetStream stream {} on {}",
                cluster.stream,
                redact(&args.cluster)
            );
            Relay::on_listener_clustered(listener, identity.clone(), config, cluster).await?
        };
        let (_metrics_stop, stop) = tokio::sync::watch::channel(false);
        if let Some(l) = metrics {
            let l = tokio::net::TcpListener::from_std(l).context("cannot serve metrics")?;
            println!("metrics at http://{}/metrics", l.local_addr()?);
            tokio::spawn(hush_server::metrics::serve(l, stop));
        }
        let addr = relay.local_addr()?;
        println!("hush relay listening on {addr}");
        println!("relay fingerprint: {}", identity.fingerprint());
        println!("data folder: {}", data.display());
        tracing::info!(%addr, fingerprint = %identity.fingerprint(), "relay started");
        relay.run(shutdown_signal()).await;
        println!("hush relay stopped");
        Ok(())
    })
}

/// The cluster URLs without any password in them, for printing.
fn redact(urls: &[String]) -> String {
    urls.iter()
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &u[..scheme + 3], &u[at..])
            }
            _ => u.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn relay_identity(
    key: Option<&std::path::Path>,
    data: &std::path::Path,
) -> Result<hush_crypto::Identity> {
    if let Some(path) = key {
        return keyfile::load_identity(path);
    }
    let path = data.join(RELAY_KEY_FILE);
    if path.exists() {
        return keyfile::load_identity(&path);
    }
    let identity = super::with_spinner("generating the relay's key", || {
        hush_crypto::Identity::generate(hush_crypto::DEFAULT_BITS)
    })?;
    keyfile::write_identity(&path, &identity, None, false)?;
    println!("generated relay key {}", path.display());
    Ok(identity)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("signal received");
}

/// Logs on stderr: lines for a person, or one JSON object per event for
/// a log shipper (`--log-format json`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// How the relay writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for a person.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[cfg(test)]
mod tests {
    use super::{parse_bind, redact};

    #[test]
    fn cluster_urls_are_printed_without_passwords() {
        let urls = vec![
            "nats://hush:s3cret@10.0.0.1:4222".to_owned(),
            "nats://10.0.0.2:4222".to_owned(),
        ];
        assert_eq!(
            redact(&urls),
            "nats://***@10.0.0.1:4222,nats://10.0.0.2:4222"
        );
    }

    #[test]
    fn bind_takes_an_ip_with_or_without_a_port() {
        assert_eq!(
            parse_bind("127.0.0.1").map(|a| a.to_string()),
            Ok("127.0.0.1:40623".to_owned())
        );
        assert_eq!(
            parse_bind("0.0.0.0:5000").map(|a| a.to_string()),
            Ok("0.0.0.0:5000".to_owned())
        );
        assert_eq!(
            parse_bind("::1").map(|a| a.to_string()),
            Ok("[::1]:40623".to_owned())
        );
        assert_eq!(
            parse_bind("[::1]").map(|a| a.to_string()),
            Ok("[::1]:40623".to_owned())
        );
        assert!(parse_bind("localhost").is_err());
        assert!(parse_bind("1.2.3.4:99999").is_err());
    }
}
