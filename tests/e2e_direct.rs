//! Direct mode (issue #17, first part): one person's client is the relay,
//! with their own key; the other connects with --expect and that key.
//! Start order does not matter, and a wrong key is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{ClientProcess, example_identity, free_port, hush, run};

#[test]
fn two_people_talk_with_no_server_one_waiting_one_connecting() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let alice_fp = example_identity("alice").fingerprint().to_string();
    // bob starts first: he waits for alice.
    let mut bob = ClientProcess::start(&addr, "bob", "us", false, &["--expect", &alice_fp]);
    bob.wait_for("waiting", |l| l.contains("cannot reach the relay"));
    let mut alice = ClientProcess::start("", "alice", "us", false, &["--listen", &addr]);
    let hint = alice.wait_for("how to connect", |l| l.contains("others connect with:"));
    assert!(hint.contains(&format!("--expect {alice_fp}")), "{hint}");
    alice.wait_for("alice joined", |l| l.contains("joined #us"));
    let direct = bob.wait_for("direct", |l| {
        l.contains("connected directly to the owner of")
    });
    assert!(direct.contains(&alice_fp), "{direct}");
    bob.wait_for("bob joined", |l| l.contains("joined #us"));
    // bob's pin for alice's address is alice's own key.
    let pins = std::fs::read_to_string(bob.data.path().join("known_relays")).unwrap();
    assert_eq!(pins.trim(), format!("{addr} {alice_fp}"), "{pins}");
    alice.say("hi bob, no server between us");
    bob.wait_for("alice's line", |l| {
        l.ends_with(": hi bob, no server between us")
    });
    bob.say("hi alice");
    alice.wait_for("bob's line", |l| l.ends_with(": hi alice"));

    // Someone expecting another key is refused, and told why.
    let (_keys, key) = common::example_key("carol");
    let bob_fp = example_identity("bob").fingerprint().to_string();
    let data = tempfile::tempdir().unwrap();
    let out = run(hush()
        .args([
            "client", "--server", &addr, "--room", "us", "--expect", &bob_fp, "--key",
        ])
        .arg(&key)
        .arg("--data")
        .arg(data.path()));
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("not") && out.stderr.contains("that --expect names"),
        "{}",
        out.stderr
    );
    let bad = run(hush()
        .args([
            "client", "--server", &addr, "--room", "us", "--expect", "nope", "--key",
        ])
        .arg(&key));
    assert!(
        !bad.ok && bad.stderr.contains("--expect nope: not a fingerprint"),
        "{}",
        bad.stderr
    );
}
