//! Packaging (issue #20, first part): shell completions and man pages
//! generate from the clap tree, the relay logs JSON for shippers, and the
//! systemd unit passes `systemd-analyze verify` where systemd is present.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{hush, run};

#[test]
fn completions_and_man_pages_generate() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(hush().args(["completions", shell]));
        assert!(out.ok, "{shell}: {}", out.stderr);
        assert!(
            out.stdout.contains("hush") && out.stdout.contains("server"),
            "{shell}"
        );
    }
    let out = run(hush().args(["completions", "tcsh"]));
    assert!(
        !out.ok && out.stderr.contains("possible values"),
        "{}",
        out.stderr
    );

    let out = run(hush().arg("man"));
    assert!(
        out.ok && out.stdout.contains(".TH hush 1"),
        "{}",
        out.stderr
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(hush().arg("man").arg("--dir").arg(dir.path()));
    assert!(out.ok, "{}", out.stderr);
    for page in ["hush.1", "hush-server.1", "hush-client.1", "hush-send.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
}

#[test]
fn the_relay_logs_json_for_log_shippers() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    common::private_dir(data.path());
    let (_keys, key) = common::example_key("relay");
    let mut child = hush()
        .args([
            "server",
            "--bind",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--key",
        ])
        .arg(&key)
        .arg("--data")
        .arg(data.path())
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let first = std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("relay started"))
        .expect("a start line");
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["fields"]["message"], "relay started");
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(status) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
    else {
        eprintln!("systemd-analyze is not installed: the unit is not verified here");
        return;
    };
    assert!(status.success());
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contrib/systemd/hush-server.service"),
    )
    .unwrap();
    assert!(unit.contains("DynamicUser=yes") && unit.contains("NoNewPrivileges=yes"));
    // Verified with this build standing in for /usr/local/bin/hush.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush-server.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/hush", env!("CARGO_BIN_EXE_hush")),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
