//! How the terminal and JSON front ends word what a simulated room shows.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use hush_client::display::{render_json, render_line};
use hush_testkit::sim::a_message_written_hours_ago;

/// The display half of the room test of the same name
/// (`room/tests/room/checkpoints.rs`): a message whose sender claims it was
/// written hours ago carries a note saying so, in both front ends.
#[test]
fn a_delayed_message_is_shown_in_arrival_order_with_a_note() {
    let (bob, _) = a_message_written_hours_ago();
    let delayed = bob.shown_message("written long ago");
    let line = render_line(delayed);
    assert!(line.contains("earlier"), "{line}");
    let json = render_json(delayed);
    assert!(json.contains("\"sent_at\""), "{json}");
}
