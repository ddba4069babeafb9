//! The terminal app (issue #15), end to end: the real `hush client` runs in
//! a real terminal (a tmux pane of 100×30) against a real relay, with bob
//! in line mode on the other side. What the test reads is what a person
//! would see: `tmux capture-pane` of the screen.
//!
//! tmux is installed by `.ci/run` (pinned); without it this test fails
//! saying so rather than passing without looking.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::tmux::Tmux;
use common::{ClientProcess, RelayProcess, example_key};

fn any_row(screen: &[String], pred: impl Fn(&str) -> bool) -> bool {
    screen.iter().any(|row| pred(row))
}

/// The room list row of `room` (the left pane: "N #room ..."), if shown.
fn list_row(screen: &[String], room: &str) -> Option<String> {
    let tag = format!("#{room}");
    screen
        .iter()
        .map(|row| row.chars().take_while(|&c| c != '│').collect::<String>())
        .find(|left| left.split_whitespace().any(|w| w == tag))
}

/// The input line: the bottom row, "#room> text" (capture-pane drops
/// trailing spaces).
fn input_row(screen: &[String]) -> String {
    screen
        .iter()
        .rev()
        .find(|row| !row.trim().is_empty())
        .cloned()
        .unwrap_or_default()
}

#[test]
fn the_terminal_app_keeps_typing_safe_and_counts_unread_per_room() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let (_alice_keys, alice_key) = example_key("alice");
    let alice_data = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(&[
        env!("CARGO_BIN_EXE_hush"),
        "client",
        "--server",
        &relay.addr,
        "--room",
        "lobby",
        "--key",
        alice_key.to_str().unwrap(),
        "--data",
        alice_data.path().to_str().unwrap(),
        "--no-bell",
    ]);
    tmux.wait("alice joined #lobby", |s| {
        any_row(s, |r| r.contains("joined #lobby as alice"))
    });
    assert!(
        list_row(&tmux.screen(), "lobby").is_some(),
        "the room list shows #lobby"
    );

    let mut bob = ClientProcess::start(&relay.addr, "bob", "lobby", false, &[]);
    bob.wait_for("bob joined", |l| l.contains("joined #lobby"));
    tmux.wait("bob shown as a member", |s| {
        any_row(s, |r| r.contains("bob"))
    });

    // A half-typed line survives a message arriving.
    tmux.type_text("half typed");
    tmux.wait("the typing shows", |s| input_row(s).contains("half typed"));
    bob.say("hello from bob");
    let screen = tmux.wait("bob's message", |s| {
        any_row(s, |r| r.contains("bob") && r.contains("hello from bob"))
    });
    assert!(
        input_row(&screen).contains("half typed"),
        "the line being typed is intact: {}",
        input_row(&screen)
    );
    assert!(
        !any_row(&screen, |r| r.contains("half typedhello")
            || r.contains("hello from bobhalf")),
        "nothing landed inside the typed line"
    );
    tmux.type_text(" and finished");
    tmux.press("Enter");
    bob.wait_for("alice's line reaches bob", |l| {
        l.ends_with(": half typed and finished")
    });
    // Shown once, as sent (not once pending and once echoed).
    let screen = tmux.wait("alice's line settles", |s| {
        any_row(s, |r| {
            r.contains("half typed and finished") && r.contains('✓')
        })
    });
    let copies = screen
        .iter()
        .filter(|r| r.contains("half typed and finished"))
        .count();
    assert_eq!(copies, 1, "own line shown once:\n{}", screen.join("\n"));

    // /join of a second room shows it in the list, and makes it current.
    tmux.type_text("/join side");
    tmux.press("Enter");
    tmux.wait("#side in the room list", |s| {
        list_row(s, "side").is_some() && any_row(s, |r| r.contains("joined #side as alice"))
    });
    // Back to the lobby with Alt-1.
    tmux.press("M-1");
    tmux.wait("#lobby current again", |s| input_row(s).contains("#lobby>"));

    // A message in #side, while alice looks at #lobby, raises its count.
    bob.say("/join side");
    bob.wait_for("bob in side", |l| l.contains("joined #side"));
    bob.say("news in side");
    let screen = tmux.wait("an unread count on #side", |s| {
        list_row(s, "side").is_some_and(|row| {
            row.split_whitespace()
                .last()
                .is_some_and(|w| w.chars().all(|c| c.is_ascii_digit()))
        })
    });
    let row = list_row(&screen, "side").unwrap();
    assert!(
        row.split_whitespace().any(|w| w == "1"),
        "one unread message: {row:?}"
    );
    assert!(
        !any_row(&screen, |r| r.contains("news in side")),
        "#side's message is not drawn in #lobby"
    );

    // Switching (Alt-2) shows it and clears the count.
    tmux.press("M-2");
    let screen = tmux.wait("#side shown", |s| {
        any_row(s, |r| r.contains("news in side")) && input_row(s).contains("#side>")
    });
    let row = list_row(&screen, "side").unwrap();
    assert!(
        !row.split_whitespace()
            .skip(2)
            .any(|w| w.chars().all(|c| c.is_ascii_digit())),
        "the unread count is cleared: {row:?}"
    );
    assert!(
        any_row(&screen, |r| r.contains("new since you were away")),
        "the read marker shows what arrived while away:\n{}",
        screen.join("\n")
    );

    // Ctrl-C quits (nothing unsent) and gives the terminal back.
    tmux.press("C-c");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tmux.exited() {
        assert!(
            Instant::now() < deadline,
            "the client did not quit on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn quitting_with_unsent_lines_prints_them_after_the_screen_closes() {
    let data = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(data.path(), 0, &[]);
    let addr = relay.addr.clone();
    let (_keys, key) = example_key("alice");
    let alice_data = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(&[
        "sh",
        "-c",
        &format!(
            "{} client --server {addr} --room lobby --key {} --data {} --no-bell; echo exit=$?; sleep 30",
            env!("CARGO_BIN_EXE_hush"),
            key.display(),
            alice_data.path().display()
        ),
    ]);
    tmux.wait("joined", |s| {
        any_row(s, |r| r.contains("joined #lobby as alice"))
    });
    // The relay goes away: what is typed now cannot be sent.
    drop(relay);
    tmux.wait("reconnecting", |s| {
        any_row(s, |r| r.contains("reconnecting"))
    });
    tmux.type_text("unsent at quit");
    tmux.press("Enter");
    tmux.wait("pending", |s| {
        any_row(s, |r| r.contains("unsent at quit") && r.contains('⋯'))
    });
    tmux.type_text("half a thought");
    tmux.press("C-c");
    tmux.wait("the wait is said", |s| {
        any_row(s, |r| r.contains("Ctrl-C again quits now"))
    });
    tmux.press("C-c");
    let screen = tmux.wait("the exit", |s| any_row(s, |r| r.contains("exit=")));
    assert!(
        any_row(&screen, |r| r
            .contains("hush: #lobby, not sent: unsent at quit")),
        "{}",
        screen.join("\n")
    );
    assert!(
        any_row(&screen, |r| r
            .contains("hush: #lobby, being typed: half a thought")),
        "{}",
        screen.join("\n")
    );
    assert!(
        any_row(&screen, |r| r.contains("exit=1")),
        "{}",
        screen.join("\n")
    );
}
