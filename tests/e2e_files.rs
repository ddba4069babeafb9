//! Files through a real relay (issue #16), with the real binary: alice
//! `/send`s, bob `/save`s, and the relay never holds a byte of the
//! plaintext; a chunk changed in the relay's store never becomes a file;
//! a hostile name is saved safely.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};

use common::{ClientProcess, Proxy, RelayProcess};

/// Deterministic bytes that do not compress or repeat (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// alice (line mode, through a recording proxy) and bob (JSON) in `room`.
fn two(relay: &RelayProcess, via: &str, room: &str) -> (ClientProcess, ClientProcess) {
    let mut alice = ClientProcess::start(via, "alice", room, false, &[]);
    alice.wait_for("alice joined", |l| l.contains(&format!("joined #{room}")));
    let mut bob = ClientProcess::start(&relay.addr, "bob", room, true, &[]);
    bob.wait_json("joined", |_| true);
    bob.wait_json("epoch", |v| {
        v["members"].as_array().is_some_and(|m| m.len() == 2)
    });
    (alice, bob)
}

#[test]
fn a_20_mib_file_arrives_whole_and_the_relay_never_sees_its_plaintext() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let proxy = Proxy::start(&relay.addr, false);
    let (mut alice, mut bob) = two(&relay, &proxy.addr, "files");

    let work = tempfile::tempdir().unwrap();
    let mut content = noise(20 << 20, 7);
    let canary = noise(64, 99);
    content[10_000_000..10_000_064].copy_from_slice(&canary);
    let path = work.path().join("big.bin");
    std::fs::write(&path, &content).unwrap();

    alice.say(&format!("/send {}", path.display()));
    alice.wait_for("offered", |l| {
        l.contains("is on the relay, sealed; offered to #files")
    });
    let offer = bob.wait_json("file_offered", |v| v["name"] == "big.bin");
    assert_eq!(offer["size"], 20 << 20);
    let id = offer["short_id"].as_str().unwrap().to_owned();
    let saves = tempfile::tempdir().unwrap();
    bob.say(&format!("/save {id} {}", saves.path().display()));
    bob.wait_json("notice", |v| {
        v["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("saved big.bin"))
    });
    let saved = std::fs::read(saves.path().join("big.bin")).unwrap();
    assert!(saved == content, "the saved file is the sent one");
    // Only the file itself: the partial file is gone.
    assert_eq!(files_under(saves.path()).len(), 1);
    // /files lists it, and where it went.
    bob.say("/files");
    bob.wait_json("notice", |v| {
        v["text"].as_str().is_some_and(|t| {
            t.starts_with(&id)
                && t.contains("big.bin (20.0 MiB) from alice")
                && t.contains(": saved to ")
        })
    });

    // The canary is nowhere on the relay's disk, nor on alice's link.
    for f in files_under(data.path()) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(!contains(&bytes, &canary), "plaintext in {}", f.display());
    }
    assert!(!contains(&proxy.recorded.lock().unwrap(), &canary));
    assert!(
        !files_under(&data.path().join("blobs")).is_empty(),
        "the chunks were stored"
    );
}

#[test]
fn a_chunk_changed_in_the_relays_store_never_becomes_a_file() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let (mut alice, mut bob) = two(&relay, &relay.addr, "tamper");
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("notes.txt");
    std::fs::write(&path, noise(100_000, 3)).unwrap();
    alice.say(&format!("/send {}", path.display()));
    let offer = bob.wait_json("file_offered", |v| v["name"] == "notes.txt");
    // The relay operator flips a byte of chunk 1 (its slot starts at the
    // relay's largest chunk, 33 KiB, into the file's data).
    let chunks = files_under(&data.path().join("blobs"))
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "data"))
        .expect("the file's chunks on disk");
    let mut bytes = std::fs::read(&chunks).unwrap();
    bytes[33 * 1024 + 100] ^= 0x20;
    std::fs::write(&chunks, &bytes).unwrap();

    let saves = tempfile::tempdir().unwrap();
    bob.say(&format!(
        "/save {} {}",
        offer["short_id"].as_str().unwrap(),
        saves.path().display()
    ));
    let w = bob.wait_json("warning", |v| v["kind"] == "bad_file");
    assert_eq!(w["from"], offer["from"], "the warning names the sender");
    assert!(w["text"].as_str().unwrap().contains("chunk 1"), "{w}");
    assert!(files_under(saves.path()).is_empty(), "nothing was written");
}

#[test]
fn a_hostile_file_name_is_saved_safely() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let (mut alice, mut bob) = two(&relay, &relay.addr, "names");
    let work = tempfile::tempdir().unwrap();
    let evil = "..evil\x1b[2J\u{202e}txt.exe";
    let path = work.path().join(evil);
    std::fs::write(&path, b"hello").unwrap();
    alice.say(&format!("/send {}", path.display()));
    let offer = bob.wait_json("file_offered", |v| v["name"] == evil);
    let saves = tempfile::tempdir().unwrap();
    // Twice: the second never replaces the first.
    let saved = |bob: &ClientProcess| {
        bob.json_events("notice")
            .iter()
            .filter(|v| v["text"].as_str().is_some_and(|t| t.starts_with("saved ")))
            .count()
    };
    for n in 1..=2 {
        bob.say(&format!(
            "/save {} {}",
            offer["short_id"].as_str().unwrap(),
            saves.path().display()
        ));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while saved(&bob) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                bob.seen_lines()
            );
            bob.drain_for(std::time::Duration::from_millis(100));
        }
    }
    let mut names: Vec<String> = files_under(saves.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["evil_[2J_txt (1).exe", "evil_[2J_txt.exe"]);
    // Alice's own screen shows the name neutralised.
    let line = alice.wait_for("offered", |l| l.contains("offered to #names"));
    assert!(
        !line.contains('\x1b') && !line.contains('\u{202e}'),
        "{line:?}"
    );
}

#[test]
fn a_relay_restarted_mid_transfer_ends_in_a_whole_verified_file() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let port = relay.port();
    let (mut alice, mut bob) = two(&relay, &relay.addr, "restart");
    let work = tempfile::tempdir().unwrap();
    let content = noise(20 << 20, 11);
    let path = work.path().join("movie.bin");
    std::fs::write(&path, &content).unwrap();

    // The relay dies while alice uploads, and comes back.
    alice.say(&format!("/send {}", path.display()));
    alice.wait_for("a quarter sent", |l| l.contains("sending movie.bin: 25%"));
    relay.signal("-KILL");
    let relay = RelayProcess::start(data.path(), port, &[]);
    alice.wait_for("offered", |l| l.contains("offered to #restart"));
    let offer = bob.wait_json("file_offered", |v| v["name"] == "movie.bin");

    // And again while bob downloads.
    let saves = tempfile::tempdir().unwrap();
    bob.say(&format!(
        "/save {} {}",
        offer["short_id"].as_str().unwrap(),
        saves.path().display()
    ));
    bob.wait_json("file_progress", |v| v["direction"] == "save");
    relay.signal("-KILL");
    let _relay = RelayProcess::start(data.path(), port, &[]);
    let done = bob.wait_json("file_saved", |v| v["name"] == "movie.bin");
    let saved = std::fs::read(done["path"].as_str().unwrap()).unwrap();
    assert!(
        saved == content,
        "the file survived two relay restarts whole"
    );
}

#[test]
fn hush_send_offers_a_file_from_a_script_and_a_file_over_the_limit_is_refused_first() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &["--max-file-size", "1MiB"]);
    let mut bob = ClientProcess::start(&relay.addr, "bob", "drop", true, &[]);
    bob.wait_json("joined", |_| true);
    let (_keys, key) = common::example_key("alice");
    let alice_data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let small = work.path().join("small.bin");
    std::fs::write(&small, noise(300_000, 5)).unwrap();
    let send = |file: &Path| {
        common::run(
            common::hush()
                .args(["send", "--server", &relay.addr, "--room", "drop", "--key"])
                .arg(&key)
                .arg("--data")
                .arg(alice_data.path())
                .arg(file),
        )
    };
    let out = send(&small);
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("offered to #drop"), "{}", out.stdout);
    let offer = bob.wait_json("file_offered", |v| v["name"] == "small.bin");
    assert_eq!(offer["size"], 300_000);

    // Over the relay's limit: refused before any chunk is sent.
    let big = work.path().join("big.bin");
    std::fs::write(&big, noise(2 << 20, 6)).unwrap();
    let out = send(&big);
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("the relay refused it: it takes files of at most"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("file transfer(s) failed"),
        "{}",
        out.stderr
    );
    let stored: u64 = files_under(&data.path().join("blobs"))
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    assert!(
        stored < 1 << 20,
        "no chunk of the big file was stored: {stored}"
    );
}

#[test]
fn a_client_restarted_mid_transfer_resumes_where_the_relay_left_it() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let (mut alice, mut bob) = two(&relay, &relay.addr, "resume");
    let work = tempfile::tempdir().unwrap();
    let content = noise(24 << 20, 13);
    let path = work.path().join("album.bin");
    std::fs::write(&path, &content).unwrap();

    // alice's client dies mid-upload and starts again.
    alice.say(&format!("/send {}", path.display()));
    alice.wait_for("a quarter sent", |l| l.contains("sending album.bin: 25%"));
    let _ = alice.child.kill();
    let (key_dir, key) = common::example_key("alice");
    let alice_data = alice.into_data();
    let mut alice =
        ClientProcess::start_with(&relay.addr, &key, alice_data, key_dir, "resume", false, &[]);
    alice.wait_for("resumed", |l| {
        l.contains("resuming the upload of album.bin")
    });
    alice.wait_for("offered", |l| l.contains("offered to #resume"));
    let offer = bob.wait_json("file_offered", |v| v["name"] == "album.bin");

    // bob's client dies mid-save and starts again.
    let saves = tempfile::tempdir().unwrap();
    bob.say(&format!(
        "/save {} {}",
        offer["short_id"].as_str().unwrap(),
        saves.path().display()
    ));
    bob.wait_json("file_progress", |v| v["direction"] == "save");
    let _ = bob.child.kill();
    let (key_dir, key) = common::example_key("bob");
    let bob_data = bob.into_data();
    let mut bob =
        ClientProcess::start_with(&relay.addr, &key, bob_data, key_dir, "resume", true, &[]);
    bob.wait_json("notice", |v| {
        v["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("resuming the save of album.bin"))
    });
    let done = bob.wait_json("file_saved", |v| v["name"] == "album.bin");
    let saved = std::fs::read(done["path"].as_str().unwrap()).unwrap();
    assert!(
        saved == content,
        "the file survived both clients' restarts whole"
    );
}

#[test]
fn files_lists_offers_from_earlier_runs_with_what_became_of_them() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let (mut alice, mut bob) = two(&relay, &relay.addr, "history");
    let work = tempfile::tempdir().unwrap();
    let (kept, later) = (work.path().join("kept.txt"), work.path().join("later.bin"));
    std::fs::write(&kept, noise(50_000, 21)).unwrap();
    std::fs::write(&later, noise(70_000, 22)).unwrap();
    alice.say(&format!("/send {}", kept.display()));
    let first = bob.wait_json("file_offered", |v| v["name"] == "kept.txt");
    alice.say(&format!("/send {}", later.display()));
    let second = bob.wait_json("file_offered", |v| v["name"] == "later.bin");
    let saves = tempfile::tempdir().unwrap();
    bob.say(&format!(
        "/save {} {}",
        first["short_id"].as_str().unwrap(),
        saves.path().display()
    ));
    bob.wait_json("file_saved", |v| v["name"] == "kept.txt");

    // bob's client quits and starts again: its room state resumes after
    // both offers, so they are not shown again and only the kept list
    // can name them.
    bob.say("/quit");
    assert!(bob.wait_exit().success());
    let (key_dir, key) = common::example_key("bob");
    let bob_data = bob.into_data();
    let mut bob =
        ClientProcess::start_with(&relay.addr, &key, bob_data, key_dir, "history", true, &[]);
    bob.wait_json("joined", |_| true);
    bob.say("/files");
    let line = |v: &serde_json::Value, id: &serde_json::Value, what: &str| {
        v["text"].as_str().is_some_and(|t| {
            t.starts_with(id.as_str().unwrap()) && t.contains("from alice") && t.contains(what)
        })
    };
    bob.wait_json("notice", |v| {
        line(v, &first["short_id"], "kept.txt (")
            && line(v, &first["short_id"], "just now: saved to ")
    });
    bob.wait_json("notice", |v| {
        line(v, &second["short_id"], "later.bin (") && line(v, &second["short_id"], ": offered")
    });
    // And an earlier run's offer can still be saved.
    bob.say(&format!(
        "/save {} {}",
        second["short_id"].as_str().unwrap(),
        saves.path().display()
    ));
    let done = bob.wait_json("file_saved", |v| v["name"] == "later.bin");
    assert!(std::fs::read(done["path"].as_str().unwrap()).unwrap() == noise(70_000, 22));
    assert!(
        bob.json_events("file_offered").is_empty(),
        "the offers were not seen again: the list kept them"
    );
}
