//! # hush-client: the terminal client
//!
//! ```text
//!   stdin ─▶ command ─▶ app ─▶ room (sign, seal) ─▶ link ─▶ relay
//!   relay ─▶ link ─▶ app ─▶ room (order, verify, open) ─▶ display ─▶ stdout / transcript
//! ```
//!
//! - [`link`]: TCP + the link handshake + sealed records, as async halves.
//! - [`pins`]: the relay keys pinned on first contact.
//! - the room protocol itself (ordering, verification, epochs, admissions
//!   and removals) is the `hush-room` crate, which does no I/O; [`app`]
//!   feeds it relay events, lines and ticks and performs its actions.
//! - [`display`]: what the user sees, as lines or JSON, with anything
//!   received neutralised before it reaches a terminal.
//! - [`command`]: what the user types.
//! - [`code`]: invitation codes: `/code` in a session, `--code` before one.
//! - [`state`]: the room state saved between runs, sealed to our own key.
//! - [`contacts`]: the people whose keys we verified, sealed the same way,
//!   shown with a mark and guarded against impostors using their names.
//! - [`files`]: sending and saving files; [`offers`]: each room's file
//!   offers, kept across runs for `/files`.
//! - `rooms`: the rooms open on the one link, and what a typed line does
//!   to them (`/join`, `/part`, `/leave`).
//! - [`tui`]: the terminal app (room list, conversation, members,
//!   status and input line), drawn from what [`app`] shows it.
//! - [`app`]: the loop that ties them to a connection that retries.
//!
//! It must never show anything it has not verified and opened, reuse a
//! (key, nonce) pair, or unwrap a key from a commit it has not
//! authenticated.
#![forbid(unsafe_code)]

pub mod app;
pub mod code;
pub mod command;
pub mod contacts;
pub mod display;
pub mod files;
pub mod link;
pub mod offers;
pub mod pins;
mod rooms;
pub mod state;
pub mod tui;
