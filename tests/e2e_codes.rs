//! Invitation codes (issue #17): a code read over the phone lets one
//! person into a room and proves both keys; a wrong code is refused and
//! spends the code; an expired or reused code is refused with a clear
//! error. All on the real binary and a real relay on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{ClientProcess, RelayProcess, example_identity, example_key, hush, run};

/// alice (json) creates invite-only `room` and makes a code.
fn alice_with_code(relay: &RelayProcess, room: &str) -> (ClientProcess, String) {
    let mut alice = ClientProcess::start(&relay.addr, "alice", room, true, &["--invite-only"]);
    alice.wait_json("joined", |_| true);
    alice.wait_json("epoch", |_| true);
    alice.say("/code");
    let issued = alice.wait_json("code_issued", |v| v["room"] == room);
    let code = issued["code"].as_str().unwrap().to_owned();
    (alice, code)
}

/// `hush client --code CODE` as `name`, to completion (stdin closed: it
/// quits once in), with its output.
fn use_code(relay: &RelayProcess, name: &str, code: &str) -> common::Output {
    let (_keys, key) = example_key(name);
    let data = tempfile::tempdir().unwrap();
    run(hush()
        .args([
            "client",
            "--json",
            "--server",
            &relay.addr,
            "--code",
            code,
            "--key",
        ])
        .arg(&key)
        .arg("--data")
        .arg(data.path()))
}

/// `code` with its last word replaced by another word of the same list.
fn wrong_words(code: &str) -> String {
    let (head, last) = code.rsplit_once('-').unwrap();
    let other = if last == "aardvark" {
        "absurd"
    } else {
        "aardvark"
    };
    format!("{head}-{other}")
}

#[test]
fn a_code_lets_bob_into_an_invite_only_room_and_proves_both_keys() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let (mut alice, code) = alice_with_code(&relay, "secret");
    let (alice_fp, bob_fp) = (
        example_identity("alice").fingerprint().to_string(),
        example_identity("bob").fingerprint().to_string(),
    );
    // bob names no room: the code says which.
    let mut bob = ClientProcess::start(&relay.addr, "bob", "", true, &["--code", &code]);
    let accepted = bob.wait_json("code_accepted", |_| true);
    assert_eq!(accepted["inviter"], alice_fp.as_str());
    assert_eq!(accepted["room"], "secret");
    assert_eq!(accepted["relay"], relay.fingerprint.as_str());
    let used = alice.wait_json("code_used", |_| true);
    assert_eq!(used["fingerprint"], bob_fp.as_str());
    assert_eq!(used["invited"], true);
    bob.wait_json("joined", |v| v["room"] == "secret");
    alice.wait_json("epoch", |v| {
        v["members"].as_array().is_some_and(|m| m.len() == 2)
    });
    // Each side now holds the other as verified: the code proved the key.
    alice.say("welcome, bob");
    let seen = bob.wait_json("message", |v| v["text"] == "welcome, bob");
    assert_eq!(seen["verified"], true, "{seen}");
    bob.say("thanks, alice");
    let seen = alice.wait_json("message", |v| v["text"] == "thanks, alice");
    assert_eq!(seen["verified"], true, "{seen}");
    alice.say("/members");
    let members = alice.wait_json("members", |_| true);
    let bob_entry = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["fingerprint"] == bob_fp.as_str())
        .cloned()
        .unwrap();
    assert_eq!(bob_entry["verified"], true, "{members}");

    // The code is spent: carol typing it too is refused.
    let carol = use_code(&relay, "carol", &code);
    assert!(!carol.ok);
    assert!(carol.stderr.contains("already used"), "{}", carol.stderr);
}

#[test]
fn a_wrong_code_is_refused_and_spends_the_code() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let (mut alice, code) = alice_with_code(&relay, "vault");
    let mallory = use_code(&relay, "mallory", &wrong_words(&code));
    assert!(!mallory.ok, "{}", mallory.stdout);
    assert!(
        mallory.stderr.contains("did not match"),
        "{}",
        mallory.stderr
    );
    let failed = alice.wait_json("code_failed", |_| true);
    assert!(
        failed["reason"].as_str().unwrap().contains("wrong words"),
        "{failed}"
    );
    // One guess per code: the right words now come too late.
    let bob = use_code(&relay, "bob", &code);
    assert!(!bob.ok);
    assert!(bob.stderr.contains("already used"), "{}", bob.stderr);
    // Nobody was let in: alice's room still has one member.
    alice.drain_for(std::time::Duration::from_millis(500));
    assert!(alice.json_events("member_joined").is_empty());
    assert!(
        alice
            .json_events("epoch")
            .iter()
            .all(|v| v["members"].as_array().unwrap().len() == 1)
    );
}

#[test]
fn expired_unknown_and_mistyped_codes_get_clear_errors() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &["--code-expiry", "2s"]);
    let (mut alice, code) = alice_with_code(&relay, "late");
    let expired = alice.wait_json("code_failed", |_| true);
    assert!(
        expired["reason"].as_str().unwrap().contains("expired"),
        "{expired}"
    );
    let bob = use_code(&relay, "bob", &code);
    assert!(!bob.ok);
    assert!(bob.stderr.contains("expired"), "{}", bob.stderr);
    // A number the relay never handed out.
    let (number, rest) = code.split_once('-').unwrap();
    let other = if number == "9999" { "9998" } else { "9999" };
    let unknown = use_code(&relay, "bob", &format!("{other}-{rest}"));
    assert!(
        unknown.stderr.contains("no code with this number"),
        "{}",
        unknown.stderr
    );
    // Typos are caught before anything is sent.
    let typo = use_code(&relay, "bob", "7-crossovr-clockwork");
    assert!(!typo.ok);
    assert!(
        typo.stderr.contains("not a code word") && typo.stderr.contains("crossover"),
        "{}",
        typo.stderr
    );
}

#[test]
fn codes_work_in_direct_mode_too() {
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut alice = ClientProcess::start(
        "",
        "alice",
        "us",
        true,
        &["--listen", &addr, "--invite-only"],
    );
    alice.wait_json("joined", |_| true);
    alice.wait_json("epoch", |_| true);
    alice.say("/code");
    let code = alice.wait_json("code_issued", |_| true)["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bob = ClientProcess::start(&addr, "bob", "", true, &["--code", &code]);
    let accepted = bob.wait_json("code_accepted", |_| true);
    // In direct mode the relay's key is alice's own.
    let alice_fp = example_identity("alice").fingerprint().to_string();
    assert_eq!(accepted["relay"], alice_fp.as_str());
    assert_eq!(accepted["inviter"], alice_fp.as_str());
    bob.wait_json("joined", |v| v["room"] == "us");
    // Listener first, connector second: the connector pinned the
    // listener's own key, learned from the code.
    let pins = std::fs::read_to_string(bob.data.path().join("known_relays")).unwrap();
    assert_eq!(pins.trim(), format!("{addr} {alice_fp}"), "{pins}");
    alice.say("no server, one code");
    bob.wait_json("message", |v| v["text"] == "no server, one code");
}

#[test]
fn a_code_proves_a_key_not_a_name_so_a_verified_name_is_not_handed_out() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let (mut alice, code) = alice_with_code(&relay, "club");
    // carol comes in by a code: verified under her name.
    let mut carol = ClientProcess::start(&relay.addr, "carol", "", true, &["--code", &code]);
    carol.wait_json("code_accepted", |_| true);
    alice.wait_json("code_used", |_| true);
    // mallory, given a code of her own, calls herself carol.
    alice.say("/code");
    let second = alice.wait_json("code_issued", |v| v["code"] != code.as_str());
    let second = second["code"].as_str().unwrap().to_owned();
    let mut mallory = ClientProcess::start(
        &relay.addr,
        "mallory",
        "",
        true,
        &["--code", &second, "--nick", "carol"],
    );
    mallory.wait_json("code_accepted", |_| true);
    let refused = alice.wait_json("error", |v| {
        v["text"]
            .as_str()
            .is_some_and(|t| t.contains("NOT marked verified"))
    });
    let mallory_fp = example_identity("mallory").fingerprint().to_string();
    assert!(
        refused["text"].as_str().unwrap().contains(&mallory_fp),
        "{refused}"
    );
}
