//! `hush server` as an operator runs it: the real binary on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{RelayProcess, example_identity, example_key, hush, run};
use hush_client::link::Connection;
use hush_proto::{ClientMsg, EventKind, RelayMsg, RoomEvent, RoomName};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Publishes `n` messages as alice and returns once each has come back
/// (committed and delivered).
async fn publish(addr: &str, room: &str, from: u64, n: u64) -> Vec<u64> {
    let alice = example_identity("alice");
    let mut c = Connection::connect(addr, alice.clone(), hush_proto::DEFAULT_MAX_FRAME, |_| {
        Ok(())
    })
    .await
    .unwrap();
    let room = RoomName::new(room).unwrap();
    c.writer
        .send(&ClientMsg::Join { room: room.clone() })
        .await
        .unwrap();
    let mut seqs = Vec::new();
    for i in from..from + n {
        let event = RoomEvent {
            room: room.clone(),
            sender: alice.fingerprint(),
            kind: EventKind::Message,
            epoch: 0,
            body: i.to_be_bytes().to_vec(),
        };
        c.writer
            .send(&ClientMsg::Publish { request: i, event })
            .await
            .unwrap();
    }
    while seqs.len() < n as usize {
        if let RelayMsg::Event(e) = c.reader.recv().await.unwrap() {
            seqs.push(e.seq);
        }
    }
    seqs
}

async fn backfill_all(addr: &str, room: &str) -> Vec<u64> {
    let bob = example_identity("bob");
    let mut c = Connection::connect(addr, bob, hush_proto::DEFAULT_MAX_FRAME, |_| Ok(()))
        .await
        .unwrap();
    let room = RoomName::new(room).unwrap();
    c.writer
        .send(&ClientMsg::Join { room: room.clone() })
        .await
        .unwrap();
    c.writer
        .send(&ClientMsg::Backfill { room, after_seq: 0 })
        .await
        .unwrap();
    let mut seqs = Vec::new();
    loop {
        match c.reader.recv().await.unwrap() {
            RelayMsg::Event(e) => seqs.push(e.seq),
            RelayMsg::BackfillDone { complete: true, .. } => return seqs,
            RelayMsg::BackfillDone { up_to, room, .. } => {
                c.writer
                    .send(&ClientMsg::Backfill {
                        room,
                        after_seq: up_to,
                    })
                    .await
                    .unwrap();
            }
            _ => {}
        }
    }
}

#[test]
fn server_starts_prints_its_fingerprint_and_survives_garbage() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("new/relay");
    let relay = RelayProcess::start(&data, 0, &[]);
    assert!(relay.fingerprint.starts_with("SHA256:"));
    // The generated relay key is private and is the one it announced; the
    // folder it made is private too.
    let key = data.join("relay-key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let out = run(hush().arg("fingerprint").arg(&key));
    assert_eq!(out.stdout.trim(), relay.fingerprint);

    // Random bytes and oversized prefixes on other connections...
    let mut noise = [0u8; 8192];
    for (i, b) in noise.iter_mut().enumerate() {
        *b = (i * 131 % 251) as u8;
    }
    for bytes in [
        &noise[..],
        &u32::MAX.to_be_bytes()[..],
        &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3],
    ] {
        let mut s = TcpStream::connect(&relay.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(bytes);
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "closed without a reply");
    }
    // ...and it still serves a real client.
    let seqs = rt().block_on(publish(&relay.addr, "lobby", 0, 3));
    assert_eq!(seqs, vec![1, 2, 3]);

    // SIGINT stops it cleanly, exit status 0.
    let status = relay.signal("-INT");
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_stops_cleanly_and_a_restart_keeps_key_and_events() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let fp = relay.fingerprint.clone();
    assert_eq!(
        rt().block_on(publish(&relay.addr, "lobby", 0, 5)),
        vec![1, 2, 3, 4, 5]
    );
    assert!(relay.signal("-TERM").success());
    let relay = RelayProcess::start(data.path(), 0, &[]);
    assert_eq!(relay.fingerprint, fp, "the relay key is generated once");
    assert_eq!(
        rt().block_on(backfill_all(&relay.addr, "lobby")),
        vec![1, 2, 3, 4, 5]
    );
}

#[test]
fn after_kill_9_every_committed_event_is_served_again() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let seen = rt().block_on(publish(&relay.addr, "lobby", 0, 200));
    assert_eq!(seen.len(), 200);
    // No graceful anything: SIGKILL.
    let status = relay.signal("-KILL");
    assert!(!status.success());
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let logged = rt().block_on(backfill_all(&relay.addr, "lobby"));
    assert_eq!(
        logged,
        (1..=200).collect::<Vec<u64>>(),
        "every delivered event survived"
    );
    // And sequencing continues after the last one.
    assert_eq!(
        rt().block_on(publish(&relay.addr, "lobby", 200, 1)),
        vec![201]
    );
}

#[test]
fn server_refuses_a_readable_key_and_bad_flags_with_clear_errors() {
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(hush()
        .args(["server", "--bind", "127.0.0.1:0", "--data"])
        .arg(data.path()));
    assert!(!out.ok);
    assert!(
        out.stderr.contains(&format!(
            "is open to other users (mode 0755); it must be private to the relay. Fix it with: chmod 700 {}",
            data.path().display()
        )),
        "{}",
        out.stderr
    );
    common::private_dir(data.path());
    let (_keys, key) = example_key("relay");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(hush()
        .args(["server", "--bind", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .arg("--key")
        .arg(&key));
    assert!(!out.ok);
    assert!(
        out.stderr.contains("readable by others") && out.stderr.contains("chmod 600"),
        "{}",
        out.stderr
    );

    let out = run(hush().args(["server", "--bind", "not-an-address"]));
    assert!(
        !out.ok && out.stderr.contains("invalid value 'not-an-address'"),
        "{}",
        out.stderr
    );
    let out = run(hush().args(["server", "--max-frame-bytes", "10"]));
    assert!(!out.ok && out.stderr.contains("4096"), "{}", out.stderr);
    let out = run(hush().args(["server", "--idle-timeout", "soon"]));
    assert!(
        !out.ok && out.stderr.contains("not a duration"),
        "{}",
        out.stderr
    );

    // A port already in use: refused before any key or log is made
    // (usability B15).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let fresh = data.path().join("fresh");
    let out = run(hush()
        .args(["server", "--bind", &format!("127.0.0.1:{port}"), "--data"])
        .arg(&fresh));
    assert!(
        !out.ok && out.stderr.contains("cannot listen on") && out.stderr.contains("--bind"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"));
    assert!(
        !fresh.exists(),
        "nothing was created for a relay that could not listen"
    );
    // An IP alone means the default port (usability F19); a host name is
    // explained.
    let out = run(hush().args(["server", "--bind", "localhost"]));
    assert!(
        !out.ok && out.stderr.contains("127.0.0.1 (port 40623)"),
        "{}",
        out.stderr
    );
}

#[test]
fn settings_read_from_hush_environment_variables() {
    let data = tempfile::tempdir().unwrap();
    common::private_dir(data.path());
    let (_keys, key) = example_key("relay");
    let mut child = hush()
        .args(["server"])
        .env("HUSH_BIND", "127.0.0.1:0")
        .env("HUSH_RELAY_DATA", data.path())
        .env("HUSH_RELAY_KEY", &key)
        // The client's variables are not the relay's: set to something
        // else, they change nothing here.
        .env("HUSH_DATA", "/nonexistent/client-data")
        .env("HUSH_KEY", "/nonexistent/client.pem")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 512];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !out.contains("relay fingerprint") && std::time::Instant::now() < deadline {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.contains("listening on 127.0.0.1:"), "{out}");
    assert!(
        out.contains(&example_identity("relay").fingerprint().to_string()),
        "{out}"
    );
}

#[test]
fn the_info_log_never_pairs_a_clients_address_with_its_fingerprint() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("relay.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (_keys, key) = example_key("relay");
    let key = key.to_str().unwrap();
    let relay = RelayProcess::start_logging(data.path(), 0, &["--key", key], "info", log.into());
    let seqs = rt().block_on(publish(&relay.addr, "lobby", 0, 1));
    assert_eq!(seqs, vec![1]);
    assert!(relay.signal("-TERM").success());
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(text.contains("client connected"), "{text}");
    assert!(text.contains("client disconnected"), "{text}");
    assert!(text.contains("127.0.0.1"), "the address is logged: {text}");
    let alice = example_identity("alice").fingerprint().to_string();
    assert!(!text.contains(&alice), "the fingerprint is not: {text}");
}

#[test]
fn config_precedence_is_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(
        &file,
        "idle_timeout = \"60s\"\nmax-file-size = \"10MiB\"\nretention-events = 1000\n",
    )
    .unwrap();
    let print = |env: Option<&str>, flag: Option<&str>| {
        let mut cmd = hush();
        cmd.args(["server", "--config"])
            .arg(&file)
            .arg("--print-config");
        cmd.env_remove("HUSH_IDLE_TIMEOUT");
        if let Some(v) = env {
            cmd.env("HUSH_IDLE_TIMEOUT", v);
        }
        if let Some(v) = flag {
            cmd.args(["--idle-timeout", v]);
        }
        let out = run(&mut cmd);
        assert!(out.ok, "{}", out.stderr);
        out.stdout
    };
    let line = |out: &str, key: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_default()
            .to_owned()
    };
    let all = print(Some("70s"), Some("80s"));
    assert_eq!(
        line(&all, "idle-timeout"),
        "idle-timeout = \"80s\"    # flag"
    );
    let env = print(Some("70s"), None);
    assert_eq!(
        line(&env, "idle-timeout"),
        "idle-timeout = \"70s\"    # env HUSH_IDLE_TIMEOUT"
    );
    let filed = print(None, None);
    assert_eq!(
        line(&filed, "idle-timeout"),
        "idle-timeout = \"60s\"    # file"
    );
    assert_eq!(
        line(&filed, "retention-events"),
        "retention-events = 1000    # file"
    );
    assert_eq!(
        line(&filed, "file-quota"),
        "file-quota = \"1GiB\"    # default"
    );

    // A typo names the closest setting; a bad value names the file.
    std::fs::write(&file, "max-filesize = \"1MiB\"\n").unwrap();
    let out = run(hush().args(["server", "--config"]).arg(&file));
    assert!(
        !out.ok
            && out
                .stderr
                .contains("unknown setting 'max-filesize' (did you mean 'max-file-size'?)"),
        "{}",
        out.stderr
    );
    std::fs::write(&file, "max-file-size = \"lots\"\n").unwrap();
    let out = run(hush().args(["server", "--config"]).arg(&file));
    assert!(
        !out.ok && out.stderr.contains("relay.toml: invalid value 'lots'"),
        "{}",
        out.stderr
    );
}
