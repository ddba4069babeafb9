//! The relay's front door: binding, the accept loop with its admission
//! limits (connection slots, per-IP connections, handshake rate), and
//! shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hush_crypto::Identity;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::config::{RelayConfig, TokenBucket};
use crate::connection::{self, Shared};
use crate::hub::Hub;
use crate::keepalive::{self, Keepalive};
use crate::log::jetstream::{ClusterConfig, JetStreamHandle, JetStreamLog};
use crate::log::{EventLog, LogReader, ReaderPool, SqliteLog};
use crate::{LOG_FILE, RelayError, create_private_dir, sequencer, tickets};

/// How long shutdown waits for connections to close before it stops
/// anyway (committing everything accepted either way).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A bound relay, ready to [`Relay::run`].
pub struct Relay {
    listener: TcpListener,
    shared: Arc<Shared>,
    sequencer: std::thread::JoinHandle<()>,
    /// In a cluster: the shared stream, and the joins its consumer answers.
    cluster: Option<(JetStreamHandle, mpsc::Receiver<crate::cluster::JoinRequest>)>,
}

impl Relay {
    /// Opens (or creates) the log in `config.data_dir`, restores every
    /// room's head from it, and binds `addr`.
    ///
    /// # Errors
    /// [`RelayError`] naming what failed.
    pub async fn bind(
        addr: SocketAddr,
        identity: Arc<Identity>,
        config: RelayConfig,
    ) -> Result<Self, RelayError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RelayError::Bind { addr, source })?;
        Self::on_listener(listener, identity, config).await
    }

    /// [`Relay::bind`] on a socket already listening: `hush server` binds
    /// before it creates anything, so a port in use leaves no key or log
    /// behind (usability B15).
    ///
    /// # Errors
    /// As [`Relay::bind`], but for binding.
    pub async fn on_listener(
        listener: TcpListener,
        identity: Arc<Identity>,
        config: RelayConfig,
    ) -> Result<Self, RelayError> {
        Self::start(listener, identity, config, None).await
    }

    /// [`Relay::on_listener`] as one relay of a cluster (`hush server
    /// --cluster`): the log is the JetStream stream at `cluster`, shared
    /// with every other relay of it, and this relay delivers what that
    /// stream delivers (`cluster.rs`). The data folder still holds the
    /// relay's files and key.
    ///
    /// # Errors
    /// As [`Relay::on_listener`]; [`RelayError::Log`] if the cluster
    /// cannot be reached.
    pub async fn on_listener_clustered(
        listener: TcpListener,
        identity: Arc<Identity>,
        config: RelayConfig,
        cluster: ClusterConfig,
    ) -> Result<Self, RelayError> {
        Self::start(listener, identity, config, Some(cluster)).await
    }

    async fn start(
        listener: TcpListener,
        identity: Arc<Identity>,
        config: RelayConfig,
        cluster: Option<ClusterConfig>,
    ) -> Result<Self, RelayError> {
        create_private_dir(&config.data_dir)?;
        let path = config.data_dir.join(LOG_FILE);
        // No room is loaded here: the sequencer reads each room's head from
        // the log when the room is next used.
        type Backend = (
            Box<dyn EventLog>,
            Arc<dyn LogReader>,
            Option<(JetStreamHandle, mpsc::Receiver<crate::cluster::JoinRequest>)>,
            Option<mpsc::Sender<crate::cluster::JoinRequest>>,
        );
        let (log, readers, cluster, cluster_joins): Backend = match cluster {
            None => (
                Box::new(SqliteLog::open(&path)?),
                Arc::new(ReaderPool::new(path)),
                None,
                None,
            ),
            Some(c) => {
                let log = JetStreamLog::open(&c).await?;
                let handle = log.handle();
                let (joins_tx, joins_rx) = mpsc::channel(crate::cluster::JOIN_QUEUE);
                (
                    Box::new(log),
                    Arc::new(handle.clone()),
                    Some((handle, joins_rx)),
                    Some(joins_tx),
                )
            }
        };
        let hub = Hub::default();
        let (sequencer_tx, sequencer) = sequencer::spawn(
            log,
            hub.clone(),
            sequencer::SequencerConfig {
                identity: identity.clone(),
                retention: config.retention,
                capacity: config.limits.outbound_queue.max(1024),
                limits: config.limits.clone(),
                cluster_joins,
            },
        )
        .map_err(RelayError::Thread)?;
        let limits = config.limits;
        // Session tickets: a key and a ledger in the data folder, or in a
        // cluster one key and one ledger in KV buckets every relay shares,
        // so a ticket from any relay resumes once, on any.
        let lifetime_ms = u64::try_from(limits.ticket_lifetime.as_millis()).unwrap_or(u64::MAX);
        let (tickets, ledger) = if limits.ticket_lifetime.is_zero() {
            (None, None)
        } else {
            let (key, ledger) = match &cluster {
                None => {
                    let key = tickets::load_or_create_key(&config.data_dir)
                        .map_err(|e| RelayError::Tickets(e.to_string()))?;
                    let ledger =
                        tickets::TicketLedger::open(&config.data_dir, limits.tickets_per_identity)
                            .map_err(|e| RelayError::Tickets(e.to_string()))?;
                    (key, tickets::Ledger::Local(ledger))
                }
                Some((stream, _)) => {
                    let (key, ledger) = tickets::ClusterLedger::open(
                        stream,
                        limits.ticket_lifetime,
                        tickets::CLUSTER_LEDGER_MAX_BYTES,
                    )
                    .await
                    .map_err(RelayError::Tickets)?;
                    (key, tickets::Ledger::Cluster(Box::new(ledger)))
                }
            };
            let policy = hush_proto::handshake::TicketPolicy {
                key: Arc::new(hush_proto::ticket::TicketKey::new(key)),
                lifetime_ms,
            };
            (Some(policy), Some(ledger))
        };
        let keepalive = Arc::new(Keepalive::new(limits.idle_timeout));
        let blobs = Arc::new(
            crate::blobs::BlobStore::open(&config.data_dir, config.files.clone())
                .map_err(|e| RelayError::Files(e.to_string()))?,
        );
        let codes = crate::codes::Mailboxes::new(limits.code_expiry);
        let shared = Arc::new(Shared {
            tickets,
            ledger,
            identity,
            handshake_pool: Arc::new(Semaphore::new(limits.handshake_workers.max(1))),
            backfill_pool: Arc::new(Semaphore::new(limits.backfill_workers.max(1))),
            limits,
            hub,
            sequencer: sequencer_tx,
            readers,
            next_id: std::sync::atomic::AtomicU64::new(1),
            keepalive,
            blobs,
            codes,
        });
        Ok(Self {
            listener,
            shared,
            sequencer,
            cluster,
        })
    }

    /// The address actually bound (useful with port 0).
    ///
    /// # Errors
    /// If the socket cannot report it.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; then stops accepting, closes
    /// every connection (telling each why), commits everything already
    /// accepted, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self {
            listener,
            shared,
            sequencer,
            cluster,
        } = self;
        let limits = shared.limits.clone();
        let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let per_ip = Arc::new(Mutex::new(HashMap::<IpAddr, usize>::new()));
        let mut handshake_buckets = HashMap::<IpAddr, TokenBucket>::new();
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        tokio::pin!(shutdown);
        tokio::spawn(keepalive::keepalive_sweep(
            shared.keepalive.clone(),
            stop_rx.clone(),
        ));
        tokio::spawn(sweep_files(shared.blobs.clone(), stop_rx.clone()));
        let consumer = match cluster {
            Some((stream, joins)) => {
                match sequencer::spawn_checkpoint_signer(
                    shared.hub.clone(),
                    shared.identity.clone(),
                ) {
                    Ok(signer) => Some(tokio::spawn(crate::cluster::consume(
                        stream,
                        shared.hub.clone(),
                        signer,
                        joins,
                        stop_rx.clone(),
                    ))),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the checkpoint signer; stopping");
                        None
                    }
                }
            }
            None => None,
        };

        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                () = &mut shutdown => break,
            };
            let (stream, addr) = tokio::select! {
                a = accept(&listener) => a,
                () = &mut shutdown => break,
            };
            let ip = limit_key(addr.ip());
            let Some(ip_guard) = IpSlot::take(&per_ip, ip, limits.max_connections_per_ip) else {
                tracing::debug!(%ip, "per-IP connection limit reached");
                continue;
            };
            if handshake_buckets.len() > 10_000 {
                handshake_buckets.retain(|_, b| !b.is_full());
            }
            let bucket = handshake_buckets.entry(ip).or_insert_with(|| {
                TokenBucket::new(
                    limits.handshakes_per_ip_per_sec,
                    limits.handshakes_per_ip_per_sec.saturating_mul(2),
                )
            });
            if !bucket.try_take() {
                tracing::debug!(%ip, "per-IP handshake rate exceeded");
                continue;
            }
            let shared = shared.clone();
            let stop_rx = stop_rx.clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                connection::serve(stream, shared, stop_rx).await;
                drop(ip_guard);
                drop(permit);
                drop(done);
            });
        }

        tracing::info!("shutting down: closing connections");
        drop(listener);
        let _ = stop_tx.send(true);
        drop(done_tx);
        // Connections close promptly; none may hold the relay up forever.
        if tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time; stopping anyway");
        }
        // Every connection task is gone; dropping the last handle on the
        // shared state closes the sequencer's channel, and it commits what
        // it holds and exits.
        drop(shared);
        let _ = tokio::task::spawn_blocking(move || sequencer.join()).await;
        if let Some(c) = consumer {
            let _ = c.await;
        }
        tracing::info!("relay stopped; every accepted event is committed");
    }
}

/// Accepts the next connection, backing off on errors such as running out
/// of file descriptors instead of spinning or giving up.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    let mut backoff = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok(pair) => return pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The address per-IP limits count by: an IPv4 address, or an IPv6 /64
/// (one host usually has a whole /64 to pick addresses from).
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(std::net::Ipv6Addr::from(seg))
            }
        },
    }
}

/// A counted connection slot for one IP address; released on drop.
struct IpSlot {
    map: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl IpSlot {
    fn take(map: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, limit: usize) -> Option<Self> {
        let mut m = map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = m.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Self {
            map: map.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut m = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// How often expired files are deleted.
const FILE_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Deletes expired files at start and every [`FILE_SWEEP_EVERY`], on the
/// blocking pool, until the relay stops.
async fn sweep_files(store: Arc<crate::blobs::BlobStore>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(FILE_SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let store = store.clone();
        let swept =
            tokio::task::spawn_blocking(move || store.sweep(crate::sequencer::now_ms())).await;
        match swept {
            Ok(Ok(0)) | Err(_) => {}
            Ok(Ok(n)) => tracing::info!(files = n, "expired files deleted"),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot delete expired files"),
        }
    }
}
