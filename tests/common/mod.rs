//! Helpers shared by the end-to-end tests: run the real `hush` binary,
//! and hand out private copies of the example keys.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

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
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("keys.example")
}

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
        use std::io::BufRead;
        let mut child = hush()
            .args(["server", "--bind", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
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

/// Loads an example identity straight from the repository (no file-mode
/// check: this is test code reading a test key).
pub fn example_identity(name: &str) -> std::sync::Arc<hush_crypto::Identity> {
    let pem = std::fs::read_to_string(examples_dir().join(format!("{name}.pem"))).unwrap();
    std::sync::Arc::new(hush_crypto::Identity::from_pem(&pem, None).unwrap())
}
