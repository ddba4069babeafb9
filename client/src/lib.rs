//! # hush-client: the terminal client
//!
//! Connection and reconnect, room key state, sending and verifying
//! messages, display and JSON output, commands.
//!
//! - [`link`]: TCP + the link handshake + sealed records, as async halves.
#![forbid(unsafe_code)]

pub mod link;
