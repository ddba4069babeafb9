//! Helpers shared by the end-to-end tests: run the real `hush` binary,
//! and hand out private copies of the example keys.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod tmux;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

/// A `Command` for the `hush` binary built for this test run.
pub fn hush() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hush"));
    c.env_remove("HUSH_PASSPHRASE").env("RUST_BACKTRACE", "0");
    c
}

/// What a finished command did.
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command to completion with no stdin.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run hush");
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The repository's keys.example folder.
pub use hush_testkit::keys::examples_dir;

/// A private copy (mode 0600, as `hush` requires) of `keys.example/NAME.pem`
/// and its `.pub`, in a fresh temporary folder. git does not keep file
/// modes other than the executable bit, so a clone's copies are 0644.
pub fn example_key(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join(format!("{name}.pem"));
    std::fs::copy(examples_dir().join(format!("{name}.pem")), &dst).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::copy(
        examples_dir().join(format!("{name}.pem.pub")),
        dir.path().join(format!("{name}.pem.pub")),
    )
    .unwrap();
    (dir, dst)
}

/// Narrows an existing folder to 0700, as the relay requires of its data
/// folder (temporary folders are made 0755 under the usual umask).
pub fn private_dir(dir: &std::path::Path) {
    if dir.exists() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}

/// A `hush server` process on a loopback port; killed when dropped.
pub struct RelayProcess {
    pub child: std::process::Child,
    pub addr: String,
    pub fingerprint: String,
    pub data: PathBuf,
}

impl RelayProcess {
    /// Starts `hush server --bind 127.0.0.1:PORT --data DATA` (port 0 picks
    /// a free one) and waits until it listens.
    pub fn start(data: &std::path::Path, port: u16, extra: &[&str]) -> Self {
        Self::start_logging(data, port, extra, "warn", std::process::Stdio::inherit())
    }

    /// [`Self::start`] with `RUST_LOG=log` and the log sent to `stderr`.
    pub fn start_logging(
        data: &std::path::Path,
        port: u16,
        extra: &[&str],
        log: &str,
        stderr: std::process::Stdio,
    ) -> Self {
        use std::io::BufRead;
        private_dir(data);
        let mut child = hush()
            .args(["server", "--bind", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", log)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start hush server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut addr = None;
        let mut fingerprint = None;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while addr.is_none() || fingerprint.is_none() {
            assert!(std::time::Instant::now() < deadline, "relay did not start");
            let Some(Ok(line)) = lines.next() else {
                panic!("relay exited before listening")
            };
            if let Some(a) = line.strip_prefix("hush relay listening on ") {
                addr = Some(a.trim().to_owned());
            }
            if let Some(f) = line.strip_prefix("relay fingerprint: ") {
                fingerprint = Some(f.trim().to_owned());
            }
        }
        // Keep draining stdout so the relay never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            addr: addr.unwrap(),
            fingerprint: fingerprint.unwrap(),
            data: data.to_path_buf(),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Sends a signal and waits for the exit status.
    pub fn signal(mut self, sig: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args([sig, &pid]).status().unwrap();
        let status = wait_timeout(&mut self.child, std::time::Duration::from_secs(20));
        std::mem::forget(self);
        status
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a child with a deadline, killing it if it overstays.
pub fn wait_timeout(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// An example identity by name (`alice`, `bob`, `carol`, `mallory`,
/// `relay`), parsed once per test binary.
pub fn example_identity(name: &str) -> std::sync::Arc<hush_crypto::Identity> {
    hush_testkit::keys::by_name(name)
}

/// A running `hush client`, its stdin and its stdout lines.
pub struct ClientProcess {
    pub child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every stdout line seen so far.
    pub seen: Vec<String>,
    pub data: tempfile::TempDir,
    _key_dir: tempfile::TempDir,
}

impl ClientProcess {
    /// Starts `hush client` as `name` (a keys.example identity) in `room`.
    pub fn start(server: &str, name: &str, room: &str, json: bool, extra: &[&str]) -> Self {
        let (key_dir, key) = example_key(name);
        let data = tempfile::tempdir().unwrap();
        Self::start_with(server, &key, data, key_dir, room, json, extra)
    }

    /// [`Self::start`] with environment variables set (`TZ`, say).
    pub fn start_env(
        server: &str,
        name: &str,
        room: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let (key_dir, key) = example_key(name);
        let data = tempfile::tempdir().unwrap();
        Self::spawn(server, &key, data, key_dir, room, false, extra, env)
    }

    /// Starts a client with a given data folder (to restart the same user).
    pub fn start_with(
        server: &str,
        key: &std::path::Path,
        data: tempfile::TempDir,
        key_dir: tempfile::TempDir,
        room: &str,
        json: bool,
        extra: &[&str],
    ) -> Self {
        Self::spawn(server, key, data, key_dir, room, json, extra, &[])
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn(
        server: &str,
        key: &std::path::Path,
        data: tempfile::TempDir,
        key_dir: tempfile::TempDir,
        room: &str,
        json: bool,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        use std::io::BufRead;
        let mut cmd = hush();
        cmd.envs(env.iter().copied());
        // An empty server: the client is its own relay (--listen in extra).
        cmd.arg("client");
        if !server.is_empty() {
            cmd.args(["--server", server]);
        }
        // No room: it comes from elsewhere (--code, or the saved list).
        if !room.is_empty() {
            cmd.args(["--room", room]);
        }
        cmd.arg("--key")
            .arg(key)
            .arg("--data")
            .arg(data.path())
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd.spawn().expect("start hush client");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            data,
            _key_dir: key_dir,
        }
    }

    /// Types a line.
    pub fn say(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin (end of input: the client finishes sending and exits).
    pub fn close_input(&mut self) {
        self.stdin.take();
    }

    /// Waits for a stdout line satisfying `pred`; returns it.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "timed out waiting for {what}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for a JSON event with `"type": ty` whose fields satisfy `pred`.
    pub fn wait_json(
        &mut self,
        ty: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let line = self.wait_for(ty, |l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["type"] == ty && pred(&v))
        });
        serde_json::from_str(&line).unwrap()
    }

    /// Collects whatever arrives within `d`.
    pub fn drain_for(&mut self, d: std::time::Duration) {
        let deadline = std::time::Instant::now() + d;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            self.seen.push(line);
        }
    }

    /// Every line seen so far.
    pub fn seen_lines(&self) -> &[String] {
        &self.seen
    }

    /// Every JSON event seen so far of type `ty`.
    pub fn json_events(&self, ty: &str) -> Vec<serde_json::Value> {
        self.seen
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == ty)
            .collect()
    }

    /// Hands over the data folder (to start the same user again), after
    /// the process has exited.
    pub fn into_data(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.data, tempfile::tempdir().unwrap())
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let status = wait_timeout(&mut self.child, std::time::Duration::from_secs(30));
        self.drain_for(std::time::Duration::from_millis(200));
        status
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy on loopback that records every byte in both directions
/// and can alter bytes going to the client on its first connection.
pub struct Proxy {
    pub addr: String,
    pub recorded: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    /// From now on, flip one bit in every 97th byte the relay sends on the
    /// proxy's first connection (if it was started with `tamper_first`).
    pub fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Forwards to `upstream`. With `tamper_first`, the first connection
    /// can be tampered with once [`Proxy::arm`] is called.
    pub fn start(upstream: &str, tamper_first: bool) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let recorded = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let rec = recorded.clone();
        let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let armed_in = armed.clone();
        let upstream = upstream.to_owned();
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(client) = conn else { break };
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                let tamper = tamper_first && n == 0;
                for (mut from, mut to, tamper) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        false,
                    ),
                    (server, client, tamper),
                ] {
                    let rec = rec.clone();
                    let armed = armed_in.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 8192];
                        let mut total = 0usize;
                        loop {
                            let k = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(k) => k,
                            };
                            rec.lock().unwrap().extend_from_slice(&buf[..k]);
                            if tamper && armed.load(std::sync::atomic::Ordering::SeqCst) {
                                for (i, b) in buf[..k].iter_mut().enumerate() {
                                    if (total + i).is_multiple_of(97) {
                                        *b ^= 0x04;
                                    }
                                }
                            }
                            total += k;
                            if to.write_all(&buf[..k]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self {
            addr,
            recorded,
            armed,
        }
    }
}

/// A port that is free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
