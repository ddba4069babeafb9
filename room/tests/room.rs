//! End-to-end room logic in memory: several [`Room`](hush_room::Room)s talking through a
//! simulated relay that applies the real relay's epoch rule, with no
//! network and no threads (the harness is `hush-testkit`'s `sim`).
//!
//! Each test asserts what a user would notice: which messages, warnings,
//! notices and membership changes each member's screen shows. One test
//! binary, one module per topic in `room/`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "room/add_only.rs"]
mod add_only;
#[path = "room/audit.rs"]
mod audit;
#[path = "room/before_admission.rs"]
mod before_admission;
#[path = "room/bounds.rs"]
mod bounds;
#[path = "room/checkpoints.rs"]
mod checkpoints;
#[path = "room/commit_rules.rs"]
mod commit_rules;
#[path = "room/concurrent_commits.rs"]
mod concurrent_commits;
#[path = "room/connecting.rs"]
mod connecting;
#[path = "room/create_and_talk.rs"]
mod create_and_talk;
#[path = "room/entropy.rs"]
mod entropy;
#[path = "room/harness.rs"]
mod harness;
#[path = "room/invite_only.rs"]
mod invite_only;
#[path = "room/leave.rs"]
mod leave;
#[path = "room/nicknames.rs"]
mod nicknames;
#[path = "room/non_member.rs"]
mod non_member;
#[path = "room/reordering.rs"]
mod reordering;
#[path = "room/replay.rs"]
mod replay;
#[path = "room/restart.rs"]
mod restart;
#[path = "room/security_review.rs"]
mod security_review;
#[path = "room/tamper.rs"]
mod tamper;
#[path = "room/transcript.rs"]
mod transcript;
#[path = "room/warning_kinds.rs"]
mod warning_kinds;
