//! # hush-client: the terminal client
//!
//! Connection and reconnect, room key state, sending and verifying
//! messages, display and JSON output, commands.
#![forbid(unsafe_code)]
