//! `hush bench`: measures a relay the way `redis-benchmark` measures Redis.
//!
//! ```text
//!   hush bench fanout ──▶ starts `hush server` on 127.0.0.1:0 (or uses --server)
//!        │                 M members connect (real handshakes) and join #bench
//!        │                 P of them publish opaque room events of S bytes
//!        └─ table on stdout: deliveries/s, latency, losses, bytes, relay CPU and RSS
//! ```
//!
//! `--crypto relay` (the only mode so far) sends valid, opaque room events
//! of realistic size: the relay does all its real work (sequencing, group
//! commit, fan-out, sealing) while the clients skip end-to-end crypto, so
//! what is measured is the relay's cost.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hush_client::link::Connection;
use hush_crypto::Identity;
use hush_proto::{ClientMsg, EventKind, RelayMsg, RoomEvent, RoomName};
use tokio::sync::Notify;

use crate::paths::parse_duration;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Debug, clap::Subcommand)]
enum Workload {
    /// Members in one room; publishers send, everyone receives.
    Fanout(FanoutArgs),
    /// Connections handshaken and joined to one room, then idle: the
    /// relay's memory per connection.
    Idle(IdleArgs),
    /// Full and resumed handshakes per second (or, with --reconnect,
    /// clients back after a relay restart).
    Handshake(HandshakeArgs),
    /// The cryptographic operations hush is built from, one core.
    Crypto(CryptoArgs),
    /// Time to admit a newcomer to a room of M members, end to end.
    Admit(crate::bench_admit::AdmitArgs),
}

#[derive(Debug, clap::Args)]
struct IdleArgs {
    /// Connections to hold.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct CryptoArgs {
    /// Time spent on each operation (e.g. 1s).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    duration: Duration,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct HandshakeArgs {
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Instead: hold this many connections, restart the relay, and time
    /// how long they all take to reconnect (resuming their tickets) and
    /// rejoin their room.
    #[arg(long, value_name = "CLIENTS")]
    reconnect: Option<usize>,
    /// How long to keep handshaking (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

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

/// Bytes at the start of every bench body: publisher, counter, send time.
const HEADER: usize = 20;

pub fn run(args: BenchArgs) -> Result<()> {
    match args.workload {
        Workload::Fanout(a) => fanout(a),
        Workload::Idle(a) => idle(&a),
        Workload::Handshake(a) => handshake(&a),
        Workload::Crypto(a) => crypto(&a),
        Workload::Admit(a) => crate::bench_admit::run(&a),
    }
}

/// A relay started by the bench, the bench identity, and a runtime.
fn local_setup() -> Result<(ChildRelay, Arc<Identity>, tokio::runtime::Runtime)> {
    let (identity, key_path) = bench_identity()?;
    let relay = start_relay(&key_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok((relay, identity, runtime))
}

fn idle(a: &IdleArgs) -> Result<()> {
    if a.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let (relay, identity, runtime) = local_setup()?;
    let pid = relay.child.id();
    let before = proc_usage(pid).context("cannot read the relay's memory from /proc")?;
    let addr = relay.addr.clone();
    let clients = a.clients;
    let held = runtime.block_on(async move {
        let room = RoomName::new("bench-idle")?;
        let mut held = Vec::with_capacity(clients);
        for i in 0..clients {
            if i % 500 == 0 {
                eprintln!("connected {i} of {clients}");
            }
            let c = join(&addr, &identity, &room, hush_proto::DEFAULT_MAX_FRAME)
                .await
                .with_context(|| format!("client {i} could not join"))?;
            held.push(c);
        }
        anyhow::Ok(held)
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let after = proc_usage(pid).context("cannot read the relay's memory from /proc")?;
    let current_kib = proc_status_kib(pid, "VmRSS:").unwrap_or(after.1);
    let per_conn = (current_kib.saturating_sub(before.1)) as f64 / a.clients as f64;
    drop(held);
    drop(relay);
    if a.json {
        println!(
            "{{\"workload\":\"idle\",\"clients\":{},\"relay_rss_kib_before\":{},\"relay_rss_kib\":{},\"relay_rss_kib_per_connection\":{:.2}}}",
            a.clients, before.1, current_kib, per_conn
        );
    } else {
        println!(
            "hush bench idle: {} connections handshaken and joined to one room",
            a.clients
        );
        println!("  relay RSS before       {:>10} KiB", before.1);
        println!("  relay RSS with them    {:>10} KiB", current_kib);
        println!("  per connection         {per_conn:>10.2} KiB");
    }
    Ok(())
}

/// Runs `op` repeatedly for about `duration`; returns operations per
/// second on this one thread.
fn ops_per_s(duration: Duration, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while n < 3 || start.elapsed() < duration {
        op();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn crypto(a: &CryptoArgs) -> Result<()> {
    use hush_crypto::{NonceCounter, SealingKey, Secret32};
    let (identity, _) = bench_identity()?;
    let bits = identity.public().bits();
    let d = a.duration;
    let public = identity.public().clone();
    let wrapped = public.wrap("bench", &Secret32::random())?;
    let signature = identity.sign("bench", b"message")?;
    let mut rows: Vec<(String, f64, Option<f64>)> = Vec::new();
    eprintln!("RSA-{bits} private-key operations");
    rows.push((
        format!("RSA-{bits} OAEP unwrap (relay, per full handshake)"),
        ops_per_s(d, || {
            let _ = identity.unwrap_or_random("bench", wrapped.as_bytes());
        }),
        None,
    ));
    rows.push((
        format!("RSA-{bits} PSS sign (client, per full handshake)"),
        ops_per_s(d, || {
            let _ = identity.sign("bench", b"message");
        }),
        None,
    ));
    eprintln!("RSA-{bits} public-key operations");
    rows.push((
        format!("RSA-{bits} PSS verify"),
        ops_per_s(d, || {
            let _ = public.verify("bench", b"message", signature.as_bytes());
        }),
        None,
    ));
    rows.push((
        format!("RSA-{bits} OAEP wrap"),
        ops_per_s(d, || {
            let _ = public.wrap("bench", &Secret32::from_bytes([1; 32]));
        }),
        None,
    ));
    eprintln!("symmetric operations");
    let key = SealingKey::new(&Secret32::from_bytes([2; 32]));
    for size in [256usize, 16 * 1024, 64 * 1024] {
        let mut buf = vec![0u8; size];
        let mut counter = NonceCounter::new();
        let rate = ops_per_s(d, || {
            if let Ok(n) = counter.next_nonce() {
                let _ = key.seal_in_place(n, b"aad", &mut buf);
            }
        });
        rows.push((
            format!("AES-256-GCM seal, {size} B"),
            rate,
            Some(rate * size as f64 / 1e6),
        ));
    }
    let data = vec![0u8; 16 * 1024];
    let rate = ops_per_s(d, || {
        let _ = hush_crypto::sha256(&data);
    });
    rows.push((
        "SHA-256, 16 KiB".into(),
        rate,
        Some(rate * data.len() as f64 / 1e6),
    ));
    let secret = Secret32::from_bytes([3; 32]);
    rows.push((
        "HKDF-SHA-256 derive (32 B)".into(),
        ops_per_s(d, || {
            let _ = hush_crypto::derive_secret(&secret, b"salt", b"info");
        }),
        None,
    ));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let unwrap_rate = rows.first().map_or(0.0, |r| r.1);
    let ceiling = cores as f64 * unwrap_rate;
    // The same unwrap on every core at once: cores that share execution
    // units or a host (SMT siblings, a busy hypervisor) are slower
    // together than one alone, and a relay under a handshake load uses
    // them all.
    eprintln!("RSA-{bits} unwrap on {cores} cores at once");
    let all_cores: f64 = std::thread::scope(|s| {
        let runs: Vec<_> = (0..cores)
            .map(|_| {
                s.spawn(|| {
                    ops_per_s(d, || {
                        let _ = identity.unwrap_or_random("bench", wrapped.as_bytes());
                    })
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap_or(0.0)).sum()
    });
    if a.json {
        let ops: Vec<String> = rows
            .iter()
            .map(|(name, rate, mbs)| {
                format!(
                    "{{\"op\":\"{name}\",\"per_s\":{rate:.1},\"us\":{:.3},\"mb_per_s\":{}}}",
                    1e6 / rate,
                    mbs.map_or("null".into(), |m| format!("{m:.1}"))
                )
            })
            .collect();
        println!(
            "{{\"workload\":\"crypto\",\"rsa_bits\":{bits},\"cores\":{cores},\"full_handshake_ceiling_per_s\":{ceiling:.1},\"unwrap_all_cores_per_s\":{all_cores:.1},\"ops\":[{}]}}",
            ops.join(",")
        );
    } else {
        println!("hush bench crypto: one core, RSA-{bits} bench identity");
        println!(
            "  {:<52} {:>12} {:>12} {:>10}",
            "operation", "per s", "µs each", "MB/s"
        );
        for (name, rate, mbs) in &rows {
            println!(
                "  {name:<52} {rate:>12.1} {:>12.2} {:>10}",
                1e6 / rate,
                mbs.map_or(String::new(), |m| format!("{m:.0}"))
            );
        }
        println!(
            "  full-handshake ceiling: {cores} cores × {unwrap_rate:.1} unwraps/s = {ceiling:.0}/s (the relay's one private-key operation per handshake)"
        );
        println!(
            "  measured on {cores} cores at once: {all_cores:.0} unwraps/s ({:.0}% of the ceiling)",
            100.0 * all_cores / ceiling.max(f64::MIN_POSITIVE)
        );
    }
    Ok(())
}

/// A `kB` figure from a process's `/proc/PID/status` (`VmRSS:`, `VmHWM:`).
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Handshakes of one kind, `concurrency` at a time for `duration`: full
/// ones, or resumed ones (each task resumes with the ticket its last
/// handshake got).
async fn handshake_round(
    addr: &str,
    identity: &Arc<Identity>,
    concurrency: usize,
    duration: Duration,
    resume: bool,
) -> (u64, u64, u64, f64) {
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let addr = addr.to_owned();
        let identity = identity.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut bad, mut resumed) = (0u64, 0u64, 0u64);
            let mut ticket = None;
            while Instant::now() < deadline {
                let offer = if resume { ticket.take() } else { None };
                match Connection::connect_resuming(
                    &addr,
                    identity.clone(),
                    hush_proto::DEFAULT_MAX_FRAME,
                    offer,
                    |_| Ok(()),
                )
                .await
                {
                    Ok(c) => {
                        ok += 1;
                        resumed += u64::from(c.resumed);
                        ticket = c.ticket;
                    }
                    Err(_) => bad += 1,
                }
            }
            (ok, bad, resumed)
        }));
    }
    let (mut ok, mut bad, mut resumed) = (0, 0, 0);
    for t in tasks {
        if let Ok((o, b, r)) = t.await {
            ok += o;
            bad += b;
            resumed += r;
        }
    }
    (ok, bad, resumed, start.elapsed().as_secs_f64())
}

fn handshake(a: &HandshakeArgs) -> Result<()> {
    if let Some(clients) = a.reconnect {
        return reconnect(clients.max(1), a.concurrency.max(1), a.json);
    }
    let (relay, identity, runtime) = local_setup()?;
    let pid = relay.child.id();
    let addr = relay.addr.clone();
    let concurrency = a.concurrency.max(1);
    let duration = a.duration;
    let mut rows = Vec::new();
    for resume in [false, true] {
        let kind = if resume { "resumed" } else { "full" };
        eprintln!("{kind} handshakes for {duration:?}, {concurrency} at a time");
        let before = proc_usage(pid);
        let (done, failed, resumed, seconds) = runtime.block_on(handshake_round(
            &addr,
            &identity,
            concurrency,
            duration,
            resume,
        ));
        let after = proc_usage(pid);
        let cpu_ms = match (before, after) {
            (Some((c0, _)), Some((c1, _))) if done > 0 => Some((c1 - c0) / done as f64 * 1000.0),
            _ => None,
        };
        rows.push((
            kind,
            done,
            failed,
            resumed,
            done as f64 / seconds,
            seconds,
            cpu_ms,
        ));
    }
    drop(relay);
    if a.json {
        let parts: Vec<String> = rows
            .iter()
            .map(|(kind, done, failed, resumed, rate, seconds, cpu)| {
                format!(
                    "\"{kind}\":{{\"seconds\":{seconds:.2},\"handshakes\":{done},\"failed\":{failed},\"resumed\":{resumed},\"handshakes_per_s\":{rate:.1},\"relay_cpu_ms_per_handshake\":{}}}",
                    cpu.map_or("null".into(), |c| format!("{c:.3}"))
                )
            })
            .collect();
        println!(
            "{{\"workload\":\"handshake\",\"concurrency\":{concurrency},{}}}",
            parts.join(",")
        );
    } else {
        println!("hush bench handshake: {concurrency} at a time, {duration:?} each");
        println!("  kind        handshakes        per s   failed  relay CPU / handshake");
        for (kind, done, failed, resumed, rate, _, cpu) in &rows {
            let note = if *kind == "resumed" {
                format!("  ({resumed} resumed)")
            } else {
                String::new()
            };
            println!(
                "  {kind:<8} {done:>13} {rate:>12.1} {failed:>8}  {}{note}",
                cpu.map_or("-".into(), |c| format!("{c:.3} ms"))
            );
        }
    }
    Ok(())
}

/// `--reconnect N`: N connections joined to a room; the relay is killed
/// and restarted on the same port and data folder; every client
/// reconnects (offering its ticket, `concurrency` at a time) and rejoins.
fn reconnect(clients: usize, concurrency: usize, json: bool) -> Result<()> {
    let (identity, key_path) = bench_identity()?;
    let mut relay = start_relay(&key_path)?;
    let addr = relay.addr.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let room = RoomName::new("bench-reconnect")?;
    eprintln!("connecting {clients} clients (full handshakes)");
    let tickets = runtime.block_on(async {
        let mut held = Vec::with_capacity(clients);
        for i in 0..clients {
            if i % 500 == 0 {
                eprintln!("connected {i} of {clients}");
            }
            held.push(
                join(&addr, &identity, &room, hush_proto::DEFAULT_MAX_FRAME)
                    .await
                    .with_context(|| format!("client {i} could not join"))?,
            );
        }
        anyhow::Ok(held)
    })?;
    let tickets: Vec<_> = tickets.into_iter().map(|c| c.ticket).collect();
    eprintln!("restarting the relay");
    relay.restart()?;
    let start = Instant::now();
    let (back, resumed) = runtime.block_on(async {
        let queue = Arc::new(std::sync::Mutex::new(tickets));
        let mut tasks = Vec::new();
        for _ in 0..concurrency.min(clients) {
            let queue = queue.clone();
            let (addr, identity, room) = (addr.clone(), identity.clone(), room.clone());
            tasks.push(tokio::spawn(async move {
                let (mut back, mut resumed, mut held) = (0u64, 0u64, Vec::new());
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop());
                    let Some(ticket) = next else { break };
                    let Ok(mut c) = Connection::connect_resuming(
                        &addr,
                        identity.clone(),
                        hush_proto::DEFAULT_MAX_FRAME,
                        ticket,
                        |_| Ok(()),
                    )
                    .await
                    else {
                        continue;
                    };
                    if c.writer
                        .send(&ClientMsg::Join { room: room.clone() })
                        .await
                        .is_err()
                    {
                        continue;
                    }
                    while let Ok(m) = c.reader.recv().await {
                        if let RelayMsg::Joined { .. } = m {
                            back += 1;
                            resumed += u64::from(c.resumed);
                            break;
                        }
                    }
                    held.push(c);
                }
                (back, resumed, held)
            }));
        }
        let (mut back, mut resumed, mut held) = (0, 0, Vec::new());
        for t in tasks {
            if let Ok((b, r, h)) = t.await {
                back += b;
                resumed += r;
                held.extend(h);
            }
        }
        (back, resumed)
    });
    let seconds = start.elapsed().as_secs_f64();
    drop(relay);
    if json {
        println!(
            "{{\"workload\":\"handshake-reconnect\",\"clients\":{clients},\"concurrency\":{concurrency},\"back\":{back},\"resumed\":{resumed},\"seconds\":{seconds:.3}}}"
        );
    } else {
        println!("hush bench handshake --reconnect: {clients} clients, relay restarted");
        println!("  back and rejoined      {back:>10}   ({resumed} resumed a ticket)");
        println!("  all back after         {seconds:>10.3} s");
    }
    Ok(())
}

/// The relay under test, when the bench starts it.
pub(crate) struct ChildRelay {
    pub(crate) child: std::process::Child,
    pub(crate) addr: String,
    dir: PathBuf,
    key: PathBuf,
    extra: Vec<String>,
}

impl ChildRelay {
    /// Kills the relay (SIGKILL) and starts it again on the same address
    /// and data folder.
    fn restart(&mut self) -> Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, addr) = spawn_relay(&self.key, &self.dir, &self.addr, &self.extra)?;
        self.child = child;
        self.addr = addr;
        Ok(())
    }
}

impl Drop for ChildRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_relay(key: &Path) -> Result<ChildRelay> {
    start_relay_in(key, &std::env::temp_dir(), &[])
}

/// [`start_relay`] with more `hush server` flags (a later flag wins).
pub(crate) fn start_relay_with(key: &Path, extra: &[String]) -> Result<ChildRelay> {
    start_relay_in(key, &std::env::temp_dir(), extra)
}

/// Starts a relay whose data folder is a fresh folder under `base`.
fn start_relay_in(key: &Path, base: &Path, extra: &[String]) -> Result<ChildRelay> {
    let dir = base.join(format!("hush-bench-{}", std::process::id()));
    let (child, addr) = spawn_relay(key, &dir, "127.0.0.1:0", extra)?;
    Ok(ChildRelay {
        child,
        addr,
        dir,
        key: key.to_owned(),
        extra: extra.to_vec(),
    })
}

fn spawn_relay(
    key: &Path,
    dir: &Path,
    bind: &str,
    extra: &[String],
) -> Result<(std::process::Child, String)> {
    use std::io::BufRead;
    let exe = std::env::current_exe().context("cannot find the hush binary")?;
    let mut child = std::process::Command::new(exe)
        .args(["server", "--bind", bind, "--data"])
        .arg(dir)
        .arg("--key")
        .arg(key)
        .args([
            "--max-connections",
            "100000",
            "--max-connections-per-ip",
            "100000",
            "--handshakes-per-ip",
            "100000",
            "--publish-rate",
            "100000000",
            "--publish-burst",
            "100000000",
            "--outbound-queue",
            "1000000",
            "--outbound-queue-bytes",
            "1073741824",
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .context("cannot start the relay")?;
    let stdout = child.stdout.take().context("relay stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let addr = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(a) = line.strip_prefix("hush relay listening on ") {
                    break a.trim().to_owned();
                }
            }
            _ => bail!("the relay exited before listening"),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok((child, addr))
}

/// CPU seconds and peak RSS (KiB) of a process, from /proc.
pub(crate) fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hwm = proc_status_kib(pid, "VmHWM:")?;
    // Linux reports CPU time in clock ticks of 1/100 s (USER_HZ).
    Some((ticks as f64 / 100.0, hwm))
}

pub(crate) fn bench_identity() -> Result<(Arc<Identity>, PathBuf)> {
    let dir = crate::paths::default_data_dir("bench")?;
    hush_server::create_private_dir(&dir)?;
    let path = dir.join("bench-key.pem");
    if !path.exists() {
        eprintln!("generating the bench identity once ({})", path.display());
        let id = Identity::generate(hush_crypto::DEFAULT_BITS)?;
        crate::write_identity(&path, &id, None, false)?;
    }
    Ok((Arc::new(crate::keyfile::load_identity(&path)?), path))
}

/// Connects (a full handshake) and joins `room`, returning once the relay
/// confirmed the join.
async fn join(
    addr: &str,
    identity: &Arc<Identity>,
    room: &RoomName,
    max_frame: usize,
) -> Result<Connection> {
    let mut c = Connection::connect(addr, identity.clone(), max_frame, |_| Ok(())).await?;
    c.writer
        .send(&ClientMsg::Join { room: room.clone() })
        .await?;
    loop {
        if let RelayMsg::Joined { .. } = c.reader.recv().await? {
            return Ok(c);
        }
    }
}

/// What the members measured.
#[derive(Default)]
struct Tally {
    deliveries: AtomicU64,
    bytes: AtomicU64,
}

fn fanout(a: FanoutArgs) -> Result<()> {
    if a.members == 0 || a.publishers == 0 || a.publishers > a.members {
        bail!("need at least one member and one publisher, and no more publishers than members");
    }
    if a.size < HEADER {
        bail!("--size must be at least {HEADER} bytes");
    }
    let window = a.window.unwrap_or(32).max(1);
    let (identity, key_path) = bench_identity()?;
    let relay = match &a.server {
        Some(_) => None,
        None => Some(match &a.log_dir {
            Some(base) => start_relay_in(&key_path, base, &[])?,
            None => start_relay(&key_path)?,
        }),
    };
    let addr = a
        .server
        .clone()
        .or_else(|| relay.as_ref().map(|r| r.addr.clone()))
        .context("no relay")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let pid = relay.as_ref().map(|r| r.child.id());
    let result = match a.crypto {
        Crypto::Relay => runtime.block_on(run_fanout(&a, window, &addr, identity, pid))?,
        Crypto::Full => runtime.block_on(crate::bench_full::run_fanout_full(
            &a, window, &addr, identity, pid,
        ))?,
    };
    drop(relay);
    print_results(&a, window, &result);
    Ok(())
}

pub(crate) struct FanoutResult {
    pub(crate) published: u64,
    pub(crate) deliveries: u64,
    pub(crate) seconds: f64,
    pub(crate) latencies_us: Vec<u64>,
    pub(crate) wire_bytes: u64,
    pub(crate) relay: Option<(f64, u64)>,
}

async fn run_fanout(
    a: &FanoutArgs,
    window: u64,
    addr: &str,
    identity: Arc<Identity>,
    pid: Option<u32>,
) -> Result<FanoutResult> {
    let room = RoomName::new("bench")?;
    eprintln!("connecting {} members to {addr}", a.members);
    let mut conns = Vec::with_capacity(a.members);
    for i in 0..a.members {
        let c = join(addr, &identity, &room, hush_proto::DEFAULT_MAX_FRAME * 16)
            .await
            .with_context(|| format!("member {i} could not join"))?;
        conns.push(c);
    }
    let before = pid.and_then(proc_usage);
    let t0 = Instant::now();
    let stop = Arc::new(Notify::new());
    let tally = Arc::new(Tally::default());
    let echoed: Vec<Arc<(AtomicU64, Notify)>> = (0..a.publishers)
        .map(|_| Arc::new((AtomicU64::new(0), Notify::new())))
        .collect();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (i, c) in conns.into_iter().enumerate() {
        let Connection {
            mut reader, writer, ..
        } = c;
        let tally = tally.clone();
        let stop = stop.clone();
        let mine = echoed.get(i).cloned();
        readers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut n = 0u64;
            // Counted here and added to the shared tally in steps, so 100
            // readers do not all contend for one cache line per delivery.
            let mut unflushed = 0u64;
            loop {
                // Closing the members' sending halves ends these reads;
                // the stop signal only frees a reader whose relay never
                // closes (no timer per message: that would cost more than
                // the read).
                let msg = tokio::select! {
                    biased;
                    m = reader.recv() => m,
                    () = stop.notified() => break,
                };
                let Ok(msg) = msg else { break };
                if let RelayMsg::Event(e) = msg {
                    let b = &e.event.body;
                    if b.len() >= HEADER {
                        let publisher = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                        n += 1;
                        if n.is_multiple_of(8) {
                            let sent_ns = u64::from_be_bytes([
                                b[12], b[13], b[14], b[15], b[16], b[17], b[18], b[19],
                            ]);
                            let now_ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                            samples.push(now_ns.saturating_sub(sent_ns) / 1000);
                        }
                        if publisher == i
                            && let Some(m) = &mine
                        {
                            m.0.fetch_add(1, Ordering::Relaxed);
                            m.1.notify_one();
                        }
                    }
                    unflushed += 1;
                    if unflushed == 64 {
                        tally.deliveries.fetch_add(unflushed, Ordering::Relaxed);
                        unflushed = 0;
                    }
                }
            }
            tally.deliveries.fetch_add(unflushed, Ordering::Relaxed);
            tally
                .bytes
                .fetch_add(reader.bytes_read(), Ordering::Relaxed);
            samples
        }));
        writers.push(writer);
    }
    eprintln!(
        "publishing for {:?} from {} publishers ({})",
        a.duration,
        a.publishers,
        match a.rate {
            Some(r) => format!("{r} events/s in all"),
            None => format!("window {window}"),
        }
    );
    let deadline = Instant::now() + a.duration;
    let mut publishers = Vec::new();
    // Listeners keep their sending half open: dropping it would close
    // their connection.
    let listeners: Vec<_> = writers.split_off(a.publishers);
    for (p, mut writer) in writers.into_iter().enumerate() {
        let echo = echoed[p].clone();
        let room = room.clone();
        let sender = identity.fingerprint();
        let size = a.size;
        let rate = a.rate.map(|r| r as f64 / a.publishers as f64);
        publishers.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let start = Instant::now();
            while Instant::now() < deadline {
                let allowed = match rate {
                    Some(r) => ((start.elapsed().as_secs_f64() * r) as u64)
                        .saturating_sub(sent)
                        .min(256),
                    None => (echo.0.load(Ordering::Relaxed) + window).saturating_sub(sent),
                };
                if allowed == 0 {
                    if rate.is_some() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    } else {
                        let _ = tokio::time::timeout(Duration::from_millis(50), echo.1.notified())
                            .await;
                    }
                    continue;
                }
                let mut batch = Vec::with_capacity(allowed as usize);
                for _ in 0..allowed {
                    let mut body = vec![0u8; size];
                    body[..4].copy_from_slice(&(p as u32).to_be_bytes());
                    body[4..12].copy_from_slice(&sent.to_be_bytes());
                    let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    body[12..20].copy_from_slice(&ns.to_be_bytes());
                    batch.push(ClientMsg::Publish {
                        request: sent,
                        event: RoomEvent {
                            room: room.clone(),
                            sender,
                            kind: EventKind::Message,
                            epoch: 0,
                            body,
                        },
                    });
                    sent += 1;
                }
                if writer.send_all(&batch).await.is_err() {
                    break;
                }
            }
            (sent, writer)
        }));
    }
    let mut published = 0;
    let mut keep = Vec::new();
    for p in publishers {
        let (sent, writer) = p.await?;
        published += sent;
        keep.push(writer);
    }
    let seconds = t0.elapsed().as_secs_f64();
    // Let the last deliveries arrive.
    let want = published * a.members as u64;
    let drain_until = Instant::now() + Duration::from_secs(10);
    let mut last = 0;
    while Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = tally.deliveries.load(Ordering::Relaxed);
        if now >= want || (now == last && now > 0) {
            break;
        }
        last = now;
    }
    let after = pid.and_then(proc_usage);
    drop(keep);
    drop(listeners);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.notify_waiters();
    let mut latencies_us = Vec::new();
    for r in readers {
        latencies_us.extend(r.await?);
    }
    latencies_us.sort_unstable();
    Ok(FanoutResult {
        published,
        deliveries: tally.deliveries.load(Ordering::Relaxed),
        seconds,
        latencies_us,
        wire_bytes: tally.bytes.load(Ordering::Relaxed),
        relay: match (before, after) {
            (Some((c0, _)), Some((c1, rss))) => Some((c1 - c0, rss)),
            _ => None,
        },
    })
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn print_results(a: &FanoutArgs, window: u64, r: &FanoutResult) {
    let expected = r.published * a.members as u64;
    let lost = expected.saturating_sub(r.deliveries);
    let per_s = r.deliveries as f64 / r.seconds;
    let p50 = percentile(&r.latencies_us, 0.50);
    let p99 = percentile(&r.latencies_us, 0.99);
    let max = percentile(&r.latencies_us, 1.0);
    let bytes = if r.deliveries > 0 {
        r.wire_bytes as f64 / r.deliveries as f64
    } else {
        0.0
    };
    let (cpu, rss) = r.relay.map_or((None, None), |(c, m)| (Some(c), Some(m)));
    let cpu_per = cpu.map(|c| c / r.deliveries.max(1) as f64 * 1e6);
    let crypto = match a.crypto {
        Crypto::Relay => "relay",
        Crypto::Full => "full",
    };
    if a.json {
        println!(
            "{{\"workload\":\"fanout\",\"crypto\":\"{}\",\"members\":{},\"publishers\":{},\"size\":{},\"window\":{},\"rate\":{},\"seconds\":{:.2},\"published\":{},\"deliveries\":{},\"deliveries_per_s\":{:.0},\"lost\":{},\"latency_ms\":{{\"p50\":{:.3},\"p99\":{:.3},\"max\":{:.3}}},\"wire_bytes_per_delivery\":{:.1},\"relay_cpu_us_per_delivery\":{},\"relay_peak_rss_kib\":{}}}",
            crypto,
            a.members,
            a.publishers,
            a.size,
            if a.rate.is_some() { 0 } else { window },
            a.rate.unwrap_or(0),
            r.seconds,
            r.published,
            r.deliveries,
            per_s,
            lost,
            p50,
            p99,
            max,
            bytes,
            cpu_per.map_or("null".into(), |c| format!("{c:.3}")),
            rss.map_or("null".into(), |m| m.to_string()),
        );
        return;
    }
    println!(
        "hush bench fanout: {} members, {} publishers, {} B bodies, crypto {crypto}, {}",
        a.members,
        a.publishers,
        a.size,
        a.rate
            .map_or(format!("window {window}"), |r| format!("{r} events/s"))
    );
    println!("  published              {:>12}", r.published);
    println!(
        "  deliveries             {:>12}   ({per_s:.0}/s over {:.1} s)",
        r.deliveries, r.seconds
    );
    println!("  deliveries lost        {:>12}", lost);
    println!("  latency p50 / p99 / max  {p50:.2} / {p99:.2} / {max:.2} ms");
    println!("  wire bytes / delivery  {:>12.1}", bytes);
    match (cpu_per, rss) {
        (Some(c), Some(m)) => {
            println!("  relay CPU / delivery   {c:>10.3} µs");
            println!("  relay peak RSS         {:>10} KiB", m);
        }
        _ => println!("  relay CPU and RSS      (only measured for a relay the bench starts)"),
    }
}
