//! `hush client` given bad input: each is one clear line on stderr and a
//! non-zero exit, never a panic or a hang.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{ClientProcess, RelayProcess, example_identity, example_key, hush, run, wait_timeout};

/// Runs a client to completion (with a deadline) and returns (ok, stderr).
fn client(args: &[&str], key: &std::path::Path, env: &[(&str, &str)]) -> (bool, String) {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = hush();
    cmd.arg("client")
        .args(args)
        .arg("--key")
        .arg(key)
        .arg("--data")
        .arg(data.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let status = wait_timeout(&mut child, Duration::from_secs(40));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (status.success(), stderr)
}

fn one_line_error(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("hush: error: "),
        "{stderr}"
    );
}

#[test]
fn bad_key_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--server", "127.0.0.1:1", "--room", "lobby"];

    let (ok, err) = client(&args, &dir.path().join("missing.pem"), &[]);
    assert!(
        !ok && err.contains("does not exist") && err.contains("hush keygen"),
        "{err}"
    );
    one_line_error(&err);

    let (_keys, key) = example_key("alice");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, err) = client(&args, &key, &[]);
    assert!(!ok && err.contains("chmod 600"), "{err}");
    one_line_error(&err);

    let locked = dir.path().join("locked.pem");
    let out = run(hush()
        .env("HUSH_PASSPHRASE", "right")
        .args(["keygen", "--passphrase", "--bits", "2048", "-o"])
        .arg(&locked));
    assert!(out.ok, "{}", out.stderr);
    let (ok, err) = client(&args, &locked, &[("HUSH_PASSPHRASE", "wrong")]);
    assert!(!ok && err.contains("wrong passphrase"), "{err}");
    one_line_error(&err);

    let unreadable = dir.path().join("unreadable.pem");
    std::fs::write(&unreadable, "junk").unwrap();
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, err) = client(&args, &unreadable, &[]);
    assert!(!ok && err.contains("not a key hush can read"), "{err}");

    // Usability B8: the .pub file as keygen writes it (0644), and a
    // folder, are named for what they are, not told to chmod.
    let (keys, _) = example_key("bob");
    let public = keys.path().join("bob.pem.pub");
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, err) = client(&args, &public, &[]);
    assert!(
        !ok && err.contains("is a public key") && !err.contains("chmod"),
        "{err}"
    );
    let (ok, err) = client(&args, dir.path(), &[]);
    assert!(
        !ok && err.contains("is not a file") && !err.contains("chmod"),
        "{err}"
    );
}

#[test]
fn a_server_that_is_not_a_hush_relay_is_named_as_such() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { break };
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let (_keys, key) = example_key("alice");
    let (ok, err) = client(&["--server", &addr, "--room", "lobby"], &key, &[]);
    assert!(!ok && err.contains("not answer as a hush relay"), "{err}");
    one_line_error(&err);
}

#[test]
fn a_relay_that_closes_mid_handshake_is_an_error_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { break };
            // The whole hello (about 1.3 KB: it carries the key exchange
            // share), then hang up. Closing with bytes unread would be a
            // reset, which the client retries as network trouble.
            let mut len = [0u8; 4];
            if s.read_exact(&mut len).is_ok() {
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                let _ = s.read_exact(&mut body);
            }
        }
    });
    let (_keys, key) = example_key("alice");
    let started = std::time::Instant::now();
    let (ok, err) = client(&["--server", &addr, "--room", "lobby"], &key, &[]);
    assert!(
        !ok && err.contains("closed the connection during the handshake"),
        "{err}"
    );
    one_line_error(&err);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_changed_relay_key_is_refused_with_both_fingerprints() {
    let data = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let (_keys, relay_key) = example_key("relay");
    let relay = RelayProcess::start(data.path(), port, &["--key", relay_key.to_str().unwrap()]);
    let addr = relay.addr.clone();
    let mut alice = ClientProcess::start(&addr, "alice", "lobby", true, &[]);
    alice.wait_json("joined", |_| true);
    let known = alice.data.path().join("known_relays");
    assert!(
        std::fs::read_to_string(&known)
            .unwrap()
            .contains(&relay.fingerprint)
    );
    alice.close_input();
    assert!(alice.wait_exit().success());
    assert!(relay.signal("-TERM").success());

    // Same address, another key (mallory's).
    let (_k2, impostor) = example_key("mallory");
    let _relay = RelayProcess::start(data.path(), port, &["--key", impostor.to_str().unwrap()]);
    let (_k3, alice_key) = example_key("alice");
    let mut cmd = hush();
    cmd.args(["client", "--server", &addr, "--room", "lobby", "--key"])
        .arg(&alice_key)
        .arg("--known-relays")
        .arg(&known)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let status = wait_timeout(&mut child, Duration::from_secs(30));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(
        err.contains(&example_identity("relay").fingerprint().to_string()),
        "{err}"
    );
    assert!(
        err.contains(&example_identity("mallory").fingerprint().to_string()),
        "{err}"
    );
    assert!(err.contains("delete line 1"), "{err}");
    one_line_error(&err);
}

#[test]
fn typos_in_client_flags_are_explained() {
    let (_keys, key) = example_key("alice");
    let (ok, err) = client(&["--server", "h:notaport", "--room", "lobby"], &key, &[]);
    assert!(!ok && err.contains("not a port number"), "{err}");
    // Usability B15: port 0 is refused, not retried for ever.
    let (ok, err) = client(&["--server", "127.0.0.1:0", "--room", "lobby"], &key, &[]);
    assert!(!ok && err.contains("not a port number (1-65535)"), "{err}");
    let (ok, err) = client(
        &["--server", "127.0.0.1:1", "--room", "no spaces"],
        &key,
        &[],
    );
    assert!(!ok && err.contains("invalid room name"), "{err}");
    let (ok, err) = client(
        &[
            "--server",
            "127.0.0.1:1",
            "--room",
            "ok",
            "--nick",
            "two words",
        ],
        &key,
        &[],
    );
    assert!(!ok && err.contains("--nick"), "{err}");
    let out = run(hush().args(["client", "--room", "x"]));
    assert!(!out.ok && out.stderr.contains("--server"), "{}", out.stderr);
}

/// Usability B12: an error written to a closed stderr (`2>&1 | head`)
/// exits 1 as documented, never with a panic (101).
#[test]
fn an_error_to_a_closed_stderr_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = hush()
        .args([
            "client",
            "--server",
            "127.0.0.1:1",
            "--room",
            "lobby",
            "--key",
        ])
        .arg(dir.path().join("missing.pem"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}");
}

/// Usability B1: a pipe that ends while its line cannot be sent (the
/// relay is not there) says so and exits 1, after telling that it waits.
#[test]
fn a_pipe_that_ends_with_unsent_lines_says_so_and_fails() {
    use std::io::Write as _;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_keys, key) = example_key("alice");
    let data = tempfile::tempdir().unwrap();
    let mut child = hush()
        .args([
            "client",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--room",
            "lobby",
            "--key",
        ])
        .arg(&key)
        .arg("--data")
        .arg(data.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello, anyone?\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("not connected to the relay"), "{stdout}");
    assert!(
        stdout.contains("waiting up to 10 s for 1 unsent"),
        "{stdout}"
    );
    assert!(stdout.contains("#lobby: 1 not sent"), "{stdout}");
    assert!(stderr.contains("were not sent"), "{stderr}");
}

#[test]
fn ctrl_c_in_line_mode_quits_cleanly_and_keeps_the_place() {
    let relay_data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(relay_data.path(), 0, &[]);
    let mut alice = ClientProcess::start(&relay.addr, "alice", "lobby", false, &[]);
    alice.wait_for("joined", |l| l.contains("joined #lobby"));
    alice.say("before ctrl-c");
    alice.wait_for("own line", |l| l.ends_with(": before ctrl-c"));
    // Ctrl-C (SIGINT) is /quit: state saved, exit 0.
    let pid = alice.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = alice.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", alice.seen_lines().join("\n"));
    // The next start resumes after what was shown: nothing is shown twice.
    let (key_dir, key) = example_key("alice");
    let data = alice.into_data();
    let mut again =
        ClientProcess::start_with(&relay.addr, &key, data, key_dir, "lobby", false, &[]);
    again.wait_for("resumed", |l| l.contains("resuming #lobby after seq"));
    again.wait_for("joined", |l| l.contains("joined #lobby"));
    again.drain_for(Duration::from_millis(500));
    assert!(
        !again
            .seen_lines()
            .iter()
            .any(|l| l.ends_with(": before ctrl-c")),
        "the line before Ctrl-C is not shown again: {}",
        again.seen_lines().join("\n")
    );
}
