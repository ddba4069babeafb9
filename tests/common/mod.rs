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
