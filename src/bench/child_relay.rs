//! The relay under test when the bench starts one: a child `hush server`
//! on a loopback port with its limits lifted, its CPU and memory read from
//! /proc, and what every workload sets up around it (the bench identity,
//! an async runtime). A helper: it imports no other bench file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use hush_crypto::Identity;

/// A relay started by the bench, the bench identity, and a runtime.
pub(crate) fn local_setup() -> Result<(ChildRelay, Arc<Identity>, tokio::runtime::Runtime)> {
    let (identity, key_path) = bench_identity()?;
    let relay = start_relay(&key_path)?;
    let runtime = runtime()?;
    Ok((relay, identity, runtime))
}

/// The multi-threaded async runtime the bench's clients run on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A `kB` figure from a process's `/proc/PID/status` (`VmRSS:`, `VmHWM:`).
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
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
    pub(crate) fn restart(&mut self) -> Result<()> {
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

/// Starts a relay whose data folder is a fresh folder under the system
/// temporary folder.
pub(crate) fn start_relay(key: &Path) -> Result<ChildRelay> {
    start_relay_in(key, &std::env::temp_dir(), &[])
}

/// [`start_relay`] with more `hush server` flags (a later flag wins).
pub(crate) fn start_relay_with(key: &Path, extra: &[String]) -> Result<ChildRelay> {
    start_relay_in(key, &std::env::temp_dir(), extra)
}

/// Starts a relay whose data folder is a fresh folder under `base`.
pub(crate) fn start_relay_in(key: &Path, base: &Path, extra: &[String]) -> Result<ChildRelay> {
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

/// Runs `hush server` on `bind` and returns once it listens, with the
/// address it listens on.
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
            // The bench's clients share one identity but stand for as
            // many people: one person's quota of used tickets (audit L2)
            // would make all but 256 of them do full handshakes after a
            // restart.
            "--tickets-per-identity",
            "1000000",
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

/// Pins every thread of process `pid` to `cpus` (a taskset list such as
/// `1` or `0,2-3`) with util-linux's `taskset`; threads it starts later
/// inherit the pinning.
///
/// # Errors
/// If taskset is missing or refuses the list.
pub(crate) fn pin(pid: u32, cpus: &str) -> Result<()> {
    let out = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .output()
        .context("pinning needs taskset (util-linux): install it, or leave out --relay-cpus/--client-cpus")?;
    if !out.status.success() {
        bail!(
            "taskset refused the CPU list {cpus:?}: {} (this machine has {} CPUs, numbered from 0)",
            String::from_utf8_lossy(&out.stderr).trim(),
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        );
    }
    Ok(())
}

/// The CPU seconds a relay spent between two [`proc_usage`] readings,
/// and its peak RSS (KiB) at the second; `None` unless both were read.
pub(crate) fn usage_between(
    before: Option<(f64, u64)>,
    after: Option<(f64, u64)>,
) -> Option<(f64, u64)> {
    match (before, after) {
        (Some((c0, _)), Some((c1, rss))) => Some((c1 - c0, rss)),
        _ => None,
    }
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

/// The bench's identity (the relay's key and every plain client's), made
/// once and kept in the bench data folder, and its key file.
pub(crate) fn bench_identity() -> Result<(Arc<Identity>, PathBuf)> {
    let dir = crate::paths::default_data_dir("bench")?;
    hush_server::create_private_dir(&dir)?;
    let path = dir.join("bench-key.pem");
    if !path.exists() {
        eprintln!("generating the bench identity once ({})", path.display());
        let id = Identity::generate(hush_crypto::DEFAULT_BITS)?;
        crate::keyfile::write_identity(&path, &id, None, false)?;
    }
    Ok((Arc::new(crate::keyfile::load_identity(&path)?), path))
}
