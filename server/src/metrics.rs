//! The relay's metrics, in the Prometheus text format (`hush server
//! --metrics ADDR` serves them at `/metrics`, and `ok` at `/healthz`).
//!
//! ```text
//!   connection.rs ─▶ connections, handshakes, bytes in/out, rate-limited,
//!                    backfills, file chunks stored/served
//!   sequencer.rs  ─▶ events appended, log commit seconds (histogram)
//!   hub.rs        ─▶ events delivered, slow consumers cut off
//!   /metrics      ─▶ prometheus-client's text encoding of all of them
//! ```
//!
//! No label carries a room name, a fingerprint or an address: metadata
//! stays out of metrics. The figures are the process's (one relay per
//! process, as `hush server` runs).

use std::sync::OnceLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every figure the relay keeps.
pub struct Metrics {
    registry: Registry,
    /// Connections past their handshake, now.
    pub connections: Gauge,
    /// Connections accepted and still in their handshake, now.
    pub handshaking: Gauge,
    /// Rooms with someone connected, now.
    pub rooms: Gauge,
    /// Handshakes by outcome (`full`, `resumed`, `failed`, `timeout`).
    pub handshakes: Family<Vec<(String, String)>, Counter>,
    /// Room events committed to the log.
    pub events_appended: Counter,
    /// Room events queued to connections (one per recipient).
    pub events_delivered: Counter,
    /// Bytes read from clients.
    pub bytes_in: Counter,
    /// Bytes written to clients.
    pub bytes_out: Counter,
    /// Connections cut off for reading too slowly.
    pub slow_consumers: Counter,
    /// Requests that waited for their rate limit.
    pub rate_limited: Counter,
    /// Backfill requests served.
    pub backfills: Counter,
    /// Seconds each log commit (a group of events, one fsync) took.
    pub commit_seconds: Histogram,
    /// Sealed file chunks stored.
    pub file_chunks_stored: Counter,
    /// Sealed file chunks served.
    pub file_chunks_served: Counter,
    /// Invitation-code mailboxes opened.
    pub codes_opened: Counter,
    /// Invitation-code mailboxes claimed (each spends its code).
    pub codes_claimed: Counter,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("hush_relay");
        let m = Self {
            registry: Registry::default(),
            connections: Gauge::default(),
            rooms: Gauge::default(),
            handshaking: Gauge::default(),
            handshakes: Family::default(),
            events_appended: Counter::default(),
            events_delivered: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            slow_consumers: Counter::default(),
            rate_limited: Counter::default(),
            backfills: Counter::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 14)),
            file_chunks_stored: Counter::default(),
            file_chunks_served: Counter::default(),
            codes_opened: Counter::default(),
            codes_claimed: Counter::default(),
        };
        registry.register(
            "connections",
            "Connections past their handshake",
            m.connections.clone(),
        );
        registry.register("rooms", "Rooms with someone connected", m.rooms.clone());
        registry.register(
            "handshaking",
            "Connections accepted and still in their handshake",
            m.handshaking.clone(),
        );
        registry.register("handshakes", "Handshakes by outcome", m.handshakes.clone());
        registry.register(
            "events_appended",
            "Room events committed to the log",
            m.events_appended.clone(),
        );
        registry.register(
            "events_delivered",
            "Room events queued to connections, one per recipient",
            m.events_delivered.clone(),
        );
        registry.register(
            "received_bytes",
            "Bytes read from clients",
            m.bytes_in.clone(),
        );
        registry.register(
            "sent_bytes",
            "Bytes written to clients",
            m.bytes_out.clone(),
        );
        registry.register(
            "slow_consumers",
            "Connections cut off for reading too slowly",
            m.slow_consumers.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests that waited for their rate limit",
            m.rate_limited.clone(),
        );
        registry.register("backfills", "Backfill requests served", m.backfills.clone());
        registry.register(
            "log_commit_seconds",
            "Seconds each log commit (one fsync) took",
            m.commit_seconds.clone(),
        );
        registry.register(
            "file_chunks_stored",
            "Sealed file chunks stored",
            m.file_chunks_stored.clone(),
        );
        registry.register(
            "file_chunks_served",
            "Sealed file chunks served",
            m.file_chunks_served.clone(),
        );
        registry.register(
            "codes_opened",
            "Invitation-code mailboxes opened",
            m.codes_opened.clone(),
        );
        registry.register(
            "codes_claimed",
            "Invitation-code mailboxes claimed (each spends its code)",
            m.codes_claimed.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts one handshake with `outcome`.
    pub fn handshake(&self, outcome: &str) {
        self.handshakes
            .get_or_create(&vec![("outcome".to_owned(), outcome.to_owned())])
            .inc();
    }

    /// The Prometheus text exposition of every figure.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Serves `/metrics` and `/healthz` on `listener` until `stop` changes:
/// one request per connection, HTTP/1.0-style, nothing else.
pub async fn serve(
    listener: tokio::net::TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let (mut stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        };
        tokio::spawn(async move {
            // The request head, up to its blank line (4 KiB at most, 5 s).
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                match tokio::time::timeout_at(deadline, stream.read(&mut buf[n..])).await {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                    Ok(Ok(k)) => n += k,
                }
            }
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, body, kind) = match path {
                "/metrics" => (
                    "200 OK",
                    metrics().render(),
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
                "/healthz" => ("200 OK", "ok\n".to_owned(), "text/plain"),
                _ => (
                    "404 Not Found",
                    "only /metrics and /healthz are here\n".to_owned(),
                    "text/plain",
                ),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
